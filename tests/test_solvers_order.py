"""Convergence orders of every tableau: halve the step, fit the slope, against exact solutions.

A wrong coefficient in a tableau drops its order (a consistent method with one wrong weight is first
order), so slopes within 0.3 of the claimed order catch it.  Also: the error estimate of every
embedded pair, its dense output, and tsit5 against an exact solution.
"""

from __future__ import annotations

import pytest
import torch

import solvers
from neuralode_rnn.analysis.solver_comparison import observed_order
from solvers.engine import Accepted, solve_fixed
from solvers.stepper import Plan, rk_step
from solvers.terms import FuncTerm

DT = torch.float64
NAMES = sorted(solvers.TABLEAUX)
PAIRS = sorted(n for n, t in solvers.TABLEAUX.items() if t.adaptive)


def field(t, y):
    """y' = -2 t y^2, y(0) = 1: exact 1 / (1 + t^2); nonlinear in y and t, no accidental cancellation of
    the error constants on [0, 3] (the local errors are maxima over three starting points)."""
    return -2 * t * y * y


def exact(t: float) -> float:
    return 1.0 / (1.0 + t * t)


def _term() -> FuncTerm:
    """The test equation's term, its times on the test's device."""
    return FuncTerm(field, DT, torch.get_default_device())


def _steps(order: int) -> list[float]:
    # step sizes whose errors stay above rounding (1e-13) and past the pre-asymptotic regime
    base = {1: 0.05, 2: 0.05, 3: 0.1, 4: 0.1, 5: 0.1, 8: 0.5}[order]
    return [base / 2 ** k for k in range(4)]


STARTS = (0.2, 0.9, 1.7)


def _one_step(plan, t0, h):
    return rk_step(_term(), plan, t0, t0 + h, torch.tensor([exact(t0)], dtype=DT))


@pytest.mark.parametrize("name", NAMES)
def test_global_order_of_every_tableau(name):
    tab = solvers.TABLEAUX[name]
    plan = Plan.of(tab)
    hs = _steps(tab.order)
    end = 3.0
    errors = []
    for h in hs:
        n = round(end / h)
        grid = [k * end / n for k in range(n + 1)]
        out = solve_fixed(_term(), plan, torch.tensor([1.0], dtype=DT), grid, grid, perturb=False)
        errors.append(max(abs(float(y) - exact(s)) for y, s in zip(out, grid)))
    order = observed_order(errors, hs)
    # dopri8's errors reach 1e-14: its slope still carries pre-asymptotic 0.5; a wrong weight costs several orders
    assert abs(order - tab.order) < (0.6 if tab.order == 8 else 0.35), (errors, order)


@pytest.mark.parametrize("name", NAMES)
def test_local_order_of_every_tableau(name):
    # one step from the exact state: error C h^(p+1)
    tab = solvers.TABLEAUX[name]
    plan = Plan.of(tab)
    hs = _steps(tab.order)
    errors = [max(abs(float(_one_step(plan, t0, h).y1) - exact(t0 + h)) for t0 in STARTS) for h in hs]
    order = observed_order(errors, hs)
    # dopri8's smallest local errors are within 100 ulps of rounding: a little more slack
    assert abs(order - (tab.order + 1)) < (0.6 if tab.order == 8 else 0.35), (errors, order)


# the embedded (lower-order) solution's order q: the estimate is O(h^(q+1))
EMBEDDED = {"adaptive_heun": 1, "fehlberg2": 1, "bosh3": 2, "dopri5": 4, "tsit5": 4, "dopri8": 7}
# the quartic dense output's local error exponent (error ~ h^k inside a step from an exact state): limited
# by its midpoint weights (adaptive_heun: an Euler half step;
# bosh3 and fehlberg2: torchdiffeq's weights (0, 1/2, 0, ...), f at the half step's end) and, for
# dopri8, by the quartic itself
DENSE = {"adaptive_heun": 2, "fehlberg2": 2, "bosh3": 2, "dopri5": 5, "tsit5": 5, "dopri8": 5}


