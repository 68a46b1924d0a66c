"""System identification of a unitary RNN (Wisdom et al., NeurIPS 2016, Sec. 5.1).

A teacher uRNN with N complex units,

    h_t = modReLU(W h_{t-1} + x_t, b),   h_0 = 0,   y_t = h_t,

is driven by i.i.d. circular complex Gaussian inputs x_t in C^N (E|x|^2 = 1 per channel); the
task is to recover W from (inputs, outputs).  As in the paper, the input map V and the output map
are the identity, the output bias is 0 and b is drawn uniformly from [-0.11, -0.09] (mean -0.1
keeps the outputs bounded); the student shares V, b and the readout with the teacher and learns
only W.  The teacher's W is Haar-random (``teacher="haar"``), which for N > 7 lies outside the
restricted-capacity family almost surely, or drawn from that family (``teacher="restricted"``,
random phases, reflections and permutation), the control where restricted capacity suffices.

In this package's real-valued conventions, a complex input x = a + i c is the real vector [a, c]
(D = 2N): a field's ``input_map`` (Linear(2N, 2N) holding [V_re; V_im]) is then the identity
I_{2N} for V = I.  Targets are the real features [Re h_t, Im h_t] at every step.
"""

from __future__ import annotations

import math

import torch

from ..fields.restricted_unitary import restricted_unitary_matrix
from ..fields.unitary import modrelu
from ..parametrizations import random_unitary
from .base import SequenceDataset, Split, check_seed

__all__ = ["SYSID_TEACHERS", "load_sysid", "teacher_recurrence"]

SYSID_TEACHERS = ("haar", "restricted")
BIAS_RANGE = (-0.11, -0.09)


def _check_int(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")
    return value


def teacher_recurrence(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """h_t = modReLU(W h_{t-1} + x_t, b) from h_0 = 0.

    Args:
        x: (B, T, N) complex inputs.  W: (N, N) complex.  b: (N,) real.
    Returns (B, T, N) complex states.
    """
    h = torch.zeros(x.shape[0], x.shape[2], dtype=x.dtype, device=x.device)
    Wt = W.to(x.dtype).transpose(0, 1)
    states = []
    for x_t in x.unbind(1):
        h = modrelu(h @ Wt + x_t, b.to(x.real.dtype))
        states.append(h)
    return torch.stack(states, 1)


def _teacher_matrix(N: int, teacher: str, generator: torch.Generator) -> torch.Tensor:
    if teacher == "haar":
        return random_unitary(N, torch.complex128, generator=generator)
    theta = (torch.rand(3, N, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi
    reflections = torch.randn(2, 2, N, generator=generator, dtype=torch.float64)
    permutation = torch.randperm(N, generator=generator)
    return restricted_unitary_matrix(theta, reflections, permutation, dtype=torch.complex128)


def load_sysid(N: int = 8, T: int = 150, n_train: int = 2000, n_test: int = 200, seed: int = 0,
               teacher: str = "haar") -> SequenceDataset:
    """System identification of a teacher uRNN with N complex units over T steps.

    Args:
        N: hidden (and input and output) dimension; the paper's critical dimension is 7.
        T: sequence length (the paper: 150).
        n_train, n_test: numbers of sequences (the paper: 20000 and 1000).
        seed: seeds the teacher and the data (one generator, teacher first).
        teacher: "haar" (W uniform on U(N)) or "restricted" (W = D3 R2 F^-1 D2 Pi R1 F D1).

    Returns a regression :class:`SequenceDataset`: values (n, T, 2N) float32 = [Re x, Im x],
    targets (n, T, 2N) float32 = [Re h, Im h], times None.  ``info`` holds the teacher:
    ``W`` (N, N) complex128, ``b`` (N,) float64, and ``baseline_mse``, the test MSE of predicting 0.
    """
    N, T = _check_int(N, "N"), _check_int(T, "T")
    n_train, n_test = _check_int(n_train, "n_train"), _check_int(n_test, "n_test")
    if teacher not in SYSID_TEACHERS:
        raise ValueError(f"unknown teacher {teacher!r}; expected one of {', '.join(map(repr, SYSID_TEACHERS))}")
    generator = torch.Generator().manual_seed(check_seed(seed))
    W = _teacher_matrix(N, teacher, generator)
    b = BIAS_RANGE[0] + (BIAS_RANGE[1] - BIAS_RANGE[0]) * torch.rand(N, generator=generator, dtype=torch.float64)
    splits = []
    for n in (n_train, n_test):
        # circular complex Gaussian with unit variance: real and imaginary parts N(0, 1/2)
        parts = torch.randn(n, T, 2 * N, generator=generator, dtype=torch.float64) / math.sqrt(2.0)
        x = torch.complex(parts[..., :N], parts[..., N:])
        h = teacher_recurrence(x, W, b)
        targets = torch.cat([h.real, h.imag], -1)
        splits.append(Split(parts.to(torch.float32), targets.to(torch.float32)))
    baseline = float(splits[1].targets.pow(2).mean())
    return SequenceDataset(
        name="sysid",
        kind="regression",
        train=splits[0],
        test=splits[1],
        n_classes=None,
        description=f"system identification of a {teacher} uRNN teacher, N={N} complex units, T={T}; inputs "
        "circular complex Gaussian as [Re, Im] (D = 2N), targets the teacher's states [Re h, Im h] at every "
        f"step; V = I, readout = I, b ~ U{BIAS_RANGE}; predicting 0 scores MSE {baseline:.4f}.",
        info={"N": N, "T": T, "seed": seed, "teacher": teacher, "W": W, "b": b, "baseline_mse": baseline},
    )
