"""solvers.odeint as a drop-in for torchdiffeq.odeint / odeint_adjoint: the same problem through both.

Each test states one claim of docs/ODEINT.md and checks it against torchdiffeq 0.2.5 itself.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torchdiffeq

import solvers

DT = torch.float64

# torchdiffeq's Runge-Kutta methods that run on our engine with the same tableau and controller.
SAME_FIXED = ["euler", "midpoint", "heun2", "heun3", "rk4"]
SAME_ADAPTIVE = ["dopri5", "bosh3", "dopri8"]
# adaptive_heun, fehlberg2: torchdiffeq starts the next step from its last stage, which is f at another state
# (the embedded lower-order solution); we evaluate f at the new state (see docs/ODEINT.md).
REEVALUATED = ["adaptive_heun", "fehlberg2"]
DELEGATED = ["explicit_adams", "implicit_adams", "fixed_adams"]


class Field(torch.nn.Module):
    """A small nonlinear, time-dependent field with parameters (float64)."""

    def __init__(self, n: int = 3, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(n, n, generator=g, dtype=DT) * 0.6)
        self.b = torch.nn.Parameter(torch.randn(n, generator=g, dtype=DT) * 0.3)
        self.nfe = 0

    def forward(self, t, y):
        self.nfe += 1
        return torch.tanh(y @ self.w.T + self.b) * torch.cos(t) - 0.3 * y


def forced_decay(t, y):
    return -y + torch.sin(t)


def _y0(n=3):
    return torch.linspace(-0.7, 0.9, n, dtype=DT)


# --------------------------------------------------------------------------- same numbers


@pytest.mark.parametrize("method", SAME_FIXED)
def test_fixed_methods_give_torchdiffeqs_numbers(method):
    t = torch.cumsum(torch.rand(25, dtype=DT) * 0.1 + 0.02, 0)
    f = Field()
    ours = solvers.odeint(f, _y0(), t, method=method)
    theirs = torchdiffeq.odeint(f, _y0(), t, method=method)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-14)


class FastField(Field):
    """Field on a 3x faster clock: enough truncation error that dopri8's estimate is above rounding."""

    def forward(self, t, y):
        return 3 * super().forward(3 * t, y)


# dopri8's error estimate of an easy step is at rounding level, where the two libraries' sums round
# differently: its step sizes then agree to ~1e-6, not to rounding (on Field they differ by 2%).
@pytest.mark.parametrize("method, field, step_rtol, atol", [("dopri5", Field, 1e-9, 1e-12),
                                                            ("bosh3", Field, 1e-9, 1e-12),
                                                            ("dopri8", FastField, 1e-5, 1e-10)])
def test_adaptive_methods_give_torchdiffeqs_numbers_and_steps(method, field, step_rtol, atol):
    # Same controller step for step: the same accepted and rejected steps, values equal to rounding.
    t = torch.linspace(0, 4, 9, dtype=DT)
    logs = {}
    for lib in (solvers, torchdiffeq):
        f = field()
        log = []
        f.callback_accept_step = lambda t0, y0, dt, log=log: log.append(("a", float(t0), float(dt)))
        f.callback_reject_step = lambda t0, y0, dt, log=log: log.append(("r", float(t0), float(dt)))
        with torch.no_grad():
            sol = lib.odeint(f, _y0(), t, method=method, rtol=1e-8, atol=1e-10)
        logs[lib.__name__] = (sol, log, f.nfe)
    (ours, log_ours, nfe_ours), (theirs, log_theirs, nfe_theirs) = logs["solvers"], logs["torchdiffeq"]
    assert [k for k, *_ in log_ours] == [k for k, *_ in log_theirs]
    assert nfe_ours == nfe_theirs  # no evaluation beyond torchdiffeq's
    torch.testing.assert_close(torch.tensor([x[1:] for x in log_ours]), torch.tensor([x[1:] for x in log_theirs]),
                               rtol=step_rtol, atol=0)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=atol)


@pytest.mark.parametrize("method", REEVALUATED)
def test_reevaluating_pairs_are_as_accurate_as_torchdiffeqs(method):
    # Not the same numbers (documented), but the same method: errors against the exact solution of the
    # same size, and both within the tolerance's reach.
    t = torch.linspace(0, 3, 7, dtype=DT)
    y0 = torch.tensor([0.4, -1.0], dtype=DT)
    exact = (y0 + 0.5) * torch.exp(-t)[:, None] + 0.5 * (torch.sin(t) - torch.cos(t))[:, None]
    err = {}
    for lib in (solvers, torchdiffeq):
        err[lib.__name__] = float((lib.odeint(forced_decay, y0, t, method=method, rtol=1e-6, atol=1e-8)
                                   - exact).abs().max())
    assert err["solvers"] < 2e-4 and err["torchdiffeq"] < 2e-4, err
    assert 0.1 < err["solvers"] / err["torchdiffeq"] < 10, err