@pytest.mark.parametrize("name", PAIRS)
def test_error_estimate_order_of_every_pair(name):
    tab = solvers.TABLEAUX[name]
    plan = Plan.of(tab)
    hs = _steps(tab.order)
    # the estimate is y1 minus the embedded solution, whose local error is O(h^(q+1))
    errs = [max(abs(float(_one_step(plan, t0, h).err)) for t0 in STARTS) for h in hs]
    q = EMBEDDED[name]
    assert abs(observed_order(errs, hs) - (q + 1)) < (0.6 if q == 7 else 0.35), errs


@pytest.mark.parametrize("name", PAIRS)
def test_dense_output_order(name):
    tab = solvers.TABLEAUX[name]
    plan = Plan.of(tab)
    hs = _steps(tab.order)
    t0 = STARTS[1]
    y0 = torch.tensor([exact(t0)], dtype=DT)
    errors = []
    for h in hs:
        step = _one_step(plan, t0, h)
        acc = Accepted(t0=t0, t1=t0 + h, y0=y0, y1=step.y1, f0=step.ks[0], step=step, plan=plan, term=_term(),
                       landed_on_jump=False)
        assert torch.equal(acc.at(t0), y0) and torch.equal(acc.at(t0 + h), step.y1)
        errors.append(max(abs(float(acc.at(t0 + th * h)) - exact(t0 + th * h)) for th in (0.25, 0.5, 0.7)))
    order = observed_order(errors, hs)
    assert abs(order - DENSE[name]) < 0.4, (errors, order)


@pytest.mark.parametrize("name", PAIRS)
def test_dense_output_keeps_adaptive_outputs_accurate(name):
    # outputs between steps (torchdiffeq's interpolation): near the tolerance for dopri5/tsit5; the pairs whose
    # midpoint weights are poor (bosh3, fehlberg2, adaptive_heun) and dopri8 (a quartic through steps of
    # an 8th-order method) much less accurate than their steps -- as in torchdiffeq (docs/ODEINT.md)
    t = torch.linspace(0, 3, 31, dtype=DT)
    rtol = 1e-8 if solvers.TABLEAUX[name].order > 2 else 1e-6  # second-order pairs: fewer steps
    sol = solvers.odeint(field, torch.tensor([1.0], dtype=DT), t, method=name, rtol=rtol, atol=rtol * 1e-2)
    err = max(abs(float(y) - exact(float(s))) for s, y in zip(t, sol))
    # measured: dopri5 1.3e-8, tsit5 1.2e-8, dopri8 1.4e-6, bosh3 1.4e-5; at rtol 1e-6 fehlberg2 5.3e-5,
    # adaptive_heun 6.0e-7
    bound = {"dopri5": 1e-7, "tsit5": 1e-7, "dopri8": 1e-5, "adaptive_heun": 1e-5}.get(name, 1e-4)
    assert err < bound, err


def test_tsit5_against_a_reference():
    # Lotka-Volterra, reference by dopri8 at rtol 1e-13 with steps landing on the outputs; tsit5 at rtol 1e-8
    # within 1e-6 of it, about as many evaluations as dopri5 (measured: 1472 vs 1406)
    def lv(t, y):
        return torch.stack([1.5 * y[0] - y[0] * y[1], y[0] * y[1] - 3.0 * y[1]])

    y0 = torch.tensor([1.0, 1.0], dtype=DT)
    t = torch.linspace(0, 10, 11, dtype=DT)
    ref = solvers.odeint(lv, y0, t, method="dopri8", rtol=1e-13, atol=1e-13, options={"step_t": t})
    counts = {}
    for name in ("tsit5", "dopri5"):
        calls = []
        sol = solvers.odeint(lambda s, y, calls=calls: calls.append(s) or lv(s, y), y0, t, method=name, rtol=1e-8, atol=1e-10)
        assert float((sol - ref).abs().max()) < 1e-6, name
        counts[name] = len(calls)
    assert counts["tsit5"] < 1.3 * counts["dopri5"], counts
    # and against the exact solution of y' = -2 t y^2 at rtol 1e-10
    sol = solvers.odeint(field, torch.tensor([1.0], dtype=DT), t, method="tsit5", rtol=1e-10, atol=1e-12)
    assert max(abs(float(y) - exact(float(s))) for s, y in zip(t, sol)) < 1e-9
