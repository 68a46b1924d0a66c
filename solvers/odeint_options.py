"""torchdiffeq's adaptive ``options`` as a :class:`~solvers.spec.SolveSpec`'s controller settings and an
error norm on the flat state; tolerances laid out for the state."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .controller import check_controller_options, rms_norm, sample_rms_norm
from .odeint_args import check_number
from .tuple_state import Flat, mixed_norm


def tol_tensor(tol: Any, y0: Tensor) -> Any:
    if isinstance(tol, Tensor):
        real = y0.real.dtype if y0.is_complex() else y0.dtype
        return tol.to(device=y0.device, dtype=real)
    return float(tol)


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
    return {**values, "first_step": first}, user_norm
