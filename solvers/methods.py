"""Every method name ``solvers.odeint`` accepts, with what it is: order, stages, kind, backend.

Every explicit Runge-Kutta method (``solvers.tableaux.TABLEAUX``, fixed and embedded pairs) runs
on this package's engine, and so does its reversible version ``reversible_<name>``
(``solvers.tableaux.REVERSIBLE_TABLEAUX``, :mod:`solvers.reversible`; stages per step: twice the base's).  The multistep and wrapped methods of torchdiffeq (Adams-Bashforth(-
Moulton), scipy's solvers) are not Runge-Kutta methods and are delegated to ``torchdiffeq.odeint``
through its public API.  Names mean what they mean in torchdiffeq: ``"rk4"`` is Kutta's 3/8 rule
in both libraries (the classical method is ``"rk4_classic"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .tableaux import REVERSIBLE_TABLEAUX, TABLEAUX

__all__ = ["DELEGATED", "METHODS", "MethodInfo"]


@dataclass(frozen=True)
class MethodInfo:
    """What a method is.

    Attributes:
        order: classical order of accuracy (for Adams methods, the highest order they reach;
            None for ``scipy_solver``, whose order depends on the scipy method chosen).
        stages: function evaluations per step (None for multistep / wrapped methods).
        kind: ``"fixed"`` (grid given by ``t``, ``jump_t`` and ``step_size``) or ``"adaptive"``
            (error-controlled steps, governed by ``rtol``/``atol``).
        backend: ``"engine"`` (this package's Runge-Kutta engine) or ``"torchdiffeq"``.
    """

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
