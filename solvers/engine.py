"""The Runge-Kutta engine: fixed grids and error-controlled steps, outputs at requested times.

One engine for every explicit tableau and every term: steps by :func:`solvers.stepper.rk_step`, step sizes
by :class:`solvers.controller.Controller`, outputs either grid points (computed states) or read from the
dense output of the step that covers them.  Times are Python floats, increasing (:mod:`solvers.odeint`
turns decreasing times and tuple states into this form).  :func:`fixed_steps` and :func:`adaptive_steps`
are generators (an event search stops them); a :class:`Tape` records accepted steps for a term with a
hand-written backward pass.  Bounded work: every solve counts its steps against ``max_steps``
(:class:`~solvers.errors.StepLimitError`), and an adaptive one never runs silently for long (:mod:`solvers.clock`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .clock import SolveClock
from .controller import Controller, initial_step
from .errors import NonFiniteStateError, StepLimitError, StepSizeUnderflowError
from .stepper import Plan, Step, combine, rk_step
from .terms import Term

__all__ = ["DEFAULT_MAX_STEPS", "Accepted", "Callbacks", "FixedStep", "Tape", "adaptive_steps", "check_step_count",
           "fixed_steps", "hermite", "next_k0", "quartic", "solve_adaptive", "solve_fixed", "start_time", "state_error",
           "underflow_error"]

DEFAULT_MAX_STEPS = 100_000
"""Steps (rejected ones included) after which a solve stops with StepLimitError.  A sequence model
takes about (samples x steps per sample) steps: 784 x 20 = 15,680 for a long, finely stepped
one; 100,000 is never reached by a normal run, and a runaway solve stops within a minute or two."""


def underflow_error(t: Any, dt: Any, controller: Controller) -> StepSizeUnderflowError:
    """The error of every adaptive loop when t + dt == t."""
    return StepSizeUnderflowError(
        f"the step size underflowed to dt = {dt} at t = {t}: t + dt == t. The tolerances (rtol = "
        f"{controller.rtol}, atol = {controller.atol}) cannot be met in this precision, or the solution blows up "
        f"there; loosen rtol/atol (float64 reaches about 1e-13, float32 about 1e-6)")


def state_error(t: Any) -> NonFiniteStateError:
    """The error of every adaptive loop when the state or its derivative at a step's start is not finite."""
    return NonFiniteStateError(f"the state or its derivative is not finite at t = {t} (NaN or inf); check y0 "
                               f"and the vector field (a NaN input, an overflow)")


def start_time(term: Term, t0: float, jump_t: Sequence[float]) -> Any:
    """Where the first stage of a solve from t0 is evaluated: t0, or one ulp after it when f jumps at t0
    (t0 in ``jump_t``), so the first step reads its own piece as every later stage does."""
    return term.nudge(t0, math.inf) if t0 in jump_t else t0


def check_step_count(n: int, max_steps: int, what: str, advice: str | None = None) -> None:
    """Raise StepLimitError when ``n`` steps exceed ``max_steps``; ``advice`` replaces the default
    what-to-do (a larger step size, or raising max_steps)."""
    if n > max_steps:
        advice = advice or "use a larger step size"
        raise StepLimitError(f"{what} needs {n} steps, more than max_steps = {max_steps}; {advice}, or raise max_steps "
                             f"if that many steps are really meant")


@dataclass
class Callbacks:
    """torchdiffeq's step callbacks, each ``callback(t0, y0, dt)`` or None."""

    step: Callable | None = None
    accept: Callable | None = None
    reject: Callable | None = None


