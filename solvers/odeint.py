"""``odeint``: a drop-in superset of ``torchdiffeq.odeint`` and ``odeint_adjoint`` (0.2.5) on this package's
engine; docs/ODEINT.md lists what is the same, what is added, what differs on purpose and why.

The adapter only: torchdiffeq's arguments become a :class:`~solvers.spec.SolveSpec` and the keywords of
``SolveSpec.problem`` (arguments: :mod:`solvers.odeint_args`; options and adjoint options:
:mod:`solvers.odeint_options`; tuple states, callbacks, time gradients, events and the methods torchdiffeq
runs: their own modules).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torchdiffeq
from torch import Tensor

from .callbacks import step_callbacks
from .delegated import delegate
from .engine import DEFAULT_MAX_STEPS
from .events import solve_event
from .gradients import resolve_gradient, stacked_outputs
from .odeint_args import (
    adjoint_parameters,
    check_finite_outputs,
    check_t,
    check_times,
    check_y0,
    resolve_method,
)
from .odeint_options import backward_settings, fixed_grid, parse_options, state_norm, tol_tensor
from .spec import SolveSpec
from .tableaux import Tableau
from .terms import FuncTerm, ReversedTerm, Term
from .time_gradients import StartTime, TimeGradient, slope_at, slopes_at
from .tuple_state import Flat, install_first_call_check

__all__ = ["odeint", "odeint_adjoint", "odeint_event"]


# --------------------------------------------------------------------------- the entry point
def odeint(
    func: Callable,
    y0: Tensor | tuple[Tensor, ...],
    t: Tensor,
    *,
    rtol: float | Tensor | Sequence = 1e-7,
    atol: float | Tensor | Sequence = 1e-9,
    method: str | Tableau | None = None,
    options: dict | None = None,
    event_fn: Callable | None = None,
    step_size: float | None = None,
    jump_t: Tensor | Sequence[float] | None = None,
    gradient: str | None = None,
    adjoint: bool = False,
    max_steps: int = DEFAULT_MAX_STEPS,
    adjoint_rtol: float | Tensor | None = None,
    adjoint_atol: float | Tensor | None = None,
    adjoint_method: str | None = None,
    adjoint_options: dict | None = None,
    adjoint_params: Sequence[Tensor] | None = None,
) -> Tensor | tuple:
    """Solve dy/dt = func(t, y), y(t[0]) = y0, and return y at every time in ``t``: ``(len(t), *y0.shape)``
    in ``y0``'s dtype (a tuple of such for a tuple ``y0``); ``func(t, y)`` gets ``t`` as a 0-d tensor in y's
    real dtype.  torchdiffeq's arguments mean what they mean there (docs/ODEINT.md); added:

    Args:
        method: a name of ``solvers.METHODS`` or a ``Tableau``; default "dopri5".
        options: the method's options; an unknown one is an error, not a warning.
        event_fn: as torchdiffeq's (``len(t) == 2``); ``event_t`` also carries dT/d(y0, params, t0).
        step_size: fixed methods: split every gap of the grid t + jump_t into equal substeps no longer
            than this (outputs stay computed states, unlike ``options["step_size"]``'s arange grid).
        jump_t: times where func may jump (a held input's samples): grids put points there, stages are
            evaluated one ulp inside the steps (adaptive methods: ``options["jump_t"]``).
        gradient: a mode of ``solvers.GRADIENT_MODES``; ``adjoint=True`` is short for "adjoint".
        max_steps: ``StepLimitError`` after this many attempted steps; a fixed grid of more is refused
            before it is built (``options["max_num_steps"]`` sets it too).

    Raises:
        TypeError / ValueError: a malformed argument, named, with what came and what was expected;
            ``solvers.SolverError`` subclasses when a valid solve cannot finish.
    """
    mode = resolve_gradient(gradient, adjoint)
    name, tab = resolve_method(method)
    t = check_t(t)
    if tab is None:
        if isinstance(y0, tuple):
            Flat(y0)
        else:
            check_y0(y0)
        return delegate(func, y0, t, name, rtol, atol, options, event_fn, step_size, jump_t, mode,
                        adjoint_rtol, adjoint_atol, adjoint_method, adjoint_options, adjoint_params)

    user_func = func
    flat = Flat(y0) if isinstance(y0, tuple) else None
    if flat is not None:
        y0 = flat.flat(y0)
        rtol, atol = flat.tol("rtol", rtol), flat.tol("atol", atol)
        func = flat.field(user_func)
    y0 = check_y0(y0)
    o = parse_options(options, "options", tab, t)
    descending = t.shape[0] > 1 and bool(t[0] > t[-1])
    sign = -1.0 if descending else 1.0
    base = FuncTerm(func, time_dtype=y0.real.dtype if y0.is_complex() else y0.dtype, device=y0.device)
    install_first_call_check(base, y0, flat, user_func)
    term: Term = ReversedTerm(base) if descending else base
    callbacks = step_callbacks(user_func, flat, sign, torch.float64 if tab.adaptive else t.dtype)
    jumps = check_times("jump_t", jump_t, t)
    # tolerances laid out for the state here, checked (with everything else) by the SolveSpec they make
    fields: dict = dict(method=tab, rtol=tol_tensor(rtol, y0), atol=tol_tensor(atol, y0), gradient=mode,
                        max_steps=o.get("max_steps", max_steps), step_size=step_size)
    clock: dict = dict(callbacks=callbacks, dense_output=True, state_scale=0.0)
    if tab.adaptive:
        if step_size is not None:
            raise ValueError(f"step_size applies to fixed-step methods; method {name!r} is adaptive, its steps "
                             f"are set by rtol/atol (got step_size = {step_size}); use options={{'first_step': ...}}")
        if o["jump_t"] is not None and jumps is not None:
            raise ValueError("pass jump times once: either jump_t= or options['jump_t']")
        jumps = jumps if jumps is not None else o["jump_t"]
        fields.update(o["settings"])
        clock.update(step_t=None if o["step_t"] is None else o["step_t"] * sign)
    spec = SolveSpec(**fields)
    if not tab.adaptive:
        clock.update(fixed_grid(o, name, spec.step_size, jumps, event_fn, user_func, callbacks, y0, flat, t, sign,
                                spec.max_steps))
    norm = state_norm(o["norm"] if tab.adaptive else None, flat)
    params = adjoint_parameters(user_func, adjoint_params) if mode in ("adjoint", "reversible") else ()
    if mode == "adjoint":
        back, seminorm, clock["backward"] = backward_settings(
            spec, clock.get("perturb"), dict(options or {}), method, adjoint_method, adjoint_rtol, adjoint_atol,
            adjoint_options, flat, y0, user_func, sign, t, jumps)
        spec = spec.replace(adjoint=back, adjoint_seminorm=seminorm)
    problem = spec.problem(term, y0, t.detach() * sign, jump_t=None if jumps is None else jumps * sign, params=params,
                           norm=norm, **clock)
    if set(problem.jump_t) & set(problem.step_t):
        raise ValueError("options['step_t'] and jump_t must not share a time (torchdiffeq's rule)")
    t_out = problem.t_out

    if event_fn is not None:
        if spec.reversible:
            raise ValueError(f"event_fn is not supported with the reversible method {name!r}; use {tab.base.name!r}")
        return solve_event(problem, base, event_fn, t, mode, flat, sign, y0, spec.atol)

    y_start = problem.y0
    t_grad = t.requires_grad and t.shape[0] > 1
    if t_grad:
        problem = problem.with_(y0=StartTime.apply(t[0], y_start, slope_at(base, t_out, sign, 0)))
    ys, stacked_adjoint = stacked_outputs(problem, mode, y_start)
    if problem.grid is not None:
        check_finite_outputs(ys, t, name)
    if t_grad:
        ys = TimeGradient.apply(t, ys, slopes_at(base, t_out, sign), stacked_adjoint)
    ys = ys.to(y0.dtype)
    if flat is not None:
        return tuple(part.to(dt) for part, dt in zip(flat.split(ys, (ys.shape[0],)), flat.dtypes))
    return ys


def odeint_adjoint(func: Callable, y0: Tensor | tuple[Tensor, ...], t: Tensor, **kwargs: Any) -> Tensor | tuple:
    """``odeint(..., gradient="adjoint")``: torchdiffeq's ``odeint_adjoint`` under its own name."""
    if kwargs.get("gradient", "adjoint") != "adjoint":
        raise ValueError(f"odeint_adjoint computes gradients by the adjoint; got gradient={kwargs['gradient']!r}")
    if kwargs.pop("adjoint", True) is not True:
        raise ValueError("odeint_adjoint computes gradients by the adjoint; got adjoint=False")
    kwargs["gradient"] = "adjoint"
    return odeint(func, y0, t, **kwargs)


def odeint_event(func: Callable, y0: Tensor | tuple[Tensor, ...], t0: Tensor, *, event_fn: Callable,
                 reverse_time: bool = False, odeint_interface: Callable = odeint, **kwargs: Any) -> tuple:
    """torchdiffeq's ``odeint_event`` on this ``odeint``: solve until ``event_fn`` crosses zero and return
    ``(event_t, solution)`` whose gradients are total derivatives through the event time (the state at
    the event included).  ``kwargs`` go to ``odeint`` (method, tolerances, gradient, ...)."""
    return torchdiffeq.odeint_event(func, y0, t0, event_fn=event_fn, reverse_time=reverse_time,
                                    odeint_interface=odeint_interface, **kwargs)
