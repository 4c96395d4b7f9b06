"""The Pareto front of a sweep: trials no other trial beats on every objective at once.

The objectives are the blob's bytes (lower is better), the integer model's score on the
validation split (accuracy for a classifier, ``-nmse`` otherwise; higher is better) and the
predicted instructions per inference (lower is better). Trial ``a`` dominates ``b`` when it is
at least as good on all three and strictly better on one; equal points do not dominate each
other, so both stay on the front.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    bytes: int  # lower is better
    score: float  # higher is better
    instructions: int  # lower is better


def dominates(a: Point, b: Point) -> bool:
    """``a`` is no worse than ``b`` on every objective and better on at least one."""
    no_worse = a.bytes <= b.bytes and a.score >= b.score and a.instructions <= b.instructions
    better = a.bytes < b.bytes or a.score > b.score or a.instructions < b.instructions
    return no_worse and better


def pareto_front(points: Sequence[Point]) -> list[int]:
    """Indices of the non-dominated points, in input order."""
    return [i for i, p in enumerate(points) if not any(dominates(q, p) for q in points)]