@dataclass
class Tape:
    """Accepted steps recorded for a hand-written backward pass.

    ``states=False`` keeps only the step times (what a checkpointed replay needs).
    ``t0``/``t1``: the steps' ends; ``jumps[n]``: step n ended on a jump; ``ys[n]``: the states of the solution stages of step n
    (``Plan.solution_stages``; ``ys[n][0]`` is the state at t0); ``aux[n]``: what the term kept
    for each of them.  ``ends[k]``: the number of steps taken when output k was reached.
    """

    states: bool = True
    t0: list = field(default_factory=list)
    t1: list = field(default_factory=list)
    jumps: list[bool] = field(default_factory=list)
    ys: list[list[Tensor]] = field(default_factory=list)
    aux: list[list[Any]] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)

    def record(self, t0: Any, t1: Any, step: Step, plan: Plan, on_jump: bool = False) -> None:
        self.t0.append(t0)
        self.t1.append(t1)
        self.jumps.append(on_jump)
        if self.states:
            n = plan.solution_stages
            self.ys.append(step.ys[:n])
            self.aux.append(step.aux[:n] if step.aux is not None else [None] * n)

    @property
    def collect_aux(self) -> bool:
        """Whether the engine must collect ``term.aux()`` of every stage for :meth:`record`."""
        return self.states

    @property
    def schedule(self) -> list[tuple[Any, bool]]:
        """The (t1, landed_on_jump) of every step: what ``adaptive_steps(schedule=...)`` replays."""
        return list(zip(self.t1, self.jumps))

    def __len__(self) -> int:
        return len(self.t0)


# ------------------------------------------------------------------------------------ dense output
def quartic(y0: Tensor, y1: Tensor, y_mid: Tensor, f0: Tensor, f1: Tensor, dt: float) -> list[Tensor]:
    """Coefficients [e, d, c, b, a] of p(x) = e + d x + c x^2 + b x^3 + a x^4 on x in [0, 1] through
    y0, y_mid, y1 with slopes dt f0, dt f1 (torchdiffeq's ``_interp_fit``)."""
    a = 2 * dt * (f1 - f0) - 8 * (y1 + y0) + 16 * y_mid
    b = dt * (5 * f0 - 3 * f1) + 18 * y0 + 14 * y1 - 32 * y_mid
    c = dt * (f1 - 4 * f0) - 11 * y0 - 5 * y1 + 16 * y_mid
    return [y0, dt * f0, c, b, a]


def evaluate_poly(coeffs: list[Tensor], x: float) -> Tensor:
    total = coeffs[0] + x * coeffs[1]
    power = x
    for c in coeffs[2:]:
        power = power * x
        total = total + power * c
    return total


def hermite(y0: Tensor, f0: Tensor, y1: Tensor, f1: Tensor, dt: float, x: float) -> Tensor:
    """Cubic Hermite interpolation at the fraction x of a step (torchdiffeq's ``interp="cubic"``)."""
    h00 = (1 + 2 * x) * (1 - x) * (1 - x)
    h10 = x * (1 - x) * (1 - x)
    h01 = x * x * (3 - 2 * x)
    h11 = x * x * (x - 1)
    return h00 * y0 + h10 * dt * f0 + h01 * y1 + h11 * dt * f1


# ------------------------------------------------------------------------------------ fixed grids
@dataclass
class FixedStep:
    """A step of a fixed grid from (t0, y0) to (t1, y1), read inside by ``interp`` ("linear" or
    "cubic" Hermite, torchdiffeq's fixed solvers' interpolants)."""

    t0: float
    t1: float
    y0: Tensor
    y1: Tensor
    step: Step
    term: Term
    interp: str = "linear"
    _f1: Tensor | None = None

    def at(self, t: float) -> Tensor:
        """y(t) for t0 <= t <= t1 (exactly y0 / y1 at the ends)."""
        if t == self.t1:
            return self.y1
        if t == self.t0:
            return self.y0
        x = (t - self.t0) / (self.t1 - self.t0)
        if self.interp != "cubic":  # (checked where it is given: solvers.odeint_options)
            return self.y0 + x * (self.y1 - self.y0)
        if self._f1 is None:
            self._f1 = self.term.f(self.t1, self.y1)
        f0 = self.step.ks[0] if self.step.ks else self.term.f(self.t0, self.y0)
        return hermite(self.y0, f0, self.y1, self._f1, self.t1 - self.t0, x)


