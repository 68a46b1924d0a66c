"""Every method name ``solvers.odeint`` accepts, with what it is: order, stages, kind, backend.

Our own explicit tableaux (``solvers.tableaux.TABLEAUX``) run in our fixed-step loop; every
other name is one of torchdiffeq's solvers and is delegated to it.  Where names collide, the
tableau wins: ``"euler"`` and ``"midpoint"`` are the same method in both, but our ``"rk4"`` is
the *classical* RK4 whereas torchdiffeq's ``"rk4"`` is Kutta's 3/8 rule, available here as
``"rk38"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torchdiffeq._impl.odeint import SOLVERS as _TORCHDIFFEQ_SOLVERS

from .tableaux import TABLEAUX

__all__ = ["METHODS", "TORCHDIFFEQ_METHODS", "MethodInfo"]


@dataclass(frozen=True)
class MethodInfo:
    """What a method is.

    Attributes:
        order: classical order of accuracy (for Adams methods, the highest order they reach;
            None for ``scipy_solver``, whose order depends on the scipy method chosen).
        stages: function evaluations per step of the method's Butcher tableau (None for
            multistep / wrapped methods, where it is not a fixed number).
        kind: ``"fixed"`` (grid given by ``t``, ``jump_t`` and ``step_size``) or ``"adaptive"``
            (error-controlled step, governed by ``rtol``/``atol``).
        backend: ``"tableau"`` (our loop, ``solvers.fixed``) or ``"torchdiffeq"``.
    """

    order: int | None
    stages: int | None
    kind: Literal["fixed", "adaptive"]
    backend: Literal["tableau", "torchdiffeq"]


# torchdiffeq's solvers, read from its own registry (torchdiffeq/_impl/odeint.py: SOLVERS), so a
# method added upstream (e.g. "tsit5" in a later release) is picked up; its kind is fixed for
# subclasses of FixedGridODESolver and adaptive otherwise.
def _torchdiffeq_info(name: str, cls: type) -> MethodInfo:
    from torchdiffeq._impl.solvers import FixedGridODESolver

    order = getattr(cls, "order", None)
    tab = getattr(cls, "tableau", None)
    stages = len(tab.alpha) + 1 if tab is not None else None
    fixed_stages = {"euler": 1, "midpoint": 2, "heun2": 2, "heun3": 3, "rk4": 4}
    if stages is None:
        stages = fixed_stages.get(name)
    kind = "fixed" if isinstance(cls, type) and issubclass(cls, FixedGridODESolver) else "adaptive"
    return MethodInfo(order=order if isinstance(order, int) else None, stages=stages, kind=kind,
                      backend="torchdiffeq")


TORCHDIFFEQ_METHODS: dict[str, MethodInfo] = {
    name: _torchdiffeq_info(name, cls) for name, cls in _TORCHDIFFEQ_SOLVERS.items()
}
"""torchdiffeq's own solvers by their torchdiffeq names (its "rk4" is the 3/8 rule)."""

METHODS: dict[str, MethodInfo] = {
    **TORCHDIFFEQ_METHODS,
    **{
        name: MethodInfo(order=tab.order, stages=tab.stages, kind="fixed", backend="tableau")
        for name, tab in TABLEAUX.items()
    },
}
"""Every method name ``solvers.odeint`` accepts -> its MethodInfo."""
