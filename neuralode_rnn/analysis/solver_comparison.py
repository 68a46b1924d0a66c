"""Solver comparison on one trained model and one batch: error, cost, and what the readout sees.

:func:`compare_solvers` integrates the same model and batch with every fixed method of
``solvers.FIXED_TABLEAUX`` at several step sizes and every adaptive Runge-Kutta method at several
tolerances, and measures each run against a tight reference:

* ``final_error``: max |h(t_T) - h_ref(t_T)| over the batch and units (what the readout reads);
* ``trajectory_error``: the same max over all sample times;
The reference is ``dopri5`` at rtol 1e-12 (atol 1e-15), checked against RK4 (the 3/8 rule) with
1/32 of the sample gap (``reference["check"]``, the difference between the two).  ``dopri8``
would be the natural choice, but torchdiffeq's dopri8 does not meet tight tolerances: on
y' = cos(3t) y its error at rtol = 1e-12 is 4e-8, and on an RNN batch it stays at 1e-8..1e-5
whatever rtol, so it is compared as a method, not trusted as the reference.

* ``nfe`` (function evaluations, the model's counter), ``seconds`` (wall time, median of
  ``repeats``);
* ``readout_error``: max |y - y_ref| of the readout (what the loss reads), every task kind;
* ``accuracy`` of the readout on the batch's targets (if given) and ``agreement``, the fraction
  of predictions equal to the reference's (classification, and per step for sequence tasks such
  as copy memory; None for regression, which has no predicted class).

The solves go through the model itself (``ContinuousRNN.solve_path`` with its method, step and
tolerances swapped), so the grid is the model's knot-aligned one and held inputs keep every
method at its full order.  Everything runs in float64 on a copy of the model, so rounding does
not hide the high-order methods' errors.  The observed order of each fixed method is the slope of
log(trajectory error) against log(step) (:func:`observed_order`) over the errors above 1e-12.

:func:`cross_solver_accuracy` answers "train with one solver, test with another": the test
accuracy of a trained model evaluated with other methods and steps.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

import solvers

from ..models import gather_time, last_observed_index

__all__ = [
    "ADAPTIVE_METHODS",
    "SolverComparison",
    "SolverRun",
    "compare_solvers",
    "cross_solver_accuracy",
    "format_table",
    "observed_order",
    "typical_gap",
]

ADAPTIVE_METHODS = solvers.ADAPTIVE_TABLEAUX
"""Adaptive Runge-Kutta methods compared (every embedded pair: they end a step on every sample time)."""

_FLOOR = 1e-11


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


@dataclass(frozen=True)
class SolverRun:
    """One solve: ``step_size`` is set for fixed methods, ``rtol`` (atol = rtol * 1e-3) for adaptive ones."""

    method: str
    kind: str
    order: int | None
    step_size: float | None
    rtol: float | None
    nfe: int
    seconds: float
    final_error: float
    trajectory_error: float
    accuracy: float | None
    agreement: float | None
    readout_error: float = float("nan")


@dataclass
class SolverComparison:
    """All runs, the reference's settings and accuracy, and the observed order per fixed method."""

    runs: list[SolverRun]
    reference: dict
    orders: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"runs": [asdict(r) for r in self.runs], "reference": self.reference, "orders": self.orders}


def typical_gap(times: Tensor | None, length: int) -> float:
    """The largest gap between sample times (1 when times is None: t_k = k)."""
    if times is None or length < 2:
        return 1.0
    return float((times[..., 1:] - times[..., :-1]).max())


def with_settings(model: nn.Module, method: str, step_size: float | None = None, rtol: float | None = None):
    """``model.with_solver`` with ``method`` and ``step_size`` (None for adaptive methods: their
    tolerances decide), and ``rtol`` (atol = 1e-3 rtol) when given: the model these studies solve
    with, sharing the parameters of ``model``, whose own solver is never changed."""
    changes = {"method": method, "step_size": step_size}
    if rtol is not None:
        changes.update(rtol=rtol, atol=rtol * 1e-3)
    return model.with_solver(**changes)


