"""Stability of a recurrent field: eigenvalues against solvers' stability regions, the Lipschitz
RNN's global-stability condition, and the contraction it predicts, measured.

Three questions, one function each:

* Which steps can a solver take?  The eigenvalues of A, of W, and of the Jacobian
  J(t) = d rhs / dh along a trajectory, scaled by the step size, must lie in the method's
  stability region {z : |R(z)| <= 1} (``solvers.stability_function``); ``solvers.max_stable_step``
  gives the largest step for a set of eigenvalues (:func:`max_stable_steps`).
* Is the field globally exponentially stable?  :func:`lipschitz_stability_condition`.
* Does it contract at the rate the condition predicts?  :func:`measure_contraction`.

**The condition implemented** (:func:`lipschitz_stability_condition`).  For a field of the form

    h' = A h + sigma(W h + u(t)),   sigma elementwise with slopes in [0, L]   (tanh: L = 1),

the difference d = h_a - h_b of two solutions driven by the same input obeys d' = A d + D(t) W d
with D(t) diagonal, entries in [0, L] (mean-value theorem).  With the Lyapunov function
V = |d|^2 / 2,

    V' = d^T A_sym d + d^T D W d <= (lambda_max(A_sym) + L ||W||_2) |d|^2,   A_sym = (A + A^T) / 2,

so |d(t)| <= exp(c t) |d(0)| with c = lambda_max(A_sym) + L ||W||_2.  If c < 0 every pair of
trajectories converges exponentially at rate -c whatever the input: for a constant input the
unique equilibrium is globally exponentially stable.  This is the Lyapunov (quadratic Lyapunov
function, conditions on the symmetric part of A and on W with the Lipschitz constant of the
nonlinearity) sufficient condition of the Lipschitz RNN paper's stability analysis (Erichson et
al., ICLR 2021, Sec. 3, Theorem 1 and its use for the symmetric-skew A = S(beta_A, gamma_A));
the paper's exact statement was not available offline (papers/000 is a summary), so what is
implemented is the inequality above, derived here, which is sufficient on its own.  It is
conservative: the paper's second route (circle criterion / KYP) and a trained model's actual
contraction can be better; :func:`measure_contraction` shows the actual rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

import solvers

from ..fields.base import Field
from ..models import ContinuousRNN

__all__ = [
    "Contraction",
    "GlobalStability",
    "jacobian_eigenvalues",
    "lipschitz_stability_condition",
    "matrix_eigenvalues",
    "max_stable_steps",
    "measure_contraction",
]


def matrix_eigenvalues(field: Field) -> dict[str, np.ndarray]:
    """Eigenvalues (complex numpy arrays (N,)) of the field's ``A`` and ``W``."""
    with torch.no_grad():
        return {name: np.linalg.eigvals(getattr(field, name).detach().cpu().to(torch.complex128).numpy())
                for name in ("A", "W")}


