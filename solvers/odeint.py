"""``odeint``: a drop-in superset of ``torchdiffeq.odeint`` and ``odeint_adjoint`` (0.2.5) on this package's engine.

The same signature, conventions and numbers as torchdiffeq (tuple states, increasing or decreasing
``t``, ``func(t, y)`` with a 0-d tensor ``t``, the options, the step callbacks, ``event_fn``, the
adjoint arguments; dopri5, bosh3 and dopri8 step for step as torchdiffeq's, 1e-13 in float64);
every method name means the same method (``"rk4"`` is the 3/8 rule in both).  Added: ``gradient=``
("backprop", "checkpoint", "adjoint"), ``step_size=`` and ``jump_t=`` (knot-aligned grids),
``max_steps``, PI control (``pcoeff``/``icoeff``), ``max_time``, more tableaux, clear errors.  docs/ODEINT.md lists what is the
same, what is added, what differs on purpose and why, and what is inherited from torchdiffeq.

This module is the adapter only: it turns torchdiffeq's arguments into a
:class:`~solvers.spec.SolveSpec` and the keyword arguments of ``SolveSpec.problem`` (argument checks in
:mod:`solvers.odeint_args`, options in :mod:`solvers.odeint_options`, tuple states in
:mod:`solvers.tuple_state`, callbacks in :mod:`solvers.callbacks`, the adjoint's arguments in
:mod:`solvers.adjoint_options`, gradients with respect to ``t`` in :mod:`solvers.time_gradients`, events
in :mod:`solvers.events`); the multistep and scipy methods go to torchdiffeq (:mod:`solvers.delegated`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torchdiffeq
from torch import Tensor

from .adjoint_options import backward_settings
from .callbacks import step_callbacks
from .delegated import delegate
from .engine import DEFAULT_MAX_STEPS
from .events import solve_event
from .gradients import resolve_gradient, stacked_outputs
from .methods import DELEGATED
from .odeint_args import (
    ADAPTIVE_OPTIONS,
    FIXED_OPTIONS,
    adjoint_parameters,
    check_finite_outputs,
    check_options,
    check_t,
    check_times,
    check_y0,
    resolve_method,
)
from .odeint_options import controller_settings, fixed_options, state_norm, tol_tensor
from .spec import SolveSpec, check_max_steps
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
    """Solve dy/dt = func(t, y), y(t[0]) = y0, and return y at every time in ``t``.

    torchdiffeq's conventions: ``func(t, y)`` with ``t`` a 0-d tensor in y's real dtype; output
    time first, ``(len(t), *y0.shape)`` in ``y0``'s dtype (a tuple of such for a tuple ``y0``).

    Args:
        func: the vector field, returning a tensor of ``y0``'s shape (a tuple for a tuple ``y0``).
        y0: (*S) initial state, real or complex, any shape; or a tuple of tensors.
        t: (T,) strictly increasing or decreasing times; ``t[0]`` is the initial time.
        rtol, atol: adaptive methods' tolerances (torchdiffeq's defaults 1e-7, 1e-9); tensors
            broadcasting against y0 or, for tuple states, one entry per state.
        method: a name of ``solvers.METHODS`` or a ``Tableau``; default "dopri5".
        options: the method's options (see the module docstring); unknown ones are an error.
        event_fn: ``event_fn(t, y) -> Tensor``: stop where it changes sign (the first component to
            cross, as torchdiffeq); returns ``(event_t, solution)`` with ``solution`` the states at
            ``t[0]`` and at the event.  Needs ``len(t) == 2`` (``t[1]`` only gives the direction).
            ``event_t`` carries the implicit gradient dT/d(y0, params, t0); the state at the event
            is differentiated at the fixed event time (as torchdiffeq); :func:`odeint_event` gives the
            total derivative.
        step_size: fixed methods: split every gap of the grid t + jump_t into equal substeps no
            longer than this (outputs stay computed states; torchdiffeq's ``options["step_size"]``
            lays an arange grid and interpolates instead).
        jump_t: times where func may jump (e.g. the samples of a held input): fixed grids put
            points there and evaluate one ulp inside the steps; adaptive steps end on them and
            evaluate f afresh after them (torchdiffeq's ``options["jump_t"]``).
        gradient: "backprop" (default), "checkpoint" or "adjoint"; ``adjoint=True`` is shorthand.
        max_steps: stop with ``StepLimitError`` after this many attempted steps; fixed grids of more
            steps are refused before being built (``options["max_num_steps"]`` sets it too).
        adjoint_rtol, adjoint_atol, adjoint_method, adjoint_options, adjoint_params: the adjoint
            mode's backward solve (torchdiffeq's defaults: the forward's tolerances, method and
            options without its norm) and the tensors it differentiates (default: func's parameters).

    Raises:
        TypeError / ValueError: malformed arguments, naming the argument, what came and what was
            expected.  ``solvers.SolverError`` subclasses when a valid solve cannot finish.
    """
    mode = resolve_gradient(gradient, adjoint)
    name, tab = resolve_method(method)
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"options must be a dict or None; got {type(options).__name__}")
    user_options = dict(options or {})
    t = check_t(t)
    if name in DELEGATED:
        if isinstance(y0, tuple):
            Flat(y0)
        else:
            check_y0(y0)
        return delegate(func, y0, t, name, rtol, atol, user_options, event_fn, step_size, jump_t, mode,
                         adjoint_rtol, adjoint_atol, adjoint_method, adjoint_options, adjoint_params)

    user_func = func
    flat = Flat(y0) if isinstance(y0, tuple) else None
    if flat is not None:
        y0 = flat.flat(y0)
        rtol, atol = flat.tol("rtol", rtol), flat.tol("atol", atol)
    y0 = check_y0(y0)
    rtol, atol = tol_tensor(rtol, y0), tol_tensor(atol, y0)  # checked by the SolveSpec they make
    allowed = ADAPTIVE_OPTIONS if tab.adaptive else FIXED_OPTIONS
    options = check_options(user_options, "options", allowed, name)
    if "max_num_steps" in options:
        max_steps = check_max_steps("options['max_num_steps']", options.pop("max_num_steps"))

    descending = t.shape[0] > 1 and bool(t[0] > t[-1])
    sign = -1.0 if descending else 1.0
    real = y0.real.dtype if y0.is_complex() else y0.dtype
    if flat is not None:
        def func(tt: Tensor, y: Tensor) -> Tensor:  # the flattened field of a tuple state, as torchdiffeq's
            return torch.cat([v.reshape(-1) for v in user_func(tt, flat.split(y))])
    base = FuncTerm(func, time_dtype=real, device=y0.device)
    install_first_call_check(base, y0, flat, user_func)
    term: Term = ReversedTerm(base) if descending else base
    callbacks = step_callbacks(user_func, flat, sign, torch.float64 if tab.adaptive else t.dtype)
    jumps = check_times("jump_t", jump_t, t)
    fields: dict = dict(method=tab, rtol=rtol, atol=atol, gradient=mode, max_steps=max_steps)
    clock: dict = dict(callbacks=callbacks, dense_output=True, state_scale=0.0)
    user_norm = None
    if tab.adaptive:
        if step_size is not None:
            raise ValueError(f"step_size applies to fixed-step methods; method {name!r} is adaptive, its steps "
                             f"are set by rtol/atol (got step_size = {step_size}); use options={{'first_step': ...}}")
        if "jump_t" in options and jumps is not None:
            raise ValueError("pass jump times once: either jump_t= or options['jump_t']")
        if jumps is None:
            jumps = check_times("options['jump_t']", options.pop("jump_t", None), t)
        options.pop("jump_t", None)
        steps_t = check_times("options['step_t']", options.pop("step_t", None), t)
        settings, user_norm = controller_settings(options, "options")
        fields.update(settings)
        clock.update(step_t=None if steps_t is None else steps_t * sign)
    else:
        fields.update(step_size=step_size)
    spec = SolveSpec(**fields)  # step_size, rtol, atol, max_steps and the controller's settings checked here, once
    if not tab.adaptive:
        clock.update(fixed_options(options, name, spec.step_size, jumps, event_fn, user_func, callbacks, y0, flat, t,
                                   sign, spec.max_steps))
    norm = state_norm(user_norm, flat)
    params = adjoint_parameters(user_func, adjoint_params) if mode in ("adjoint", "reversible") else ()
    if mode == "adjoint":
        back, seminorm, clock["backward"] = backward_settings(
            spec, clock.get("perturb"), norm, user_options, method, adjoint_method, adjoint_rtol, adjoint_atol,
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
        return solve_event(problem, base, event_fn, t, mode, flat, sign, y0, atol)

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
