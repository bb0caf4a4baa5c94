"""Training: the one training loop every model family shares (``engine``), its ``train:`` spec
(``spec``), data-parallel runs under torchrun (``distributed``) and the stage entry point
(``train``: ``python -m medvqa.training.train``). What training and inference both read (batches,
augmentation, checkpoints, the model specs) lives in ``medvqa.models``.
The stage module is not imported here so that ``python -m`` runs it without a warning."""