def jacobian_eigenvalues(model: ContinuousRNN, values: torch.Tensor, times: torch.Tensor | None = None,
                         max_points: int = 256) -> np.ndarray:
    """Eigenvalues of J = d rhs(h, u) / dh at the states and inputs of a trajectory.

    At each sample time t_k of each sample the Jacobian is taken at (h(t_k), u(t_k)), the
    state the model reaches and the projected input it reads there.  For a complex state (the
    unitary RNN) rhs is not complex-differentiable (modReLU reads |z|): the Jacobian is that of
    the real system in (Re h, Im h), 2N x 2N, the map a solver's step actually linearises.
    Per-sample times (B, T) are read on the model's index clock, sample k of each at its own t_k.

    Args:
        model: a ContinuousRNN (or anything with ``field``, ``path`` and ``solve_path``).
        values, times: the batch (B, T, D), as for the model.
        max_points: at most this many (sample, time) points, evenly spread.

    Returns:
        (P, N) complex numpy array (P, 2N for a complex state), one row of eigenvalues per point.
    """
    field = model.field
    with torch.no_grad():
        path = model.path(values, times)
        states = model.solve_path(path)  # (B, T, N)
        driven = field.driven_by(path) if not path.per_sample else field.driven_by(path, clock="index")
        B, T, N = states.shape
        knots = path.knots if not path.per_sample else torch.arange(T, dtype=path.dtype)
        us = torch.stack([driven.input_at(knots[k]) for k in range(T)], 1)  # (B, T, P)
    hs, us = states.reshape(B * T, N), us.reshape(B * T, -1)
    keep = torch.linspace(0, B * T - 1, min(max_points, B * T)).round().long()
    hs, us = hs[keep], us[keep]

    if field.is_complex:
        def rhs_one(x, u):
            h = torch.complex(x[:N], x[N:])
            f = field.rhs(h.unsqueeze(0), u.unsqueeze(0)).squeeze(0)
            return torch.cat([f.real, f.imag])

        hs = torch.cat([hs.real, hs.imag], -1)
    else:
        def rhs_one(h, u):
            return field.rhs(h.unsqueeze(0), u.unsqueeze(0)).squeeze(0)

    jac = torch.func.vmap(torch.func.jacrev(rhs_one))(hs.detach(), us.detach())  # (P, N, N) or (P, 2N, 2N)
    return np.linalg.eigvals(jac.detach().cpu().to(torch.complex128).numpy())


def max_stable_steps(eigenvalues: np.ndarray | Sequence[complex], methods: Sequence[str] | None = None
                     ) -> dict[str, float]:
    """``solvers.max_stable_step`` for each explicit tableau (default: all of ``solvers.TABLEAUX``)."""
    lam = np.asarray(eigenvalues, dtype=complex).reshape(-1)
    return {m: solvers.max_stable_step(m, lam) for m in (methods or solvers.FIXED_TABLEAUX + solvers.ADAPTIVE_TABLEAUX)}


def _check_form(field: Field) -> None:
    """Raise unless rhs(h, u) == A h + tanh(W h + u) at random points (the form the bound needs)."""
    if field.is_complex:
        raise ValueError(f"{type(field).__name__} has a complex state; the condition is for real fields "
                         f"h' = A h + sigma(W h + u)")
    p = next(field.parameters())
    g = torch.Generator().manual_seed(0)
    h = torch.randn(3, field.hidden_size, generator=g).to(p.dtype)
    u = torch.randn(3, field.input_map.out_features, generator=g).to(p.dtype)
    with torch.no_grad():
        got = field.rhs(h, u)
        if u.shape[-1] != field.hidden_size:
            raise ValueError(f"{type(field).__name__} is not of the form h' = A h + tanh(W h + u) (its input "
                             f"map has {u.shape[-1]} outputs for {field.hidden_size} units, e.g. a gated cell)")
        want = h @ field.A.T + torch.tanh(h @ field.W.T + u)
    if not torch.allclose(got, want, rtol=1e-5, atol=1e-6):
        raise ValueError(f"{type(field).__name__} is not of the form h' = A h + tanh(W h + u); the condition "
                         f"does not apply")


@dataclass(frozen=True)
class GlobalStability:
    """Result of :func:`lipschitz_stability_condition`.

    Attributes:
        lambda_max_A_sym: largest eigenvalue of (A + A^T) / 2.
        norm_W: spectral norm ||W||_2.
        lipschitz_constant: L of the nonlinearity (tanh: 1).
        rate: c = lambda_max_A_sym + L norm_W; trajectories approach each other at least as
            exp(c t) (a decay when c < 0).
        satisfied: c < 0.
        condition: the inequality checked, in words.
    """

    lambda_max_A_sym: float
    norm_W: float
    lipschitz_constant: float
    rate: float
    satisfied: bool
    condition: str = "lambda_max((A + A^T)/2) + L ||W||_2 < 0"

    def as_dict(self) -> dict:
        return asdict(self)


