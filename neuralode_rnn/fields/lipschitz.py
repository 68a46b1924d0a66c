"""Lipschitz RNN (Erichson, Azencot, Queiruga, Hodgkinson, Mahoney; ICLR 2021).

    dh/dt = A h + tanh(W h + U x + b),
    A = S(beta_A, gamma_A)(M_A),  W = S(beta_W, gamma_W)(M_W),
    S(beta, gamma)(M) = (1 - beta)(M + M^T) + beta(M - M^T) - gamma I.

One Euler step of size eps is the paper's discrete unit
h_k = h_{k-1} + eps (A h_{k-1} + tanh(W h_{k-1} + U x_k + b)); its "RK2" is the explicit midpoint
method with x_k held over the step.

Defaults: beta = 0.75 for both matrices and gamma = 0.001 (the reference settings for ordered
MNIST); M_A and M_W drawn from N(0, (init_std / N)^2), the reference code's ``gaussian_init_``
(erichson/LipschitzRNN, tools.py), with init_std = 1, the default of its model class
(``rnn_models(init_std=1)``, models.py).  Its drivers pass other scales for 784-step MNIST trained
with SGD (driver.py 6, driver_MNIST.py 12, its README's commands 32); every documented run of this
library, and so every preset (``neuralode_rnn.data.presets``), uses 1, and ``--init-std`` sets it.
One difference from the reference is kept on purpose: U and b have the default ``nn.Linear``
initialisation (the reference draws its input map's weights Xavier-normal with zero bias), the
initialisation every documented run trained with.

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
divided by m, rather than growing as exp(L t).  What it costs: a globally contracting field
forgets (every direction decays, not only unused ones); in the issue 11 study (digits, one seed,
50 epochs) it lowered test accuracy by 17-26 points and did not by itself make the trained model
agree across solvers (the low-order solvers' errors are large on its oscillatory modes), so it is
a tool for guarantees, not the recipe for solver-robust training.
"""

from __future__ import annotations

import torch
from torch import nn

import solvers

from ..parametrizations import contraction_shift, symmetric_skew
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
        init_std: M_A, M_W ~ N(0, (init_std / N)^2); 1 (default) is the reference model class's
            default and the documented runs' value (module docstring).
        stable_margin: None (default: the paper's field) or m > 0: A is shifted so that
            lambda_max((A + A^T)/2) + ||W||_2 <= -m for every parameter value (module docstring).
    """

    def __init__(self, input_size: int, hidden_size: int, beta: float = 0.75, gamma_A: float = 0.001,
                 gamma_W: float = 0.001, init_std: float = 1.0, beta_A: float | None = None,
                 beta_W: float | None = None, stable_margin: float | None = None):
        super().__init__(input_size, hidden_size)
        self.beta_A = beta if beta_A is None else beta_A
        self.beta_W = beta if beta_W is None else beta_W
        for name, b in (("beta_A", self.beta_A), ("beta_W", self.beta_W)):
            if not 0.0 <= b <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1]; got {b}")
        self.gamma_A = gamma_A
        self.gamma_W = gamma_W
        if stable_margin is not None and not (isinstance(stable_margin, (int, float))
                                              and not isinstance(stable_margin, bool) and stable_margin > 0):
            raise ValueError(f"stable_margin must be None (off) or a positive number; got {stable_margin!r}")
        self.stable_margin = stable_margin
        std = init_std / hidden_size
        self.M_A = nn.Parameter(torch.randn(hidden_size, hidden_size) * std)
        self.M_W = nn.Parameter(torch.randn(hidden_size, hidden_size) * std)
        self.input_map = nn.Linear(input_size, hidden_size)

    @property
    def A(self) -> torch.Tensor:
        A = symmetric_skew(self.M_A, self.beta_A, self.gamma_A)
        if self.stable_margin is not None:
            eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
            A = A - contraction_shift(A, self.W, self.stable_margin) * eye
        return A

    @property
    def W(self) -> torch.Tensor:
        return symmetric_skew(self.M_W, self.beta_W, self.gamma_W)

    def structure(self) -> solvers.LinearActivation:
        lin = self.input_map
        return solvers.LinearActivation(W=self.W, A=self.A, U=lin.weight, b=lin.bias, activation="tanh")

    def rhs(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return h @ self.A.transpose(0, 1) + torch.tanh(h @ self.W.transpose(0, 1) + u)