def fixed_steps(term: Term, plan: Plan, y0: Tensor, grid: Iterable[float], perturb: bool = True,
                interp: str = "linear", callbacks: Callbacks | None = None,
                tape: Tape | None = None) -> Iterator[FixedStep]:
    """The steps over ``grid`` (increasing floats, possibly an endless iterator: the caller stops).
    ``perturb``: stages on a step's ends are evaluated one ulp inside it."""
    fused = plan.tab.stages == 1 and getattr(term, "euler_step", None) is not None
    keep = tape is not None and tape.collect_aux
    points = iter(grid)
    t0 = next(points)
    y = y0
    for t1 in points:
        if callbacks is not None and callbacks.step is not None:
            callbacks.step(t0, y, t1 - t0)
        if fused:
            ts = term.nudge(t0, t1) if perturb else t0
            y1, aux = term.euler_step(ts, y, t1 - t0)
            step = Step(y1=y1, err=None, ks=[], ys=[y], aux=[aux])
        else:
            step = rk_step(term, plan, t0, t1, y, perturb_start=perturb, perturb_end=perturb, keep_aux=keep)
        if tape is not None:
            tape.record(t0, t1, step, plan)
        yield FixedStep(t0=t0, t1=t1, y0=y, y1=step.y1, step=step, term=term, interp=interp)
        t0, y = t1, step.y1


def solve_fixed(term: Term, plan: Plan, y0: Tensor, grid: Sequence[float], t_out: Sequence[float],
                perturb: bool = True, interp: str = "linear", callbacks: Callbacks | None = None,
                tape: Tape | None = None, max_steps: int = DEFAULT_MAX_STEPS, stats: Any = None) -> list[Tensor]:
    """Step over ``grid`` (increasing floats, grid[0] = t_out[0]) and return y at every ``t_out``.

    Outputs on grid points are the computed states (the usual case: the grid holds the output
    times); outputs inside a step are interpolated ("linear" or "cubic" Hermite), as torchdiffeq's
    fixed solvers do.  ``perturb``: stages on a step's ends are evaluated one ulp inside it.
    """
    check_step_count(len(grid) - 1, max_steps, f"this fixed-step solve over [{grid[0]}, {grid[-1]}]")
    outputs = [y0]
    j, n_out = 1, len(t_out)
    if n_out < 2:
        return outputs
    for n, s in enumerate(fixed_steps(term, plan, y0, grid, perturb, interp, callbacks, tape)):
        if stats is not None:
            stats.accepted += 1
        while j < n_out and s.t1 >= t_out[j]:
            outputs.append(s.at(t_out[j]))
            if tape is not None:
                tape.ends.append(n + 1)
            j += 1
        if j >= n_out:
            break
    return outputs


# ------------------------------------------------------------------------------------ adaptive steps
@dataclass
class Accepted:
    """An accepted adaptive step: ends, states, derivatives at both ends, and the step itself."""

    t0: float
    t1: float
    y0: Tensor
    y1: Tensor
    f0: Tensor
    step: Step
    plan: Plan
    term: Term
    landed_on_jump: bool
    _f1: Tensor | None = None
    _coeffs: list[Tensor] | None = None

    @property
    def f1(self) -> Tensor:
        """f at (t1, y1): the FSAL stage, or one evaluation (which the next step then reuses)."""
        if self._f1 is None:
            self._f1 = self.step.ks[-1] if self.plan.fsal else self.term.f(self.t1, self.y1)
        return self._f1

    def at(self, t: float) -> Tensor:
        """y(t) for t0 <= t <= t1 by the quartic dense output (exactly y0 / y1 at the ends)."""
        if t == self.t1:
            return self.y1
        if t == self.t0:
            return self.y0
        if self._coeffs is None:
            dt = self.t1 - self.t0
            y_mid = combine(self.y0, dt, self.plan.mid, self.step.ks)
            self._coeffs = quartic(self.y0, self.y1, y_mid, self.f0, self.f1, dt)
        return evaluate_poly(self._coeffs, (t - self.t0) / (self.t1 - self.t0))


def _finite(x: Tensor) -> bool:
    return bool(torch.isfinite(x).all())


