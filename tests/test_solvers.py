"""Tests for solvers.odeint on the engine: tableaux, grids and jumps, gradients, registry and helpers.

Agreement with torchdiffeq in detail: test_odeint_compat.py; orders: test_solvers_order.py; limits:
test_solvers_limits.py.
"""

from __future__ import annotations

import pytest
import torch
import torchdiffeq

import solvers
from neuralode_rnn.analysis.solver_comparison import observed_order
from solvers.gradients import GRADIENT_MODES
from solvers.grids import knot_grid
from solvers.methods import MethodInfo
from solvers.problem import forward
from solvers.terms import FuncTerm

DT = torch.float64
TABLEAU_NAMES = sorted(solvers.TABLEAUX)
FIXED_NAMES = sorted(n for n, t in solvers.TABLEAUX.items() if not t.adaptive)
PAIR_NAMES = sorted(n for n, t in solvers.TABLEAUX.items() if t.adaptive)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# --------------------------------------------------------------------------- shared problems


def forced_decay(t, y):
    """y' = -y + sin(t): smooth, time-dependent, with an exact solution."""
    return -y + torch.sin(t)


def forced_decay_exact(t, y0):
    # y(t) = (y0 + 1/2) e^{-t} + (sin t - cos t) / 2
    t = t.reshape(-1, *([1] * y0.ndim))
    return (y0 + 0.5) * torch.exp(-t) + 0.5 * (torch.sin(t) - torch.cos(t))


class Hold:
    """Piecewise-constant input: values[k] between knots[k-1] and knots[k], held on
    (knots[k-1], knots[k]] (right=True, the DESIGN's "hold") or on [knots[k-1], knots[k])
    (right=False); values[0] before the first knot and values[-1] after the last."""

    def __init__(self, knots, values, right=True):
        self.knots, self.values, self.right = knots, values, right

    def __call__(self, t):
        return self.values[torch.searchsorted(self.knots, t.reshape(1), right=not self.right)[0]]


def _knots():
    gaps = torch.tensor([0.3, 0.17, 0.5, 0.23, 0.41, 0.29], dtype=DT)
    return torch.cat([torch.zeros(1, dtype=DT), torch.cumsum(gaps, 0)])


class SmallField(torch.nn.Module):
    def __init__(self, n=3):
        super().__init__()
        self.lin = torch.nn.Linear(n, n).double()
        self.w = torch.nn.Parameter(torch.randn(n, dtype=DT) * 0.3)

    def forward(self, t, y):
        return torch.tanh(self.lin(y)) + self.w * torch.cos(t)


# --------------------------------------------------------------------------- agreement with torchdiffeq


# torchdiffeq's "rk4" is rk_common.rk4_alt_step_func: k2 at 1/3, k3 = f(t0 + 2/3 dt, y0 + dt(k2 - k1/3)),
# k4 = f(t1, y0 + dt(k1 - k2 + k3)), weights (1, 3, 3, 1)/8 -- Kutta's 3/8 rule, our "rk4" (alias "rk38").
# torchdiffeq's "heun2" is fixed_grid.Heun2: c2 = 1, a21 = 1, b = (1/2, 1/2), our "heun2" (alias "heun").
@pytest.mark.parametrize("ours, theirs", [("euler", "euler"), ("midpoint", "midpoint"), ("heun", "heun2"),
                                           ("heun2", "heun2"), ("rk38", "rk4"), ("rk4", "rk4"), ("heun3", "heun3")])
def test_tableau_matches_torchdiffeq(ours, theirs):
    t = torch.cumsum(torch.rand(40, dtype=DT) * 0.1 + 0.01, 0)
    y0 = torch.randn(2, 3, dtype=DT)
    mine = solvers.odeint(forced_decay, y0, t, method=ours)
    ref = torchdiffeq.odeint(forced_decay, y0, t, method=theirs)
    assert mine.shape == (40, 2, 3)
    torch.testing.assert_close(mine, ref, rtol=0, atol=1e-12)


