"""Structured hidden-to-hidden matrices used by the recurrent fields.

* :func:`symmetric_skew`: the Lipschitz RNN's S(beta, gamma)(M) = (1 - beta)(M + M^T) + beta(M - M^T) - gamma I
  (Erichson et al., ICLR 2021, Sec. 3): beta in [0, 1] trades the symmetric part, which sets the
  real parts of the eigenvalues, against the skew part, which sets the imaginary parts; gamma
  shifts every eigenvalue left.
* :func:`skew_diffusion`: the AntisymmetricRNN's W - W^T - gamma I (Chang et al., ICLR 2019, eq. 6):
  eigenvalues -gamma + i omega, so forward Euler is stable for small gamma > 0.
* Bounds that hold for every parameter value, for fields that must stay well-behaved ODEs under any
  solver (see the fields' ``stable_margin`` / ``max_norm`` options): :func:`spectral_norm`,
  :func:`norm_bounded` (a matrix scaled down to a spectral norm bound) and
  :func:`contraction_shift` (the shift that makes the Lipschitz RNN's contraction condition true).
* Unitary helpers for the full-capacity uRNN (Wisdom et al., NeurIPS 2016): :func:`random_unitary`,
  :func:`mark_unitary`, :func:`is_unitary_parameter`, :func:`unitarity_error`.
* :func:`keep_complex`: dtype conversions (``module.to(torch.float64)``, ``.double()``) that move a
  complex parameter to the complex twin of the requested real dtype instead of dropping its
  imaginary part (what ``nn.Module.to`` does, with only a warning).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = [
    "COMPLEX_OF",
    "contraction_shift",
    "gaussian_matrix",
    "is_unitary_parameter",
    "keep_complex",
    "mark_unitary",
    "norm_bounded",
    "random_unitary",
    "skew_diffusion",
    "spectral_norm",
    "symmetric_skew",
    "unitarity_error",
    "unmark_unitary",
]


def _eye_like(M: torch.Tensor) -> torch.Tensor:
    return torch.eye(M.shape[-1], dtype=M.dtype, device=M.device)


def symmetric_skew(M: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    """S(beta, gamma)(M) = (1 - beta)(M + M^T) + beta(M - M^T) - gamma I, for square M (N, N)."""
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must lie in [0, 1]; got {beta}")
    Mt = M.transpose(-1, -2)
    return (1 - beta) * (M + Mt) + beta * (M - Mt) - gamma * _eye_like(M)


def skew_diffusion(W: torch.Tensor, gamma: float) -> torch.Tensor:
    """W - W^T - gamma I for square W (N, N)."""
    return W - W.transpose(-1, -2) - gamma * _eye_like(W)


def spectral_norm(M: torch.Tensor) -> torch.Tensor:
    """||M||_2, the largest singular value of a square or rectangular M (.., m, n), exactly (an SVD,
    not power iteration: an estimate from below would let the bounds built on it fail), with
    gradients u_1 v_1^T (well defined while the largest singular value is simple)."""
    return torch.linalg.matrix_norm(M, ord=2)


def norm_bounded(M: torch.Tensor, max_norm: float) -> torch.Tensor:
    """M scaled down, if needed, to spectral norm at most ``max_norm``: M * min(1, max_norm / ||M||_2).

    Unchanged (and its gradient the identity) while ||M||_2 <= max_norm; beyond, a radial
    projection onto the ball, so the direction of M stays learnable.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be a positive number; got {max_norm!r}")
    norm = spectral_norm(M)
    return M * torch.clamp(max_norm / norm.clamp_min(torch.finfo(M.dtype).tiny), max=1.0)


def contraction_shift(A: torch.Tensor, W: torch.Tensor, margin: float) -> torch.Tensor:
    """s = max(0, lambda_max((A + A^T) / 2) + ||W||_2 + margin), a 0-d tensor.

    A - s I satisfies lambda_max(((A - s I) + (A - s I)^T) / 2) + ||W||_2 = lambda_max(A_sym) - s +
    ||W||_2 <= -margin: the Lipschitz RNN's contraction condition
    (:func:`neuralode_rnn.analysis.stability.lipschitz_stability_condition`) with rate at least
    ``margin``, for every A and W.  s = 0 when the condition already holds with that margin.
    lambda_max and ||W||_2 are exact (eigvalsh, SVD) and differentiable.
    """
    if not margin > 0:
        raise ValueError(f"margin must be a positive number (the guaranteed contraction rate); got {margin!r}")
    lam = torch.linalg.eigvalsh((A + A.transpose(-1, -2)) / 2)[..., -1]
    return torch.relu(lam + spectral_norm(W) + margin)


