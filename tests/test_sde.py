"""solvers.sdeint and the stochastic RNN: sigma = 0 is the ODE, Euler-Maruyama's strong order."""

import math

import pytest
import torch
from torch import nn

import neuralode_rnn as nr
import solvers
from neuralode_rnn.analysis.solver_comparison import observed_order
from neuralode_rnn.noise import NoisyField, StochasticRNN
from solvers.sde import brownian_interval, sdeint

D64 = torch.float64


def _times(T, seed=0):
    g = torch.Generator(torch.get_default_device()).manual_seed(seed)
    return torch.cumsum(0.2 + torch.rand(T, generator=g, dtype=D64), 0)


def test_sdeint_with_zero_diffusion_is_odeint_on_the_same_grid():
    # a time-dependent field with jumps: the knot-aligned grid and one-ulp stages must match odeint's
    knots = torch.tensor([0.3, 0.7, 1.6, 2.0], dtype=D64)

    def f(t, y):
        piece = torch.searchsorted(knots, t.reshape(1)).to(D64)  # jumps at the knots
        return -y * (1 + piece) + torch.sin(3 * t)

    y0 = torch.randn(3, 2, dtype=D64)
    ts = torch.tensor([0.0, 1.0, 2.5], dtype=D64)
    ode = solvers.odeint(f, y0, ts, method="euler", step_size=0.13, jump_t=knots)
    sde = sdeint(f, y0, ts, method="euler", dt=0.13, diffusion=lambda t, y: torch.zeros_like(y), jump_t=knots)
    assert sde.shape == ode.shape
    torch.testing.assert_close(sde, ode, rtol=0, atol=1e-12)


@pytest.mark.parametrize("field_cls", [nr.LipschitzField, nr.AntisymmetricField, nr.CTRNNField])
def test_stochastic_rnn_with_sigma_zero_equals_the_ode(field_cls):
    field = field_cls(2, 5).double()
    values = torch.randn(3, 7, 2, dtype=D64)
    times = _times(7)
    ode = nr.ContinuousRNN(field, 4, method="euler", step_size=0.15)
    sde = StochasticRNN(field, 4, sigma=0.0, step_size=0.15).train()
    torch.testing.assert_close(sde.trajectory(values, times), ode.trajectory(values, times), rtol=0, atol=1e-10)


@pytest.mark.parametrize("interpolation", ["hold", "cubic"])
def test_noisy_training_reads_the_models_input_on_the_models_clock(interpolation):
    """Training (the SDE) and evaluation (the ODE) read one input type on one clock: the drift is
    ``field.driven_term`` over ``Path.input`` on ``solve_clock``'s knots, so with sigma = 0 the noisy
    model on epoch-second timestamps gives the deterministic model's states, and the diffusion on the
    index clock is scaled by the square root of the piece's length read from that same input."""
    field = nr.CTRNNField(2, 5).double()
    values = torch.randn(3, 6, 2, dtype=D64)
    times = 1.7e9 + _times(6, seed=3)
    sde = StochasticRNN(field, 4, sigma=0.0, interpolation=interpolation).train()
    ode = nr.ContinuousRNN(field, 4, interpolation=interpolation)
    torch.testing.assert_close(sde.trajectory(values, times), ode.trajectory(values, times), rtol=0, atol=1e-12)
    path = nr.interpolate(values, torch.stack([times, times + 0.5 * _times(6, seed=4)]).repeat(2, 1)[:3])
    noisy = NoisyField(field, path, sigma=0.3, clock="index")
    assert isinstance(noisy.driven.term, solvers.DrivenTerm)
    h = torch.ones(3, 5, dtype=D64)
    for s, j in ((-0.5, 0), (0.25, 0), (2.5, 2), (9.0, 4)):
        want = 0.3 * path.gaps()[:, j].sqrt().unsqueeze(1).expand(3, 5)
        torch.testing.assert_close(noisy.g(torch.tensor(s, dtype=D64), h), want, rtol=0, atol=1e-12)


def test_noise_on_in_training_off_in_evaluation():
    field = nr.LipschitzField(1, 6).double()
    model = StochasticRNN(field, 3, sigma=0.3, noise="multiplicative", step_size=0.5).double()
    values = torch.randn(4, 9, 1, dtype=D64)
    model.eval()
    torch.testing.assert_close(model(values), model.base(values), rtol=0, atol=0)
    model.train()
    torch.manual_seed(1)
    a = model(values)
    torch.manual_seed(1)
    b = model(values)
    c = model(values)
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # the Brownian path follows torch's seed
    assert (a - c).abs().max() > 1e-3  # and the noise is really on
    assert (a - model.base(values)).abs().max() > 1e-3
    a.sum().backward()
    assert field.M_A.grad is not None and torch.isfinite(field.M_A.grad).all()