@pytest.mark.filterwarnings("ignore:The following arguments have no effect")  # scipy's, to torchdiffeq's call
@pytest.mark.parametrize("method, options", [(m, {"step_size": 0.05}) for m in DELEGATED]
                         + [("scipy_solver", {"solver": "RK45"})])
def test_multistep_and_scipy_methods_are_torchdiffeqs_own(method, options):
    t = torch.linspace(0, 1, 6, dtype=DT)
    ours = solvers.odeint(Field(), _y0(), t, method=method, options=options)
    theirs = torchdiffeq.odeint(Field(), _y0(), t, method=method, options=options)
    assert torch.equal(ours, theirs)


def test_every_torchdiffeq_method_name_is_accepted_with_its_meaning():
    from torchdiffeq._impl.odeint import SOLVERS  # the registry's names only, to compare the lists

    assert set(SOLVERS) <= set(solvers.METHODS)
    for name in SOLVERS:
        kind = "adaptive" if name in ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun", "scipy_solver") \
            else "fixed"
        assert solvers.METHODS[name].kind == kind, name
    # "rk4" is torchdiffeq's 3/8 rule in both libraries; the aliases name the same tableaux
    assert solvers.TABLEAUX["rk4"] is solvers.TABLEAUX["rk38"]
    assert solvers.TABLEAUX["heun"] is solvers.TABLEAUX["heun2"]
    assert solvers.TABLEAUX["rk4"].b == (1 / 8, 3 / 8, 3 / 8, 1 / 8)


def test_output_dtype_shape_and_time_handed_to_func():
    seen = []

    def f(t, y):
        seen.append((t.dtype, t.shape))
        return -y

    for y_dtype in (torch.float32, torch.float64, torch.complex64):
        seen.clear()
        y0 = torch.ones(2, 3, dtype=y_dtype)
        sol = solvers.odeint(f, y0, torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
        assert sol.dtype == y_dtype and sol.shape == (3, 2, 3)
        real = torch.float64 if y_dtype == torch.float64 else torch.float32
        assert set(seen) == {(real, torch.Size([]))}
    with pytest.raises(TypeError, match="positional"):
        solvers.odeint(f, torch.ones(2), torch.tensor([0.0, 1.0]), 1e-3)


@pytest.mark.parametrize("method", ["dopri5", "rk4", "euler", "bosh3"])
def test_no_evaluation_beyond_torchdiffeqs(method):
    t = torch.linspace(0, 2, 5, dtype=DT)
    counts = {}
    for lib in (solvers, torchdiffeq):
        f = Field()
        lib.odeint(f, _y0(), t, method=method)
        counts[lib.__name__] = f.nfe
    assert counts["solvers"] == counts["torchdiffeq"], counts


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("options", [
    {"step_size": 0.07},
    {"step_size": 0.07, "interp": "cubic"},
    {"step_size": 0.07, "perturb": True},
    {"grid_constructor": lambda f, y0, t: torch.linspace(float(t[0]), float(t[-1]), 17, dtype=t.dtype)},
])
@pytest.mark.parametrize("method", ["rk4", "midpoint"])
def test_fixed_options_match(options, method):
    t = torch.tensor([0.0, 0.33, 0.5, 1.1], dtype=DT)
    ours = solvers.odeint(Field(), _y0(), t, method=method, options=options)
    theirs = torchdiffeq.odeint(Field(), _y0(), t, method=method, options=options)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-14)


@pytest.mark.parametrize("perturb", [False, True])
def test_perturb_moves_stage_times_one_ulp_inside(perturb):
    times = {}
    for lib in (solvers, torchdiffeq):
        seen = []

        def f(t, y, seen=seen):
            seen.append(float(t))
            return -y

        lib.odeint(f, torch.ones(2, dtype=DT), torch.tensor([0.0, 1.0], dtype=DT), method="rk4",
                   options={"step_size": 0.5, "perturb": perturb})
        times[lib.__name__] = seen
    assert times["solvers"] == times["torchdiffeq"]
    assert (0.5 in times["solvers"]) != perturb


