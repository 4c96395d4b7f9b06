"""The torch side of mcu_dc: capture, train, prune, cluster, quantize, report.

The entry point is :func:`mcu_dc.compress` (implemented in :mod:`.pipeline`). Importing
this package does not import torch; its submodules do (except ``report``).
"""
