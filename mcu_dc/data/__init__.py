"""Datasets (uint8 images or float features; class labels or float targets) and task metrics.

Built-in sets: MNIST, Fashion-MNIST, scikit-learn's digits and CIFAR-10; your own data from a
``.npz`` file (:mod:`mcu_dc.data.npz`). :func:`load_dataset` / :func:`load_train_test` take either.
"""

from mcu_dc.data.cifar import CIFAR10_CLASSES
from mcu_dc.data.datasets import DATASETS, Dataset, load_dataset, load_train_test
from mcu_dc.data.metrics import auc, task_metrics
from mcu_dc.data.npz import load_npz

__all__ = [
    "CIFAR10_CLASSES",
    "DATASETS",
    "Dataset",
    "auc",
    "load_dataset",
    "load_npz",
    "load_train_test",
    "task_metrics",
]