def gaussian_matrix(n: int, std: float, generator: torch.Generator | None = None,
                    dtype: torch.dtype | None = None) -> torch.Tensor:
    """(n, n) with entries drawn from N(0, std^2)."""
    return torch.randn(n, n, generator=generator, dtype=dtype) * std


def random_unitary(n: int, dtype: torch.dtype = torch.complex64, generator: torch.Generator | None = None) -> torch.Tensor:
    """A Haar-random unitary (n, n): QR of a complex Gaussian matrix with the phases of R's diagonal
    moved into Q (Mezzadri, 2007), so the distribution is uniform on U(n)."""
    real = torch.float64
    Z = torch.complex(torch.randn(n, n, generator=generator, dtype=real),
                      torch.randn(n, n, generator=generator, dtype=real)) / 2 ** 0.5
    Q, R = torch.linalg.qr(Z)
    d = torch.diagonal(R)
    Q = Q * (d / d.abs()).unsqueeze(0)
    return Q.to(dtype)


def mark_unitary(p: torch.nn.Parameter) -> torch.nn.Parameter:
    """Register a square complex parameter as living on the unitary group, so that
    :class:`neuralode_rnn.optim` steps it multiplicatively and keeps it unitary."""
    if p.dim() != 2 or p.shape[0] != p.shape[1]:
        raise ValueError(f"a unitary parameter must be square (N, N); got shape {tuple(p.shape)}")
    p._unitary = True
    return p


def is_unitary_parameter(p: torch.Tensor) -> bool:
    return bool(getattr(p, "_unitary", False))


def unmark_unitary(p: torch.Tensor) -> torch.Tensor:
    """Undo :func:`mark_unitary` (a parameter that became unconstrained, e.g. under a parametrization)."""
    if hasattr(p, "_unitary"):
        del p._unitary
    return p


def unitarity_error(W: torch.Tensor) -> float:
    """max |W^H W - I| entry-wise."""
    eye = torch.eye(W.shape[-1], dtype=W.dtype, device=W.device)
    return float((W.conj().transpose(-1, -2) @ W - eye).abs().max())


COMPLEX_OF = {torch.float16: torch.complex32, torch.float32: torch.complex64, torch.float64: torch.complex128}
"""The complex dtype whose real and imaginary parts have the given real dtype."""


def keep_complex(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Wrap a tensor conversion of ``nn.Module._apply`` so complex tensors keep their imaginary part.

    ``fn`` is what ``Module.to`` / ``.double()`` / ``.float()`` apply to every parameter and
    buffer.  For a complex tensor the wrapper asks ``fn`` what it would make of a real scalar of
    the tensor's part dtype (a probe: device and dtype only, no data) and, when that is a real
    floating dtype, converts the tensor to its complex twin on that device: ``to(torch.float64)``
    gives complex128, ``.float()`` complex64.  Requests for a complex dtype, and real tensors, go
    to ``fn`` unchanged.  ``fields.base.Field`` (where every complex parameter lives: the unitary
    RNN's) overrides ``_apply`` with it, the extension point ``nn.Module`` offers for this (as
    ``nn.RNNBase`` does), so a bare field and every model holding one keep their complex parameters.
    """

    def convert(t: torch.Tensor) -> torch.Tensor:
        if t.is_complex():
            probe = fn(torch.zeros((), dtype=t.real.dtype, device=t.device))
            if probe.is_floating_point():
                if probe.dtype not in COMPLEX_OF:
                    raise TypeError(f"a complex parameter cannot be cast to {probe.dtype}: there is no complex "
                                    f"dtype with {probe.dtype} parts; use one of "
                                    f"{', '.join(str(d) for d in COMPLEX_OF)}")
                return t.to(device=probe.device, dtype=COMPLEX_OF[probe.dtype])
        return fn(t)

    return convert
