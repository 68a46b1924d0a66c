"""One explicit Runge-Kutta step for any tableau: the only stage loop of the package (fixed grids, adaptive
steps, the adjoint, a discrete cell's single step all step here, whatever the term).

Stages on an end of the step are evaluated one ulp inside it (``perturb_start``/``perturb_end``,
``term.nudge``): grid points are where piecewise inputs jump, and one ulp inside, a stage reads the step's
own piece whichever side the input is closed on (torchdiffeq's ``perturb``).  Step sizes are Python floats
(no tensor per step; ``torch.add(..., alpha=)`` folds the weight into one kernel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .tableaux import Tableau
from .terms import Term

__all__ = ["Plan", "Step", "combine", "rk_step"]


@dataclass(frozen=True)
class Plan:
    """A tableau's nonzero weights, prepared once per solve.

    ``rows[i]``: (j, a_ij) of stage i; ``b``: (j, b_j) of the solution; ``err``: (j, b_err_j);
    ``mid``: (j, b_mid_j) of the dense output's midpoint.  ``fsal``: the last stage is f(t1, y1).
    ``solution_stages``: the stages the propagated solution depends on (all but an FSAL last one).
    """

    tab: Tableau
    rows: tuple[tuple[tuple[int, float], ...], ...]
    b: tuple[tuple[int, float], ...]
    err: tuple[tuple[int, float], ...] | None
    mid: tuple[tuple[int, float], ...] | None
    fsal: bool
    solution_stages: int

    @staticmethod
    def of(tab: Tableau) -> Plan:
        def nz(w):
            return tuple((j, x) for j, x in enumerate(w) if x != 0.0)

        fsal = tab.fsal
        return Plan(tab=tab, rows=tuple(nz(r) for r in tab.a), b=nz(tab.b),
                    err=None if tab.b_err is None else nz(tab.b_err),
                    mid=None if tab.b_mid is None else nz(tab.b_mid), fsal=fsal,
                    solution_stages=tab.stages - 1 if fsal else tab.stages)


def combine(y0: Tensor | None, dt: float, weights: tuple[tuple[int, float], ...], ks: list[Tensor]) -> Tensor:
    """``y0 + dt * sum_j w_j ks[j]`` (``y0`` None: without it) in as few kernels as possible (one fused
    ``add`` per term).  Returns ``y0`` itself when there are no weights.  The weighted stages are summed
    first and ``y0`` added once (as torchdiffeq does): one rounding of the state per combination, not
    one per stage, which in float32 would drift (the same small increments rounded the same way at
    every step: 1e-4 relative after 150 rk4 steps of a slowly moving state).
    """
    if not weights:
        if y0 is None:
            return torch.zeros_like(ks[0])
        return y0
    if y0 is not None and len(weights) == 1:
        j, w = weights[0]
        return torch.add(y0, ks[j], alpha=dt * w)
    acc = None
    for j, w in weights:
        if acc is None:
            acc = ks[j] * (dt * w)
        else:  # in place on the fresh accumulator: mul/add keep nothing of their output for backward
            acc.add_(ks[j], alpha=dt * w)
    if y0 is not None:
        acc.add_(y0)
    return acc


@dataclass
class Step:
    """One computed step: the new state, the error estimate (None for fixed methods), every stage's
    derivative ``ks`` and state ``ys``, and what the term kept per stage (``aux``, or None)."""

    y1: Tensor
    err: Tensor | None
    ks: list[Tensor]
    ys: list[Tensor]
    aux: list[Any] | None


def rk_step(term: Term, plan: Plan, t0: Any, t1: Any, y0: Tensor, k0: Tensor | None = None,
            perturb_start: bool = False, perturb_end: bool = False, keep_aux: bool = False,
            aux0: Any = None) -> Step:
    """One step of ``plan``'s tableau (``Plan.of(tableau)``) from (t0, y0) to t1 (floats: ``t1`` rather than
    ``dt``, so a step lands exactly on a grid point).  ``k0``: f at the start when known (FSAL, a retried
    step), with its ``aux0``; ``perturb_*``: stages at c = 0 / c = 1 one ulp inside; ``keep_aux``: collect
    ``term.aux()`` after each stage (for a recorded tape)."""
    tab = plan.tab
    dt = t1 - t0
    f = term.f
    ys: list[Tensor] = [y0]
    if k0 is None:
        k0 = f(term.nudge(t0, t1) if perturb_start else t0, y0)
        aux0 = term.aux() if keep_aux else None
    ks: list[Tensor] = [k0]
    auxs: list[Any] | None = [aux0] if keep_aux else None
    c = tab.c
    rows = plan.rows
    for i in range(1, tab.stages):
        yi = combine(y0, dt, rows[i], ks)
        ys.append(yi)
        ci = c[i]
        if ci == 1.0:
            ti = term.nudge(t1, t0) if perturb_end else t1
        elif ci == 0.0:
            ti = term.nudge(t0, t1) if perturb_start else t0
        else:
            ti = t0 + ci * dt
        ks.append(f(ti, yi))
        if auxs is not None:
            auxs.append(term.aux())
    y1 = ys[-1] if plan.fsal else combine(y0, dt, plan.b, ks)
    err = None if plan.err is None else combine(None, dt, plan.err, ks)
    return Step(y1=y1, err=err, ks=ks, ys=ys, aux=auxs)