def test_gbm_euler_maruyama_strong_order_one_half():
    # dX = mu X dt + s X dB: X_T = X_0 exp((mu - s^2/2) T + s B_T), on the same Brownian paths
    mu, s, n = 0.5, 0.8, 4000
    y0 = torch.ones(n, 1, dtype=D64)
    ts = torch.tensor([0.0, 1.0], dtype=D64)
    bm = brownian_interval(0.0, 1.0, n, 1, entropy=7)
    exact = y0 * torch.exp(torch.tensor(mu - s * s / 2) + s * bm(0.0, 1.0))
    steps = [2.0 ** -k for k in range(3, 9)]
    errors = []
    for h in steps:
        out = sdeint(lambda t, y: mu * y, y0, ts, bm, "euler", dt=h, diffusion=lambda t, y: s * y)
        errors.append(float((out[-1] - exact).abs().mean()))
    assert all(e1 < e0 for e0, e1 in zip(errors, errors[1:]))
    assert abs(observed_order(errors, steps) - 0.5) < 0.15


def test_ornstein_uhlenbeck_additive_noise_euler_maruyama_order_one():
    # dX = -th X dt + s dB, X_T = e^{-th T} X_0 + s int e^{-th (T - u)} dB_u; with s = 0 drift only is
    # order 1, and for additive noise EM is strong order 1: checked against a 2^-10 fine solution.
    th, s, n = 2.0, 0.5, 1000
    y0 = torch.ones(n, 1, dtype=D64)
    ts = torch.tensor([0.0, 1.0], dtype=D64)
    bm = brownian_interval(0.0, 1.0, n, 1, entropy=3)
    f, g = (lambda t, y: -th * y), (lambda t, y: torch.full_like(y, s))
    fine = sdeint(f, y0, ts, bm, "euler", dt=2.0 ** -10, diffusion=g)[-1]
    steps = [2.0 ** -k for k in range(3, 7)]
    errors = [float((sdeint(f, y0, ts, bm, "euler", dt=h, diffusion=g)[-1] - fine).abs().mean()) for h in steps]
    assert abs(observed_order(errors, steps) - 1.0) < 0.15


def test_adjoint_gradient_close_to_backprop():
    lin = nn.Linear(2, 2).double()

    def drift(t, y):
        return -y + torch.tanh(lin(y))

    def diff(t, y):
        return 0.2 * torch.ones_like(y)

    y0 = torch.randn(5, 2, dtype=D64)
    ts = torch.tensor([0.0, 1.0], dtype=D64)
    bm = brownian_interval(0.0, 1.0, 5, 2, entropy=11)
    grads = []
    for adjoint in (False, True):
        sde = solvers.sde.SDE(drift, diff)
        sde.lin = lin  # register the parameters for the adjoint
        lin.zero_grad()
        out = sdeint(sde, y0, ts, bm, "euler", dt=2.0 ** -7, adjoint=adjoint)
        out[-1].pow(2).sum().backward()
        grads.append(lin.weight.grad.clone())
    torch.testing.assert_close(grads[1], grads[0], rtol=0.05, atol=1e-3)


def test_complex_field_is_refused():
    with pytest.raises(TypeError, match="complex hidden state"):
        StochasticRNN(nr.UnitaryField(1, 4), 2)
    with pytest.raises(TypeError, match="complex hidden state"):
        NoisyField(nr.UnitaryField(1, 4), nr.interpolate(torch.randn(2, 3, 1)))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(method="rk4"), ValueError, "unknown SDE method"),
    (dict(method="midpoint"), ValueError, "solves stratonovich"),
    (dict(dt=-1.0), ValueError, "dt must be a positive"),
    (dict(ts=torch.tensor([0.0, 0.0])), ValueError, "strictly increasing"),
    (dict(y0=torch.zeros(3)), ValueError, r"\(batch, state\)"),
])
def test_sdeint_bad_input(kwargs, error, match):
    args = dict(y0=torch.zeros(2, 3), ts=torch.tensor([0.0, 1.0]), method="euler", dt=0.1)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        sdeint(lambda t, y: -y, diffusion=lambda t, y: y, **args)


def test_bad_noise_and_per_sample_times():
    with pytest.raises(ValueError, match="unknown noise"):
        StochasticRNN(nr.CTRNNField(1, 3), 2, noise="pink")
    model = StochasticRNN(nr.CTRNNField(1, 3), 2).train()
    with pytest.raises(ValueError, match="shared sample times"):
        model(torch.randn(2, 4, 1), torch.cumsum(torch.rand(2, 4) + 0.1, 1))
    assert math.isfinite(float(model(torch.randn(2, 4, 1)).sum().detach()))


class _TorchsdeStyle(nn.Module):
    """A torchsde-style SDE module: parameters of its own, f and g methods, the type attributes."""

    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2).double()
        self.scale = nn.Parameter(torch.tensor([0.3, 0.2], dtype=D64))

    def f(self, t, y):
        return -y + torch.tanh(self.lin(y))

    def g(self, t, y):
        return self.scale * torch.cos(y)


