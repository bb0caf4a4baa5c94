"""The model families and what every stage that runs a model shares.

Importing this package loads nothing (no torch): the config check reads the specs
(``medvqa.models.specs``) without torch. The modules, by what they hold:

* ``registry``: ``MODEL_FAMILIES``, the families in one literal dict, and ``build_model`` /
  ``rebuild_model``; ``common``: the family interface (``ModelFamily``) and shared layers;
* one module per family (``cnn_lstm``, ``clip_classifier``, ``flamingo``, ``blip``, ``vlm_sft``)
  and their helpers (``classify``, ``generative``, ``flamingo_layers``, ``flamingo_generate``,
  ``vlm_collate``, ``generation``: batched ``generate`` → answers with confidences);
* what training and inference both read: ``specs`` (every ``model:`` spec, torch-free),
  ``batch`` (a split's stage files → batches), ``augment`` (tensor augmentation) and
  ``checkpoint`` (run directories: saving, resuming, rebuilding a model from its files).

Dependencies run one way: ``medvqa.training`` and ``medvqa.inference`` import this package,
never the reverse (``tests/test_layering.py``).
"""
