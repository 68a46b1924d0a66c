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

**Contracting option** (``stable_margin = m > 0``; off by default, and then A and W are exactly the
above).  Two solutions h_a, h_b of the field driven by the same input differ by d = h_a - h_b with

    d' = A d + D(t) W d,   D(t) = diag(tanh'(.)) with entries in [0, 1]   (mean-value theorem),

so V = |d|^2 / 2 has V' = d^T A_sym d + d^T D W d <= (lambda_max(A_sym) + ||W||_2) |d|^2, with
A_sym = (A + A^T) / 2 (the condition of ``analysis.stability.lipschitz_stability_condition``).  The
option composes

    A = S(beta_A, gamma_A)(M_A) - s I,   s = max(0, lambda_max(S_sym) + ||W||_2 + m),

(``parametrizations.contraction_shift``, S_sym the symmetric part of S(beta_A, gamma_A)(M_A)).
Shifting by s I lowers every eigenvalue of A_sym by s and leaves W alone, so

    lambda_max(A_sym) + ||W||_2 = lambda_max(S_sym) - s + ||W||_2 <= -m

for *every* value of M_A and M_W: |d(t)| <= exp(-m t) |d(0)|, every pair of trajectories converges
at rate at least m whatever the input, during and after training, with no projection step in the
optimiser.  s = 0 while the condition already holds with margin m (A is then the paper's), and s
is differentiable almost everywhere (lambda_max by ``eigvalsh``, ||W||_2 by an SVD, both exact: a
power-iteration estimate from below would let the bound fail), so W can still grow and A pays for
it.  Why it is offered: on a contracting field an error made by a solver decays instead of
growing, so the global error of any solver stays of the size of its local error per unit time
divided by m, rather than growing as exp(L t).  What it costs: docs/CONTINUOUS.md (phase 2) and
the issue 11 report measure it; on digits it lowers test accuracy by 15-25 points, because a
globally contracting field forgets (every direction decays, not only the unused ones).

**Norm bound** (``max_norm = L``; off by default): A and W are each scaled down to spectral norm
at most L (``parametrizations.norm_bounded``) before the shift, so the field's Lipschitz constant
in h is at most ||A||_2 + ||W||_2 <= 2 L (+ s with ``stable_margin``).  A solver step of size dt
then sees dt * Lip(f) <= 2 L dt, which bounds every explicit method's local error for the step
you choose L for.
"""

from __future__ import annotations

import torch
from torch import nn

import solvers

from ..parametrizations import contraction_shift, norm_bounded, symmetric_skew
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
        stable_margin: None (default: the paper's field) or m > 0: A is shifted so that
            lambda_max((A + A^T)/2) + ||W||_2 <= -m for every parameter value (module docstring).
        max_norm: None (default) or L > 0: A and W scaled down to spectral norm <= L.
    """

    def __init__(self, input_size: int, hidden_size: int, beta: float = 0.75, gamma_A: float = 0.001,
                 gamma_W: float = 0.001, init_std: float = 1.0, beta_A: float | None = None,
                 beta_W: float | None = None, stable_margin: float | None = None,
                 max_norm: float | None = None):
        super().__init__(input_size, hidden_size)
        self.beta_A = beta if beta_A is None else beta_A
        self.beta_W = beta if beta_W is None else beta_W
        for name, b in (("beta_A", self.beta_A), ("beta_W", self.beta_W)):
            if not 0.0 <= b <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1]; got {b}")
        self.gamma_A = gamma_A
        self.gamma_W = gamma_W
        for name, v in (("stable_margin", stable_margin), ("max_norm", max_norm)):
            if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0):
                raise ValueError(f"{name} must be None (off) or a positive number; got {v!r}")
        self.stable_margin = stable_margin
        self.max_norm = max_norm
        std = init_std / hidden_size
        self.M_A = nn.Parameter(torch.randn(hidden_size, hidden_size) * std)
        self.M_W = nn.Parameter(torch.randn(hidden_size, hidden_size) * std)
        self.input_map = nn.Linear(input_size, hidden_size)

    @property
    def A(self) -> torch.Tensor:
        A = symmetric_skew(self.M_A, self.beta_A, self.gamma_A)
        if self.max_norm is not None:
            A = norm_bounded(A, self.max_norm)
        if self.stable_margin is not None:
            eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
            A = A - contraction_shift(A, self.W, self.stable_margin) * eye
        return A

    @property
    def W(self) -> torch.Tensor:
        W = symmetric_skew(self.M_W, self.beta_W, self.gamma_W)
        if self.max_norm is not None:
            W = norm_bounded(W, self.max_norm)
        return W

    def structure(self) -> solvers.LinearActivation:
        lin = self.input_map
        return solvers.LinearActivation(W=self.W, A=self.A, U=lin.weight, b=lin.bias, activation="tanh")

    def rhs(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return h @ self.A.transpose(0, 1) + torch.tanh(h @ self.W.transpose(0, 1) + u)
