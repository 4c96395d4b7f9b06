"""The tiny digits config the compress tests share: seconds, not minutes, of training."""

TINY_CONFIG = """
val_size = 100
[dense]
epochs = 3
batch_size = 32
[prune]
rounds = 1
[prune.retrain]
epochs = 1
batch_size = 32
[finetune]
epochs = 1
batch_size = 32
optimizer = "adam"
lr = 0.0001
weight_decay = 0.0
"""
