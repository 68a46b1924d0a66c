"""Accuracy studies: observed convergence order and work-precision data.

``observed_order`` fits the slope p of log(error) = p log(h) + const, the order a method shows
on a smooth problem.  ``work_precision`` runs one problem with several methods at several step
sizes (fixed methods) or tolerances (adaptive methods) and records the cost (function
evaluations, seconds) and the error of each run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .methods import METHODS
from .odeint import odeint
from .tableaux import Tableau

__all__ = ["CountingFunc", "WorkPrecisionRecord", "observed_order", "work_precision"]


def observed_order(errors: Sequence[float], step_sizes: Sequence[float]) -> float:
    """Least-squares slope of log(error) against log(step size).

    Args:
        errors: positive errors, one per run.
        step_sizes: the matching positive step sizes (at least two distinct).

    Returns:
        The fitted order p in error ~ C h^p.

    Raises:
        ValueError: on mismatched lengths, fewer than two runs, non-positive or non-finite
            values (log undefined), or identical step sizes.
    """
    e = np.asarray([float(x) for x in errors])
    h = np.asarray([float(x) for x in step_sizes])
    if e.shape != h.shape:
        raise ValueError(f"errors and step_sizes must have the same length; got {e.size} and {h.size}")
    if e.size < 2:
        raise ValueError(f"need at least two runs to fit an order; got {e.size}")
    for name, v in (("errors", e), ("step_sizes", h)):
        bad = np.flatnonzero(~(np.isfinite(v) & (v > 0)))
        if bad.size:
            raise ValueError(f"{name} must be positive and finite; got {name}[{bad[0]}] = {v[bad[0]]}")
    if np.ptp(np.log(h)) == 0:
        raise ValueError("step_sizes must not all be equal")
    return float(np.polyfit(np.log(h), np.log(e), 1)[0])


class CountingFunc(torch.nn.Module):
    """Wraps ``func(t, y)`` and counts its calls in ``nfe`` (an nn.Module, so it also works
    with the adjoint; the wrapped module's parameters stay its parameters)."""

    def __init__(self, func: Callable[[Tensor, Tensor], Tensor]) -> None:
        super().__init__()
        self.func = func
        self.nfe = 0

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        self.nfe += 1
        return self.func(t, y)


@dataclass(frozen=True)
class WorkPrecisionRecord:
    """One run: ``step_size`` is set for fixed methods, ``rtol`` for adaptive ones.

    ``nfe`` counts every evaluation of the field (``odeint`` makes none beyond the method's own).
    ``error`` is the largest absolute error over all output times and components.
    """

    method: str
    step_size: float | None
    rtol: float | None
    nfe: int
    error: float
    seconds: float


def work_precision(
    func: Callable[[Tensor, Tensor], Tensor],
    y0: Tensor,
    t: Tensor,
    reference: Tensor,
    methods: Sequence[str | Tableau],
    step_sizes: Sequence[float] = (),
    rtols: Sequence[float] = (),
    atol_ratio: float = 1e-3,
    **odeint_kwargs: Any,
) -> list[WorkPrecisionRecord]:
    """Run ``odeint`` for every method at every step size (fixed) or rtol (adaptive).

    Args:
        func, y0, t: the problem, as for ``solvers.odeint``.
        reference: (len(t), *y0.shape) accurate solution (exact, or a very tight solve).
        methods: any names of ``solvers.METHODS`` (the engine's tableaux and torchdiffeq's multistep /
            scipy methods) or Tableaux; a fixed method runs once per step size (torchdiffeq's methods
            through ``options={"step_size": h}``), an adaptive one (an embedded pair) once per rtol.
        step_sizes: step sizes for fixed methods.
        rtols: relative tolerances for adaptive methods; ``atol = atol_ratio * rtol`` (the
            default 1e-3 keeps atol from dominating for states of order one).
        **odeint_kwargs: passed on to ``solvers.odeint`` (e.g. ``jump_t``).

    Returns:
        A list of WorkPrecisionRecord, in the order methods x (step sizes | rtols).
    """

    records = []
    for method in methods:
        if isinstance(method, Tableau):
            name, fixed, delegated = method.name, not method.adaptive, False
        else:
            if method not in METHODS:
                raise ValueError(f"unknown method {method!r}; expected one of {', '.join(sorted(METHODS))}")
            info = METHODS[method]
            name, fixed, delegated = method, info.kind == "fixed", info.backend == "torchdiffeq"
        settings = [(h, None) for h in step_sizes] if fixed else [(None, r) for r in rtols]
        for h, r in settings:
            counted = CountingFunc(func)
            kwargs = dict(odeint_kwargs)
            if fixed and delegated:
                kwargs["options"] = {**kwargs.get("options", {}), "step_size": h}
            elif fixed:
                kwargs["step_size"] = h
            else:
                kwargs.update(rtol=r, atol=atol_ratio * r)
            start = time.perf_counter()
            with torch.no_grad():
                sol = odeint(counted, y0, t, method=method, **kwargs)
            seconds = time.perf_counter() - start
            error = float((sol - reference).abs().max())
            records.append(WorkPrecisionRecord(method=name, step_size=h, rtol=r, nfe=counted.nfe,
                                               error=error if math.isfinite(error) else math.inf,
                                               seconds=seconds))
    return records
