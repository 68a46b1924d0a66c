"""Solver robustness: does a trained continuous model keep its accuracy under other solvers?

A continuous model is "the ODE" only if its predictions do not depend on the solver that
computes them.  A model trained with one Euler step per sample is often its discrete cell in
disguise: docs/ANALYSIS.md shows a Lipschitz RNN falling from 93.3% to 4-5% test accuracy under
midpoint, RK4 or dopri5 with the same weights.  :func:`solver_robustness` measures this as one
number:

    max_drop = max over settings s of (accuracy as trained - accuracy under s)

with the settings of :data:`ROBUSTNESS_SETTINGS` (issue 11): Euler at a quarter of the training
step (a cheap, low-order solver with finer steps), explicit midpoint and classical RK4 at the
training step (higher order on the same grid), and dopri5 at rtol 1e-6 (close to the exact ODE).
A model that is the ODE scores a drop near 0 (at most a few test samples near a decision
boundary); a model that relies on its discretisation shows a large one.

The training step h is the model's ``step_size`` or, when it takes one step per sample gap
(``step_size=None``), the largest gap between the given sample times (1 when ``times`` is None):
on regular samples a fraction 1/4 is then exactly four steps per gap.  A fraction of 1 keeps the
model's own grid.  The solves reuse :func:`~neuralode_rnn.analysis.solver_comparison.cross_solver_accuracy`
(``model.with_solver``: a model sharing the weights with another method, step or tolerances, the
model's own left as it is; adaptive solvers get atol = rtol * 1e-3 and are told where the input's
knots are), so the accuracies here are those of
``compare-solvers --cross``.  Evaluation is in the model's own dtype and eval mode; pass a
float64 copy (``copy.deepcopy(model).double()`` and float64 values) to take rounding out of the
comparison.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from torch import Tensor, nn

import solvers

from .solver_comparison import cross_solver_accuracy, typical_gap

__all__ = ["ROBUSTNESS_SETTINGS", "RobustnessSetting", "SolverRobustness", "format_robustness", "solver_robustness",
           "training_step"]


@dataclass(frozen=True)
class RobustnessSetting:
    """One solver to test a trained model with.

    Attributes:
        method: a Runge-Kutta method a model solves with (``solvers.TABLEAUX``; checked by the solve
            specification, ``solvers.SolveSpec``).
        step_fraction: fixed-step methods: the step as a fraction of the training step h.
        rtol: adaptive methods: the relative tolerance (atol = rtol * 1e-3).
    """

    method: str
    step_fraction: float | None = None
    rtol: float | None = None

    def __post_init__(self) -> None:
        if not solvers.SolveSpec(method=self.method).adaptive:
            if self.rtol is not None or not _positive(self.step_fraction):
                raise ValueError(f"the fixed-step method {self.method!r} needs step_fraction > 0 (a fraction of the "
                                 f"training step) and no rtol; got step_fraction={self.step_fraction!r}, "
                                 f"rtol={self.rtol!r}")
        elif self.step_fraction is not None or not _positive(self.rtol):
            raise ValueError(f"the adaptive method {self.method!r} needs rtol > 0 and no step_fraction; got "
                             f"rtol={self.rtol!r}, step_fraction={self.step_fraction!r}")

    @property
    def label(self) -> str:
        """E.g. "euler h/4", "rk4 h", "dopri5 rtol 1e-06"."""
        if self.rtol is not None:
            return f"{self.method} rtol {self.rtol:g}"
        f = self.step_fraction
        if f == 1:
            return f"{self.method} h"
        inverse = 1 / f
        return f"{self.method} h/{inverse:g}" if abs(inverse - round(inverse)) < 1e-9 else f"{self.method} {f:g}h"


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


ROBUSTNESS_SETTINGS: tuple[RobustnessSetting, ...] = (
    RobustnessSetting("euler", step_fraction=0.25),
    RobustnessSetting("midpoint", step_fraction=1.0),
    RobustnessSetting("rk4", step_fraction=1.0),
    RobustnessSetting("dopri5", rtol=1e-6),
)
"""Issue 11's score: Euler at h/4, midpoint and RK4 at h, dopri5 at rtol 1e-6."""


