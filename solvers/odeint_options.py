"""torchdiffeq's ``options`` as a :class:`~solvers.spec.SolveSpec`'s settings and the keywords of
``SolveSpec.problem``: adaptive methods' controller settings and error norm, fixed methods' grids,
``perturb`` and ``interp``; tolerances laid out for the state."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .controller import check_controller_options, rms_norm
from .grids import arange_grid, constructed_grid
from .spec import check_number
from .tuple_state import Flat, mixed_norm


def tol_tensor(tol: Any, y0: Tensor) -> Any:
    """A tensor tolerance on y0's device in its real dtype (anything else as given, for SolveSpec to check)."""
    if isinstance(tol, Tensor) and not tol.is_complex():
        return tol.to(device=y0.device, dtype=y0.real.dtype if y0.is_complex() else y0.dtype)
    return tol


def state_norm(user_norm: Any, flat: Flat | None) -> Callable[[Tensor], Any]:
    """The forward error norm on the flat state: the user's (on the tuple for tuple states) or the default."""
    if user_norm is None:
        return mixed_norm(flat) if flat is not None else rms_norm
    if not callable(user_norm):
        raise TypeError(f"options['norm'] must be callable; got {type(user_norm).__name__}")
    if flat is None:
        return user_norm

    def norm(x: Tensor) -> Any:
        return user_norm(flat.split(x))

    return norm


def controller_settings(options: dict, where: str) -> tuple[dict, Any]:
    """torchdiffeq's adaptive options (popped from ``options``) as :class:`~solvers.spec.SolveSpec` fields
    (the controller's settings and ``first_step``), each named as the caller spelt it when out of
    range; and the user's norm (None: the default)."""
    user_norm = options.pop("norm", None)
    dtype = options.pop("dtype", None)
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"{where}['dtype'] must be a floating torch.dtype such as torch.float64 (the times' "
                        f"precision); got {dtype!r}")
    if dtype is not None and dtype != torch.float64:
        warnings.warn(f"{where}['dtype'] = {dtype}: times are float64 here whatever this option says", stacklevel=4)
    first = check_number(f"{where}['first_step']", options.pop("first_step", None), allow_none=True)
    values = {k: options.pop(k) for k in ("safety", "ifactor", "dfactor", "pcoeff", "icoeff", "min_step", "max_step",
                                          "max_time") if k in options}
    check_controller_options(where, **values)
    values = {k: float(v) if isinstance(v, Tensor) else v for k, v in values.items()}
    min_step, max_step = values.get("min_step", 0.0), values.get("max_step", math.inf)
    if min_step > max_step:
        raise ValueError(f"{where}['min_step'] = {min_step} must not exceed {where}['max_step'] = {max_step}")
    return {**values, "first_step": first}, user_norm


def fixed_options(options: dict, name: str, step_size: float | None, jumps: Tensor | None, event_fn: Any,
                  user_func: Any, callbacks: Any, y0: Tensor, flat: Flat | None, t: Tensor, sign: float,
                  max_steps: int) -> dict:
    """A fixed method's options (popped from ``options``) as keywords of ``SolveSpec.problem``: ``perturb``,
    ``interp`` and the grid (torchdiffeq's arange grid for ``options["step_size"]``, a user's
    ``grid_constructor``, or the start and ``event_step`` of an event search; none: the spec's knot grid).
    Fixed grids call only ``callback_step``: the other callbacks are dropped with a warning."""
    if callbacks is not None and (callbacks.accept or callbacks.reject):
        unsupported = sorted(n for n in ("callback_accept_step", "callback_reject_step")
                             if getattr(user_func, n, None) is not None)
        warnings.warn(f"Solver {name!r} does not support callbacks {unsupported}: fixed grids call only "
                      f"callback_step", stacklevel=3)
        callbacks.accept = callbacks.reject = None
    options.pop("norm", None)
    clock = dict(perturb=bool(options.pop("perturb", jumps is not None)), interp=options.pop("interp", "linear"))
    if clock["interp"] not in ("linear", "cubic"):
        raise ValueError(f"options['interp'] must be 'linear' or 'cubic'; got {clock['interp']!r}")
    opt_step = check_number("options['step_size']", options.pop("step_size", None), allow_none=True)
    constructor = options.pop("grid_constructor", None)
    if sum(x is not None for x in (step_size, opt_step, constructor)) > 1:
        raise ValueError("pass one of step_size=, options['step_size'] and options['grid_constructor'] "
                         "(torchdiffeq: step_size and grid_constructor are mutually exclusive)")
    if constructor is not None and not callable(constructor):
        raise TypeError(f"options['grid_constructor'] must be callable; got {type(constructor).__name__}")
    if (opt_step is not None or constructor is not None) and jumps is not None:
        raise ValueError("jump_t builds a knot-aligned grid itself; use step_size= (not "
                         "options['step_size'] or a grid_constructor) with it")
    if event_fn is not None:
        event_step = opt_step if opt_step is not None else step_size
        if event_step is None:
            raise ValueError(f"event_fn with the fixed-step method {name!r} needs a step size: "
                             f"options={{'step_size': h}} (as torchdiffeq) or step_size=h")
        clock.update(grid=[sign * float(t[0])], event_step=event_step)
    elif opt_step is not None:
        clock.update(grid=arange_grid(t.detach() * sign, opt_step, max_steps).tolist())
    elif constructor is not None:
        clock.update(grid=constructed_grid(constructor, user_func, y0 if flat is None else flat.split(y0), t,
                                           sign, [sign * float(x) for x in t.detach().tolist()], max_steps))
    return clock
