"""AntisymmetricRNN (Chang, Chen, Beutel, Chi; ICLR 2019).

    dh/dt = tanh((W - W^T - gamma I) h + V x + b)                         (ungated, eq. 6)
    dh/dt = sigmoid((W - W^T - gamma I) h + V_z x + b_z)
            * tanh((W - W^T - gamma I) h + V x + b)                       (gated, eq. 7)

One Euler step of size eps is the paper's cell h_k = h_{k-1} + eps tanh(...).  The antisymmetric
part has purely imaginary eigenvalues; the diffusion gamma moves them to -gamma + i omega so
forward Euler is stable.  Initialisation as in the paper: V ~ N(0, 1/D), W ~ N(0, sigma^2 / N),
biases zero.  For the gated cell ``input_map`` carries [V; V_z] and [b; b_z] (2N outputs).
"""

from __future__ import annotations

import torch
from torch import nn

import solvers

from ..parametrizations import skew_diffusion
from .base import Field

__all__ = ["AntisymmetricField"]


class AntisymmetricField(Field):
    """AntisymmetricRNN vector field.

    Args:
        input_size: D.  hidden_size: N.
        gamma: diffusion (0.01: the paper searches {0.001, 0.01, 0.1, 1}).
        gated: add the input gate of eq. 7.
        sigma: W ~ N(0, sigma^2 / N).
    """

    def __init__(self, input_size: int, hidden_size: int, gamma: float = 0.01, gated: bool = False,
                 sigma: float = 1.0):
        super().__init__(input_size, hidden_size)
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0 (a diffusion); got {gamma}")
        self.gamma = gamma
        self.gated = bool(gated)
        self.M = nn.Parameter(torch.randn(hidden_size, hidden_size) * (sigma / hidden_size ** 0.5))
        self.input_map = nn.Linear(input_size, hidden_size * (2 if gated else 1))
        with torch.no_grad():
            self.input_map.weight.normal_(0.0, 1.0 / input_size ** 0.5)
            self.input_map.bias.zero_()

    @property
    def A(self) -> torch.Tensor:
        return torch.zeros_like(self.M)

    @property
    def W(self) -> torch.Tensor:
        return skew_diffusion(self.M, self.gamma)

    def structure(self) -> solvers.LinearActivation:
        lin = self.input_map
        return solvers.LinearActivation(W=self.W, A=None, U=lin.weight, b=lin.bias,
                                        activation="gated" if self.gated else "tanh")

    def rhs(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        Wh = h @ self.W.transpose(0, 1)
        if not self.gated:
            return torch.tanh(Wh + u)
        n = self.hidden_size
        return torch.sigmoid(Wh + u[..., n:]) * torch.tanh(Wh + u[..., :n])
