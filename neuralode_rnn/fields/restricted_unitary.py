"""Restricted-capacity unitary RNN (Arjovsky, Shah, Bengio; ICML 2016) as a field.

The recurrence matrix is a fixed product of structured unitary factors,

    W = D3 R2 F^{-1} D2 Pi R1 F D1,

with D_j = diag(exp(i theta_j)) diagonal phases, R_j = I - 2 v_j v_j^H / ||v_j||^2 complex
Householder reflections, F the unitary DFT (``torch.fft.fft(..., norm="ortho")``) and Pi a fixed
random permutation.  It is unitary by construction for any real parameters (3N phases and two
complex N-vectors: 7N real numbers), and W h costs O(N log N) through FFTs, never forming W.
Wisdom et al. (NeurIPS 2016, Sec. 3) show that for N > 7 these 7N parameters cannot reach all of
U(N), whose dimension is N^2: this is the restricted-capacity baseline of the full-capacity uRNN.

The field has the same contract as :class:`~neuralode_rnn.fields.UnitaryField`:

    dh/dt = -h + modReLU(W h + V x, b),   h in C^N,

``input_map = nn.Linear(D, 2N, bias=False)`` holding [V_re; V_im], the bias b inside modReLU, and
one Euler step of size 1 gives the restricted uRNN h_k = modReLU(W h_{k-1} + V x_k, b).  All its
parameters are real, so any torch optimiser trains it (the paper used RMSprop).

Speed note: on a loaded 2-core machine, torch.fft with 2 intra-op threads took ~15 ms per call
whatever the size, against ~4 us with ``torch.set_num_threads(1)`` (measured); run long
restricted-uRNN jobs single-threaded.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import Field
from .unitary import complex_input, modrelu

__all__ = ["RestrictedUnitaryField", "restricted_unitary_apply", "restricted_unitary_matrix"]


def _phase(h: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    return h * torch.polar(torch.ones_like(theta), theta)


def _reflect(h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(I - 2 v v^H / ||v||^2) applied to each row of h (B, N)."""
    vv = (v.real * v.real + v.imag * v.imag).sum()
    return h - (2.0 / vv) * (h @ v.conj()).unsqueeze(-1) * v


def restricted_unitary_apply(h: torch.Tensor, theta: torch.Tensor, reflections: torch.Tensor,
                             permutation: torch.Tensor) -> torch.Tensor:
    """W h for every row h of ``h`` (B, N) complex, W = D3 R2 F^{-1} D2 Pi R1 F D1, in O(B N log N).

    Args:
        h: (B, N) complex rows; the result's row b is W h[b] (W acting on column vectors).
        theta: (3, N) real phases of D1, D2, D3.
        reflections: (2, 2, N) real; v_j = reflections[j, 0] + i reflections[j, 1] for R1, R2.
        permutation: (N,) int64; (Pi h)_k = h_{permutation[k]}.
    """
    v = torch.complex(reflections[:, 0], reflections[:, 1]).to(h.dtype)
    theta = theta.to(h.real.dtype)
    y = _phase(h, theta[0])
    y = torch.fft.fft(y, dim=-1, norm="ortho")
    y = _reflect(y, v[0])
    y = y[..., permutation]
    y = _phase(y, theta[1])
    y = torch.fft.ifft(y, dim=-1, norm="ortho")
    y = _reflect(y, v[1])
    return _phase(y, theta[2])


def restricted_unitary_matrix(theta: torch.Tensor, reflections: torch.Tensor, permutation: torch.Tensor,
                              dtype: torch.dtype | None = None) -> torch.Tensor:
    """The (N, N) matrix W of :func:`restricted_unitary_apply`, formed by applying it to the identity."""
    n = theta.shape[-1]
    if dtype is None:
        dtype = torch.complex128 if theta.dtype == torch.float64 else torch.complex64
    eye = torch.eye(n, dtype=dtype, device=theta.device)
    # row j of the result is W e_j, the j-th column of W
    return restricted_unitary_apply(eye, theta, reflections, permutation).transpose(0, 1)


class RestrictedUnitaryField(Field):
    """Restricted-capacity uRNN vector field (complex hidden state, W = D3 R2 F^-1 D2 Pi R1 F D1).

    Args:
        input_size: D (real inputs).  hidden_size: N (complex units).
        bias_init: modReLU bias b starts here (0: modReLU starts as the identity).
        permutation_seed: seed of the fixed permutation Pi (a buffer, not trained).

    Initialisation as in Arjovsky et al.'s code: phases uniform in [-pi, pi); reflection vectors'
    real and imaginary parts uniform in +-sqrt(6 / (2 + 2N)) (Glorot for a 2 x 2N matrix; only
    their directions matter).  ``theta`` (3, N) and ``reflections`` (2, 2, N) are the trained
    parameters; ``permutation`` (N,) is fixed.
    """

    is_complex = True

    def __init__(self, input_size: int, hidden_size: int, bias_init: float = 0.0, permutation_seed: int = 0):
        super().__init__(input_size, hidden_size)
        n = hidden_size
        self.theta = nn.Parameter(torch.empty(3, n).uniform_(-math.pi, math.pi))
        bound = math.sqrt(6.0 / (2 + 2 * n))
        self.reflections = nn.Parameter(torch.empty(2, 2, n).uniform_(-bound, bound))
        gen = torch.Generator().manual_seed(int(permutation_seed))
        self.register_buffer("permutation", torch.randperm(n, generator=gen))
        self.b = nn.Parameter(torch.full((n,), float(bias_init)))
        self.input_map = nn.Linear(input_size, 2 * n, bias=False)

    @property
    def A(self) -> torch.Tensor:
        return -torch.eye(self.hidden_size, dtype=self._complex_dtype, device=self.theta.device)

    @property
    def W(self) -> torch.Tensor:
        """The formed (N, N) unitary matrix (for analysis and tests; :meth:`rhs` never forms it)."""
        return restricted_unitary_matrix(self.theta, self.reflections, self.permutation)

    @property
    def _complex_dtype(self) -> torch.dtype:
        return torch.complex128 if self.theta.dtype == torch.float64 else torch.complex64

    def apply_W(self, h: torch.Tensor) -> torch.Tensor:
        """W h for each row of h (B, N) complex, through FFTs."""
        return restricted_unitary_apply(h, self.theta, self.reflections, self.permutation)

    def rhs(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        z = self.apply_W(h) + complex_input(u).to(h.dtype)
        return modrelu(z, self.b.to(h.real.dtype)) - h