def _grads(sde, y0, ts, bm, adjoint):
    sde.zero_grad()
    out = sdeint(sde, y0, ts, bm, "euler", dt=2.0 ** -7, adjoint=adjoint)
    out[-1].pow(2).sum().backward()
    return [None if p.grad is None else p.grad.clone() for p in sde.parameters()]


def test_adjoint_gives_a_torchsde_style_module_the_gradients_of_backprop():
    """Edge (issue 12): adjoint=True left the parameters of a torchsde-style module without gradient."""
    torch.manual_seed(0)
    sde = _TorchsdeStyle()
    y0 = torch.randn(5, 2, dtype=D64)
    ts = torch.tensor([0.0, 1.0], dtype=D64)
    bm = brownian_interval(0.0, 1.0, 5, 2, entropy=11)
    backprop = _grads(sde, y0, ts, bm, adjoint=False)
    adjoint = _grads(sde, y0, ts, bm, adjoint=True)
    assert all(g is not None for g in adjoint), "a parameter got no gradient"
    for a, b in zip(adjoint, backprop):
        assert float(b.abs().max()) > 1e-3  # the gradient is not trivially zero
        torch.testing.assert_close(a, b, rtol=0.05, atol=1e-3)


def test_adjoint_without_parameters_needs_adjoint_params():
    y0, ts = torch.zeros(2, 1, dtype=D64), torch.tensor([0.0, 1.0], dtype=D64)
    with pytest.raises(ValueError, match=r"adjoint_params=\(\)"):
        sdeint(lambda t, y: -y, y0, ts, dt=0.1, diffusion=lambda t, y: 0.1 * torch.ones_like(y), adjoint=True)
    out = sdeint(lambda t, y: -y, y0.requires_grad_(), ts, dt=0.1, diffusion=lambda t, y: 0.1 * torch.ones_like(y),
                 adjoint=True, adjoint_params=(), method="euler")
    out[-1].sum().backward()
    assert y0.grad is not None


def test_torchsde_calling_conventions():
    """Edge (issue 12): positional bm, ts as a list and torchsde's defaults (method, dt) work as in torchsde."""
    import torchsde

    torch.manual_seed(0)
    sde = _TorchsdeStyle()
    y0 = torch.randn(4, 2, dtype=D64)
    bm = brownian_interval(0.0, 0.1, 4, 2, entropy=5, method="srk")
    ours = sdeint(sde, y0, [0.0, 0.05, 0.1], bm)          # bm positional, ts a list, method and dt defaulted
    theirs = torchsde.sdeint(sde, y0, torch.tensor([0.0, 0.05, 0.1], dtype=D64), bm)
    assert ours.shape == theirs.shape == (3, 4, 2)
    # the same method (srk) and step (1e-3); only the grids' rounding differs (ours is knot-aligned,
    # torchsde's accumulates t0 + k dt and interpolates at 0.05): 2e-9 here, Euler-Maruyama 6e-4 away
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-7)
    euler = sdeint(sde, y0, [0.0, 0.05, 0.1], bm, "euler")
    assert float((euler - theirs).detach().abs().max()) > 1e-5
    by_keyword = sdeint(sde, y0, torch.tensor([0.0, 0.05, 0.1], dtype=D64), bm=bm, method="srk", dt=1e-3)
    torch.testing.assert_close(ours, by_keyword, rtol=0, atol=0)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(bm="euler"), TypeError, "pass the method by keyword"),
    (dict(adaptive=True), ValueError, "adaptive=True is a torchsde option"),
    (dict(logqp=True), ValueError, "logqp=True"),
    (dict(ts=[0.0, "1"]), ValueError, "list of floats"),
    (dict(ts=torch.tensor([0.0, float("nan")])), ValueError, "ts must be finite"),
    (dict(names={"drift": "f", "noise": "g"}), ValueError, "names takes the keys"),
])
def test_torchsde_options_we_do_not_offer_are_refused_by_name(kwargs, error, match):
    args = dict(y0=torch.zeros(2, 2, dtype=D64), ts=torch.tensor([0.0, 1.0], dtype=D64), dt=0.1)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        sdeint(_TorchsdeStyle(), **args)


def test_names_renames_the_drift_and_diffusion():
    class Renamed(nn.Module):
        noise_type, sde_type = "diagonal", "ito"

        def drift(self, t, y):
            return -y

        def noise(self, t, y):
            return torch.zeros_like(y)

    y0, ts = torch.ones(1, 1, dtype=D64), torch.tensor([0.0, 1.0], dtype=D64)
    out = sdeint(Renamed(), y0, ts, method="euler", dt=0.01, names={"drift": "drift", "diffusion": "noise"})
    torch.testing.assert_close(out[-1], torch.full((1, 1), 0.99 ** 100, dtype=D64), rtol=1e-12, atol=0)
