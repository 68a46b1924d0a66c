"""A validated solve (``Problem``: term, method, clock, outputs), ready for a gradient mode of
:mod:`solvers.gradients`; :func:`forward` runs the engine once; ``Stats``: what a solve cost."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from torch import Tensor

from .controller import Controller
from .engine import DEFAULT_MAX_STEPS, Callbacks, Tape, solve_adaptive, solve_fixed
from .reversible import ReversibleRun, is_reversible, reversible_solve
from .stepper import Plan
from .terms import Term

__all__ = ["AdjointSpec", "Problem", "Solution", "Stats", "forward", "forward_reversible"]


@dataclass
class Stats:
    """What a forward solve cost (diffrax's ``sol.stats``): ``nfe`` evaluations of the term (stages, the
    first-step probe and dense-output reads), ``accepted`` and ``rejected`` steps (a fixed grid's
    steps are all accepted).  The engine adds to it while it solves; a solve hands it back as a value.

    ``reconstruction_error``: set by the continuous adjoint's backward pass (None until then, and in
    other modes): the largest relative RMS difference, over the output intervals, between the state
    the backward solve reconstructs at an output time and the forward's state there
    (:func:`solvers.reconstruction.reconstruction_error`).  Large values mean the adjoint's gradient is not
    that of the computed forward (see docs/GRADIENTS.md)."""

    nfe: int = 0
    accepted: int = 0
    rejected: int = 0
    reconstruction: Any = field(default=None, repr=False)  # the 0-d tensor a backward pass leaves

    @property
    def reconstruction_error(self) -> float | None:
        """The reconstruction error as a float (read on the host when asked), None before a backward pass."""
        return None if self.reconstruction is None else float(self.reconstruction)

    def set_reconstruction_error(self, error: Any) -> None:
        self.reconstruction = error


@dataclass(frozen=True)
class Solution:
    """A solve's states at its output times (``ys[0]`` the initial state) and its :class:`Stats`."""

    ys: list[Tensor]
    stats: Stats


class CountedTerm(Term):
    """``term`` with its evaluations added to ``stats.nfe`` (everything else is the term's own)."""

    def __init__(self, term: Term, stats: Stats) -> None:
        self.term, self.stats = term, stats
        self.time_dtype = term.time_dtype
        if getattr(term, "euler_step", None) is not None:
            self.euler_step = self._euler_step

    def f(self, t: Any, y: Tensor) -> Tensor:
        self.stats.nfe += 1
        return self.term.f(t, y)

    def _euler_step(self, t: Any, y: Tensor, dt: float) -> Any:
        self.stats.nfe += 1
        return self.term.euler_step(t, y, dt)

    def nudge(self, t: Any, toward: Any) -> Any:
        return self.term.nudge(t, toward)

    def aux(self) -> Any:
        return self.term.aux()


@dataclass(frozen=True)
class AdjointSpec:
    """How the continuous adjoint solves backward (torchdiffeq's ``adjoint_*`` arguments): ``spec`` the backward
    :class:`~solvers.spec.SolveSpec`; ``state_norm`` the forward's norm, which torchdiffeq's default adjoint norm
    max(|t|, norm(y), norm(a), rms of each parameter gradient) applies to y and a (``seminorm``: without the
    parameters); ``norm`` a user's on ``(t, y, adj_y, *adj_params)`` instead; adaptive: ``jump_t``/``step_t`` as
    forward times (None: the problem's jumps); fixed: ``backward_grid(t_hi, t_lo)``, the grid of an output interval
    in negated time s = -t (None: the forward grid's points), ``perturb``; ``callbacks`` the ``*_adjoint`` ones."""

    spec: Any
    state_norm: Callable[[Tensor], Any]
    seminorm: bool = False
    norm: Any = None
    perturb: bool = False
    callbacks: Callbacks | None = None
    jump_t: Sequence[float] | None = None
    step_t: Sequence[float] = ()
    backward_grid: Callable[[float, float], list[float]] | None = None

    @property
    def plan(self) -> Plan:
        return Plan.of(self.spec.tableau)


@dataclass
class Problem:
    """One solve, as :meth:`SolveSpec.problem <solvers.spec.SolveSpec.problem>` builds it (its arguments
    explain the fields): times increasing floats, one state tensor.  ``grid`` is None for adaptive methods;
    ``exact_outputs``: adaptive steps land on the output times (what a recorded tape needs);
    ``param_sources``: tensors of the same values as ``params`` that the output's graph connects to instead
    (the term reads the detached ``params``), when some differentiated tensors are functions of others;
    ``stats``: when set, the forward solve adds its :class:`Stats` to it."""

    term: Term
    y0: Tensor
    t_out: Any
    plan: Plan
    grid: list[float] | None = None
    controller: Controller | None = None
    jump_t: Sequence[float] = ()
    step_t: Sequence[float] = ()
    first_step: float | None = None
    perturb: bool = True
    interp: str = "linear"
    exact_outputs: bool = False
    max_steps: int = DEFAULT_MAX_STEPS
    callbacks: Callbacks | None = None
    params: tuple[Tensor, ...] = ()
    param_sources: tuple[Tensor, ...] | None = None
    adjoint: AdjointSpec | None = None
    event_step: float | None = None
    spec: Any = None
    stats: Stats | None = None

    @property
    def adaptive(self) -> bool:
        return self.grid is None

    def with_(self, **changes: Any) -> Problem:
        return replace(self, **changes)


def forward(p: Problem, tape: Tape | None = None, y0: Tensor | None = None) -> list[Tensor]:
    """Run the engine on ``p`` (from ``y0`` instead of ``p.y0`` when given); states at ``p.t_out``."""
    y0 = p.y0 if y0 is None else y0
    if is_reversible(p.plan):
        if tape is not None:
            raise ValueError(f"a reversible method ({p.plan.tab.name!r}) records no tape; its gradient modes are "
                             f"'reversible' and 'backprop'")
        return forward_reversible(p, y0).outputs
    stats, term = p.stats, p.term
    if stats is not None:
        p = p.with_(term=CountedTerm(term, stats))
    if p.grid is not None:
        return solve_fixed(p.term, p.plan, y0, p.grid, p.t_out, perturb=p.perturb, interp=p.interp,
                           callbacks=p.callbacks, tape=tape, max_steps=p.max_steps, stats=stats)
    return solve_adaptive(p.term, p.plan, y0, p.t_out, p.controller, first_step=p.first_step, jump_t=p.jump_t,
                          step_t=p.step_t, exact_outputs=p.exact_outputs, callbacks=p.callbacks, tape=tape,
                          max_steps=p.max_steps, stats=stats)


def forward_reversible(p: Problem, y0: Tensor | None = None, anchor_every: int | None = None,
                       record: list | None = None) -> ReversibleRun:
    """Run the reversible method of ``p`` (:mod:`solvers.reversible`): its outputs, steps and final pair
    (and the pair after every ``anchor_every``-th step; each step's records into ``record``)."""
    y0 = p.y0 if y0 is None else y0
    term = p.term if p.stats is None else CountedTerm(p.term, p.stats)
    return reversible_solve(term, p.plan, y0, p.t_out, grid=p.grid, controller=p.controller, first_step=p.first_step,
                            jump_t=p.jump_t, step_t=p.step_t, perturb=p.perturb if p.grid is not None else True,
                            max_steps=p.max_steps, stats=p.stats, anchor_every=anchor_every,
                            record=record)
