"""Tests for solvers.stability: R(z) and max_stable_step."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import solvers
from solvers.stepper import Plan, rk_step
from solvers.terms import FuncTerm

ORDER_EQUALS_STAGES = ["euler", "midpoint", "heun", "ralston", "rk4", "rk38"]


def _taylor(z, p):
    return sum(z ** j / math.factorial(j) for j in range(p + 1))


@pytest.mark.parametrize("name", ORDER_EQUALS_STAGES)
def test_stability_function_is_taylor_polynomial(name):
    # A p-stage explicit method of order p has R(z) = sum_{j<=p} z^j / j!.
    rng = np.random.default_rng(0)
    z = rng.normal(size=20) * 2 + 1j * rng.normal(size=20) * 2
    r = solvers.stability_function(name)
    p = solvers.TABLEAUX[name].order
    np.testing.assert_allclose(r(z), _taylor(z, p), rtol=1e-13, atol=1e-13)
    zt = torch.as_tensor(z)
    torch.testing.assert_close(r(zt), torch.as_tensor(_taylor(z, p)), rtol=1e-13, atol=1e-13)
    assert r(0.5j) == pytest.approx(_taylor(0.5j, p), rel=1e-14)


@pytest.mark.parametrize("name", sorted(solvers.TABLEAUX))
def test_stability_function_equals_resolvent_formula(name):
    # R(z) = 1 + z b^T (I - z A)^{-1} 1, solved directly.
    tab = solvers.TABLEAUX[name]
    s = tab.stages
    a = np.zeros((s, s))
    for i, row in enumerate(tab.a):
        a[i, :i] = row
    b = np.asarray(tab.b)
    r = solvers.stability_function(name)
    for z in [0.3 - 2.1j, -2.7 + 0.4j, 1.5j, -0.1]:
        direct = 1 + z * b @ np.linalg.solve(np.eye(s) - z * a, np.ones(s))
        assert abs(r(z) - direct) < 1e-13


@pytest.mark.parametrize("name", sorted(solvers.TABLEAUX))
def test_stability_function_matches_one_step_on_test_equation(name):
    # One step of size h of y' = lambda y multiplies y by R(h lambda) (an embedded pair: its propagated solution).
    lam = torch.tensor(-1.3 + 2.0j, dtype=torch.complex128)
    h = 0.4
    term = FuncTerm(lambda t, y: lam * y, torch.float64, torch.get_default_device())
    y1 = rk_step(term, Plan.of(solvers.TABLEAUX[name]), 0.0, h, torch.ones(1, dtype=torch.complex128)).y1[0]
    assert abs(complex(y1) - solvers.stability_function(name)(complex(lam) * h)) < 1e-14
    if not solvers.TABLEAUX[name].adaptive:  # and odeint on the grid [0, h] takes exactly that step
        y = solvers.odeint(lambda t, y: lam * y, torch.ones(1, dtype=torch.complex128),
                           torch.tensor([0.0, h], dtype=torch.float64), method=name)[-1, 0]
        assert complex(y) == complex(y1)


def _first_unstable_on_negative_axis(name):
    """Independent: the first x of a fine grid where |R(-x)| exceeds 1."""
    x = np.linspace(0, 8, 800_001)
    v = np.abs(solvers.stability_function(name)(-x))
    return x[int(np.argmax(v > 1 + 1e-12))]


@pytest.mark.parametrize("name, bound", [("dopri5", 3.3066), ("tsit5", 3.5068), ("bosh3", 2.5127), ("dopri8", 5.1666),
                                         ("adaptive_heun", 2.0), ("fehlberg2", 2.0078)])
def test_embedded_pairs_real_axis_bound(name, bound):
    # dopri5's -3.3066 is Hairer-Wanner's figure for DOPRI5; the rest are checked on a fine grid.
    assert solvers.max_stable_step(name, [-1.0]) == pytest.approx(bound, abs=1e-4)
    assert abs(_first_unstable_on_negative_axis(name) - solvers.max_stable_step(name, [-1.0])) < 2e-5
    r = solvers.stability_function(name)
    p = solvers.TABLEAUX[name].order
    np.testing.assert_allclose(r.coefficients[:p + 1], [1 / math.factorial(k) for k in range(p + 1)], rtol=1e-12)


def _real_axis_bound(p):
    """Independent: bisection for the x in (0, 4) where |sum_{j<=p} (-x)^j/j!| crosses 1."""
    lo, hi = 1.0, 4.0  # stable at 1, unstable at 4 for p = 1..4

    def g(x):
        return abs(sum((-x) ** j / math.factorial(j) for j in range(p + 1))) - 1

    assert g(lo) < 0 < g(hi)
    for _ in range(200):
        mid = (lo + hi) / 2
        if g(mid) > 0:
            hi = mid
        else:
            lo = mid
    return lo


def test_max_stable_step_real_axis():
    eig = np.linalg.eigvals(np.diag([-1.0, -10.0]))
    assert solvers.max_stable_step("euler", eig) == pytest.approx(0.2, rel=1e-12)
    x4 = _real_axis_bound(4)
    assert x4 == pytest.approx(2.785293563405282, rel=1e-12)
    assert solvers.max_stable_step("rk4", eig) == pytest.approx(x4 / 10, rel=1e-12)
    assert solvers.max_stable_step("rk38", torch.tensor([-1.0, -10.0])) == pytest.approx(x4 / 10, rel=1e-12)
    assert solvers.max_stable_step("heun", [-10.0]) == pytest.approx(_real_axis_bound(2) / 10, rel=1e-12)


def test_max_stable_step_imaginary_and_unstable_eigenvalues():
    # Euler's disc |1 + z| <= 1 touches the imaginary axis only at 0; so does every 2-stage
    # order-2 method (|R(iy)|^2 = 1 + y^4/4).  RK4 holds [-2 sqrt 2 i, 2 sqrt 2 i].
    skew = np.linalg.eigvals(np.array([[0.0, 2.0], [-2.0, 0.0]]))  # +-2i, with rounding
    assert solvers.max_stable_step("euler", [1j]) == 0.0
    assert solvers.max_stable_step("euler", skew) == 0.0
    assert solvers.max_stable_step("midpoint", [3j]) == 0.0
    assert solvers.max_stable_step("rk4", skew) == pytest.approx(math.sqrt(2), rel=1e-10)
    assert solvers.max_stable_step("rk4", [0.1, -1.0]) == 0.0  # Re > 0: the solution itself grows
    assert solvers.max_stable_step("euler", []) == math.inf
    assert solvers.max_stable_step("euler", [0.0]) == math.inf


@pytest.mark.parametrize("name", sorted(solvers.TABLEAUX))
def test_max_stable_step_is_on_the_boundary(name):
    lam = np.array([-1.0 + 3.0j, -0.5 - 1.0j, -4.0])
    h = solvers.max_stable_step(name, lam)
    r = solvers.stability_function(name)
    amp = np.abs(r(h * lam))
    assert amp.max() == pytest.approx(1.0, abs=1e-9)
    assert np.all(np.abs(r(np.linspace(0, h, 400)[:, None] * lam)) <= 1 + 1e-9)
    assert np.abs(r(h * 1.001 * lam)).max() > 1


def test_max_stable_step_predicts_growth_of_euler():
    lam = torch.tensor([-1.0, -10.0], dtype=torch.float64)
    h = solvers.max_stable_step("euler", lam.cpu().numpy())
    t = torch.arange(0, 200, dtype=torch.float64)
    for factor, grows in ((0.95, False), (1.05, True)):
        sol = solvers.odeint(lambda s, y: lam * y, torch.ones(2, dtype=torch.float64), t * h * factor,
                             method="euler")
        assert (float(sol[-1].abs().max()) > 1) == grows


def test_stability_errors():
    with pytest.raises(ValueError, match=r"method 'explicit_adams' is run by torchdiffeq and has none"):
        solvers.stability_function("explicit_adams")
    with pytest.raises(ValueError, match=r"unknown method 'nope'; expected one of"):
        solvers.stability_function("nope")
    with pytest.raises(ValueError, match=r"eigenvalues must be a scalar or 1-D; got shape \(2, 2\)"):
        solvers.max_stable_step("euler", np.eye(2))