@pytest.mark.parametrize("options", [
    {"first_step": 0.01},
    {"safety": 0.7, "ifactor": 3.0, "dfactor": 0.5},
    {"min_step": 0.05},
    {"max_step": 0.02},
    {"step_t": torch.tensor([0.5, 1.25], dtype=DT)},
    {"jump_t": torch.tensor([0.5, 1.25], dtype=DT)},
    {"norm": lambda x: x.abs().max()},
    {"max_num_steps": 1000},
])
def test_adaptive_options_match(options):
    t = torch.tensor([0.0, 0.7, 2.0], dtype=DT)
    ours = solvers.odeint(Field(), _y0(), t, method="dopri5", rtol=1e-7, atol=1e-9, options=options)
    theirs = torchdiffeq.odeint(Field(), _y0(), t, method="dopri5", rtol=1e-7, atol=1e-9, options=options)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


def test_max_num_steps_stops_with_a_solver_error():
    t = torch.tensor([0.0, 2.0], dtype=DT)
    with pytest.raises(AssertionError, match="max_num_steps"):
        torchdiffeq.odeint(Field(), _y0(), t, options={"max_num_steps": 5})
    with pytest.raises(solvers.StepLimitError, match="more than max_steps = 5"):
        solvers.odeint(Field(), _y0(), t, options={"max_num_steps": 5})


def test_unknown_option_is_an_error_not_a_warning():
    with pytest.warns(UserWarning, match="Unexpected arguments"):
        torchdiffeq.odeint(forced_decay, _y0(), torch.tensor([0.0, 1.0], dtype=DT), options={"stepsize": 0.1},
                           method="rk4")
    with pytest.raises(ValueError, match=r"options \['stepsize'\] are not options of method 'rk4'"):
        solvers.odeint(forced_decay, _y0(), torch.tensor([0.0, 1.0], dtype=DT), options={"stepsize": 0.1},
                       method="rk4")


# --------------------------------------------------------------------------- tuples, direction


@pytest.mark.parametrize("method", ["dopri5", "rk4"])
def test_tuple_state_and_tuple_tolerances(method):
    def f(t, state):
        a, b = state
        return -a * b.sum(), torch.sin(t) * a.mean() - b

    y0 = (torch.tensor(0.8, dtype=DT), torch.tensor([[0.5, -0.2], [0.1, 0.3]], dtype=DT))
    t = torch.linspace(0, 1.5, 4, dtype=DT)
    kw = dict(method=method, rtol=(1e-6, 1e-8), atol=(1e-8, 1e-10))
    ours = solvers.odeint(f, y0, t, **kw)
    theirs = torchdiffeq.odeint(f, y0, t, **kw)
    assert [o.shape for o in ours] == [(4,), (4, 2, 2)]
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)


@pytest.mark.parametrize("method", ["dopri5", "rk4", "bosh3"])
def test_decreasing_time(method):
    t = torch.tensor([2.0, 1.3, 0.2, -0.5], dtype=DT)
    options = {"jump_t": torch.tensor([0.9], dtype=DT)} if method == "dopri5" else None
    ours = solvers.odeint(Field(), _y0(), t, method=method, options=options)
    theirs = torchdiffeq.odeint(Field(), _y0(), t, method=method, options=options)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- events


@pytest.mark.parametrize("method, options", [("dopri5", None), ("bosh3", None),
                                             ("rk4", {"step_size": 0.05, "interp": "cubic"}),
                                             ("euler", {"step_size": 0.01})])
@pytest.mark.parametrize("reverse", [False, True])
def test_event_time_and_state_match(method, options, reverse):
    f = Field()
    t = torch.tensor([0.0, -1.0] if reverse else [0.0, 1.0], dtype=DT)

    def event_fn(t, y):
        return y[0] - 0.4 * torch.cos(t) + 1.0

    # torchdiffeq's event search has no step limit of its own (2**31 - 1): bound it, so a test whose event
    # never came could not run (and grow a graph) forever
    options = dict(options or {}, max_num_steps=5000) if method in ("dopri5", "bosh3") else options
    kw = dict(event_fn=event_fn, method=method, options=options, rtol=1e-8, atol=1e-10)
    te_ours, y_ours = solvers.odeint(f, _y0(), t, **kw)
    te_theirs, y_theirs = torchdiffeq.odeint(f, _y0(), t, **kw)
    assert abs(float((te_ours - te_theirs).detach())) < 1e-9
    torch.testing.assert_close(y_ours, y_theirs, rtol=0, atol=1e-9)
    assert abs(float(event_fn(te_ours, y_ours[-1]).detach())) < 1e-6


