"""A validated solve: the term, the method, the clock and the outputs, ready for a gradient mode.

``Problem`` is what :func:`solvers.odeint` (and a model that builds its own term) hands to a
gradient mode of :mod:`solvers.gradients`.  Times are increasing Python floats here (a decreasing
request is negated into this form by the caller, with the term's sign flipped), the state a
single tensor (tuple states are flattened by the caller).  :func:`forward` runs the engine once.
"""

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
    """How the continuous adjoint solves backward (torchdiffeq's ``adjoint_*`` arguments).

    Attributes:
        spec: the backward solve's :class:`~solvers.spec.SolveSpec` (method, tolerances, controller
            settings, first step, step limit; the one builder of its controllers: an adjoint on an
            augmented state asks it for one with that state's tolerances and norm).
        state_norm: the *state* norm, applied to y and to the adjoint a (torchdiffeq's default adjoint
            norm is max(|t|, norm(y), norm(a), rms of each parameter gradient)).
        seminorm: leave the parameter gradients out of that default norm (Kidger, Chen and Lyons
            2021; torchdiffeq's ``adjoint_options={"norm": "seminorm"}``): usually far fewer steps.
        norm: a norm on the tuple ``(t, y, adj_y, *adj_params)`` replacing the default one (a user's
            ``adjoint_options["norm"]``; ``t`` is a 0-d zero here, the time gradient being closed form).
        jump_t, step_t: adaptive backward solves' jump and step times as forward (increasing) times;
            None: the problem's ``jump_t`` and none.
        backward_grid: fixed backward solves: ``backward_grid(t_hi, t_lo)`` returns the grid of the
            interval from t_hi down to t_lo in negated time s = -t (increasing floats from -t_hi to
            -t_lo); None: the forward grid's points inside the interval (a forward adaptive solve:
            one step per output interval, as torchdiffeq with no grid options).
        perturb: fixed backward grids: evaluate stages on a step's ends one ulp inside.
        callbacks: the ``*_adjoint`` step callbacks, each ``callback(t, (t_grad, y, adj_y, *adj_params), dt)``.
    """

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

    @property
    def controller(self) -> Controller | None:
        """The backward solve's controller on the state norm (None for a fixed method)."""
        return self.spec.controller(self.state_norm)


@dataclass
class Problem:
    """One solve.

    Attributes:
        term: the vector field.
        y0: the initial state (one tensor).
        t_out: increasing output times (floats), ``t_out[0]`` the start.
        plan: the tableau's plan.
        grid: fixed methods: the step grid (increasing floats through every output, or coarser
            with ``interp``); None for adaptive methods.
        controller: adaptive methods' controller.
        jump_t, step_t: adaptive methods' jump and step times (sorted floats).
        first_step: adaptive methods' first step (None: chosen from the problem).
        perturb: fixed grids: evaluate stages on step ends one ulp inside.
        interp: fixed grids: how outputs inside a step are read ("linear", "cubic").
        exact_outputs: adaptive: land steps on the output times (no dense output).
        max_steps: the step limit.
        callbacks: torchdiffeq's step callbacks.
        params: tensors that get gradients in adjoint mode (besides y0).
        param_sources: None, or tensors of the same values as ``params`` that the output's graph
            connects to instead (``params`` then being detached leaves the term reads): when some of
            the differentiated tensors are functions of others (an input's coefficients computed from
            its samples), the backward pass must take partial derivatives with respect to each.
        adjoint: the backward solve of the adjoint mode.
        event_step: fixed methods with an event: the step size of the search for it.
        spec: the :class:`~solvers.spec.SolveSpec` that built this problem.
        stats: when set, the forward solve adds its :class:`Stats` to it.
    """

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