def _solve(model: nn.Module, path, method: str, step_size, rtol, repeats: int) -> tuple[Tensor, int, float]:
    model = with_settings(model, method, step_size, rtol)
    seconds = []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            states = model.solve_path(path, check_finite=False)  # a diverging method is a measured error here
            seconds.append(time.perf_counter() - start)
    return states, model.nfe, statistics.median(seconds)


def compare_solvers(model: nn.Module, values: Tensor, times: Tensor | None = None, targets: Tensor | None = None,
                    fixed_methods: Sequence[str] | None = None, step_sizes: Sequence[float] | None = None,
                    adaptive_methods: Sequence[str] = ADAPTIVE_METHODS,
                    rtols: Sequence[float] = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7),
                    reference_method: str = "dopri5", reference_rtol: float = 1e-12,
                    repeats: int = 1, callback=None, kind: str = "classification",
                    before=None) -> SolverComparison:
    """Run every method on ``model`` and the batch (see the module docstring).

    Args:
        model: a ContinuousRNN (a StochasticRNN's deterministic ``base`` is used).
        values, times, targets: one batch (B, T, D), times None/(T,)/(B, T), targets as the task
            has them ((B,) classes, (B, T) per-step classes, (B, ...) numbers) or None.
        fixed_methods: default all of ``solvers.FIXED_TABLEAUX``.
        step_sizes: default the largest sample gap times 1, 1/2, 1/4, 1/8, 1/16.
        adaptive_methods, rtols: adaptive runs, atol = 1e-3 rtol.
        reference_method, reference_rtol: the reference solve (atol = 1e-3 rtol).
        repeats: wall time is the median of this many solves.
        callback: called with each SolverRun as it completes (progress reports).
        kind: the task kind ("classification", "sequence", "regression"): what the readout is
            and whether it predicts classes.
        before: called as ``before(method, step_size, rtol)`` before each solve (progress).

    Returns:
        A :class:`SolverComparison`.
    """
    base = getattr(model, "base", model)
    if not hasattr(base, "solve_path"):
        raise TypeError(f"model must be a ContinuousRNN (or wrap one as .base); got {type(model).__name__}")
    if kind not in ("classification", "sequence", "regression"):
        raise ValueError(f"unknown task kind {kind!r}; expected classification, sequence or regression")
    step_sizes = None if step_sizes is None else [float(h) for h in step_sizes]
    if step_sizes is not None and (not step_sizes or any(not h > 0 for h in step_sizes)):
        raise ValueError(f"step_sizes must be positive numbers; got {step_sizes}")
    if not rtols or any(not float(r) > 0 for r in rtols):
        raise ValueError(f"rtols must be positive numbers; got {list(rtols)}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int; got {repeats!r}")
    m = copy.deepcopy(base).double()  # complex parameters become complex128 (keep_complex)
    values = values.double()
    times = None if times is None else times.double()
    path = m.path(values, times)
    fixed_methods = list(solvers.FIXED_TABLEAUX if fixed_methods is None else fixed_methods)
    if step_sizes is None:
        gap = typical_gap(times, values.shape[1])
        step_sizes = [gap / 2 ** k for k in range(5)]

    last = last_observed_index(values)
    classes = kind != "regression"

    @torch.no_grad()
    def readout(states):
        feats = m.field.features(states if kind == "sequence" else gather_time(states, last))
        return m.readout(feats)  # (B, C) or, per step, (B, T, C)

    def accuracy(out):
        return None if targets is None or not classes else float((out.argmax(-1) == targets).double().mean())

    def solve(method, step, rtol, n):
        if before is not None:
            before(method, step, rtol)
        return _solve(m, path, method, step, rtol, n)

    ref, ref_nfe, ref_sec = solve(reference_method, None, reference_rtol, 1)
    check, _, _ = solve("rk4", typical_gap(times, values.shape[1]) / 32, None, 1)
    ref_check = float((check - ref).abs().max())
    ref_out = readout(ref)
    ref_acc = accuracy(ref_out)
    runs = []

    def record(method, kind_, step, rtol):
        states, nfe, sec = solve(method, step, rtol, repeats)
        err = (states - ref).abs()
        out = readout(states)
        agreement = float((out.argmax(-1) == ref_out.argmax(-1)).double().mean()) if classes else None
        runs.append(SolverRun(method=method, kind=kind_, order=solvers.METHODS[method].order, step_size=step,
                              rtol=rtol, nfe=nfe, seconds=sec, final_error=float(err[:, -1].max()),
                              trajectory_error=float(err.max()), accuracy=accuracy(out), agreement=agreement,
                              readout_error=float((out - ref_out).abs().max())))
        if callback is not None:
            callback(runs[-1])

    for method in fixed_methods:
        for h in step_sizes:
            record(method, "fixed", float(h), None)
    for method in adaptive_methods:
        for r in rtols:
            record(method, "adaptive", None, float(r))
    orders = {}
    for method in fixed_methods:
        pts = [(r.trajectory_error, r.step_size) for r in runs
               if r.method == method and np.isfinite(r.trajectory_error) and r.trajectory_error > _FLOOR]
        if len(pts) >= 2:
            orders[method] = observed_order([e for e, _ in pts], [h for _, h in pts])
    reference = {"method": reference_method, "rtol": reference_rtol, "atol": reference_rtol * 1e-3,
                 "check": ref_check, "nfe": ref_nfe,
                 "seconds": ref_sec, "accuracy": ref_acc, "batch": int(values.shape[0]),
                 "length": int(values.shape[1])}
    return SolverComparison(runs=runs, reference=reference, orders=orders)