def adaptive_steps(term: Term, plan: Plan, y0: Tensor, t0: float, t_end: float, controller: Controller | None, *,
                   first_step: float | None = None, jump_t: Sequence[float] = (), step_t: Sequence[float] = (),
                   callbacks: Callbacks | None = None, tape: Tape | None = None,
                   max_steps: int = DEFAULT_MAX_STEPS, schedule: Sequence[tuple[float, bool]] | None = None,
                   k0: Tensor | None = None, aux0: Any = None, stats: Any = None) -> Iterator[Accepted]:
    """The accepted steps of an adaptive solve from (t0, y0) on, while t < t_end.

    The generator stops once a step reaches ``t_end`` (steps may overshoot it, as torchdiffeq's do,
    unless ``t_end`` is also in ``step_t``).  ``jump_t``: sorted times where f may jump: a step that
    would straddle one is shortened to end on it, and f is then evaluated afresh one ulp after it (at
    the start too, when t0 is one of them: :func:`start_time`).
    ``step_t``: sorted times that steps must land on (f is continuous there).

    ``schedule``: replay a recorded solve instead of choosing steps: the (t1, landed_on_jump) of
    each accepted step (``Tape.t1`` and ``Accepted.landed_on_jump``), every step taken as given.
    The replay computes exactly the same steps (a checkpointed backward pass runs it per segment,
    starting from a recorded state and its ``k0``).
    ``stats``: a :class:`~solvers.problem.Stats` counting the accepted and rejected steps.
    """
    if plan.err is None and schedule is None:
        raise ValueError(f"method {plan.tab.name!r} has no error estimate; adaptive steps need an embedded "
                         f"pair such as dopri5")
    keep = tape is not None and tape.collect_aux
    t, y = t0, y0
    if k0 is None:  # (a replay from the solve's start: pass its jump_t, for a start on a jump)
        k0 = term.f(start_time(term, t0, jump_t), y)
        aux0 = term.aux() if keep else None
    if schedule is not None:  # every step as recorded
        after_jump = False
        for t1, on_jump in schedule:
            step = rk_step(term, plan, t, t1, y, k0, perturb_start=after_jump, perturb_end=True, keep_aux=keep,
                           aux0=aux0)
            acc = _accepted(term, plan, t, t1, y, k0, step, on_jump, tape)
            yield acc
            t, y, after_jump = t1, step.y1, on_jump
            k0, aux0 = next_k0(acc, keep)
        return
    cb = callbacks or Callbacks()
    jumps = [x for x in jump_t if x > t0]
    steps_at = [x for x in step_t if x > t0]
    ij = is_ = 0
    if first_step is None:
        dt = initial_step(k0, y, lambda h, yy: term.f(t + h, yy), plan.tab.order, controller.rtol,
                          controller.atol, controller.norm)
    else:
        dt = float(first_step)
    prev_ratio = None
    attempts = accepted = 0
    after_jump = False
    nonfinite = False  # the last attempt produced NaN/inf
    clock = SolveClock(controller.max_time, t0, t_end, max_steps)
    while t < t_end:
        attempts += 1
        if attempts > max_steps:
            check_step_count(attempts, max_steps, f"this adaptive solve (at t = {t}, ending at {t_end})",
                             clock.cause(t, dt, attempts - 1, attempts - 1 - accepted))
        clock.check(t, dt, attempts - 1, attempts - 1 - accepted)
        if not math.isfinite(dt):
            dt = controller.min_step
        dt = controller.clamp(dt)
        if cb.step is not None:
            cb.step(t, y, dt)
        t1 = t + dt
        if not t1 > t and nonfinite:
            raise NonFiniteStateError(
                f"the vector field gave NaN or inf at every step tried from t = {t}, down to dt = {dt}: it is not "
                f"finite just after t (a NaN it returns, an overflow, a singularity); check func near t = {t} (this "
                f"solve runs from t = {t0} to {t_end}, on the solver's clock)")
        if not t1 > t:
            raise underflow_error(t, dt, controller)
        on_step = on_jump = False
        while is_ < len(steps_at) and steps_at[is_] <= t:
            is_ += 1
        while ij < len(jumps) and jumps[ij] <= t:
            ij += 1
        if is_ < len(steps_at) and steps_at[is_] < t1:
            t1, on_step = steps_at[is_], True
        # a step that ends exactly on a jump (also when a step time coincides with it) has landed on
        # it: f is evaluated afresh after it
        if ij < len(jumps) and jumps[ij] <= t1:
            t1, on_jump, on_step = jumps[ij], True, False
        if on_step or on_jump:
            dt = t1 - t  # else keep the controller's dt, not t + dt - t (rounded): torchdiffeq's step sizes exactly
        step = rk_step(term, plan, t, t1, y, k0, perturb_start=after_jump, perturb_end=True, keep_aux=keep,
                       aux0=aux0)
        ratio = float(controller.ratio(step.err, y, step.y1))
        accept, finite = controller.accepts(ratio, dt)
        nonfinite = not finite
        if accept and not _finite(step.y1):
            accept = False
            nonfinite = True
        if not finite:
            if not _finite(y) or not _finite(k0):
                raise state_error(t)
            ratio = math.inf
        if stats is not None:
            stats.accepted += accept
            stats.rejected += not accept
        if accept:
            accepted += 1
            if cb.accept is not None:
                cb.accept(t, y, dt)
            acc = _accepted(term, plan, t, t1, y, k0, step, on_jump, tape)
            yield acc
            if on_step:
                is_ += 1
            if on_jump:
                ij += 1
            t, y = t1, step.y1
            after_jump = on_jump
            k0, aux0 = next_k0(acc, keep)
        elif cb.reject is not None:
            cb.reject(t, y, dt)
        dt_next = controller.propose(dt, ratio, prev_ratio, accept)  # (an infinite ratio: dt * dfactor)
        if accept:
            prev_ratio = ratio
        dt = controller.clamp(dt_next)


