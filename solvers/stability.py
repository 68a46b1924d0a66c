"""Linear stability of explicit Runge-Kutta methods: R(z) and the largest stable step.

Applied to the test equation y' = lambda y, one step of size h of a Runge-Kutta method with
tableau (A, b) multiplies y by the stability function

    R(z) = 1 + z b^T (I - z A)^{-1} 1,      z = h lambda.

For an explicit method A is strictly lower triangular, hence nilpotent (A^s = 0), so the
Neumann series is finite and R is exactly the polynomial

    R(z) = 1 + sum_{k=0}^{s-1} (b^T A^k 1) z^{k+1}.

A linear system y' = M y with eigenvalues lambda_j is stepped stably (no growth of any mode)
iff |R(h lambda_j)| <= 1 for every j.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .methods import METHODS
from .tableaux import TABLEAUX, Tableau, tableau

__all__ = ["StabilityFunction", "max_stable_step", "stability_function"]

# Coefficients of |R(s e^{i theta})|^2 - 1 smaller than this, relative to the sum of the magnitudes
# of the products they add up, are rounding noise and set to zero: e.g. eigenvalues of a skew-symmetric matrix come back from an
# eigensolver with real parts ~1e-16 |lambda|, which must count as purely imaginary.
_REL_ZERO = 1e-13
_SCAN_POINTS = 2048


class StabilityFunction:
    """R(z) of an explicit tableau, callable on Python numbers, numpy arrays or torch tensors.

    Attributes:
        method: the tableau's name.
        coefficients: (s + 1,) float64 array, R(z) = sum_k coefficients[k] z^k.
    """

    def __init__(self, tab: Tableau) -> None:
        s = tab.stages
        a = np.zeros((s, s))
        for i, row in enumerate(tab.a):
            a[i, :i] = row
        b = np.asarray(tab.b)
        coeffs = [1.0]
        v = np.ones(s)
        for _ in range(s):
            coeffs.append(float(b @ v))
            v = a @ v
        # an FSAL pair's last stage has b_s = 0: its powers contribute exact zeros; drop them so the
        # polynomial's degree is its true one (the root bounds divide by the leading coefficient)
        while len(coeffs) > 1 and coeffs[-1] == 0.0:
            coeffs.pop()
        self.method = tab.name
        self.coefficients = np.asarray(coeffs)

    def __call__(self, z: Any) -> Any:
        """Evaluate R at ``z`` (any shape, real or complex) by Horner's rule; same type back.

        Lists and tuples are converted to numpy arrays.
        """
        if isinstance(z, (list, tuple)):
            z = np.asarray(z)
        acc: Any = float(self.coefficients[-1])
        for c in self.coefficients[-2::-1]:
            acc = acc * z + float(c)
        return acc

    def __repr__(self) -> str:
        return f"StabilityFunction({self.method!r}, coefficients={self.coefficients.tolist()})"


def stability_function(method: str | Tableau) -> StabilityFunction:
    """Return R(z) of an explicit tableau (a name in ``solvers.TABLEAUX`` or a Tableau).

    Embedded pairs have one too: that of the solution they propagate (``b``), e.g. dopri5's is the
    degree-6 polynomial whose first five coefficients are 1/k!.

    Raises:
        ValueError: for the multistep / scipy methods run by torchdiffeq (no tableau) and unknown names.
    """
    if isinstance(method, str) and method not in TABLEAUX and method in METHODS:
        raise ValueError(
            f"stability_function needs an explicit Runge-Kutta tableau; method {method!r} is run by torchdiffeq "
            f"and has none; expected one of {', '.join(sorted(TABLEAUX))} or a Tableau"
        )
    return StabilityFunction(tableau(method))


def _ray_limit(coeffs: np.ndarray, direction: complex) -> float:
    """Largest s >= 0 with |R(x direction)| <= 1 for all x in [0, s], |direction| = 1.

    P(x) = |R(x d)|^2 - 1 is a real polynomial in x with P(0) = 0; its coefficients are exact
    products of R's.  Near 0 its sign is that of its lowest non-zero coefficient; beyond a
    Cauchy bound on its roots it is positive.  Candidate points (a uniform scan plus the
    midpoints between its positive real roots, so narrow unstable gaps between roots are not
    missed) are checked in increasing order, and the first unstable one is bracketed with the
    last stable one and refined by bisection.
    """
    r = coeffs * direction ** np.arange(len(coeffs))
    p = np.convolve(r, np.conj(r)).real
    p[0] -= 1.0
    # a coefficient is rounding noise when it is tiny relative to the terms it sums (cancellation), not
    # relative to the largest coefficient: dopri8's genuine z^12 coefficient is 2e-10
    sizes = np.convolve(np.abs(r), np.abs(r))
    p[np.abs(p) <= _REL_ZERO * sizes] = 0.0
    nonzero = np.flatnonzero(p)
    if nonzero.size == 0:
        return math.inf
    q = np.trim_zeros(p[nonzero[0]:], "b")  # P(x) = x^low Q(x), Q(0) != 0, leading coefficient != 0
    if q[0] > 0:
        return 0.0
    if q.size == 1:
        return math.inf  # P(x) = q0 x^low <= 0 for all x
    desc = q[::-1]
    bound = 1.0 + float(np.max(np.abs(q[:-1]) / abs(q[-1])))
    roots = np.roots(desc)
    real = np.sort(roots.real[(np.abs(roots.imag) <= 1e-7 * (1.0 + np.abs(roots.real))) & (roots.real > 0)])
    edges = np.concatenate([[0.0], real, [bound]])
    candidates = np.unique(np.concatenate([
        np.linspace(0.0, bound, _SCAN_POINTS + 1)[1:], 0.5 * (edges[1:] + edges[:-1]), [2.0 * bound],
    ]))
    with np.errstate(over="ignore", invalid="ignore"):  # far candidates overflow to +-inf: the sign is enough
        values = np.polyval(desc, candidates)
        return _first_unstable(desc, candidates, values)


def _first_unstable(desc: np.ndarray, candidates: np.ndarray, values: np.ndarray) -> float:
    """Bisection between the last stable and the first unstable candidate."""
    unstable = np.flatnonzero(values > 0)
    if unstable.size == 0:
        return math.inf
    k = int(unstable[0])
    lo = float(candidates[k - 1]) if k > 0 else 0.0
    hi = float(candidates[k])
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if np.polyval(desc, mid) > 0:
            hi = mid
        else:
            lo = mid
    return lo


def max_stable_step(method: str | Tableau, eigenvalues: Any) -> float:
    """Largest h > 0 such that |R(h lambda)| <= 1 on all of (0, h], for every eigenvalue.

    Args:
        method: an explicit tableau (name or Tableau).
        eigenvalues: scalar or 1-D array-like (list, numpy array, torch tensor) of real or
            complex eigenvalues of the linearised system.  To use a matrix M, pass
            ``numpy.linalg.eigvals(M)``.

    Returns:
        The step bound as a float.  ``0.0`` when no h > 0 is stable: an eigenvalue with
        Re(lambda) > 0 (the exact solution grows; every explicit method amplifies it), or a
        purely imaginary one for a method whose region only touches the imaginary axis at 0
        (Euler, and every 2-stage order-2 method: |R(iy)|^2 = 1 + y^4/4).  ``inf`` when no
        eigenvalue constrains h (none given, or all zero).  Stability is required on the
        whole segment (0, h] of each ray, not only at h, because the usable steps are those
        below the bound.  Real parts smaller than ~1e-13 |lambda| count as zero (rounding of
        eigensolvers).

    Example:
        ``max_stable_step("euler", [-1, -10]) == 0.2``;  for "rk4" it is 2.785293563/10.
    """
    coeffs = stability_function(method).coefficients
    if hasattr(eigenvalues, "detach"):
        eigenvalues = eigenvalues.detach().cpu().numpy()
    lam = np.asarray(eigenvalues, dtype=complex)
    if lam.ndim > 1:
        raise ValueError(
            f"eigenvalues must be a scalar or 1-D; got shape {lam.shape} (for a matrix M pass "
            f"numpy.linalg.eigvals(M))"
        )
    if not np.all(np.isfinite(lam)):
        raise ValueError("eigenvalues must be finite")
    best = math.inf
    for value in lam.reshape(-1):
        size = abs(value)
        if size == 0.0:
            continue
        best = min(best, _ray_limit(coeffs, value / size) / size)
        if best == 0.0:
            break
    return best
