"""The offline demo: the generated demo dataset (``dataset``, ``assets``) and tiny random stand-ins of
hub checkpoints written with ``save_pretrained`` (``tiny_checkpoints``, ``tiny_hf``, ``tiny_vlm``,
``tiny_bpe``, ``pretrained``).

Product modules never import this package: the workflow scripts of the rules that build the demo
(import_dataset passes ``dataset.load_demo`` as the ``demo`` source's loader) and the stand-ins
(tiny_checkpoint) do, and so do the tests.
"""
