"""Lipschitz RNN (Erichson, Azencot, Queiruga, Hodgkinson, Mahoney; ICLR 2021).

    dh/dt = A h + tanh(W h + U x + b),
    A = S(beta_A, gamma_A)(M_A),  W = S(beta_W, gamma_W)(M_W),
    S(beta, gamma)(M) = (1 - beta)(M + M^T) + beta(M - M^T) - gamma I.

One Euler step of size eps is the paper's discrete unit
h_k = h_{k-1} + eps (A h_{k-1} + tanh(W h_{k-1} + U x_k + b)); its "RK2" is the explicit midpoint
method with x_k held over the step.

Defaults follow the reference code (erichson/LipschitzRNN): beta = 0.75 for both matrices,
gamma = 0.001, M_A and M_W drawn from N(0, (init_std / N)^2) with init_std = 1, U and b the default
``nn.Linear`` initialisation.
"""

from __future__ import annotations

import torch
from torch import nn

import solvers

from ..parametrizations import symmetric_skew
from .base import Field

__all__ = ["LipschitzField"]


class LipschitzField(Field):
    """Lipschitz RNN vector field.

    Args:
        input_size: D, channels of x.
        hidden_size: N.
        beta: symmetric/skew trade-off for both A and W (the paper's beta_A = beta_W); beta_A or
            beta_W override it for one matrix.
        gamma_A, gamma_W: diagonal shifts (0.001 in the reference code).
        init_std: M_A, M_W ~ N(0, (init_std / N)^2).
    """

    def __init__(self, input_size: int, hidden_size: int, beta: float = 0.75, gamma_A: float = 0.001,
                 gamma_W: float = 0.001, init_std: float = 1.0, beta_A: float | None = None,
                 beta_W: float | None = None):
        super().__init__(input_size, hidden_size)
        self.beta_A = beta if beta_A is None else beta_A
        self.beta_W = beta if beta_W is None else beta_W
        for name, b in (("beta_A", self.beta_A), ("beta_W", self.beta_W)):
            if not 0.0 <= b <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1]; got {b}")
        self.gamma_A = gamma_A
        self.gamma_W = gamma_W
        std = init_std / hidden_size
        self.M_A = nn.Parameter(torch.randn(hidden_size, hidden_size) * std)
        self.M_W = nn.Parameter(torch.randn(hidden_size, hidden_size) * std)
        self.input_map = nn.Linear(input_size, hidden_size)

    @property
    def A(self) -> torch.Tensor:
        return symmetric_skew(self.M_A, self.beta_A, self.gamma_A)

    @property
    def W(self) -> torch.Tensor:
        return symmetric_skew(self.M_W, self.beta_W, self.gamma_W)

    def structure(self) -> solvers.LinearActivation:
        lin = self.input_map
        return solvers.LinearActivation(W=self.W, A=self.A, U=lin.weight, b=lin.bias, activation="tanh")

    def rhs(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return h @ self.A.transpose(0, 1) + torch.tanh(h @ self.W.transpose(0, 1) + u)
