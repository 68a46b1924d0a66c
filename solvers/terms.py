"""What the engine integrates: a *term* evaluates dy/dt = f(t, y) at stage times.

The engine (``solvers.engine``) knows only this small interface, so a plain user function, a
field driven by an input path and a structured linear-plus-activation field all run on the same
stepper, step-size controller and gradient modes:

* ``f(t, y) -> dy/dt``: ``t`` is a Python float (one clock for the whole state).
* ``nudge(t, toward)``: the time one unit in the last place from ``t`` toward ``toward`` in the
  precision the term compares times in.  The stepper evaluates stages that fall on an end of a
  step one ulp inside it, so a piecewise input (a zero-order hold) is read on the step's own
  piece whichever side its pieces are closed on.
* ``aux()``: what the last ``f`` call wants kept for a hand-written backward pass (None here);
  the engine stores it beside the stage state when it records a tape.

:class:`FuncTerm` wraps torchdiffeq's ``func(t, y)`` convention: ``t`` is handed over as a 0-d
tensor in the real dtype of ``y`` (as torchdiffeq does).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["FuncTerm", "ReversedTerm", "Term", "nudge_float"]

_F32 = struct.Struct("<f")
_I32 = struct.Struct("<i")


def nudge_float(t: float, toward: float, dtype: torch.dtype) -> float:
    """``t`` moved one ulp of ``dtype`` toward ``toward`` (a no-op when they are equal)."""
    if t == toward:
        return t
    if dtype == torch.float64:
        return math.nextafter(t, toward)
    if dtype == torch.float32:
        bits = _F32.unpack(_F32.pack(t))[0]
        if bits != t:  # t is not a float32 value: moving it one float64 ulp is inside already
            return math.nextafter(t, toward)
        i = _I32.unpack(_F32.pack(t))[0]
        # IEEE 754 single: the neighbouring values are the neighbouring integers of the bit pattern
        # (sign-magnitude: moving away from zero increments the magnitude)
        if t == 0.0:
            return math.copysign(1.401298464324817e-45, toward - t)
        i += 1 if (toward > t) == (t > 0) else -1
        return _F32.unpack(_I32.pack(i))[0]
    # half precisions and anything else: through torch
    tt = torch.tensor(t, dtype=dtype)
    return float(torch.nextafter(tt, torch.tensor(toward, dtype=dtype)))


class Term:
    """Base of the engine's terms; subclasses implement :meth:`f`."""

    time_dtype: torch.dtype = torch.float64

    def f(self, t: Any, y: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def nudge(self, t: float, toward: float) -> float:
        return nudge_float(t, toward, self.time_dtype)

    def aux(self) -> Any:
        return None


class FuncTerm(Term):
    """A user function ``func(t, y)`` (torchdiffeq's convention) as a term.

    Args:
        func: the vector field; called as ``func(t, y)`` with ``t`` a 0-d tensor of ``time_dtype``.
        time_dtype: the dtype of the time handed to ``func`` (torchdiffeq: the real dtype of y).
        device: where ``t`` lives.
    """

    def __init__(self, func: Callable[..., Tensor], time_dtype: torch.dtype, device: torch.device) -> None:
        self.func = func
        self.time_dtype = time_dtype
        self.device = device

    def time(self, t: Any) -> Tensor:
        if isinstance(t, Tensor):
            return t.to(self.time_dtype)
        return torch.tensor(t, dtype=self.time_dtype, device=self.device)

    def f(self, t: Any, y: Tensor) -> Tensor:
        return self.func(self.time(t), y)


class ReversedTerm(Term):
    """f in negated time s = -t: g(s, y) = -f(-s, y), so a decreasing solve runs on increasing times."""

    def __init__(self, term: Term) -> None:
        self.term = term
        self.time_dtype = term.time_dtype

    def f(self, s: Any, y: Tensor) -> Tensor:
        return -self.term.f(-s, y)

    def nudge(self, s: Any, toward: Any) -> Any:
        return -self.term.nudge(-s, -toward)

    def aux(self) -> Any:
        return self.term.aux()
