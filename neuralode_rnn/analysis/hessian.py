"""Curvature of the loss: Hessian-vector products, extreme eigenvalues, trace.

The Lipschitz RNN paper (Erichson et al., ICLR 2021, Sec. 6) compares continuous-time RNNs by the
largest eigenvalue and the trace of the Hessian of the training loss at the trained parameters:
a flatter minimum (smaller values) is read as more robust to perturbations.  Everything here
works matrix-free on H v = d/dtheta (grad L . v), double backpropagation through the solver:

* :class:`HessianOperator`: H v for a loss closure and a list of parameters (flattened).
* :func:`power_iteration`: the eigenvalue of largest magnitude.
* :func:`lanczos`: extreme eigenvalues from a k-step Lanczos tridiagonalisation (full
  reorthogonalisation; k << n).
* :func:`hutchinson_trace`: tr H = E[z^T H z] with Rademacher z, with its standard error.
* :func:`dense_hessian`: the full matrix by n products (small models, for tests).
* :func:`hessian_summary`: the paper's numbers for a model on a batch, with the loss the model
  was trained on (``neuralode_rnn.training.objective``: cross-entropy, per step for sequence
  tasks, squared error for regression).

Complex parameters (the unitary RNN's W) count as their real and imaginary parts: the Hessian is
that of the loss as a function of the 2n real numbers (a real loss of complex W has no complex
Hessian in the holomorphic sense).  It is the Hessian in the ambient space; the unitary
constraint the Cayley optimiser keeps is not applied to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..training import network, objective

__all__ = [
    "HessianOperator",
    "HessianSummary",
    "MatrixOperator",
    "classification_loss",
    "task_loss",
    "dense_hessian",
    "hessian_summary",
    "hutchinson_trace",
    "lanczos",
    "power_iteration",
]


class HessianOperator:
    """v -> H v, the Hessian of ``loss_fn()`` with respect to ``params``, on flat vectors.

    The gradient graph is built once (``create_graph=True``) and each product differentiates
    grad . v through it again, so one product costs about one backward pass.

    Args:
        loss_fn: closure returning the real scalar loss from the current parameter values.
        params: the tensors to differentiate (requires_grad); default order kept.  A complex
            tensor of n entries takes 2n places of the flat vector: its real parts, then its
            imaginary parts (see the module docstring).
    """

    def __init__(self, loss_fn: Callable[[], Tensor], params: Sequence[Tensor]):
        self.params = [p for p in params if p.requires_grad]
        if not self.params:
            raise ValueError("params must contain at least one tensor with requires_grad=True")
        loss = loss_fn()
        if loss.dim() != 0 or loss.is_complex():
            raise ValueError(f"loss_fn must return a real scalar; got shape {tuple(loss.shape)}, {loss.dtype}")
        self.loss = float(loss.detach())
        self.grads = torch.autograd.grad(loss, self.params, create_graph=True)
        self.size = sum(p.numel() * (2 if p.is_complex() else 1) for p in self.params)
        self.dtype = self.params[0].real.dtype if self.params[0].is_complex() else self.params[0].dtype
        self.device = self.params[0].device
        self.products = 0

    @staticmethod
    def _flat(tensors: Sequence[Tensor | None], params: Sequence[Tensor]) -> Tensor:
        """Per-parameter tensors (complex ones as real then imaginary parts) as one real vector."""
        out = []
        for t, p in zip(tensors, params):
            t = torch.zeros_like(p) if t is None else t
            out += [t.real.reshape(-1), t.imag.reshape(-1)] if p.is_complex() else [t.reshape(-1)]
        return torch.cat(out)

    def gradient(self) -> Tensor:
        return self._flat([g.detach() for g in self.grads], self.params)

    def __call__(self, v: Tensor) -> Tensor:
        if v.shape != (self.size,):
            raise ValueError(f"v must be a flat vector of {self.size} entries; got shape {tuple(v.shape)}")
        dot, start = 0, 0
        for g, p in zip(self.grads, self.params):
            n = p.numel()
            if p.is_complex():
                x = torch.complex(v[start:start + n], v[start + n:start + 2 * n]).view_as(p).to(p.dtype)
                # <grad, v> over the real coordinates (Re, Im): Re(sum(conj(g) x)), g = dL/dRe + i dL/dIm
                dot = dot + (g.conj() * x).real.sum()
                start += 2 * n
            else:
                dot = dot + (g * v[start:start + n].view_as(p).to(p.dtype)).sum()
                start += n
        hv = torch.autograd.grad(dot, self.params, retain_graph=True, allow_unused=True)
        self.products += 1
        return self._flat(hv, self.params)


class MatrixOperator:
    """v -> H v for an explicit symmetric matrix H (n, n), with HessianOperator's interface.

    For checks of the estimators against known matrices, and for a dense Hessian once computed.
    """

    def __init__(self, H: Tensor):
        if H.dim() != 2 or H.shape[0] != H.shape[1]:
            raise ValueError(f"H must be a square matrix; got shape {tuple(H.shape)}")
        self.H = H
        self.size = H.shape[0]
        self.dtype = H.dtype
        self.device = H.device
        self.products = 0

    def __call__(self, v: Tensor) -> Tensor:
        self.products += 1
        return self.H @ v


def _generator(seed: int | None) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(0 if seed is None else seed)
    return g


def power_iteration(op: HessianOperator, iters: int = 100, tol: float = 1e-5, seed: int = 0) -> tuple[float, Tensor]:
    """Eigenvalue of largest magnitude (with its sign) and its unit eigenvector.

    Stops when the Rayleigh quotient changes by less than ``tol`` relative.
    """
    v = torch.randn(op.size, generator=_generator(seed), dtype=torch.float64).to(op.dtype)
    v = v / v.norm()
    value = 0.0
    for _ in range(iters):
        hv = op(v)
        new = float(v @ hv)
        norm = hv.norm()
        if norm == 0:
            return 0.0, v
        v = hv / norm
        if abs(new - value) <= tol * max(abs(new), 1e-30):
            value = new
            break
        value = new
    return value, v


def lanczos(op: HessianOperator, steps: int = 30, seed: int = 0) -> np.ndarray:
    """Ritz values (ascending) of a ``steps``-step Lanczos run: the extreme ones converge first.

    Full reorthogonalisation keeps the basis orthogonal in floating point (cheap for steps << n).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int (Lanczos steps); got {steps!r}")
    k = min(steps, op.size)
    q = torch.randn(op.size, generator=_generator(seed), dtype=torch.float64)
    q = q / q.norm()
    Q = [q]
    alphas, betas = [], []
    for j in range(k):
        w = op(Q[j].to(op.dtype)).double()
        a = float(Q[j] @ w)
        alphas.append(a)
        basis = torch.stack(Q)
        w = w - basis.T @ (basis @ w)
        w = w - basis.T @ (basis @ w)  # twice is enough (Kahan)
        b = float(w.norm())
        if j == k - 1 or b < 1e-12 * max(1.0, abs(a)):
            break
        betas.append(b)
        Q.append(w / b)
    T = np.diag(alphas) + np.diag(betas[:len(alphas) - 1], 1) + np.diag(betas[:len(alphas) - 1], -1)
    return np.linalg.eigvalsh(T)


