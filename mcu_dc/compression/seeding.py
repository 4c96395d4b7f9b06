"""One seed for everything random in a compression run.

Same command, same seed, same machine and thread count → the same model bytes: seed before the
model is built (its initial weights are random) as well as before training. Torch's CPU kernels
are deterministic for a fixed thread count; on a GPU some reductions are not, so CUDA runs may
differ in the last bits.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
