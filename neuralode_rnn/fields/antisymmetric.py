"""AntisymmetricRNN (Chang, Chen, Beutel, Chi; ICLR 2019).

    dh/dt = tanh((W - W^T - gamma I) h + V x + b)                         (ungated, eq. 6)
    dh/dt = sigmoid((W - W^T - gamma I) h + V_z x + b_z)
            * tanh((W - W^T - gamma I) h + V x + b)                       (gated, eq. 7)

One Euler step of size eps is the paper's cell h_k = h_{k-1} + eps tanh(...).  The antisymmetric
part has purely imaginary eigenvalues; the diffusion gamma moves them to -gamma + i omega so
forward Euler is stable.  Initialisation as in the paper: V ~ N(0, 1/D), W ~ N(0, sigma^2 / N),
biases zero.  For the gated cell ``input_map`` carries [V; V_z] and [b; b_z] (2N outputs).

**Norm bound** (``max_norm = L``; off by default, and then W is exactly the above).  The field is
already stable as an ODE: its Jacobian diag(sigma') (W - W^T - gamma I) has eigenvalues with real
parts <= 0 for gamma >= 0.  What a *solver* needs besides is a step dt small against the field's
Lipschitz constant: explicit methods are unstable on the imaginary axis (Euler grows a mode
i omega by |1 + i omega dt| = sqrt(1 + omega^2 dt^2) per step, so by about exp(omega^2 dt / 2) per
unit time) and their local error grows with (dt Lip(f))^(p+1).  The option composes

    W = K min(1, L / ||K||_2) - gamma I,   K = M - M^T,

(``parametrizations.norm_bounded``): K stays skew, so W's eigenvalues stay -gamma + i omega, now
with |omega| <= ||K||_2 <= L for every parameter value.  Then ||W||_2 = sqrt(||K||_2^2 + gamma^2)
(W is normal) and, since tanh' <= 1 (and sigmoid' <= 1/4, sigmoid <= 1 for the gate),
Lip(f) <= ||W||_2 (gated: <= 5/4 ||W||_2).  Choose L = rho / dt for the step dt you deploy with:
rho = dt * L bounds the Euler growth per unit time by exp(rho L / 2) and each step's error.
"""

from __future__ import annotations

import torch
from torch import nn

import solvers

from ..parametrizations import norm_bounded, skew_diffusion
from .base import Field

__all__ = ["AntisymmetricField"]


class AntisymmetricField(Field):
    """AntisymmetricRNN vector field.

    Args:
        input_size: D.  hidden_size: N.
        gamma: diffusion (0.01: the paper searches {0.001, 0.01, 0.1, 1}).
        gated: add the input gate of eq. 7.
        sigma: W ~ N(0, sigma^2 / N).
        max_norm: None (default) or L > 0: the skew part W - W^T scaled down to spectral norm
            <= L (module docstring), so the field's Lipschitz constant is bounded for every
            parameter value.
    """

    def __init__(self, input_size: int, hidden_size: int, gamma: float = 0.01, gated: bool = False,
                 sigma: float = 1.0, max_norm: float | None = None):
        super().__init__(input_size, hidden_size)
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0 (a diffusion); got {gamma}")
        self.gamma = gamma
        self.gated = bool(gated)
        if max_norm is not None and not (isinstance(max_norm, (int, float)) and not isinstance(max_norm, bool)
                                         and max_norm > 0):
            raise ValueError(f"max_norm must be None (off) or a positive number; got {max_norm!r}")
        self.max_norm = max_norm
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
        if self.max_norm is None:
            return skew_diffusion(self.M, self.gamma)
        eye = torch.eye(self.M.shape[-1], dtype=self.M.dtype, device=self.M.device)
        return norm_bounded(self.M - self.M.transpose(-1, -2), self.max_norm) - self.gamma * eye

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
