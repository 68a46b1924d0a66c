"""torchdiffeq's adjoint arguments (``adjoint_rtol``, ``adjoint_atol``, ``adjoint_method``,
``adjoint_options``, ``adjoint_params``) as the backward solve's :class:`~solvers.problem.AdjointSpec`, with
torchdiffeq's defaults: the forward's method, tolerances and options (its norm excepted)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .callbacks import step_callbacks
from .grids import arange_grid
from .odeint_args import (
    ADAPTIVE_OPTIONS,
    FIXED_OPTIONS,
    check_options,
    check_times,
    resolve_method,
    signed_times,
)
from .odeint_options import controller_settings, tol_tensor
from .spec import SolveSpec, check_max_steps, check_number, check_tolerance
from .tableaux import TABLEAUX
from .tuple_state import Flat, tuple_adjoint_norm


def backward_settings(spec: SolveSpec, perturb: bool | None, norm: Any, user_options: dict, method: Any,
                      adjoint_method: Any, adjoint_rtol: Any, adjoint_atol: Any, adjoint_options: dict | None,
                      flat: Flat | None, y0: Tensor, user: Any, sign: float, t: Tensor,
                      jumps: Tensor | None) -> tuple[SolveSpec, bool, dict]:
    """The backward solve, with torchdiffeq's defaults (the forward's method, tolerances and options, its
    norm excepted): its specification (``spec`` is the forward's), whether its norm is the seminorm, and
    the runtime pieces of its :class:`~solvers.problem.AdjointSpec` (``SolveSpec.problem(backward=...)``).
    ``perturb``: the forward fixed grid's (None: the forward is adaptive); ``norm``: the forward's state norm."""
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
        {k: v for k, v in user_options.items() if k != "norm"}
    allowed = ADAPTIVE_OPTIONS if a_tab.adaptive else FIXED_OPTIONS
    opts = check_options(raw, "adjoint_options", allowed, a_name)
    a_norm = opts.pop("norm", None)
    seminorm = a_norm == "seminorm"
    custom = None
    if a_norm is not None and not seminorm:
        if not callable(a_norm):
            raise TypeError(f"adjoint_options['norm'] must be 'seminorm' or callable; got {a_norm!r}")
        custom = a_norm if flat is None else tuple_adjoint_norm(a_norm, flat)
    tols = {}
    for key, given, default in (("adjoint_rtol", adjoint_rtol, spec.rtol), ("adjoint_atol", adjoint_atol, spec.atol)):
        tols[key] = default if given is None else tol_tensor(flat.tol(key, given) if flat is not None else given, y0)
        if given is not None:
            check_tolerance(key, tols[key])
    max_steps = check_max_steps("adjoint_options['max_num_steps']", opts.pop("max_num_steps")) \
        if "max_num_steps" in opts else spec.max_steps
    fields = dict(method=a_tab, rtol=tols["adjoint_rtol"], atol=tols["adjoint_atol"], max_steps=max_steps)
    extras: dict = dict(norm=custom, callbacks=step_callbacks(user, None, sign, torch.float64 if a_tab.adaptive
                                                              else t.dtype, "_adjoint"))
    if a_tab.adaptive:
        a_jumps = check_times("adjoint_options['jump_t']", opts.pop("jump_t", None), t)
        if jumps is not None:
            a_jumps = jumps if a_jumps is None else torch.cat([a_jumps, jumps])
        a_steps = check_times("adjoint_options['step_t']", opts.pop("step_t", None), t)
        opts.pop("dtype", None)
        settings, _ = controller_settings(opts, "adjoint_options")
        fields.update(settings)
        extras.update(jump_t=signed_times(a_jumps, sign),
                      step_t=signed_times(a_steps, sign), perturb=False)
    else:
        opts.pop("interp", None)
        a_step = check_number("adjoint_options['step_size']", opts.pop("step_size", None), allow_none=True)
        a_constructor = opts.pop("grid_constructor", None)
        if a_step is not None and a_constructor is not None:
            raise ValueError("adjoint_options: step_size and grid_constructor are mutually exclusive")
        extras.update(perturb=bool(opts.pop("perturb", perturb if perturb is not None else False)),
                      backward_grid=backward_grid(a_step, a_constructor, user, y0, flat, sign, t.dtype, t.device,
                                                  max_steps))
    return SolveSpec(**fields), seminorm, extras


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