def _event_problem():
    f = Field(2, seed=3)
    y0 = torch.tensor([0.9, -0.4], dtype=DT, requires_grad=True)
    t0 = torch.tensor(0.1, dtype=DT, requires_grad=True)

    def event_fn(t, y):  # crosses zero near t = 1.1 whatever the state does
        return t - 1.0 - 0.2 * y[0]

    return f, y0, t0, event_fn


@pytest.mark.parametrize("gradient", ["backprop", "adjoint"])
def test_event_time_gradient_equals_torchdiffeqs_odeint_event(gradient):
    # Our event_t carries dT/d(y0, t0, params) by the implicit function theorem: torchdiffeq's odeint_event.
    f, y0, t0, event_fn = _event_problem()
    te_ref, _ = torchdiffeq.odeint_event(f, y0, t0, event_fn=event_fn, rtol=1e-10, atol=1e-12,
                                         options={"max_num_steps": 5000})
    ref = torch.autograd.grad(te_ref, (y0, t0, *f.parameters()))
    te, _ = solvers.odeint(f, y0, torch.stack([t0, t0.detach() + 5]), event_fn=event_fn, rtol=1e-10, atol=1e-12,
                           gradient=gradient)
    assert abs(float((te - te_ref).detach())) < 1e-9
    ours = torch.autograd.grad(te, (y0, t0, *f.parameters()))
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_odeint_event_gives_total_derivatives_of_the_state():
    f, y0, t0, event_fn = _event_problem()
    grads = {}
    for lib in (solvers, torchdiffeq):
        te, sol = lib.odeint_event(f, y0, t0, event_fn=event_fn, rtol=1e-10, atol=1e-12,
                                   options={"max_num_steps": 5000})
        grads[lib.__name__] = torch.autograd.grad((sol[-1] ** 2).sum() + te, (y0, t0, *f.parameters()))
    for a, b in zip(grads["solvers"], grads["torchdiffeq"]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------- callbacks


@pytest.mark.parametrize("method, kwargs", [("dopri5", {}), ("bosh3", {}), ("rk4", {"options": {"step_size": 0.1}}),
                                            ("euler", {})])
def test_callbacks_are_called_in_torchdiffeqs_sequence(method, kwargs):
    logs = {}
    for lib in (solvers, torchdiffeq):
        f = Field()
        log = []
        f.callback_step = lambda t0, y0, dt, log=log: log.append(("step", float(t0), float(dt), float(y0.sum())))
        if method in ("dopri5", "bosh3"):
            f.callback_accept_step = lambda t0, y0, dt, log=log: log.append(("accept", float(t0), float(dt), 0.0))
            f.callback_reject_step = lambda t0, y0, dt, log=log: log.append(("reject", float(t0), float(dt), 0.0))
        with torch.no_grad():  # the callbacks read floats (torchdiffeq's dt carries the first step's graph)
            lib.odeint(f, _y0(), torch.tensor([0.0, 0.6, 1.0], dtype=DT), method=method, rtol=1e-6, atol=1e-8,
                       **kwargs)
        logs[lib.__name__] = log
    assert [x[0] for x in logs["solvers"]] == [x[0] for x in logs["torchdiffeq"]]
    torch.testing.assert_close(torch.tensor([x[1:] for x in logs["solvers"]]),
                               torch.tensor([x[1:] for x in logs["torchdiffeq"]]), rtol=1e-9, atol=1e-12)


def test_accept_callback_on_a_fixed_method_warns_as_torchdiffeq():
    f = Field()
    f.callback_accept_step = lambda t0, y0, dt: None
    for lib in (solvers, torchdiffeq):
        with pytest.warns(UserWarning, match="does not support callbacks"):
            lib.odeint(f, _y0(), torch.tensor([0.0, 1.0], dtype=DT), method="rk4")


def test_adjoint_callbacks_count_the_backward_steps():
    counts = {}
    for lib in (solvers, torchdiffeq):
        f = Field()
        n = {"step": 0}
        f.callback_step_adjoint = lambda t0, y0, dt, n=n: n.__setitem__("step", n["step"] + 1)
        y0 = _y0().requires_grad_()
        lib.odeint_adjoint(f, y0, torch.tensor([0.0, 1.0], dtype=DT), method="rk4",
                           options={"step_size": 0.1}).sum().backward()
        counts[lib.__name__] = n["step"]
    assert counts["solvers"] == counts["torchdiffeq"] == 10


# --------------------------------------------------------------------------- adjoint


def _grads(lib_odeint, f, y0, t, **kw):
    y0 = y0.clone().requires_grad_()
    t = t.clone().requires_grad_()
    sol = lib_odeint(f, y0, t, **kw)
    weights = torch.linspace(0.5, 1.5, sol.numel(), dtype=DT).reshape(sol.shape)
    return torch.autograd.grad((sol * weights).sum(), (y0, t, *f.parameters()))


# Backward solves at the same tolerances: the gradients agree to the tolerance's reach (the adjoint norms differ
# only by torchdiffeq's |t| entry, zero here); with bosh3 backward, to 1e-4 (third order at rtol 1e-8).
@pytest.mark.parametrize("kw, tol", [
    ({}, 1e-6),
    ({"adjoint_rtol": 1e-9, "adjoint_atol": 1e-11}, 1e-6),
    ({"adjoint_method": "bosh3"}, 1e-4),
    ({"adjoint_method": "rk4", "adjoint_options": {"step_size": 0.05}}, 1e-7),  # t[0]: exact flow vs rk4 steps
    ({"adjoint_options": {"norm": "seminorm"}}, 1e-6),
])
def test_adjoint_options_match_torchdiffeq(kw, tol):
    f = Field()
    t = torch.tensor([0.0, 0.5, 1.5], dtype=DT)
    ours = _grads(solvers.odeint_adjoint, f, _y0(), t, rtol=1e-8, atol=1e-10, **kw)
    theirs = _grads(torchdiffeq.odeint_adjoint, f, _y0(), t, rtol=1e-8, atol=1e-10, **kw)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * 1e-2)


