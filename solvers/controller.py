"""Error norms, the first step, and the PI step-size controller of the adaptive solves.

The defaults reproduce torchdiffeq's controller step for step (so a user who swaps
``torchdiffeq.odeint`` for ``solvers.odeint`` gets the same steps): the error ratio is the RMS
norm of ``err / (atol + rtol * max(|y0|, |y1|))``, a step is accepted when it is <= 1, and the
next step is

    dt_next = dt * min(ifactor, max(dfactor', safety * ratio^(-icoeff / order) * (prev / ratio)^(pcoeff / order)))

with dfactor' = 1 after an accepted step (an accepted step never shrinks the next one) and
dfactor after a rejected one.  ``pcoeff = 0`` (the default) is torchdiffeq's integral controller;
``pcoeff > 0`` adds the proportional term of a PI controller (Gustafsson's; e.g. pcoeff = 0.4,
icoeff = 0.3 in diffrax's recommendation for stiff-ish problems), which damps oscillating step
sizes.  The first step is chosen by Hairer, Norsett and Wanner's rule (Sec. II.4), as torchdiffeq
does, at the cost of one extra evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["RANGES", "SETTINGS", "Controller", "check_controller_options", "check_resolution", "initial_step", "rms_norm"]

Norm = Callable[[Tensor], Any]


def _wide(x: Tensor) -> Tensor:
    """``x`` in float32 if it is float16: error ratios (err / tolerance) and their squares overflow
    float16 (max 65504), which made every step look infinitely wrong and shrink to 0."""
    return x.float() if x.dtype == torch.float16 else x


def rms_norm(x: Tensor) -> Tensor:
    """Root mean square of |x| (torchdiffeq's default norm)."""
    return _wide(x.abs()).pow(2).mean().sqrt()


@dataclass
class Controller:
    """Accepts or rejects a step from its error estimate and proposes the next step size.  Built by
    :meth:`SolveSpec.controller <solvers.spec.SolveSpec.controller>`, which checked its settings.

    Attributes:
        rtol, atol: tolerances (numbers or tensors broadcasting against the state).
        order: the pair's order p; the exponents are 1/p (torchdiffeq's convention).
        norm: callable on ``err / scale`` -> 0-d tensor.
        safety, ifactor, dfactor: torchdiffeq's 0.9, 10, 0.2.
        pcoeff, icoeff: PI coefficients (0, 1: torchdiffeq's integral controller).
        min_step, max_step: bounds on |dt| (torchdiffeq's options of the same names).
        max_time: wall-clock seconds after which the solve stops with ``TimeLimitError`` (None: no
            limit; a solve still running reports its progress every ``solvers.clock.PROGRESS_SECONDS`` anyway).
    """

    rtol: Any
    atol: Any
    order: int
    norm: Norm = rms_norm
    safety: float = 0.9
    ifactor: float = 10.0
    dfactor: float = 0.2
    pcoeff: float = 0.0
    icoeff: float = 1.0
    min_step: float = 0.0
    max_step: float = math.inf
    max_time: float | None = None

    def ratio(self, err: Tensor, y0: Tensor, y1: Tensor) -> Tensor:
        """The error ratio (<= 1 accepts): a 0-d tensor."""
        with torch.no_grad():  # step sizes are constants of the solve: no graph through the controller
            scale = self.atol + self.rtol * torch.maximum(_wide(y0.abs()), _wide(y1.abs()))
            return torch.as_tensor(self.norm(_wide(err) / scale)).abs()

    def accepts(self, ratio: float, dt: float) -> tuple[bool, bool]:
        """The acceptance rule: ``(accept, finite)`` for a step of size ``dt`` with error ratio ``ratio``:
        accepted when the ratio is finite and <= 1 and dt <= max_step, and always at dt <= min_step (the
        caller still refuses a non-finite new state)."""
        finite = math.isfinite(ratio)
        return (finite and ratio <= 1.0 and not dt > self.max_step) or dt <= self.min_step, finite

    def propose(self, dt: float, ratio: float, prev_ratio: float | None, accepted: bool) -> float:
        """The next step size from this step's size and ratio; an infinite ratio (a non-finite attempt)
        shrinks the step by ``dfactor``."""
        ratio = float(ratio)
        if ratio == 0.0:
            return dt * self.ifactor
        dfactor = 1.0 if ratio < 1.0 else self.dfactor
        factor = self.safety * ratio ** (-self.icoeff / self.order)
        if self.pcoeff and prev_ratio is not None and prev_ratio > 0:
            factor *= (float(prev_ratio) / ratio) ** (self.pcoeff / self.order)
        return dt * min(self.ifactor, max(factor, dfactor))

    def clamp(self, dt: float) -> float:
        return min(max(dt, self.min_step), self.max_step)


RANGES = {
    # name: (test, what is expected, why)
    "safety": (lambda v: 0 < v <= 1, "in (0, 1]", "the share of the predicted step actually taken (0.9 typical)"),
    "ifactor": (lambda v: v >= 1, ">= 1", "the most a step may grow (10 typical)"),
    "dfactor": (lambda v: 0 < v < 1, "in (0, 1)", "how far a rejected step shrinks at most (0.2 typical; 1 would "
                "retry the same step forever)"),
    "pcoeff": (lambda v: 0 <= v < math.inf, ">= 0 and finite",
               "the PI controller's proportional coefficient (0, or 0.4 typical)"),
    "icoeff": (lambda v: 0 < v < math.inf, "> 0 and finite", "the integral coefficient (1, or 0.3 with pcoeff 0.4)"),
    "min_step": (lambda v: 0 <= v < math.inf, ">= 0 and finite", "the smallest step size"),
    "max_step": (lambda v: v > 0, "> 0", "the largest step size (inf: none)"),
    "max_time": (lambda v: v > 0, "> 0 seconds", "the wall-clock time the solve may take (None: no limit)"),
}


SETTINGS = tuple(RANGES)
"""The controller's settings, as ``SolveSpec`` fields and torchdiffeq's option names."""


def check_controller_options(where: str = "", **values: Any) -> None:
    """Refuse a step-size controller setting out of its range, naming it (``where``: how the caller
    spells the options, e.g. "options" gives "options['safety']").  A value of None is not checked."""
    for name, value in values.items():
        if value is None:
            continue
        label = f"{where}[{name!r}]" if where else name
        if isinstance(value, Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{label} must be a number; got {type(value).__name__} {value!r}")
        test, expected, why = RANGES[name]
        if math.isnan(value) or not test(value):
            raise ValueError(f"{label} must be {expected} ({why}); got {label} = {value!r}")


@torch.no_grad()
def initial_step(f0: Tensor, y0: Tensor, f_at: Callable[[float, Tensor], Tensor], order: int, rtol: Any,
                 atol: Any, norm: Norm) -> float:
    """Hairer-Norsett-Wanner's first step (torchdiffeq's ``_select_initial_step``, with ``order``
    the pair's order p, i.e. torchdiffeq's ``order - 1`` plus one); ``f_at(h, y)`` evaluates f at t0 + h."""
    scale = atol + _wide(torch.abs(y0)) * rtol  # float16: ratios over 65504 would be inf
    d0 = float(torch.as_tensor(norm(_wide(y0) / scale)).abs())
    d1 = float(torch.as_tensor(norm(_wide(f0) / scale)).abs())
    h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
    f1 = f_at(h0, y0 + h0 * f0)
    d2 = float(torch.as_tensor(norm(_wide(f1 - f0) / scale)).abs()) / h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / order)
    return min(100 * h0, h1)


def check_resolution(rtol: Any, atol: Any, y0: Tensor, scale: float = 0.0) -> None:
    """Refuse tolerances the state's precision cannot measure: the error estimate carries rounding of
    about eps relative to the state, so a solve asked for much less shrinks its steps until they no
    longer move the state, and crawls (float32 with rtol = 1e-14: 1e5 steps to advance by 0.02).
    ``scale``: the size the state is known to reach (a caller's knowledge, e.g. an RNN's hidden state
    of order one starting at 0); the larger of it and |y0| is used."""
    real = y0.real.dtype if y0.is_complex() else y0.dtype
    eps = torch.finfo(real).eps
    floor = 1e-3 * eps
    r = float(torch.as_tensor(rtol).max())
    a = float(torch.as_tensor(atol).max())
    scale = max(float(y0.detach().abs().max()) if y0.numel() else 0.0, scale)
    if r < floor and a < floor * scale:
        raise ValueError(
            f"rtol = {float(r):.3g} and atol = {float(a):.3g} ask for errors a {str(real).replace('torch.', '')} state "
            f"cannot resolve (eps = {eps:.3g}, |y0| up to {scale:.3g}): the error estimate's own rounding is about eps "
            f"times the state, so the steps would shrink until they no longer move it; use rtol >= {10 * floor:.1g} "
            f"(rtol = 1e-6 is typical for float32) or a larger atol, or a float64 state")
