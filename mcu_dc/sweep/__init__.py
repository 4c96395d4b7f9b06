"""``mcu-dc sweep``: explore per-layer sparsity, codebook bits and encoding objective on Ray Tune.

Modules, one job each: :mod:`~mcu_dc.sweep.space` (the search space and seeded sampling),
:mod:`~mcu_dc.sweep.settings` (the ``[sweep]`` table and flags), :mod:`~mcu_dc.sweep.trial` (one
trial through the compression pipeline, no Ray), :mod:`~mcu_dc.sweep.engine` (Ray Tune),
:mod:`~mcu_dc.sweep.pareto` (the front), :mod:`~mcu_dc.sweep.outputs` and :mod:`~mcu_dc.sweep.plot`
(the output folder), :mod:`~mcu_dc.sweep.runner` (the whole sweep). Ray is imported only when trials
run, so the rest works without it.
"""

from mcu_dc.sweep.pareto import Point, dominates, pareto_front
from mcu_dc.sweep.space import SweepSpec, TrialParams, sample_trials

__all__ = ["Point", "SweepSpec", "TrialParams", "dominates", "pareto_front", "sample_trials"]