def format_table(comparison: SolverComparison) -> str:
    """A plain-text table of the runs, then the observed orders."""
    head = (f"{'method':<14}{'order':>5}{'step':>10}{'rtol':>9}{'nfe':>8}{'ms':>9}{'final err':>11}"
            f"{'traj err':>11}{'out err':>10}{'acc':>7}{'agree':>7}")
    lines = [head, "-" * len(head)]
    for r in comparison.runs:
        lines.append(
            f"{r.method:<14}{r.order if r.order is not None else '-':>5}"
            f"{'' if r.step_size is None else f'{r.step_size:.4g}':>10}{'' if r.rtol is None else f'{r.rtol:.0e}':>9}"
            f"{r.nfe:>8}{1e3 * r.seconds:>9.1f}{r.final_error:>11.2e}{r.trajectory_error:>11.2e}"
            f"{r.readout_error:>10.2e}{'' if r.accuracy is None else f'{r.accuracy:.3f}':>7}"
            f"{'' if r.agreement is None else f'{r.agreement:.3f}':>7}")
    ref = comparison.reference
    lines.append(f"reference: {ref['method']} rtol {ref['rtol']:.0e}, nfe {ref['nfe']}, "
                 f"|reference - rk4(gap/32)| = {ref['check']:.1e}"
                 + ("" if ref["accuracy"] is None else f", accuracy {ref['accuracy']:.3f}"))
    lines.append("observed order (slope of log trajectory error vs log step): "
                 + ", ".join(f"{k} {v:.2f}" for k, v in comparison.orders.items()))
    return "\n".join(lines)


def cross_solver_accuracy(model: nn.Module, values: Tensor, times: Tensor | None, targets: Tensor,
                          settings: Sequence[tuple[str, float | None]], kind: str = "classification") -> list[dict]:
    """The task's measure (accuracy; mean squared error for regression: ``robustness.score``) of
    ``model`` evaluated with each (method, step_size) of ``settings``.

    ``step_size`` is the fixed step (None: one step per gap) or, for adaptive methods, the rtol.
    The first row is the model as trained; ``change`` is each row's measure minus it; ``metric``
    names the measure (the rows keep the key ``accuracy`` for it).
    """
    from .robustness import METRICS, score

    def accuracy(model, values, times, targets):
        return score(model, values, times, targets, kind)

    rows = [{"method": model.method, "setting": model.step_size, "trained": True,
             "accuracy": accuracy(model, values, times, targets)}]
    for method, s in settings:
        fixed = not solvers.SolveSpec(method=method).adaptive  # an unknown method: the specification's error
        other = with_settings(model, method, s if fixed else None, None if fixed else s)
        rows.append({"method": method, "setting": s, "trained": False,
                     "accuracy": accuracy(other, values, times, targets)})
    for r in rows:
        r["change"] = r["accuracy"] - rows[0]["accuracy"]
        r["metric"] = METRICS[kind]
    return rows
