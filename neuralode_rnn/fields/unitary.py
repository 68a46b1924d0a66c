"""Full-capacity unitary RNN (Wisdom, Powers, Hershey, Le Roux, Atlas; NeurIPS 2016) as a field.

    dh/dt = -h + modReLU(W h + V x, b),   h in C^N,  W unitary,
    modReLU(z, b) = z * max(|z| + b, 0) / |z|   (elementwise; Arjovsky et al. 2016).

One Euler step of size 1 gives h_k = h_{k-1} + (-h_{k-1} + modReLU(...)) = modReLU(W h_{k-1} + V x_k, b),
the paper's recurrence.  The input x is real; V = V_re + i V_im is complex, so ``input_map`` is
``nn.Linear(D, 2N, bias=False)`` holding [V_re; V_im] (the bias of this cell lives in modReLU).
W is a complex parameter registered as unitary (:func:`mark_unitary`): train it with
:class:`neuralode_rnn.optim` so it stays on the unitary group.  A readout reads [Re h, Im h].
"""

from __future__ import annotations

import torch
from torch import nn

from ..parametrizations import mark_unitary, random_unitary
from .base import Field

__all__ = ["UnitaryField", "complex_input", "modrelu"]

MODRELU_FLOOR = 1e-5


def modrelu(z: torch.Tensor, b: torch.Tensor, floor: float = MODRELU_FLOOR) -> torch.Tensor:
    """modReLU(z, b) = z * relu(|z| + b) / |z|, elementwise on complex z (..., N), real b (N,).

    Exact wherever |z| >= ``floor``.  Below it |z| is replaced by ``floor`` in the scale
    relu(|z| + b) / |z|: modReLU with b > 0 jumps at z = 0 (it maps z to the direction z/|z| at
    length b), so its exact gradient grows like b/|z| and a first step from h = 0 on a blank input
    (z = 0 exactly) would send a gradient of b/1e-12 into training.  With the floor the value stays
    0 at z = 0 and every gradient is finite and at most (floor + |b|)/floor; the reference
    implementations soften the same point by adding 1e-5 to |z| everywhere, which is never exact.
    """
    sq = z.real * z.real + z.imag * z.imag
    mag = torch.sqrt(torch.clamp(sq, min=floor * floor))
    scale = torch.relu(mag + b) / mag
    return z * scale


def complex_input(u: torch.Tensor) -> torch.Tensor:
    """V x as complex (..., N) from an input map's [Re V x; Im V x] (..., 2N); a complex u is it
    already (a solver may deliver it so: ``solvers.PiecewiseInput(complex_halves=True)``)."""
    if u.is_complex():
        return u
    n = u.shape[-1] // 2
    return torch.complex(u[..., :n], u[..., n:])


class UnitaryField(Field):
    """Full-capacity uRNN vector field with a complex hidden state.

    Args:
        input_size: D (real inputs).  hidden_size: N (complex units).
        bias_init: modReLU bias b starts at this value (0: modReLU starts as the identity).
        learn_initial_state: start from a learned h0 (N,) instead of 0.  Why: with b > 0, h = 0 is
            an unstable point of the cell (modReLU sends any z != 0 to length |z| + b), so on a run of
            blank inputs from h0 = 0 (z = 0 exactly) the gradient is multiplied at every step by
            modReLU's slope at 0, (floor + b) / floor, and overflows within a few hundred steps (seen
            on permuted MNIST, whose sequences start with long runs of zero pixels).  A nonzero h0
            keeps z away from 0.  Drawn with entries uniform in [-s, s] (real and imaginary parts),
            s = sqrt(3 / (2 N)), so E|h0|^2 = 1.  Off by default: the papers' recurrences start at 0.
    """

    is_complex = True

    def __init__(self, input_size: int, hidden_size: int, bias_init: float = 0.0, learn_initial_state: bool = False):
        super().__init__(input_size, hidden_size)
        self.U = mark_unitary(nn.Parameter(random_unitary(hidden_size, torch.complex64)))
        self.b = nn.Parameter(torch.full((hidden_size,), float(bias_init)))
        self.input_map = nn.Linear(input_size, 2 * hidden_size, bias=False)
        if learn_initial_state:
            s = (3.0 / (2 * hidden_size)) ** 0.5
            parts = (torch.rand(2, hidden_size) * 2 - 1) * s
            self.h0 = nn.Parameter(torch.complex(parts[0], parts[1]))
        else:
            self.h0 = None

    def initial_state(self, batch_size: int, dtype: torch.dtype, device=None) -> torch.Tensor:
        if self.h0 is None:
            return super().initial_state(batch_size, dtype, device)
        h0 = self.h0.to(device=device, dtype=self.state_dtype(dtype))
        return h0.unsqueeze(0).expand(batch_size, -1).contiguous()

    @property
    def A(self) -> torch.Tensor:
        return -torch.eye(self.hidden_size, dtype=self.U.dtype, device=self.U.device)

    @property
    def W(self) -> torch.Tensor:
        return self.U

    def complex_input(self, u: torch.Tensor) -> torch.Tensor:
        return complex_input(u)

    def target(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """modReLU(W h + V x, b): the point the state decays toward (h' = target - h)."""
        # conversions only when the dtypes differ: at small batch each ``.to`` (and ``h.real``, a view)
        # costs a few microseconds of a step's ~100
        u, W, b = self.complex_input(u), self.U, self.b
        real = h.dtype.to_real()
        z = torch.addmm(u if u.dtype == h.dtype else u.to(h.dtype), h,
                        (W if W.dtype == h.dtype else W.to(h.dtype)).transpose(0, 1))
        return modrelu(z, b if b.dtype == real else b.to(real))

    def rhs(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.target(h, u) - h

    def euler_step(self, h: torch.Tensor, u: torch.Tensor, dt: float) -> torch.Tensor:
        """h + dt (target - h) as one ``lerp``; at dt = 1 the target itself, modReLU(W h + V x, b): the
        uRNN cell, exactly."""
        target = self.target(h, u)
        if not isinstance(dt, torch.Tensor) and dt == 1.0:
            return target
        return torch.lerp(h, target, dt)
