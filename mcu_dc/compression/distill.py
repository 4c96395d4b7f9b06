"""Knowledge distillation from the dense model during the retraining stages (Hinton et al. 2015).

The teacher is a frozen copy of the dense network (after dense training, or as loaded with
``--weights`` / ``--pretrained``), run in eval mode on the same (augmented) batch as the student.
For a classifier the loss is

    (1 - alpha) * CE(student, labels) + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))

(the ``T^2`` keeps the soft term's gradients on the scale of the hard term's when ``T`` changes).
For regression and reconstruction the soft target is the teacher's output itself:
``(1 - alpha) * MSE(student, targets) + alpha * MSE(student, teacher)`` (no temperature).
``alpha = 0`` is the plain task loss, exactly.

A TOML config enables it with::

    [distill]
    enabled = true
    temperature = 4.0
    alpha = 0.5
    stages = ["prune", "finetune"]
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mcu_dc.errors import ConfigError

STAGES = ("prune", "finetune")


@dataclass
class DistillConfig:
    enabled: bool = False
    temperature: float = 4.0  # softens both distributions (classification only)
    alpha: float = 0.5  # weight of the soft (teacher) term; 1 - alpha weighs the task loss
    stages: list[str] = field(default_factory=lambda: list(STAGES))  # prune (retraining), finetune

    def validate(self) -> None:
        if not 0 < self.temperature <= 1e4:
            raise ConfigError(
                f"distill.temperature = {self.temperature}: the softmax temperature must be > 0 (1 is the "
                "plain softmax; Hinton et al. use 2..20, the default is 4)"
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(
                f"distill.alpha = {self.alpha}: the soft term's weight must be in [0, 1] (0: the task loss "
                "only, 1: the teacher's outputs only)"
            )
        bad = [s for s in self.stages if s not in STAGES]
        if bad or len(set(self.stages)) != len(self.stages):
            raise ConfigError(
                f"distill.stages = {self.stages!r}: each entry must be one of {', '.join(STAGES)} (prune: "
                "the retraining after each pruning round; finetune: the centroid fine-tuning), at most once"
            )

    def applies_to(self, stage: str) -> bool:
        return self.enabled and stage in self.stages

    def to_meta(self) -> dict[str, Any]:
        """What the model file records about the distillation (``meta["distill"]``)."""
        return {
            "temperature": self.temperature,
            "alpha": self.alpha,
            "stages": list(self.stages),
            "teacher": "the dense model (frozen, eval mode)",
        }


def kd_loss(
    task: str,
    student: torch.Tensor,
    teacher: torch.Tensor,
    target: torch.Tensor,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """The distillation loss of one batch (mean over its samples; see the module docstring).

    ``student`` and ``teacher`` are ``(N, out_len)`` outputs (logits for a classifier), ``target``
    the task's targets (class indices, or float targets ``(N, out_len)``).
    """
    student = student.reshape(student.shape[0], -1)
    teacher = teacher.detach().reshape(teacher.shape[0], -1)
    hard = F.cross_entropy(student, target) if task == "classification" else F.mse_loss(student, target)
    if alpha == 0.0:
        return hard  # exactly the plain task loss
    if task == "classification":
        t = float(temperature)
        soft = F.kl_div(
            F.log_softmax(student / t, dim=1),
            F.log_softmax(teacher / t, dim=1),
            reduction="batchmean",
            log_target=True,
        ) * (t * t)
    else:
        soft = F.mse_loss(student, teacher)
    return (1.0 - alpha) * hard + alpha * soft


def make_teacher(net: nn.Module) -> nn.Module:
    """A frozen copy of ``net`` in eval mode (no gradients, never trained)."""
    teacher = copy.deepcopy(net)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@dataclass
class Distiller:
    """What :func:`mcu_dc.compression.train.train` needs to distill: the teacher and the settings."""

    teacher: nn.Module
    temperature: float = 4.0
    alpha: float = 0.5

    @classmethod
    def for_stage(cls, cfg: DistillConfig, stage: str, teacher: nn.Module | None) -> Distiller | None:
        """The distiller of ``stage`` (``prune`` or ``finetune``), None where distillation is off."""
        if not cfg.applies_to(stage):
            return None
        if teacher is None:
            raise ConfigError(
                f"distill is enabled for the {stage} stage but no teacher (the dense model) was given; the "
                "pipeline makes one after dense training: pass Stage1.teacher to finish(), or set "
                "distill.enabled = false"
            )
        return cls(teacher, cfg.temperature, cfg.alpha)

    @torch.no_grad()
    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        self.teacher.eval()
        return self.teacher(x)

    def loss(self, task: str, student: torch.Tensor, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        teacher = self.outputs(x) if self.alpha > 0.0 else student  # alpha 0: no teacher pass needed
        return kd_loss(task, student, teacher, target, self.temperature, self.alpha)
