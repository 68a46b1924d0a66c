"""Does a gradient mode that rebuilds the forward's states backward (the continuous adjoint, a reversible
method) rebuild them?  Each backward pass measures its reconstruction error on the device
(:class:`ReconstructionCheck`), puts it in the solve's :class:`~solvers.problem.Stats` and queues the
check; :func:`flush_accuracy_checks` (called as every solve starts) warns once per solve specification
when the error is above its tolerance, so a backward pass never waits for a GPU."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .problem import Problem

__all__ = ["RECONSTRUCTION_TOLERANCE", "AdjointAccuracyWarning", "GradientAccuracyWarning", "ReconstructionCheck",
           "flush_accuracy_checks", "reconstruction_error", "reset_adjoint_warnings"]

RECONSTRUCTION_TOLERANCE = 1e-2
"""Relative reconstruction error above which the continuous adjoint warns.  Calibrated in
docs/GRADIENTS.md (``scripts/gradients.py``): the measured reconstruction error tracks the gradient's
relative error within a factor of about 2 on the issue's cases, so 1e-2 sits a decade from both
goals (warn when the gradient is more than 10% off, stay silent when it is within 1e-3)."""


class GradientAccuracyWarning(UserWarning):
    """A gradient mode that rebuilds the forward's states backward did not rebuild them: its gradient
    is not the gradient of the computed forward pass."""


class AdjointAccuracyWarning(GradientAccuracyWarning):
    """The continuous adjoint's backward solve did not retrace the forward: its gradient is not the
    gradient of the computed forward pass."""


_warned: set = set()
_pending: list = []


def reconstruction_error(y_back: Tensor, y_fwd: Tensor, scale: Tensor) -> Tensor:
    """rms(y_back - y_fwd) / scale, a 0-d float64 tensor on the states' device: how far the state the
    backward solve reconstructs at an output time is from the forward's state there, relative to
    ``scale``, the size of the forward's states (the largest RMS over the output times: a state near 0,
    such as an RNN's initial one, must not inflate the relative error)."""
    diff = (y_back.detach() - y_fwd.detach()).abs().to(torch.float64)
    return diff.pow(2).mean().sqrt() / scale


class ReconstructionCheck:
    """Collects the reconstruction error of one backward pass (its maximum over the output intervals)
    on the states' device, without reading it on the host (a backward pass never waits for a GPU);
    :meth:`done` puts it in the problem's :class:`~solvers.problem.Stats` (read when asked) and queues
    the warning check, which :func:`flush_accuracy_checks` makes: at the next solve's start, or when
    called.  Warns once per solve specification (a model's, or one ``odeint`` setting)."""

    def __init__(self, p: Problem, ys: Tensor) -> None:
        self.p = p
        flat = ys.detach().abs().to(torch.float64).pow(2).reshape(ys.shape[0], -1)
        self.scale = flat.mean(1).sqrt().max().clamp_min(torch.finfo(torch.float64).tiny) if ys.numel() \
            else torch.ones((), dtype=torch.float64, device=ys.device)
        self.error: Tensor | None = None

    def add(self, y_back: Tensor, y_fwd: Tensor) -> None:
        e = reconstruction_error(y_back, y_fwd, self.scale)
        self.error = e if self.error is None else torch.maximum(self.error, e)

    def done(self, tolerance: float = RECONSTRUCTION_TOLERANCE, message: Any = None,
             category: type[Warning] = AdjointAccuracyWarning) -> None:
        """Record the error and queue the warning check (``message(error, tolerance)`` -> text)."""
        if self.error is None:
            return
        p = self.p
        if p.stats is not None:
            p.stats.set_reconstruction_error(self.error)
        key = p.spec if p.spec is not None else p.plan.tab.name
        _pending.append((key, self.error, tolerance, message or _adjoint_message(p.plan.tab.name), category))


def _adjoint_message(name: str) -> Callable[[float, float], str]:
    def message(error: float, tolerance: float) -> str:
        reversible = "" if name.startswith("reversible_") else \
            f", or gradient='reversible' with method='reversible_{name}'"
        return (f"gradient='adjoint' with method {name!r}: the backward solve reconstructs the forward's states "
                f"with a relative error of {error:.3g} (> {tolerance:g}), so its gradient is not that of the "
                f"computed forward pass (it can be off by more than 10%). For the exact gradient use "
                f"gradient='checkpoint' (memory ~sqrt(steps)){reversible}; or solve more accurately (smaller "
                f"step_size, tighter rtol). See docs/GRADIENTS.md.")

    return message


def flush_accuracy_checks() -> None:
    """Read the queued reconstruction errors of finished backward passes and warn (once per solve
    specification) for those above their tolerance.  Every solve calls it as it starts
    (``SolveSpec.problem``), so a training loop hears of a bad gradient at its next forward pass."""
    while _pending:
        key, error, tolerance, message, category = _pending.pop(0)
        e = float(error)
        e = e if math.isfinite(e) else math.inf
        if e > tolerance:
            warn_once(key, message(e, tolerance), category)


def warn_once(key: object, message: str, category: type[Warning]) -> None:
    """``warnings.warn(message, category)`` the first time ``key`` (a solve specification) is seen."""
    try:
        if (key, category) in _warned:
            return
        _warned.add((key, category))
    except TypeError:  # an unhashable key: warn every time
        pass
    warnings.warn(message, category, stacklevel=3)


def reset_adjoint_warnings() -> None:
    """Forget which specifications already warned (each warns once) and drop queued checks."""
    _warned.clear()
    _pending.clear()
