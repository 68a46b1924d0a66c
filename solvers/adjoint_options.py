"""torchdiffeq's adjoint arguments (``adjoint_rtol``, ``adjoint_atol``, ``adjoint_method``,
``adjoint_options``, ``adjoint_params``) as the backward solve's :class:`~solvers.problem.AdjointSpec`, with
torchdiffeq's defaults: the forward's method, tolerances and options (its norm excepted)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .callbacks import adjoint_callbacks
from .controller import Controller, check_controller_options, rms_norm, sample_rms_norm
from .grids import arange_grid
from .odeint_args import (
    ADAPTIVE_OPTIONS,
    FIXED_OPTIONS,
    check_max_steps,
    check_number,
    check_options,
    check_step_size,
    check_times,
    check_tol,
    resolve_method,
    signed_times,
)
from .problem import AdjointSpec, Problem
from .stepper import Plan
from .tableaux import TABLEAUX, Tableau
from .tuple_state import Flat, tuple_adjoint_norm


def tol_tensor(tol: Any, y0: Tensor) -> Any:
    if isinstance(tol, Tensor):
        real = y0.real.dtype if y0.is_complex() else y0.dtype
        return tol.to(device=y0.device, dtype=real)
    return float(tol)


def mixed_norm(flat: Flat) -> Callable[[Tensor], Tensor]:
    def norm(x: Tensor) -> Tensor:
        parts = flat.split(x)
        return torch.stack([rms_norm(p).to(torch.float64) for p in parts if p.numel()]).max()

    return norm


def state_norm(user_norm: Any, flat: Flat | None, per_sample: bool) -> Callable[[Tensor], Any]:
    """The forward error norm on the flat state: the user's (on the tuple for tuple states) or the default."""
    if user_norm is None:
        return sample_rms_norm if per_sample else (mixed_norm(flat) if flat is not None else rms_norm)
    if not callable(user_norm):
        raise TypeError(f"options['norm'] must be callable; got {type(user_norm).__name__}")
    if flat is None:
        return user_norm

    def norm(x: Tensor) -> Any:
        return user_norm(flat.split(x))

    return norm


def options_controller(options: dict, tab: Tableau, rtol: Any, atol: Any, y0: Tensor, flat: Flat | None,
                per_sample: bool, where: str) -> tuple[Controller, float | None]:
    """The controller from torchdiffeq's adaptive options (popped from ``options``) and the first step."""
    norm = state_norm(options.pop("norm", None), flat, per_sample)
    dtype = options.pop("dtype", None)
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"{where}['dtype'] must be a floating torch.dtype such as torch.float64 (the times' "
                        f"precision); got {dtype!r}")
    if dtype is not None and dtype != torch.float64:
        warnings.warn(f"{where}['dtype'] = {dtype}: times are float64 here whatever this option says", stacklevel=4)
    first = options.pop("first_step", None)
    first = None if first is None else check_number(f"{where}['first_step']", first)
    if first is not None and not math.isfinite(first):
        raise ValueError(f"{where}['first_step'] must be a positive finite step size; got {first}")
    values = {k: options.pop(k) for k in ("safety", "ifactor", "dfactor", "pcoeff", "icoeff", "min_step", "max_step",
                                          "max_time") if k in options}
    check_controller_options(where, **values)
    values = {k: float(v) if isinstance(v, Tensor) else v for k, v in values.items()}
    min_step, max_step = values.get("min_step", 0.0), values.get("max_step", math.inf)
    if min_step > max_step:
        raise ValueError(f"{where}['min_step'] = {min_step} must not exceed {where}['max_step'] = {max_step}")
    controller = Controller(rtol=tol_tensor(rtol, y0), atol=tol_tensor(atol, y0), order=tab.order, norm=norm,
                            **values)
    return controller, first