def _by_hand_step(name, f, t0, t1, y):
    dt = t1 - t0
    if name == "ralston":
        k1 = f(t0, y)
        k2 = f(t0 + 2 * dt / 3, y + 2 * dt / 3 * k1)
        return y + dt * (k1 / 4 + 3 * k2 / 4)
    if name == "rk4_classic":
        k1 = f(t0, y)
        k2 = f(t0 + dt / 2, y + dt / 2 * k1)
        k3 = f(t0 + dt / 2, y + dt / 2 * k2)
        k4 = f(t1, y + dt * k3)
        return y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    if name == "rk4":  # Kutta's 3/8 rule
        k1 = f(t0, y)
        k2 = f(t0 + dt / 3, y + dt / 3 * k1)
        k3 = f(t0 + 2 * dt / 3, y + dt * (k2 - k1 / 3))
        k4 = f(t1, y + dt * (k1 - k2 + k3))
        return y + dt / 8 * (k1 + 3 * k2 + 3 * k3 + k4)
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["ralston", "rk4_classic", "rk4"])
def test_tableau_matches_step_written_by_hand(name):
    t = torch.cumsum(torch.rand(30, dtype=DT) * 0.1 + 0.01, 0)
    y0 = torch.randn(4, dtype=DT)
    ys = [y0]
    for k in range(len(t) - 1):
        ys.append(_by_hand_step(name, forced_decay, t[k], t[k + 1], ys[-1]))
    torch.testing.assert_close(solvers.odeint(forced_decay, y0, t, method=name), torch.stack(ys),
                               rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- convergence order


@pytest.mark.parametrize("name", FIXED_NAMES)
def test_convergence_order(name):
    y0 = torch.tensor([1.0, -0.5], dtype=DT)
    t = torch.tensor([0.0, 1.0, 2.0], dtype=DT)
    exact = forced_decay_exact(t, y0)
    hs = [0.1, 0.05, 0.025, 0.0125]
    errors = [float((solvers.odeint(forced_decay, y0, t, method=name, step_size=h) - exact).abs().max())
              for h in hs]
    order = observed_order(errors, hs)
    assert abs(order - solvers.TABLEAUX[name].order) < 0.15, (errors, order)


def test_knot_aligned_grid_keeps_order_on_held_input():
    # y' = -y + u(t), u held on (k_{i-1}, k_i]: piecewise smooth.  With jump_t the grid never steps
    # over a knot, so rk4 keeps order 4 even though the knots are not multiples of step_size.
    knots = _knots()
    u = Hold(knots, torch.tensor([0.0, 1.0, -2.0, 0.5, 3.0, -1.0, 2.0, 0.0], dtype=DT))
    y = torch.tensor(0.7, dtype=DT)
    for k in range(1, len(knots)):  # exact: relax towards u_k on each piece
        y = u.values[k] + (y - u.values[k]) * torch.exp(-(knots[k] - knots[k - 1]))
    t = knots[[0, -1]]
    hs = [0.1, 0.05, 0.025]
    errors = [float((solvers.odeint(lambda s, z: -z + u(s), torch.tensor(0.7, dtype=DT), t, method="rk4",
                                    step_size=h, jump_t=knots)[-1] - y).abs()) for h in hs]
    # Per-piece step counts ceil(gap / h) do not exactly double, so the fitted slope is only
    # near 4 (4.6 here); stepping over the knots would give slope ~1 and errors ~1e-3.
    assert observed_order(errors, hs) > 3.5 and errors[-1] < 1e-9, errors
    stepped_over = solvers.odeint(lambda s, z: -z + u(s), torch.tensor(0.7, dtype=DT), t, method="rk4",
                                  step_size=0.025)[-1]
    assert abs(float(stepped_over - y)) > 1e3 * errors[-1]


# --------------------------------------------------------------------------- jumps and stage times


@pytest.mark.parametrize("right", [True, False], ids=["held-on-(a,b]", "held-on-[a,b)"])
@pytest.mark.parametrize("name, step_size", [(n, h) for n in FIXED_NAMES for h in (None, 0.07)]
                         + [(n, None) for n in PAIR_NAMES])
def test_stages_read_their_own_piece(name, step_size, right):
    # y' = u(t): every consistent method integrates a constant exactly, so any stage that reads
    # a neighbouring piece (1e6 past the end, or a different value) shows up as an error.  The knots
    # are jump times: stages on a step's ends are evaluated one ulp inside it (the first one too).
    knots = _knots()
    values = torch.randn(len(knots) + 1, 2, dtype=DT)
    if right:
        values[0] = 1e6  # the piece before knots[0] must never be read
    else:
        values[-1] = 1e6  # the piece after the last knot must never be read
    u = Hold(knots, values, right=right)
    sol = solvers.odeint(lambda t, y: u(t), torch.zeros(2, dtype=DT), knots, method=name,
                         step_size=step_size, jump_t=knots)
    # In both conventions the piece between knots[k-1] and knots[k] holds values[k].
    gaps = knots[1:] - knots[:-1]
    exact = torch.cat([torch.zeros(1, 2, dtype=DT), torch.cumsum(gaps[:, None] * values[1:-1], 0)])
    torch.testing.assert_close(sol, exact, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", TABLEAU_NAMES)
def test_jump_t_puts_grid_points_on_knots(name):
    # fixed methods: grid points on the knots; adaptive ones: steps end on them (outputs between knots)
    knots = _knots()
    values = torch.randn(len(knots) + 1, dtype=DT)
    values[0] = 1e6
    u = Hold(knots, values)
    t = torch.tensor([0.0, 1.0, float(knots[-1])], dtype=DT)  # outputs between knots
    step = None if solvers.TABLEAUX[name].adaptive else 0.2
    sol = solvers.odeint(lambda s, y: u(s).expand_as(y), torch.zeros(1, dtype=DT), t, method=name,
                         step_size=step, jump_t=knots)
    def integral(x):
        lo = knots[:-1].clamp(max=x)
        hi = knots[1:].clamp(max=x)
        return float(((hi - lo) * values[1:-1]).sum())
    exact = torch.tensor([[integral(float(s))] for s in t], dtype=DT)
    torch.testing.assert_close(sol, exact, rtol=0, atol=1e-12)


def test_knot_grid_substeps_are_equal_and_bounded():
    t = torch.tensor([0.0, 0.3, 1.0], dtype=DT)
    grid, pos = knot_grid(t, torch.tensor([0.5, 0.3, 7.0, -1.0], dtype=DT), step_size=0.1)
    # 0.3 / 0.1 is 2.9999999999999996 in floating point: 3 steps, not 4
    assert pos == [0, 3, len(grid) - 1]
    assert torch.equal(grid[pos], t)
    assert bool((grid[1:] - grid[:-1]).max() <= 0.1 + 1e-15)
    assert bool((grid == 0.5).any())
    assert len(grid) == 1 + 3 + 2 + 5
    back, pos_back = knot_grid(t.flip(0), torch.tensor([0.5], dtype=DT), step_size=0.1)
    torch.testing.assert_close(back, grid.flip(0), rtol=0, atol=0)
    assert pos_back == [0, len(grid) - 1 - 3, len(grid) - 1]


def test_outputs_at_exact_times_decreasing_and_off_grid():
    y0 = torch.tensor([0.3], dtype=DT)
    t = torch.tensor([0.0, 0.25, 0.26, 1.3], dtype=DT)
    sol = solvers.odeint(forced_decay, y0, t, method="rk4", step_size=0.05)
    torch.testing.assert_close(sol, forced_decay_exact(t, y0), rtol=0, atol=1e-7)
    # backwards in time from y(1.3) recovers y(0)
    back = solvers.odeint(forced_decay, sol[-1], t.flip(0), method="rk4", step_size=0.05)
    torch.testing.assert_close(back, sol.flip(0), rtol=0, atol=1e-7)


# --------------------------------------------------------------------------- adaptive methods


def test_jump_t_helps_dopri5_on_discontinuous_input():
    knots = _knots()
    # values[0] (before the start, read only at t[0] by a solver that evaluates there) and values[-1]
    # (after the end, read only by a step overshooting t[-1]) must not influence the answer.
    u = Hold(knots, torch.tensor([50.0, 1.0, -2.0, 0.5, 3.0, -1.0, 2.0, -50.0], dtype=DT))
    exact = torch.tensor(0.7, dtype=DT)
    for k in range(1, len(knots)):
        exact = u.values[k] + (exact - u.values[k]) * torch.exp(-(knots[k] - knots[k - 1]))
    t = knots[[0, -1]]
    nfe = {}
    for label, jumps in (("without", None), ("with", knots)):
        calls = []
        sol = solvers.odeint(lambda s, z, calls=calls: calls.append(s) or -z + u(s), torch.tensor(0.7, dtype=DT), t,
                             method="dopri5", rtol=1e-8, atol=1e-10, jump_t=jumps)
        nfe[label] = len(calls)
        if jumps is not None:
            assert abs(float(sol[-1] - exact)) < 1e-8
    assert nfe["with"] < nfe["without"], nfe


def test_adjoint_matches_backprop_dopri5():
    field = SmallField()
    y0 = torch.randn(3, dtype=DT, requires_grad=True)
    t = torch.linspace(0, 1.5, 6, dtype=DT)
    grads = {}
    for mode in ("backprop", "adjoint"):
        sol = solvers.odeint(field, y0, t, method="dopri5", rtol=1e-10, atol=1e-12, gradient=mode)
        loss = (sol ** 2).sum()
        grads[mode] = torch.autograd.grad(loss, [y0, *field.parameters()])
    for a, b in zip(grads["backprop"], grads["adjoint"]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)


def test_adjoint_params_pass_through():
    w = torch.randn(3, dtype=DT, requires_grad=True)
    t = torch.linspace(0, 1, 4, dtype=DT)
    y0 = torch.ones(3, dtype=DT)
    out = {}
    for mode in ("backprop", "adjoint"):
        sol = solvers.odeint(lambda s, y: -w * y, y0, t, method="dopri5", rtol=1e-10, atol=1e-12,
                             gradient=mode, adjoint_params=(w,) if mode == "adjoint" else None)
        out[mode] = torch.autograd.grad(sol.sum(), w)[0]
    torch.testing.assert_close(out["adjoint"], out["backprop"], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", ["euler", "midpoint", "heun", "rk38"])
def test_adjoint_of_tableau_runs_the_same_grid(name):
    # Forward values under gradient="adjoint" (torchdiffeq with our grid and perturbed ends) equal
    # our loop's; gradients agree up to the discretisation of the adjoint ODE.
    field = SmallField()
    y0 = torch.randn(3, dtype=DT, requires_grad=True)
    t = torch.tensor([0.0, 0.4, 1.0], dtype=DT)
    jumps = torch.tensor([0.13, 0.77], dtype=DT)
    res = {}
    for mode in ("backprop", "adjoint"):
        sol = solvers.odeint(field, y0, t, method=name, step_size=0.01, jump_t=jumps, gradient=mode)
        res[mode] = (sol, torch.autograd.grad(sol.sum(), y0)[0])
    torch.testing.assert_close(res["adjoint"][0], res["backprop"][0], rtol=0, atol=1e-12)
    torch.testing.assert_close(res["adjoint"][1], res["backprop"][1], rtol=0, atol=2e-3)


# --------------------------------------------------------------------------- gradients, complex, dtypes


def test_gradcheck_through_fixed_loop():
    knots = torch.tensor([0.0, 0.23, 0.9], dtype=DT)
    u = Hold(knots, torch.tensor([0.0, 1.0, -1.0, 2.0], dtype=DT))

    def run(y0, w, t):
        return solvers.odeint(lambda s, y: torch.tanh(w * y) * torch.cos(s) + u(s), y0, t, method="rk4",
                              step_size=0.07, jump_t=knots[1:2])

    y0 = torch.randn(2, dtype=DT, requires_grad=True)
    w = torch.randn(2, dtype=DT, requires_grad=True)
    # output times away from the knots and gaps away from multiples of step_size, so finite
    # differences in t cross neither a jump nor a change of substep count
    t = torch.tensor([0.05, 0.4, 0.63], dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(run, (y0, w, t))


@pytest.mark.parametrize("name", TABLEAU_NAMES)
@pytest.mark.parametrize("dtype", [torch.complex128, torch.complex64])
def test_complex_state_equals_real_and_imaginary_parts(name, dtype):
    n = 3
    m = (torch.randn(n, n, dtype=DT) + 1j * torch.randn(n, n, dtype=DT)) * 0.5
    forcing = torch.randn(n, dtype=DT) + 1j * torch.randn(n, dtype=DT)
    y0 = torch.randn(n, dtype=DT) + 1j * torch.randn(n, dtype=DT)
    t = torch.linspace(0, 1, 5, dtype=DT)

    def f_complex(s, y):
        return m.to(y.dtype) @ y + forcing.to(y.dtype) * torch.sin(s)

    big = torch.cat([torch.cat([m.real, -m.imag], 1), torch.cat([m.imag, m.real], 1)], 0)
    g = torch.cat([forcing.real, forcing.imag])

    def f_real(s, z):
        return big @ z + g * torch.sin(s)

    adaptive = solvers.TABLEAUX[name].adaptive
    low = solvers.TABLEAUX[name].order <= 2
    kw = dict(step_size=0.1) if not adaptive else \
        dict(rtol=1e-6 if low else 1e-9, atol=1e-8 if low else 1e-11, options={"step_t": t})
    sol = solvers.odeint(f_complex, y0.to(dtype), t, method=name, **kw)
    ref = solvers.odeint(f_real, torch.cat([y0.real, y0.imag]), t, method=name, **kw)
    assert sol.dtype == dtype
    # fixed steps: the same arithmetic, equal to rounding; adaptive: the error norms differ (|z| per entry against
    # |re|, |im|), so the steps differ, and the two agree to the tolerance's reach
    tol = (1e-12 if dtype == torch.complex128 else 1e-5) if not adaptive else (1e-4 if low else 1e-6)
    if adaptive and dtype == torch.complex64:
        kw.update(rtol=1e-6, atol=1e-8)
        tol = 1e-4
    torch.testing.assert_close(sol.to(torch.complex128), torch.complex(ref[:, :n], ref[:, n:]),
                               rtol=0, atol=tol)


@pytest.mark.parametrize("t_dtype, y_dtype", [(torch.float32, torch.float32), (torch.float64, torch.float32),
                                              (torch.float32, torch.float64)])
def test_dtypes_follow_inputs(t_dtype, y_dtype):
    # as torchdiffeq: the output has y0's dtype, and func gets t in y's real dtype whatever t's dtype is
    y0 = torch.ones(2, dtype=y_dtype)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=t_dtype)
    seen = []

    def f(s, y):
        seen.append(s.dtype)
        return -y

    sol = solvers.odeint(f, y0, t, method="rk4", step_size=0.1, jump_t=[0.3])
    assert sol.dtype == y_dtype and set(seen) == {y_dtype}
    torch.testing.assert_close(sol[:, 0].double(), torch.exp(-t.double()), rtol=0, atol=1e-5)


def test_torchdiffeq_fixed_method_gets_step_size_and_knot_grid():
    y0 = torch.tensor([1.0], dtype=DT)
    t = torch.tensor([0.0, 1.0], dtype=DT)
    ref = torchdiffeq.odeint(forced_decay, y0, t, method="heun3", options={"step_size": 0.1})
    torch.testing.assert_close(solvers.odeint(forced_decay, y0, t, method="heun3", step_size=0.1), ref,
                               rtol=0, atol=1e-15)
    knots = _knots()
    u = Hold(knots, torch.randn(len(knots) + 1, dtype=DT))
    sol = solvers.odeint(lambda s, y: u(s).expand_as(y), torch.zeros(1, dtype=DT), knots[[0, -1]],
                         method="heun3", step_size=0.1, jump_t=knots, options={"perturb": True})
    assert abs(float(sol[-1, 0]) - float(((knots[1:] - knots[:-1]) * u.values[1:-1]).sum())) < 1e-12


# --------------------------------------------------------------------------- registry, hooks, helpers


def test_methods_cover_torchdiffeq_and_tableaux():
    from torchdiffeq._impl.odeint import SOLVERS

    from solvers.tableaux import REVERSIBLE_TABLEAUX

    assert set(SOLVERS) | set(solvers.TABLEAUX) | set(REVERSIBLE_TABLEAUX) == set(solvers.METHODS)
    assert solvers.METHODS["reversible_rk4"] == MethodInfo(4, 8, "fixed", "engine")  # two base steps per step
    assert solvers.METHODS["dopri5"].order == 5 and solvers.METHODS["dopri5"].kind == "adaptive"
    assert solvers.METHODS["rk38"] == MethodInfo(4, 4, "fixed", "engine")
    assert solvers.METHODS["tsit5"] == MethodInfo(5, 7, "adaptive", "engine")
    assert solvers.METHODS["implicit_adams"].backend == "torchdiffeq"
    assert solvers.METHODS["heun3"].kind == "fixed"
    for name, tab in solvers.TABLEAUX.items():
        assert solvers.METHODS[name].order == tab.order


def test_register_gradient_mode_is_a_hook():
    calls = []

    def fake(problem):
        calls.append(problem.plan.tab.name)
        return forward(problem)

    solvers.register_gradient_mode("test-mode", fake)
    try:
        with pytest.raises(ValueError, match="already exists"):
            solvers.register_gradient_mode("test-mode", fake)
        sol = solvers.odeint(forced_decay, torch.ones(1, dtype=DT), torch.tensor([0.0, 1.0], dtype=DT),
                             method="rk4", step_size=0.5, gradient="test-mode")
        assert calls == ["rk4"] and sol.shape == (2, 1)
    finally:
        GRADIENT_MODES.pop("test-mode")


def test_observed_order_fits_slope():
    hs = [0.1, 0.05, 0.025]
    assert observed_order([3 * h ** 2.5 for h in hs], hs) == pytest.approx(2.5)
    with pytest.raises(ValueError, match=r"errors must be positive and finite; got errors\[1\] = 0.0"):
        observed_order([1.0, 0.0], [0.1, 0.05])
    with pytest.raises(ValueError, match="same length"):
        observed_order([1.0], [0.1, 0.05])


# --------------------------------------------------------------------------- tableau validation


@pytest.mark.parametrize("kwargs, match", [
    ({"a": ((), (0.4,)), "b": (0.5, 0.5), "c": (0.0, 0.5)}, r"row 1 of a must sum to c\[1\] = 0.5; got sum = 0.4"),
    ({"a": ((), (0.5,)), "b": (0.5, 0.6), "c": (0.0, 0.5)}, r"b must sum to 1; got sum\(b\) = 1.1"),
    ({"a": ((0.1,), (0.5,)), "b": (0.5, 0.5), "c": (0.1, 0.5)}, r"c\[0\] must be 0"),
    ({"a": ((), (0.5,)), "b": (0.5, 0.5), "c": (0.0,)}, r"c must have one node per stage"),
    ({"a": ((), (0.25, 0.25)), "b": (0.5, 0.5), "c": (0.0, 0.5)}, r"row 1 of a must hold 1 weights"),
    ({"a": ((),), "b": (1.0,), "c": (0.0,), "order": 0}, r"order must be a positive int"),
])
def test_tableau_checks_itself(kwargs, match):
    kwargs.setdefault("order", 2)
    with pytest.raises(ValueError, match=match):
        solvers.Tableau("bad", **kwargs)


def test_tableau_lookup_and_custom_tableau():
    assert solvers.tableau("rk4") is solvers.TABLEAUX["rk4"]
    with pytest.raises(ValueError, match=r"unknown method 'x'; expected one of the Runge-Kutta methods adaptive_heun, bosh3, dopri5"):
        solvers.tableau("x")
    # a new method is one table: Kutta's third-order method runs in the same loop
    kutta3 = solvers.Tableau("kutta3", a=((), (0.5,), (-1.0, 2.0)), b=(1 / 6, 2 / 3, 1 / 6),
                             c=(0.0, 0.5, 1.0), order=3)
    y0 = torch.tensor([1.0], dtype=DT)
    t = torch.tensor([0.0, 1.0], dtype=DT)
    hs = [0.1, 0.05, 0.025]
    errs = [float((solvers.odeint(forced_decay, y0, t, method=kutta3, step_size=h)
                   - forced_decay_exact(t, y0)).abs().max()) for h in hs]
    assert abs(observed_order(errs, hs) - 3) < 0.15


# --------------------------------------------------------------------------- bad input


def _ok():
    return {"func": forced_decay, "y0": torch.ones(2, dtype=DT), "t": torch.tensor([0.0, 1.0], dtype=DT),
                "method": "rk4"}


@pytest.mark.parametrize("change, error, match", [
    ({"t": torch.zeros(2, 2, dtype=DT)}, ValueError, r"t must be 1-D and non-empty.*got shape \(2, 2\)"),
    ({"t": torch.tensor([0.0, 1.0, 1.0], dtype=DT)}, ValueError,
     r"t must be strictly increasing or strictly decreasing; got t\[2\] = 1.0 after t\[1\] = 1.0"),
    ({"t": torch.tensor([0.0, 1.0, 0.5], dtype=DT)}, ValueError, r"got t\[2\] = 0.5 after t\[1\] = 1.0"),
    ({"t": torch.tensor([0, 1])}, TypeError, r"t must have a real floating dtype; got t.dtype = torch.int64"),
    ({"t": [0.0, 1.0]}, TypeError, r"t must be a 1-D torch.Tensor of times; got list"),
    ({"y0": [1.0, 2.0]}, TypeError, r"y0 must be a torch.Tensor or a tuple of them; got list"),
    ({"y0": torch.ones(2, dtype=torch.int64)}, TypeError, r"y0 must have a floating or complex dtype"),
    ({"func": lambda t, y: torch.ones(3, dtype=DT)}, ValueError,
     r"func returned shape \(3,\) whilst y0 has shape \(2,\)"),
    ({"func": lambda t, y: 1.0}, TypeError, r"func must return a torch.Tensor; got float"),
    ({"method": "x"}, ValueError, r"unknown method 'x'; expected one of .*dopri5.*rk38"),
    ({"step_size": 0.0}, ValueError, r"step_size must be None or a positive finite number; got step_size = 0.0"),
    ({"step_size": -0.1}, ValueError, r"got step_size = -0.1"),
    ({"rtol": -1e-3}, ValueError, r"rtol must be a non-negative finite number; got rtol = -0.001"),
    ({"atol": -1.0}, ValueError, r"atol must be a non-negative finite number; got atol = -1.0"),
    ({"adjoint": True, "gradient": "backprop"}, ValueError, r"adjoint=True is shorthand for gradient='adjoint'"),
    ({"gradient": "magic"}, ValueError, r"unknown gradient 'magic'; expected one of adjoint, backprop"),
    ({"options": {"first_step": 0.1}}, ValueError, r"options \['first_step'\] are not options of method 'rk4'; "
                                                   r"its options are step_size, grid_constructor, perturb, interp"),
    ({"options": [("step_size", 0.1)]}, TypeError, r"options must be a dict or None; got list"),
    ({"method": "dopri5", "options": {"safety": -1}}, ValueError, r"options\['safety'\] must be in \(0, 1\] .*got options\['safety'\] = -1"),
    ({"method": "dopri5", "options": {"min_step": 1.0, "max_step": 0.1}}, ValueError, r"must not exceed"),
    ({"options": {"interp": "quadratic"}}, ValueError, r"options\['interp'\] must be 'linear' or 'cubic'"),
    ({"options": {"step_size": 0.1, "grid_constructor": lambda f, y, t: t}}, ValueError, r"mutually exclusive"),
    ({"options": {"grid_constructor": lambda f, y, t: torch.tensor([0.0, 0.5], dtype=DT)}}, ValueError,
     r"options\['grid_constructor'\] must return a grid from t\[0\] = 0.0 to t\[-1\] = 1.0; got \[0.0, 0.5\]"),
    ({"method": "dopri5", "step_size": 0.1}, ValueError, r"step_size applies to fixed-step methods; method 'dopri5'"),
    ({"gradient": "adjoint", "func": SmallField(2), "adjoint_method": "explicit_adams"}, ValueError,
     r"adjoint_method 'explicit_adams' is run by torchdiffeq.*use a Runge-Kutta method"),
    ({"method": "dopri5", "event_fn": lambda t, y: y.sum(), "t": torch.tensor([0.0, 1.0, 2.0], dtype=DT)}, ValueError,
     r"event_fn needs t = \[t0, t1\] \(len\(t\) == 2"),
    ({"event_fn": lambda t, y: y.sum()}, ValueError, r"event_fn with the fixed-step method 'rk4' needs a step size"),
    ({"gradient": "adjoint"}, ValueError, r"needs func to be an nn.Module .* got func of type function"),
    ({"jump_t": torch.zeros(2, 2)}, ValueError, r"jump_t must be a 1-D sequence of times; got shape \(2, 2\)"),
    ({"method": "scipy_solver", "jump_t": [0.5]}, ValueError,
     r"method 'scipy_solver' is run by torchdiffeq.*step_size= and jump_t= apply to the Runge-Kutta methods"),
    ({"y0": (torch.ones(2), torch.ones(1)), "func": lambda t, y: (-y[0],)}, TypeError,
     r"func must return a tuple of 2 tensors for a tuple y0; got tuple of length 1"),
    ({"y0": (torch.ones(2), torch.ones(1)), "func": lambda t, y: (-y[0], -y[0])}, ValueError,
     r"func returned shape \(2,\) at position 1 whilst y0\[1\] has shape \(1,\)"),
    ({"y0": (torch.ones(2), torch.ones(1)), "rtol": (1e-3,)}, ValueError,
     r"a tuple rtol needs one entry per state of the tuple y0 \(2\); got 1"),
])
def test_bad_input(change, error, match):
    kwargs = _ok()
    kwargs.update(change)
    with pytest.raises(error, match=match):
        solvers.odeint(**kwargs)


class _BackwardWork(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the elements of every tensor the operators produce while active: a deterministic
    measure of work, which a timing is not."""

    def __init__(self):
        super().__init__()
        self.elements = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        flat = out if isinstance(out, (tuple, list)) else (out,)
        self.elements += sum(t.numel() for t in flat if isinstance(t, torch.Tensor))
        return out


def _backward_work_per_step(build, n):
    loss = build(n)
    with _BackwardWork() as work:
        loss.backward()
    return work.elements / n


def test_no_quadratic_backward_cost():
    # Backward work per step must not grow with the number of steps (outputs are stacked once,
    # inputs are unbound, never indexed per step).  The measure: elements written by backward.
    w = torch.tensor(0.5, dtype=DT, requires_grad=True)
    y0 = torch.ones(64, dtype=DT)

    def solve(n):
        t = torch.linspace(0, 1, n + 1, dtype=DT)
        return solvers.odeint(lambda s, y: -w * y, y0, t, method="euler").sum()

    small, large = _backward_work_per_step(solve, 100), _backward_work_per_step(solve, 800)
    assert large < 1.1 * small, (small, large)

    # ... and the meter does see the quadratic pattern it guards against: a loop reading x[:, k]
    # makes each step's backward write a full-size gradient of x.
    def indexed(n):
        x = torch.randn(4, n, dtype=DT, requires_grad=True)
        h = torch.zeros(4, dtype=DT)
        for k in range(n):
            h = h * w + x[:, k]
        return h.sum()

    assert _backward_work_per_step(indexed, 800) > 4 * _backward_work_per_step(indexed, 100)


def test_driven_backward_cost_is_linear():
    import neuralode_rnn as nr

    # gamma_A = 2: a contracting field; the default draw grows without bound and overflowed by step ~660
    # (a NaN the model now refuses, issue 16 item 5)
    for family in (nr.LipschitzField(1, 8, gamma_A=2.0), nr.UnitaryField(1, 8)):
        def run(n, field=family):
            model = nr.ContinuousRNN(field, 2, method="midpoint", interpolation="linear")
            return model(torch.randn(2, n, 1)).sum()

        small, large = _backward_work_per_step(run, 100), _backward_work_per_step(run, 800)
        assert large < 1.1 * small, (type(family).__name__, small, large)


# ------------------------------------------------------------------ issue 17: the specification builds every solve
def _driven_problem_parts():
    import neuralode_rnn as nr

    torch.manual_seed(0)
    times = torch.arange(6, dtype=DT)
    path = nr.interpolate(torch.randn(2, 6, 3, dtype=DT), times, "hold")
    inputs = solvers.PiecewiseInput(path.knots, path.coeffs, path.first, path.last)
    W = (0.3 * torch.randn(4, 4, dtype=DT)).requires_grad_()
    U = (0.3 * torch.randn(4, 3, dtype=DT)).requires_grad_()
    structure = solvers.LinearActivation(W=W, U=U, activation="tanh")
    term = solvers.LinearActivationTerm(structure, inputs, time_dtype=DT)
    return term, torch.zeros(2, 4, dtype=DT), path.knots, (W, U)


def test_structured_adjoint_controller_is_the_specs(monkeypatch):
    """linear_activation's backward controller was a hand copy that dropped pcoeff/icoeff (and
    max_time): it now comes from the specification, every setting kept."""
    from solvers import linear_activation
    from solvers.spec import SolveSpec

    seen = []
    real = linear_activation.solve_adaptive

    def spy(term, plan, y0, t_out, controller, **kw):
        seen.append(controller)
        return real(term, plan, y0, t_out, controller, **kw)

    monkeypatch.setattr(linear_activation, "solve_adaptive", spy)
    term, h0, knots, params = _driven_problem_parts()
    spec = SolveSpec(method="dopri5", rtol=1e-5, atol=1e-7, gradient="adjoint", pcoeff=0.2, icoeff=0.4,
                     safety=0.8, max_time=50.0)
    outs = spec.solve(term, h0, knots, jump_t=knots, params=params)
    torch.stack(outs).square().sum().backward()
    assert seen, "the structured adjoint did not solve backward"
    for c in seen:
        assert (c.pcoeff, c.icoeff, c.safety, c.max_time) == (0.2, 0.4, 0.8, 50.0)
        assert (float(c.rtol), float(c.atol)) == (1e-5, 1e-7)


def test_odeint_builds_its_problem_through_the_spec(monkeypatch):
    """odeint had a second Problem builder with its own rules; now it makes a SolveSpec and asks it, and the
    adjoint's backward controller comes from the nested backward specification."""
    from solvers.spec import SolveSpec

    built = []
    real = SolveSpec.problem

    def spy(self, *a, **kw):
        p = real(self, *a, **kw)
        built.append((self, p))
        return p

    monkeypatch.setattr(SolveSpec, "problem", spy)
    k = torch.tensor(1.3, dtype=DT, requires_grad=True)
    ys = solvers.odeint(lambda t, y: -k * y, torch.ones(3, dtype=DT), torch.linspace(0, 1, 4, dtype=DT),
                        method="dopri5", rtol=1e-6, atol=1e-8, options={"pcoeff": 0.1, "safety": 0.85},
                        gradient="adjoint", adjoint_params=(k,), adjoint_options={"icoeff": 0.7})
    assert len(built) == 1
    spec, p = built[0]
    assert p.spec is spec and (spec.pcoeff, spec.safety) == (0.1, 0.85)
    assert (p.controller.pcoeff, p.controller.safety) == (0.1, 0.85)
    assert p.adjoint.spec is spec.adjoint and spec.adjoint.icoeff == 0.7 and p.adjoint.spec.controller().icoeff == 0.7
    ys[-1].sum().backward()
    assert abs(float(k.grad) - (-3 * torch.exp(-k.detach()).item())) < 1e-5


def test_solve_returns_its_statistics_as_a_value(device):
    """NFE and the accepted/rejected steps come back with the solution (diffrax's sol.stats), not as
    counters mutated on the term."""
    from solvers.spec import SolveSpec

    term, h0, knots, _ = _driven_problem_parts()
    fixed = SolveSpec(method="rk4", step_size=0.5).solve_with_stats(term, h0, knots, jump_t=knots)
    assert len(fixed.ys) == 6
    assert (fixed.stats.accepted, fixed.stats.rejected) == (10, 0)  # 5 gaps of length 1, two steps each
    assert fixed.stats.nfe == 4 * 10
    calls = []

    def f(t, y):
        calls.append(t)
        return torch.cos(3 * t) * y

    sol = SolveSpec(method="dopri5", rtol=1e-8, atol=1e-10).solve_with_stats(
        FuncTerm(f, DT, device), torch.ones(2, dtype=DT), torch.linspace(0, 4, 3, dtype=DT))
    assert sol.stats.nfe == len(calls) > 0
    assert sol.stats.accepted > 5 and sol.stats.rejected >= 0
    # dopri5 is FSAL: 6 new stages per attempted step, plus f(t0) and the first-step probe
    assert sol.stats.nfe == 6 * (sol.stats.accepted + sol.stats.rejected) + 2
    assert abs(float(sol.ys[-1][0]) - torch.exp(torch.sin(torch.tensor(12.0, dtype=DT)) / 3).item()) < 1e-6


def test_fixed_and_adaptive_events_share_one_search():
    """The fixed-step event search had its own step loop and bisection (a copy of the engine's); both now
    run the engine's step generators through events.until_event: an event at t0 is t0 for both, and both
    find the crossing of y = exp(-t) through 0.5 to the tolerance."""
    y0 = torch.ones(1, dtype=DT)
    t = torch.tensor([0.0, 5.0], dtype=DT)
    for kw, tol in ((dict(method="dopri5"), 1e-7), (dict(method="rk4", options={"step_size": 0.1}), 1e-3),
                    (dict(method="rk4", options={"step_size": 0.1, "interp": "cubic"}), 1e-5)):
        t_ev, ys = solvers.odeint(lambda t, y: -y, y0, t, event_fn=lambda t, y: y[0] - 0.5, atol=1e-10, **kw)
        assert abs(float(t_ev) - 0.6931471805599453) < tol, kw
        t_ev, ys = solvers.odeint(lambda t, y: -y, y0, t, event_fn=lambda t, y: y[0] - 1.0, atol=1e-10, **kw)
        assert float(t_ev) == 0.0 and torch.equal(ys[-1], y0), kw


def test_public_api_is_the_documented_names():
    """solvers exported 39 flat names, engine internals among them (Tape, Plan, rk_step, make_problem);
    now __all__ is the documented API and the internals live in their modules only."""
    for internal in ("Tape", "Plan", "rk_step", "make_problem", "Problem", "Controller", "FuncTerm", "Term",
                     "knot_grid", "MethodInfo", "method_info"):
        assert internal not in solvers.__all__ and not hasattr(solvers, internal), internal
    for public in ("odeint", "odeint_adjoint", "METHODS", "TABLEAUX", "SolveSpec", "GRADIENT_MODES",
                   "register_gradient_mode", "stability_function", "max_stable_step", "tanh_kernel",
                   "pin_tanh_kernel", "sdeint", "SolverError", "StepLimitError"):
        assert public in solvers.__all__ and hasattr(solvers, public), public
    assert len(solvers.__all__) == len(set(solvers.__all__)) <= 34
    from solvers.engine import Tape  # noqa: F401  (still importable from its module)
    from solvers.stepper import Plan, rk_step  # noqa: F401
