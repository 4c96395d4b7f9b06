"""Datasets (uint8 images or float features; class labels or float targets) and task metrics."""

from mcu_dc.data.datasets import DATASETS, Dataset, load_dataset, load_train_test
from mcu_dc.data.metrics import auc, task_metrics

__all__ = ["DATASETS", "Dataset", "auc", "load_dataset", "load_train_test", "task_metrics"]