def next_k0(acc: Accepted, keep: bool) -> tuple[Tensor, Any]:
    """f at the start of the step after ``acc`` (and the term's aux of it when recording): afresh one
    ulp after a jump, the FSAL stage of a pair that has one, else f(t1, y1) (computed now, or by an
    output read inside the step with no evaluation since, so ``term.aux()`` belongs to it)."""
    term = acc.term
    if acc.landed_on_jump:
        k0 = term.f(term.nudge(acc.t1, math.inf), acc.y1)
        return k0, term.aux() if keep else None
    if acc.plan.fsal:
        return acc.step.ks[-1], acc.step.aux[-1] if keep else None
    k0 = acc.f1
    return k0, term.aux() if keep else None


def _accepted(term: Term, plan: Plan, t: float, t1: float, y: Tensor, k0: Tensor, step: Step, on_jump: bool,
              tape: Tape | None) -> Accepted:
    if tape is not None:
        tape.record(t, t1, step, plan, on_jump)
    return Accepted(t0=t, t1=t1, y0=y, y1=step.y1, f0=k0, step=step, plan=plan, term=term, landed_on_jump=on_jump)


def solve_adaptive(term: Term, plan: Plan, y0: Tensor, t_out: Sequence[float], controller: Controller, *,
                   first_step: float | None = None, jump_t: Sequence[float] = (), step_t: Sequence[float] = (),
                   exact_outputs: bool = False, callbacks: Callbacks | None = None, tape: Tape | None = None,
                   max_steps: int = DEFAULT_MAX_STEPS, stats: Any = None) -> list[Tensor]:
    """y at every time of ``t_out`` (increasing floats, t_out[0] the start) by adaptive steps.

    Outputs inside a step come from its dense output (as torchdiffeq's); ``exact_outputs=True``
    makes the output times step times, so every output is a computed state (what a recorded tape
    needs).
    """
    outputs = [y0]
    if len(t_out) < 2:
        return outputs
    if exact_outputs:
        step_t = sorted(set(step_t) | set(t_out[1:]))
    j = 1
    for acc in adaptive_steps(term, plan, y0, t_out[0], t_out[-1], controller, first_step=first_step,
                              jump_t=jump_t, step_t=step_t, callbacks=callbacks, tape=tape, max_steps=max_steps,
                              stats=stats):
        while j < len(t_out) and t_out[j] <= acc.t1:
            outputs.append(acc.at(t_out[j]))
            if tape is not None:
                tape.ends.append(len(tape))
            j += 1
    return outputs