def adjoint_spec(problem: Problem, name: str, tab: Tableau, user_options: dict, method: Any, adjoint_method: Any,
                  adjoint_rtol: Any, adjoint_atol: Any, adjoint_options: dict | None, rtol: Any, atol: Any,
                  flat: Flat | None, y0: Tensor, user: Any, sign: float, t: Tensor,
                  grid_from_options: tuple | None, jumps: Tensor | None) -> AdjointSpec:
    """The backward solve, with torchdiffeq's defaults: the forward's method, tolerances and options (its
    norm excepted)."""
    if adjoint_method is not None and adjoint_method != method and user_options and adjoint_options is None:
        raise ValueError("adjoint_method differs from method and options were given: the backward solve cannot "
                         "infer its options from them, so pass adjoint_options too (torchdiffeq's rule)")
    a_name, a_tab = resolve_method(adjoint_method if adjoint_method is not None else method, "adjoint_method")
    if a_tab is None:
        raise ValueError(f"adjoint_method {a_name!r} is run by torchdiffeq; the adjoint here solves backward on this "
                         f"package's engine: use a Runge-Kutta method ({', '.join(sorted(TABLEAUX))})")
    if adjoint_options is not None and not isinstance(adjoint_options, dict):
        raise TypeError(f"adjoint_options must be a dict or None; got {type(adjoint_options).__name__}")
    raw = dict(adjoint_options) if adjoint_options is not None else \
        {k: v for k, v in user_options.items() if k not in ("norm", "per_sample")}
    allowed = ADAPTIVE_OPTIONS if a_tab.adaptive else FIXED_OPTIONS
    opts = check_options(raw, "adjoint_options", allowed, a_name)
    norm = opts.pop("norm", None)
    seminorm = norm == "seminorm"
    custom = None
    if norm is not None and not seminorm:
        if not callable(norm):
            raise TypeError(f"adjoint_options['norm'] must be 'seminorm' or callable; got {norm!r}")
        custom = norm if flat is None else tuple_adjoint_norm(norm, flat)
    a_rtol = rtol if adjoint_rtol is None else check_tol("adjoint_rtol", flat.tol("adjoint_rtol", adjoint_rtol)
                                                          if flat is not None else adjoint_rtol)
    a_atol = atol if adjoint_atol is None else check_tol("adjoint_atol", flat.tol("adjoint_atol", adjoint_atol)
                                                          if flat is not None else adjoint_atol)
    max_steps = check_max_steps(opts.pop("max_num_steps"), "adjoint_options['max_num_steps']") \
        if "max_num_steps" in opts else problem.max_steps
    cbs = adjoint_callbacks(user, sign, torch.float64 if a_tab.adaptive else t.dtype)
    spec = dict(plan=Plan.of(a_tab), seminorm=seminorm, norm=custom, callbacks=cbs, max_steps=max_steps)
    if a_tab.adaptive:
        opts.pop("dtype", None)
        a_jumps = check_times("adjoint_options['jump_t']", opts.pop("jump_t", None), t)
        if jumps is not None:
            a_jumps = jumps if a_jumps is None else torch.cat([a_jumps, jumps])
        a_steps = check_times("adjoint_options['step_t']", opts.pop("step_t", None), t)
        forward_norm = problem.controller.norm if problem.controller is not None else state_norm(None, flat, False)
        opts["norm"] = None
        controller, first = options_controller(opts, a_tab, a_rtol, a_atol, y0, flat, False, "adjoint_options")
        controller.norm = forward_norm
        spec.update(controller=controller, first_step=first,
                    jump_t=signed_times(a_jumps, sign, False) if a_jumps is not None else [],
                    step_t=signed_times(a_steps, sign, False))
    else:
        opts.pop("interp", None)
        perturb = bool(opts.pop("perturb", problem.perturb if problem.grid is not None else False))
        a_step = check_step_size(opts.pop("step_size", None), "adjoint_options['step_size']")
        a_constructor = opts.pop("grid_constructor", None)
        if a_step is not None and a_constructor is not None:
            raise ValueError("adjoint_options: step_size and grid_constructor are mutually exclusive")
        spec.update(controller=None, perturb=perturb,
                    backward_grid=backward_grid(a_step, a_constructor, user, y0, flat, sign, t.dtype, t.device,
                                                 max_steps))
    return AdjointSpec(**spec)


def backward_grid(step: float | None, constructor: Callable | None, user: Any, y0: Tensor, flat: Flat | None,
                   sign: float, t_dtype: torch.dtype, device: torch.device, max_steps: int):
    """torchdiffeq's backward grids: per output interval, from t_hi down to t_lo, by its step_size
    (arange) or its grid_constructor; returned in negated problem time s = -t, increasing."""
    if step is None and constructor is None:
        return None

    def grid(t_hi: float, t_lo: float) -> list[float]:
        if step is not None:
            return arange_grid(torch.tensor([-t_hi, -t_lo], dtype=t_dtype, device=device), step, max_steps).tolist()
        tt = torch.tensor([sign * t_hi, sign * t_lo], dtype=t_dtype, device=device)
        points = constructor(user, y0 if flat is None else flat.split(y0), tt)
        points = [-sign * float(x) for x in torch.as_tensor(points).detach().reshape(-1).tolist()]
        if points[0] != -t_hi or points[-1] != -t_lo:
            raise ValueError(f"adjoint grid_constructor must return a grid from {sign * t_hi} to {sign * t_lo}")
        return points

    return grid
