"""Datasets: uint8 images and labels (MNIST, Fashion-MNIST, scikit-learn digits)."""

from mcu_dc.data.datasets import DATASETS, Dataset, load_dataset, load_train_test

__all__ = ["DATASETS", "Dataset", "load_dataset", "load_train_test"]
