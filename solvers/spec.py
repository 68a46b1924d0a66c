"""``SolveSpec``: how to solve, as one frozen value, validated once when it is made, against the one method
registry (:data:`~solvers.tableaux.TABLEAUX`) and the one gradient registry
(:data:`~solvers.gradients.GRADIENT_MODES`).  It is the only builder of a :class:`~solvers.problem.Problem`
and of a :class:`~solvers.controller.Controller`; a model holds one and never mutates it
(``spec.replace(method="rk4")`` is a new, re-validated one).

    spec = SolveSpec(method="dopri5", rtol=1e-6, atol=1e-8)
    outputs = spec.solve(term, y0, t_out, jump_t=knots)      # states at t_out, [0] is y0
    sol = spec.solve_with_stats(term, y0, t_out)              # sol.ys, sol.stats.nfe / .accepted / .rejected
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .controller import SETTINGS, Controller, check_controller_options, check_resolution, rms_norm
from .engine import DEFAULT_MAX_STEPS, Callbacks, check_step_count
from .gradients import GRADIENT_MODES
from .grids import knot_grid
from .problem import AdjointSpec, Problem, Solution, Stats
from .reconstruction import flush_accuracy_checks
from .stepper import Plan
from .tableaux import ReversibleTableau, Tableau, tableau
from .terms import Term

__all__ = ["SolveSpec", "check_max_steps", "check_number", "check_tolerance"]


def check_number(name: str, value: Any, *, allow_zero: bool = False, allow_none: bool = False) -> float | None:
    """``value`` as a float: a positive (``allow_zero``: non-negative) finite number, or a one-element
    real tensor holding one; None when ``allow_none``.  ``name``: how the caller spelt the argument."""
    if value is None and allow_none:
        return None
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_complex():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        expected = "None or a number" if allow_none else "a number"
        raise TypeError(f"{name} must be {expected}; got {type(value).__name__} {value!r}")
    ok = value >= 0 if allow_zero else value > 0
    if math.isnan(value) or math.isinf(value) or not ok:
        expected = "a non-negative finite number" if allow_zero else "a positive finite number"
        raise ValueError(f"{name} must be {'None or ' if allow_none else ''}{expected}; got {name} = {value!r}")
    return float(value)


def check_max_steps(name: str, value: Any) -> int:
    """``value`` as a positive int (an integer one-element tensor read as one)."""
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")
    return value


def check_tolerance(name: str, value: Any) -> None:
    """A tolerance: a non-negative finite number, or a tensor of them (per element) needing no gradient."""
    if not isinstance(value, Tensor):
        check_number(name, value, allow_zero=True)
        return
    if value.requires_grad:
        raise ValueError(f"{name} cannot require gradients")
    v = value.detach()
    if v.is_complex() or not bool(torch.isfinite(v).all()) or bool((v < 0).any()):
        raise ValueError(f"{name} must be non-negative and finite; got {name} = {value}")


@dataclass(frozen=True)
class SolveSpec:
    """How a solve is done; frozen and validated when made.

    Attributes:
        method: a Runge-Kutta method of ``solvers.TABLEAUX`` (fixed or embedded pair), or one made
            reversible, ``reversible_<name>`` (``solvers.tableaux.REVERSIBLE_TABLEAUX``).
        step_size: fixed methods: the largest step in real time (each gap between jump/output times
            split into equal steps no longer than this); None: one step per gap.
        rtol, atol: adaptive methods' tolerances.
        gradient: a mode of ``solvers.GRADIENT_MODES`` ("backprop", "checkpoint", "adjoint", "reversible"
            (reversible methods only), ...).
        max_steps: the step limit (a fixed grid beyond it is refused before it is built; an adaptive
            solve stops with ``StepLimitError``).
        safety, ifactor, dfactor, pcoeff, icoeff, min_step, max_step, max_time: the controller's
            settings (None: the controller's defaults, torchdiffeq's; ranges in ``solvers.controller``).
        adjoint_seminorm: the adjoint mode leaves the parameters' gradients out of its error norm.
        first_step: adaptive methods' first step (None: chosen from the problem, as torchdiffeq).
        adjoint: the backward solve's specification in the adjoint mode (its method, tolerances,
            controller settings, first step and step limit); None: this one.

    ``method`` may also be a :class:`~solvers.tableaux.Tableau` (a user's own); ``rtol``/``atol`` may
    be tensors broadcasting against the state (per-element tolerances, torchdiffeq's).
    """

    method: str = "euler"
    step_size: float | None = None
    rtol: float = 1e-3
    atol: float = 1e-5
    gradient: str = "backprop"
    max_steps: int = DEFAULT_MAX_STEPS
    safety: float | None = None
    ifactor: float | None = None
    dfactor: float | None = None
    pcoeff: float | None = None
    icoeff: float | None = None
    min_step: float | None = None
    max_step: float | None = None
    max_time: float | None = None
    adjoint_seminorm: bool = True
    first_step: float | None = None
    adjoint: SolveSpec | None = None

    def __post_init__(self) -> None:
        tableau(self.method)  # the one method registry's check: an unknown name lists the known ones
        object.__setattr__(self, "step_size", check_number("step_size", self.step_size, allow_none=True))
        check_tolerance("rtol", self.rtol)
        check_tolerance("atol", self.atol)
        if bool((torch.as_tensor(self.rtol) == 0).all()) and bool((torch.as_tensor(self.atol) == 0).all()):
            raise ValueError("rtol and atol must not both be 0: no step could meet a zero tolerance; e.g. rtol=1e-3, "
                             "atol=1e-5")
        if not isinstance(self.gradient, str) or self.gradient not in GRADIENT_MODES:
            raise ValueError(f"unknown gradient {self.gradient!r}; expected one of {', '.join(sorted(GRADIENT_MODES))}")
        object.__setattr__(self, "max_steps", check_max_steps("max_steps", self.max_steps))
        if self.gradient == "reversible" and not self.reversible:
            raise ValueError(f"gradient='reversible' rebuilds each step backward from a reversible method; method "
                             f"{self.tableau.name!r} is not one: use method='reversible_{self.tableau.name}' (or "
                             f"gradient='checkpoint' for the exact gradient of {self.tableau.name!r})")
        if self.reversible and self.gradient == "checkpoint":
            raise ValueError(f"method {self.tableau.name!r} is reversible: gradient='reversible' gives its exact "
                             f"gradient in memory flat in the steps (gradient='checkpoint' replays plain "
                             f"Runge-Kutta steps); got gradient='checkpoint'")
        if not isinstance(self.adjoint_seminorm, bool):
            raise TypeError(f"adjoint_seminorm must be a bool; got {self.adjoint_seminorm!r}")
        check_controller_options(**self.controller_options)
        object.__setattr__(self, "first_step", check_number("first_step", self.first_step, allow_none=True))
        if self.adjoint is not None and not isinstance(self.adjoint, SolveSpec):
            raise TypeError(f"adjoint must be None or a SolveSpec (the backward solve's); got "
                            f"{type(self.adjoint).__name__}")

    def replace(self, **changes: Any) -> SolveSpec:
        """A new specification with ``changes`` (validated again); unknown names are refused."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise TypeError(f"unknown solve setting(s) {', '.join(unknown)}; expected some of "
                            f"{', '.join(f.name for f in dataclasses.fields(self))}")
        return dataclasses.replace(self, **changes)

    @property
    def tableau(self) -> Tableau:
        return tableau(self.method)

    @property
    def reversible(self) -> bool:
        """True for a reversible method (``reversible_<tableau>``, :mod:`solvers.reversible`)."""
        return isinstance(self.tableau, ReversibleTableau)

    @property
    def adaptive(self) -> bool:
        return self.tableau.adaptive

    @property
    def controller_options(self) -> dict[str, float]:
        """The controller settings given (None ones left out: the controller's defaults)."""
        return {n: getattr(self, n) for n in SETTINGS if getattr(self, n) is not None}

    def controller(self, norm=None, *, rtol: Any = None, atol: Any = None) -> Controller | None:
        """The adaptive controller (None for a fixed method) with error ``norm`` (default RMS); ``rtol``/``atol``:
        tolerances laid out for another state (an adjoint's augmented one) in place of this one's."""
        if not self.adaptive:
            return None
        return Controller(rtol=self.rtol if rtol is None else rtol, atol=self.atol if atol is None else atol,
                          order=self.tableau.order, norm=rms_norm if norm is None else norm, **self.controller_options)

    @property
    def backward(self) -> SolveSpec:
        """The adjoint mode's backward specification: ``adjoint``, or this one."""
        return self if self.adjoint is None else self.adjoint

    def problem(self, term: Term, y0: Tensor, t_out: Tensor, *, jump_t: Tensor | None = None,
                gap_scale: Tensor | None = None, params: Sequence[Tensor] = (),
                param_sources: Sequence[Tensor] | None = None, step_t: Tensor | None = None,
                grid: Sequence[float] | None = None, norm: Any = None, callbacks: Callbacks | None = None,
                interp: str = "linear", perturb: bool | None = None, dense_output: bool = False,
                state_scale: float = 1.0, event_step: float | None = None,
                backward: dict | None = None) -> Problem:
        """The :class:`~solvers.problem.Problem` of ``term`` from ``y0`` through clock times ``t_out``.

        Args:
            term: the vector field on the clock of ``t_out``.
            y0: the state at ``t_out[0]``.
            t_out: (T,) increasing output times (their values are grid points exactly).
            jump_t: times where the term's input jumps (knots).
            gap_scale: fixed methods with ``step_size``: (G,) the real length of each clock gap of the
                grid t_out + jump_t (the longest sample's on an index clock); None: the clock is real time.
            params: tensors the adjoint mode differentiates (besides y0).
            param_sources: see :class:`~solvers.problem.Problem`.
            step_t: adaptive methods: times steps land on (f continuous there).
            grid: fixed methods: the step grid itself (increasing floats from t_out[0] to t_out[-1])
                in place of the knot grid (torchdiffeq's arange grid and grid constructors).
            norm: adaptive methods' error norm (default: the controller's; see :meth:`controller`).
            callbacks: torchdiffeq's step callbacks.
            interp: fixed methods: how outputs strictly inside a step are read ("linear", "cubic").
            perturb: fixed methods: evaluate stages on a step's ends one ulp inside (default True).
            dense_output: adaptive methods: read outputs from the dense output of the covering step
                (torchdiffeq's) instead of landing steps on them.
            state_scale: the size the state is known to reach, for the tolerance check (an RNN's hidden
                state is of order one even when it starts at 0; 0: only |y0| is known).
            event_step: fixed methods searching for an event: the step size of the search.
            backward: the adjoint mode's runtime pieces of :class:`~solvers.problem.AdjointSpec`
                (``norm``, ``callbacks``, ``jump_t``, ``step_t``, ``backward_grid``, ``perturb``).
        """
        flush_accuracy_checks()  # warnings of finished backward passes (read here, not in the backward)
        tab = self.tableau
        if tab.adaptive:
            check_resolution(self.rtol, self.atol, y0, scale=state_scale)

        def floats(x: Tensor | None) -> list[float]:
            return [] if x is None else sorted({float(v) for v in x.detach().reshape(-1).tolist()})

        p = Problem(term=term, y0=y0, t_out=[float(x) for x in t_out.detach().tolist()], plan=Plan.of(tab),
                    max_steps=self.max_steps, params=tuple(params), callbacks=callbacks, spec=self,
                    param_sources=None if param_sources is None else tuple(param_sources),
                    adjoint=AdjointSpec(spec=self.backward, state_norm=rms_norm if norm is None else norm,
                                        seminorm=self.adjoint_seminorm, **{"perturb": True, **(backward or {})}))
        if tab.adaptive:
            p.controller = self.controller(norm)
            p.first_step = self.first_step
            p.jump_t, p.step_t = floats(jump_t), floats(step_t)
            p.exact_outputs = not dense_output
        else:
            p.perturb = True if perturb is None else bool(perturb)
            p.interp = interp
            p.event_step = event_step
            p.grid = list(grid) if grid is not None else self.knot_grid(t_out, jump_t, gap_scale)
        return p

    def knot_grid(self, t_out: Tensor, jump_t: Tensor | None = None, gap_scale: Tensor | None = None) -> list[float]:
        """A fixed method's grid through ``t_out`` and ``jump_t`` (increasing), each gap split into equal
        steps no longer than ``step_size`` in real time (``gap_scale``: each clock gap's real length)."""
        jumps = None if jump_t is None else jump_t.detach()
        grid, _ = knot_grid(t_out.detach(), jumps, self.step_size, self.max_steps, gap_scale)
        if self.step_size is None:  # one step per gap: the outputs (and jumps) set the count
            check_step_count(grid.shape[0] - 1, self.max_steps, f"method {self.tableau.name!r} without a step size "
                             f"steps once per gap of t{' and jump_t' if jumps is not None else ''}: "
                             f"{t_out.shape[-1]} output times", "pass fewer output times")
        return grid.tolist()

    def solve(self, term: Term, y0: Tensor, t_out: Tensor, **clock: Any) -> list[Tensor]:
        """States at ``t_out`` (a list, ``[0]`` is ``y0``) under this specification's gradient mode;
        ``clock``: the keyword arguments of :meth:`problem`."""
        return GRADIENT_MODES[self.gradient](self.problem(term, y0, t_out, **clock))

    def solve_with_stats(self, term: Term, y0: Tensor, t_out: Tensor, **clock: Any) -> Solution:
        """:meth:`solve` with the forward solve's statistics: ``Solution(ys, stats)``, ``stats`` a
        :class:`~solvers.problem.Stats` (evaluations of the term, accepted and rejected steps)."""
        p = self.problem(term, y0, t_out, **clock)
        p.stats = Stats()
        return Solution(ys=GRADIENT_MODES[self.gradient](p), stats=p.stats)