@dataclass(frozen=True)
class SolverRobustness:
    """Result of :func:`solver_robustness`.

    Attributes:
        method: the model's own (as-trained) solver.
        step: the training step h (time units of the model's input times).
        as_trained: accuracy with the model's own solver.
        accuracies: setting label -> accuracy with that solver, same weights and samples.
        drops: setting label -> as_trained - accuracy (positive: the setting loses accuracy).
        max_drop: the largest of ``drops`` (the score; <= 0 when no setting loses anything).
        worst: label of the setting with the largest drop.
        samples: number of samples scored.
    """

    method: str
    step: float
    as_trained: float
    accuracies: dict[str, float]
    drops: dict[str, float]
    max_drop: float
    worst: str
    samples: int

    def as_dict(self) -> dict:
        return asdict(self)


def training_step(model: nn.Module, times: Tensor | None, length: int) -> float:
    """h: the model's fixed ``step_size``, or the largest sample gap when it steps once per gap."""
    base = getattr(model, "base", model)
    if base.step_size is not None:
        return float(base.step_size)
    return typical_gap(times, length)


def solver_robustness(model: nn.Module, values: Tensor, times: Tensor | None, targets: Tensor,
                      settings: Sequence[RobustnessSetting] = ROBUSTNESS_SETTINGS) -> SolverRobustness:
    """Accuracy of the same weights under each of ``settings`` and the largest drop from as trained.

    Args:
        model: a continuous model (``ContinuousRNN``, or a ``StochasticRNN``, scored through its
            deterministic ``base``), with the solver it was trained with.
        values: (B, T, D) samples, time on axis 1.  times: None (t_k = k) or (T,) / (B, T), in
            the model's time units (already scaled by eps).  targets: (B,) classes.
        settings: the solvers to test with (default :data:`ROBUSTNESS_SETTINGS`).

    Returns:
        A :class:`SolverRobustness`; the model's settings are left as they were.
    """
    base = getattr(model, "base", model)
    if not hasattr(base, "with_solver"):
        raise TypeError(f"solver_robustness needs a continuous model with a solver (ContinuousRNN or "
                        f"StochasticRNN); got {type(model).__name__}")
    settings = tuple(settings)
    if not settings or not all(isinstance(s, RobustnessSetting) for s in settings):
        raise ValueError(f"settings must be a non-empty sequence of RobustnessSetting; got {settings!r}")
    labels = [s.label for s in settings]
    if len(set(labels)) != len(labels):
        raise ValueError(f"settings must be distinct; got labels {labels}")
    step = training_step(model, times, values.shape[1])
    pairs = []
    for s in settings:
        if s.rtol is not None:
            pairs.append((s.method, s.rtol))
        elif s.step_fraction == 1 and base.step_size is None:
            pairs.append((s.method, None))  # the model's own grid: one step per sample gap
        else:
            pairs.append((s.method, s.step_fraction * step))
    rows = cross_solver_accuracy(model, values, times, targets, pairs)
    as_trained = rows[0]["accuracy"]
    accuracies = {label: r["accuracy"] for label, r in zip(labels, rows[1:])}
    drops = {label: as_trained - a for label, a in accuracies.items()}
    worst = max(drops, key=drops.get)
    return SolverRobustness(method=base.method, step=step, as_trained=as_trained, accuracies=accuracies, drops=drops,
                            max_drop=drops[worst], worst=worst, samples=int(values.shape[0]))


def format_robustness(r: SolverRobustness) -> str:
    """The score as printed by ``evaluate`` and ``compare-solvers``: one line per solver, then the
    largest drop, e.g. ``  rk4 h        0.9417  -0.0028``."""
    lines = [f"solver robustness ({r.samples} samples, h = {r.step:g}; accuracy, change from as trained):",
             f"  {'as trained (' + r.method + ')':<22}{r.as_trained:>8.4f}"]
    lines += [f"  {label:<22}{acc:>8.4f}{acc - r.as_trained:>+9.4f}" for label, acc in r.accuracies.items()]
    lines.append(f"  max drop {r.max_drop:.4f} ({100 * r.max_drop:.1f} points, {r.worst})")
    return "\n".join(lines)