def hutchinson_trace(op: HessianOperator, probes: int = 100, seed: int = 0) -> tuple[float, float]:
    """Hutchinson's estimate of tr H with Rademacher probes: (mean, standard error)."""
    if probes < 2:
        raise ValueError(f"probes must be at least 2 (for a standard error); got {probes}")
    g = _generator(seed)
    samples = []
    for _ in range(probes):
        z = (torch.randint(0, 2, (op.size,), generator=g) * 2 - 1).to(op.dtype)
        samples.append(float(z @ op(z)))
    s = np.asarray(samples)
    return float(s.mean()), float(s.std(ddof=1) / math.sqrt(probes))


def dense_hessian(op: HessianOperator) -> Tensor:
    """The full (n, n) Hessian from n products with the unit vectors (small n only)."""
    eye = torch.eye(op.size, dtype=op.dtype, device=op.device)
    H = torch.stack([op(eye[i]) for i in range(op.size)])
    return (H + H.T) / 2


def classification_loss(model: nn.Module, values: Tensor, times: Tensor | None, targets: Tensor
                        ) -> Callable[[], Tensor]:
    """Closure: mean cross-entropy of ``model(values, times)`` against integer ``targets``."""
    def loss() -> Tensor:
        return F.cross_entropy(model(values, times), targets)
    return loss


def task_loss(model: nn.Module, values: Tensor, times: Tensor | None, targets: Tensor,
              kind: str = "classification") -> Callable[[], Tensor]:
    """Closure: the mean training loss of ``model`` on the batch for a task of ``kind``
    (``neuralode_rnn.training.objective``: what the model was trained on)."""
    net = network(model, kind)

    def loss() -> Tensor:
        total, _, count = objective(net(values, times), targets, kind)
        return total / count
    return loss


@dataclass(frozen=True)
class HessianSummary:
    """The paper's curvature numbers at one point: loss, lambda_max, lambda_min, trace (+- se)."""

    loss: float
    max_eigenvalue: float
    min_eigenvalue: float
    trace: float
    trace_se: float
    n_params: int
    products: int

    def as_dict(self) -> dict:
        return asdict(self)


def hessian_summary(model: nn.Module, values: Tensor, times: Tensor | None, targets: Tensor,
                    lanczos_steps: int = 30, probes: int = 100, seed: int = 0,
                    kind: str = "classification") -> HessianSummary:
    """Hessian of the training loss of a task of ``kind`` (:func:`task_loss`) on one batch w.r.t.
    all of ``model``'s parameters (complex ones as real and imaginary parts).

    The model is put in eval mode (a StochasticRNN is then deterministic) for the computation
    and restored after.  Eigenvalues from Lanczos (``lanczos_steps`` >= 1), trace from Hutchinson
    (``probes`` >= 2).
    """
    if isinstance(lanczos_steps, bool) or not isinstance(lanczos_steps, int) or lanczos_steps < 1:
        raise ValueError(f"lanczos_steps must be a positive int; got {lanczos_steps!r}")
    was = model.training
    model.eval()
    try:
        op = HessianOperator(task_loss(model, values, times, targets, kind),
                             [p for p in model.parameters() if p.requires_grad])
        ritz = lanczos(op, lanczos_steps, seed)
        trace, se = hutchinson_trace(op, probes, seed)
    finally:
        model.train(was)
    return HessianSummary(loss=op.loss, max_eigenvalue=float(ritz[-1]), min_eigenvalue=float(ritz[0]),
                          trace=trace, trace_se=se, n_params=op.size, products=op.products)