def lipschitz_stability_condition(field: Field, lipschitz_constant: float = 1.0) -> GlobalStability:
    """Check lambda_max(A_sym) + L ||W||_2 < 0 (see the module docstring) for ``field``.

    Applies to real fields with rhs(h, u) = A h + tanh(W h + u) (Lipschitz RNN, CTRNN, ungated
    AntisymmetricRNN, for which A = 0 and the condition always fails: it is built to be
    neutrally stable, not contracting); checked numerically, a ValueError otherwise.
    """
    _check_form(field)
    with torch.no_grad():
        A = field.A.detach().double()
        W = field.W.detach().double()
        lam = float(torch.linalg.eigvalsh((A + A.T) / 2).max())
        norm = float(torch.linalg.matrix_norm(W, ord=2))
    rate = lam + lipschitz_constant * norm
    return GlobalStability(lambda_max_A_sym=lam, norm_W=norm, lipschitz_constant=float(lipschitz_constant),
                           rate=rate, satisfied=rate < 0)


@dataclass(frozen=True)
class Contraction:
    """Two trajectories from different h0 under the same input (:func:`measure_contraction`).

    Attributes:
        times: (T + 1,) the start t0 and the sample times.
        distance: (T + 1,) max over the batch of |h_a(t) - h_b(t)| / |h_a(t0) - h_b(t0)|.
        predicted_rate: -c from :func:`lipschitz_stability_condition` (positive: contraction).
        measured_rate: least-squares decay rate of log distance over time.
        bound_holds: distance(t) <= exp(c (t - t0)) at every time (with a 1e-6 relative slack
            for the solver's error).
    """

    times: np.ndarray
    distance: np.ndarray
    predicted_rate: float
    measured_rate: float
    bound_holds: bool

    def as_dict(self) -> dict:
        d = asdict(self)
        d["times"] = self.times.tolist()
        d["distance"] = self.distance.tolist()
        return d


def measure_contraction(field: Field, values: torch.Tensor, times: torch.Tensor | None = None,
                        scale: float = 1.0, method: str = "rk4", substeps: int = 8,
                        seed: int = 0) -> Contraction:
    """Integrate from two random initial states (std ``scale``) with the same input and compare.

    The solve is accurate rather than the model's own: ``method`` with each sample gap split in
    ``substeps`` steps, in float64 on a copy of the field.
    """
    import copy

    f64 = copy.deepcopy(field).double()
    values = values.double()
    times = None if times is None else times.double()
    T = values.shape[1]
    t = torch.arange(1, T + 1, dtype=torch.float64) if times is None else times
    if t.dim() != 1:
        raise ValueError("measure_contraction needs shared times (T,) or None")
    gap = float((t[1:] - t[:-1]).max()) if T > 1 else 1.0
    model = ContinuousRNN(f64, 1, method=method, step_size=gap / substeps).double()
    g = torch.Generator().manual_seed(seed)
    B, N = values.shape[0], field.hidden_size
    ha = scale * torch.randn(B, N, generator=g, dtype=torch.float64)
    hb = scale * torch.randn(B, N, generator=g, dtype=torch.float64)
    with torch.no_grad():
        sa = model.trajectory(values, times, h0=ha)
        sb = model.trajectory(values, times, h0=hb)
    d0 = (ha - hb).norm(dim=-1)
    dist = torch.cat([d0[:, None], (sa - sb).norm(dim=-1)], 1) / d0[:, None]  # (B, T + 1)
    worst = dist.max(0).values.numpy()
    t0 = float(2 * t[0] - t[1]) if T > 1 else float(t[0]) - 1
    tt = np.concatenate([[t0], t.numpy()])
    cond = lipschitz_stability_condition(f64)
    bound = np.exp(cond.rate * (tt - t0))
    positive = worst > 1e-300
    slope = np.polyfit(tt[positive] - t0, np.log(worst[positive]), 1)[0] if positive.sum() > 1 else math.nan
    return Contraction(times=tt, distance=worst, predicted_rate=-cond.rate, measured_rate=float(-slope),
                       bound_holds=bool(np.all(worst <= bound * (1 + 1e-6))))
