"""Every method name ``solvers.odeint`` accepts, with what it is (order, stages, kind, backend): the
Runge-Kutta tableaux and their reversible versions run on this package's engine; torchdiffeq's multistep
and scipy methods, which are not Runge-Kutta methods, are handed to ``torchdiffeq.odeint``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .tableaux import REVERSIBLE_TABLEAUX, TABLEAUX

__all__ = ["DELEGATED", "METHODS", "MethodInfo"]


@dataclass(frozen=True)
class MethodInfo:
    """What a method is: its classical ``order`` (None for ``scipy_solver``, which depends on the scipy
    method), its function evaluations per step ``stages`` (None for multistep / wrapped methods), its ``kind``
    (steps from ``t``, ``jump_t`` and ``step_size``, or from ``rtol``/``atol``) and who runs it."""

    order: int | None
    stages: int | None
    kind: Literal["fixed", "adaptive"]
    backend: Literal["engine", "torchdiffeq"]


DELEGATED: dict[str, MethodInfo] = {
    "explicit_adams": MethodInfo(order=4, stages=None, kind="fixed", backend="torchdiffeq"),
    "implicit_adams": MethodInfo(order=4, stages=None, kind="fixed", backend="torchdiffeq"),
    "fixed_adams": MethodInfo(order=4, stages=None, kind="fixed", backend="torchdiffeq"),
    "scipy_solver": MethodInfo(order=None, stages=None, kind="adaptive", backend="torchdiffeq"),
}
"""torchdiffeq methods that are not Runge-Kutta methods, run by torchdiffeq itself."""

METHODS: dict[str, MethodInfo] = {
    **{name: MethodInfo(order=tab.order, stages=tab.stages * (2 if name in REVERSIBLE_TABLEAUX else 1),
                        kind="adaptive" if tab.adaptive else "fixed",
                        backend="engine") for name, tab in (*TABLEAUX.items(), *REVERSIBLE_TABLEAUX.items())},
    **DELEGATED,
}
"""Every method name ``solvers.odeint`` accepts -> its MethodInfo."""
