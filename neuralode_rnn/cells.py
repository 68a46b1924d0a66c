"""Discrete recurrent cells: a field's one-step recurrence.

``FieldCell`` is one explicit Runge-Kutta step of a field with the input held over the step,

    k_i = rhs(h_{k-1} + eps sum_{j<i} a_ij k_j, u_k),   h_k = h_{k-1} + eps sum_i b_i k_i,
    u_k = input_map(x_k),

which for method="euler" is exactly the papers' discrete cells (Lipschitz RNN eq. 3,
AntisymmetricRNN eq. 6/7, and with eps = 1 the uRNN h_k = modReLU(W h_{k-1} + V x_k, b)).
Because the input is held, the stage times c_i do not matter: the cell is autonomous within a step.
"""

from __future__ import annotations

import torch
from torch import nn

from solvers.tableaux import tableau as _tableau

__all__ = ["FieldCell"]


class FieldCell(nn.Module):
    """One step of ``method`` (a tableau name or instance) of size ``step_size`` for ``field``.

    ``cell(h, x)`` takes h (B, N) and a raw input x (B, D); ``cell.step(h, u)`` takes the projected
    input u = field.input_map(x), which lets a sequence be projected in one matmul.
    """

    def __init__(self, field, method: str = "euler", step_size: float = 1.0):
        super().__init__()
        if not (isinstance(step_size, (int, float)) and step_size > 0):
            raise ValueError(f"step_size must be a positive number; got {step_size!r}")
        self.field = field
        self.tableau = _tableau(method)
        self.method = self.tableau.name
        self.step_size = float(step_size)

    @property
    def hidden_size(self) -> int:
        return self.field.hidden_size

    @property
    def input_size(self) -> int:
        return self.field.input_size

    def step(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        eps, tab, rhs = self.step_size, self.tableau, self.field.rhs
        ks = []
        for row in tab.a:
            y = h
            for a_ij, k in zip(row, ks):
                if a_ij != 0.0:
                    y = y + (eps * a_ij) * k
            ks.append(rhs(y, u))
        out = h
        for b_i, k in zip(tab.b, ks):
            if b_i != 0.0:
                out = out + (eps * b_i) * k
        return out

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.step(h, self.field.input_map(x))
