"""Plain continuous-time RNN baseline: dh/dt = -h + tanh(W h + U x + b).

One Euler step of size 1 gives the Elman RNN h_k = tanh(W h_{k-1} + U x_k + b).
W ~ N(0, 1/N) (a spectral radius near 1), U and b the default ``nn.Linear`` initialisation.
"""

from __future__ import annotations

import torch
from torch import nn

import solvers

from .base import Field

__all__ = ["CTRNNField"]


class CTRNNField(Field):
    """dh/dt = -h + tanh(W h + U x + b)."""

    def __init__(self, input_size: int, hidden_size: int, init_std: float = 1.0):
        super().__init__(input_size, hidden_size)
        self.M = nn.Parameter(torch.randn(hidden_size, hidden_size) * (init_std / hidden_size ** 0.5))
        self.input_map = nn.Linear(input_size, hidden_size)

    @property
    def A(self) -> torch.Tensor:
        return -torch.eye(self.hidden_size, dtype=self.M.dtype, device=self.M.device)

    @property
    def W(self) -> torch.Tensor:
        return self.M

    def structure(self) -> solvers.LinearActivation:
        lin = self.input_map
        return solvers.LinearActivation(W=self.M, A=self.A, U=lin.weight, b=lin.bias, activation="tanh")

    def rhs(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return torch.tanh(h @ self.M.transpose(0, 1) + u) - h
