"""torchdiffeq's step callbacks (``func.callback_step``, ``callback_accept_step``,
``callback_reject_step`` and their ``_adjoint`` twins) as the engine's :class:`~solvers.engine.Callbacks`."""

from __future__ import annotations

from typing import Any

import torch

from .engine import Callbacks
from .tuple_state import Flat

CALLBACK_NAMES = ("callback_step", "callback_accept_step", "callback_reject_step")


def step_callbacks(func: Any, flat: Flat | None, sign: float, time_dtype: torch.dtype, suffix: str = "") -> Callbacks | None:
    """torchdiffeq's step callbacks found on ``func`` (their ``suffix`` twins: ``"_adjoint"``), called as
    torchdiffeq calls them: ``(t0, y0, dt)`` with t0 in the caller's time (negated back for a decreasing
    solve) and dt > 0; y0 the caller's state (a tuple state split by ``flat``), or for the adjoint's callbacks
    torchdiffeq's augmented state ``(t_grad, y, adj_y, *adj_params)`` as the backward solve passes it."""
    found = {}
    for name in CALLBACK_NAMES:
        cb = getattr(func, name + suffix, None)
        if cb is None or not callable(cb):
            continue

        def wrapped(t0, y0, dt, _cb=cb):
            y = flat.split(y0) if flat is not None else y0
            return _cb(torch.tensor(sign * t0, dtype=time_dtype), y, torch.tensor(dt, dtype=time_dtype))

        found[name] = wrapped
    if not found:
        return None
    return Callbacks(step=found.get("callback_step"), accept=found.get("callback_accept_step"),
                     reject=found.get("callback_reject_step"))
