"""The training engine shared by the classifier families: data over the image cache and
pre-tokenised questions, tensor augmentation, checkpoints and the training loop."""
