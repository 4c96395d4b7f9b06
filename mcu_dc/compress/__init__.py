"""The torch side of mcu_dc: capture, train, prune, cluster, quantize, report.

``compress(model, train, test, config)`` is the entry point (see :mod:`.pipeline`).
Importing this package does not import torch; its submodules do (except ``report``).

Importing any submodule (``mcu_dc.compress.report`` ...) binds the attribute
``mcu_dc.compress`` to this package, replacing the function ``mcu_dc.compress`` that
``mcu_dc/__init__.py`` exports. So the package itself is callable: ``mcu_dc.compress(...)``
works either way.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcu_dc.core.model_file import CompressedModel

__all__ = ["compress"]


def compress(*args: Any, **kwargs: Any) -> CompressedModel:
    """Deep-compress a PyTorch model; see :func:`mcu_dc.compress.pipeline.compress`."""
    from mcu_dc.compress.pipeline import compress as _compress

    return _compress(*args, **kwargs)


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> CompressedModel:
        return compress(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
