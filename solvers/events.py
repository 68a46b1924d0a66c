"""Events: solve until ``event_fn(t, y)`` changes sign, on the engine's own step loops (adaptive
steps, or a fixed step size), the event time found by one bisection on the covering step's
interpolant, and carrying the implicit gradient of c(T, y(T)) = 0 (torchdiffeq's ``event_fn``)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from .engine import adaptive_steps, check_step_count, fixed_steps
from .errors import NonFiniteStateError
from .gradients import stacked_outputs
from .problem import Problem
from .terms import FuncTerm
from .time_gradients import StartTime, inner_product, slope_at
from .tuple_state import Flat


class EventTime(torch.autograd.Function):
    """The event time T, with the implicit gradient of c(T, y(T)) = 0 sent into the state y(T):
    dT = -(dc/dy . dy(T)) / (dc/dt + dc/dy . f(T, y(T)))  (torchdiffeq's ``odeint_event`` rule)."""

    @staticmethod
    def forward(ctx, state: Tensor, t_event: Tensor, event: Callable, field: Callable) -> Tensor:
        ctx.event, ctx.field = event, field
        ctx.save_for_backward(state, t_event)
        return t_event.detach().clone()

    @staticmethod
    def backward(ctx, grad_t: Tensor):
        state, t_event = ctx.saved_tensors
        with torch.enable_grad():
            tt = t_event.detach().clone().requires_grad_(True)
            yy = state.detach().clone().requires_grad_(True)
            c = ctx.event(tt, yy)
            dcdt, dcdy = torch.autograd.grad(c, (tt, yy), allow_unused=True)
        with torch.no_grad():
            f = ctx.field(t_event.detach(), state.detach())
            dcdt = torch.zeros((), dtype=state.real.dtype, device=state.device) if dcdt is None else dcdt
            dcdy = torch.zeros_like(state) if dcdy is None else dcdy
            total = dcdt + inner_product(dcdy, f).sum()
            if float(total) == 0.0:
                raise NonFiniteStateError("the event function is stationary along the solution at the event "
                                          "(dc/dt + dc/dy . f = 0): the event time has no derivative there")
            grad_state = -(grad_t / total) * dcdy
        return grad_state, None, None, None


def event_caller(event_fn: Callable, flat: Flat | None, sign: float, t_dtype: torch.dtype, device: torch.device):
    """The user's event function on (problem time, flat state), as a tensor."""
    def call(s: Any, y: Tensor) -> Tensor:
        tt = s if isinstance(s, Tensor) else torch.tensor(s, dtype=t_dtype, device=device)
        out = event_fn(sign * tt, flat.split(y) if flat is not None else y)
        if not isinstance(out, Tensor):
            raise TypeError(f"event_fn must return a tensor; got {type(out).__name__}")
        return out

    return call


def solve_event(problem: Problem, base: FuncTerm, event_fn: Callable, t: Tensor, mode: str, flat: Flat | None,
                 sign: float, y0: Tensor, atol: Any):
    if t.numel() != 2:
        raise ValueError(f"event_fn needs t = [t0, t1] (len(t) == 2, as torchdiffeq; t1 only sets the direction); "
                         f"got len(t) = {t.numel()}")
    t0 = problem.t_out[0]
    y_first = problem.y0
    y_start = problem.y0.detach()
    if t.requires_grad:
        problem = problem.with_(y0=StartTime.apply(t[0], y_first, slope_at(base, [t0], sign, 0)))
    call = event_caller(event_fn, flat, sign, torch.float64, y0.device)
    with torch.no_grad():
        initial = torch.sign(call(t0, y_start))

    def combined(s: Any, y: Tensor) -> Tensor:
        return torch.min(call(s, y) * initial)

    tol = float(torch.as_tensor(atol).max())
    with torch.no_grad():
        if problem.grid is None:
            steps = adaptive_steps(problem.term, problem.plan, y_start, t0, math.inf, problem.controller,
                                   first_step=problem.first_step, jump_t=problem.jump_t, step_t=problem.step_t,
                                   max_steps=problem.max_steps)
        else:
            # t0, t0 + h, t0 + 2h, ... by repeated addition, as torchdiffeq's fixed-step event search
            endless = itertools.accumulate(itertools.repeat(problem.event_step), initial=t0)
            steps = fixed_steps(problem.term, problem.plan, y_start, endless, problem.perturb, problem.interp)
        t_event, grid = until_event(steps, combined, t0, y_start, tol, problem.max_steps)
    grid = grid if problem.grid is not None else None
    if t_event == t0:
        ys = torch.stack([y_first, y_first])
    else:
        solved = problem.with_(t_out=[t0, t_event])
        if grid is not None:
            solved.grid = grid
        ys, _ = stacked_outputs(solved, mode, y_first)
    event_t = torch.tensor(sign * t_event, dtype=torch.float64, device=t.device)
    state = ys[-1]
    if state.requires_grad:
        def event_user(tt: Tensor, y: Tensor) -> Tensor:
            return combined(sign * tt, y)

        def field(tt: Tensor, y: Tensor) -> Tensor:
            return base.f(tt, y)

        event_t = EventTime.apply(state, event_t, event_user, field)
    event_t = event_t.to(t.dtype)
    ys = ys.to(problem.y0.dtype)
    if flat is not None:
        return event_t, tuple(p.to(d) for p, d in zip(flat.split(ys, (2,)), flat.dtypes))
    return event_t, ys


def until_event(steps: Iterable, event: Callable[[float, Tensor], Tensor], t0: float, y0: Tensor, tol: float,
                max_steps: int) -> tuple[float, list[float]]:
    """The first time where ``event(t, y)`` changes sign along ``steps`` (the engine's adaptive or fixed
    steps, each with ``t0``, ``t1``, ``y1`` and its interpolant ``at(t)``), to ``tol`` by bisection on
    the covering step's interpolant (torchdiffeq's ``find_event``); and the step ends up to it.
    An event already at t0 (event(t0, y0) == 0) is t0."""
    c0 = event(t0, y0)
    grid = [t0]
    if float(c0) == 0.0:
        return t0, grid
    sign0 = torch.sign(c0)
    for n, s in enumerate(steps):
        grid.append(s.t1)
        if bool(torch.sign(event(s.t1, s.y1)) != sign0):
            lo, hi = s.t0, s.t1
            count = max(0, math.ceil(math.log((hi - lo) / tol) / math.log(2.0))) if tol > 0 else 64
            for _ in range(count):
                mid = (lo + hi) / 2.0
                if bool(torch.sign(event(mid, s.at(mid))) == sign0):
                    lo = mid
                else:
                    hi = mid
            return (lo + hi) / 2.0, grid
        if n + 1 >= max_steps:  # (adaptive steps stop themselves; an endless fixed grid stops here)
            check_step_count(n + 2, max_steps, f"this fixed-step event search (from t = {t0}, no event by "
                                               f"t = {s.t1})")
    raise AssertionError("unreachable: the steps to an event end only at one or by an error")  # pragma: no cover
