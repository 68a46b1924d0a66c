"""Discrete recurrent cells: a field's one-step recurrence.

``FieldCell`` is one explicit Runge-Kutta step of a field with the input held over the step,

    k_i = rhs(h_{k-1} + eps sum_{j<i} a_ij k_j, u_k),   h_k = h_{k-1} + eps sum_i b_i k_i,
    u_k = input_map(x_k),

which for method="euler" is exactly the papers' discrete cells (Lipschitz RNN eq. 3,
AntisymmetricRNN eq. 6/7, and with eps = 1 the uRNN h_k = modReLU(W h_{k-1} + V x_k, b)).
Because the input is held, the stage times c_i do not matter: the cell is autonomous within a step.
"""

from __future__ import annotations

import math

import torch
from torch import nn

import solvers
from solvers.stepper import Plan, rk_step
from solvers.terms import Term

__all__ = ["FieldCell", "check_number"]


def check_number(name: str, value, *, allow_zero: bool = False) -> float:
    """``value`` as a float if it is a finite real number > 0 (>= 0 with ``allow_zero``), else a
    ValueError/TypeError naming ``name``, what it got and what was expected.  Models and cells check
    their step sizes and tolerances with it once, where they are made, not where a solve fails."""
    expected = "a non-negative finite number" if allow_zero else "a positive finite number"
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.requires_grad:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be {expected}; got {value!r} of type {type(value).__name__}")
    if not (math.isfinite(value) and (value > 0 or (allow_zero and value == 0))):
        raise ValueError(f"{name} must be {expected}; got {name} = {value!r}")
    return float(value)


class FieldCell(nn.Module):
    """One step of ``method`` (a tableau name or instance) of size ``step_size`` for ``field``.

    ``cell(h, x)`` takes h (B, N) and a raw input x (B, D); ``cell.step(h, u)`` takes the projected
    input u = field.input_map(x), which lets a sequence be projected in one matmul.
    """

    def __init__(self, field, method: str = "euler", step_size: float = 1.0):
        super().__init__()
        step_size = check_number("step_size", step_size)
        self.field = field
        self.tableau = solvers.tableau(method)
        self.plan = Plan.of(self.tableau)
        self.method = self.tableau.name
        self.step_size = step_size

    @property
    def hidden_size(self) -> int:
        return self.field.hidden_size

    @property
    def input_size(self) -> int:
        return self.field.input_size

    def step(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One step of the tableau from h with the projected input u held (the engine's stepper)."""
        return rk_step(_Held(self.field.rhs, u), self.plan, 0.0, self.step_size, h).y1

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.step(h, self.field.input_map(x))


class _Held(Term):
    """rhs(y, u) with u held over the step: the cell's term (autonomous within a step)."""

    def __init__(self, rhs, u: torch.Tensor) -> None:
        self.rhs = rhs
        self.u = u

    def f(self, t, y: torch.Tensor) -> torch.Tensor:
        return self.rhs(y, self.u)