def test_seminorm_takes_fewer_backward_evaluations_for_the_same_gradients():
    f = Field(4)
    t = torch.tensor([0.0, 3.0], dtype=DT)
    y0 = torch.linspace(-1, 1, 4, dtype=DT)
    result = {}
    for label, kw in (("full", {}), ("seminorm", {"adjoint_options": {"norm": "seminorm"}})):
        y = y0.clone().requires_grad_()
        sol = solvers.odeint_adjoint(f, y, t, rtol=1e-7, atol=1e-9, **kw)
        f.nfe = 0
        grads = torch.autograd.grad(sol[-1].sum(), (y, *f.parameters()))
        result[label] = (f.nfe, grads)
    assert result["seminorm"][0] < result["full"][0], (result["seminorm"][0], result["full"][0])
    for a, b in zip(result["seminorm"][1], result["full"][1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_adjoint_params_and_time_gradients_match_torchdiffeq():
    w = torch.tensor([0.4, -0.9], dtype=DT, requires_grad=True)

    def f(t, y):
        return torch.stack([y[1], -w[0] * y[0]]) * torch.cos(w[1] * t)

    y0 = torch.tensor([1.0, 0.2], dtype=DT, requires_grad=True)
    t = torch.tensor([0.0, 0.8, 2.0], dtype=DT, requires_grad=True)
    res = {}
    for lib in (solvers, torchdiffeq):
        sol = lib.odeint_adjoint(f, y0, t, adjoint_params=(w,), rtol=1e-10, atol=1e-12)
        res[lib.__name__] = torch.autograd.grad((sol ** 2).sum(), (y0, t, w))
    for a, b in zip(res["solvers"], res["torchdiffeq"]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="needs func to be an nn.Module"):
        solvers.odeint_adjoint(f, y0, t)


def test_adjoint_method_change_needs_adjoint_options():
    with pytest.raises(ValueError, match="pass adjoint_options too"):
        solvers.odeint_adjoint(Field(), _y0(), torch.tensor([0.0, 1.0], dtype=DT), method="rk4",
                               options={"step_size": 0.1}, adjoint_method="euler")


@pytest.mark.parametrize("method", ["dopri5", "rk4"])
def test_backprop_time_gradients_match_torchdiffeq(method):
    f = Field()
    t = torch.tensor([0.1, 0.6, 1.3], dtype=DT)
    kw = dict(method=method, rtol=1e-10, atol=1e-12)
    ours = _grads(solvers.odeint, f, _y0(), t, **kw)
    theirs = _grads(torchdiffeq.odeint, f, _y0(), t, **kw)
    # fixed grids: torchdiffeq differentiates the steps between the outputs (the grid is t itself: steps of
    # 0.5 to 0.7), we the exact flow: O(h^4) apart, 3e-3 here
    tol = 1e-6 if method == "dopri5" else 1e-2
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_warnings_only_where_torchdiffeq_warns():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        solvers.odeint(Field(), _y0(), torch.tensor([0.0, 1.0], dtype=DT))
        solvers.odeint(Field(), _y0(), torch.tensor([0.0, 1.0], dtype=DT), method="rk4", options={"step_size": 0.1})
