"""The training engine shared by every model family: data over the image cache, tensor
augmentation, checkpoints and the one training loop (``medvqa.training.engine``)."""
