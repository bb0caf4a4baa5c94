"""Inference stages over trained (or zero-shot) models: answers and captions.

``predict`` (answers of one split → predictions parquet, ``python -m medvqa.inference.predict``),
``caption`` (resumable batched captions of one split, ``python -m medvqa.inference.caption``) with
the caption model kinds of ``caption_models``, and ``shards`` (a split cut into shards that run
as separate jobs, merged in id order). Models are rebuilt from their run directories
(``medvqa.models.checkpoint``); nothing here imports ``medvqa.training``.
The stage modules are not imported here so that ``python -m`` runs them without a warning.
"""
