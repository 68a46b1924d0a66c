"""The seed fields in controlled (CDE) form (neuralode_rnn.baselines.controlled): the equations written
out against the model, the increment property that makes them time-aware, gradients against finite
differences, and the zoo/CLI names."""

from __future__ import annotations

import pytest
import torch
import torchcde

import solvers
from neuralode_rnn.baselines import BASELINES, ControlledRNN, build_baseline
from neuralode_rnn.baselines.controlled import CONTROLLED, ControlledField
from neuralode_rnn.training import TrainConfig
from neuralode_rnn.zoo import MODELS, build_model

NAMES = sorted(CONTROLLED)


def build(name: str, D: int = 2, H: int = 4, O: int = 3, seed: int = 0, **kw) -> ControlledRNN:
    torch.manual_seed(seed)
    model = build_baseline(name, D, O, H, **kw).double()
    with torch.no_grad():  # non-zero biases everywhere (some fields start them at 0)
        model.field.input_map.bias.normal_(0.0, 0.5)
    return model


def batch(B: int = 3, T: int = 6, D: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    times = torch.cumsum(0.3 + torch.rand(T, generator=g, dtype=torch.float64), 0)
    return values, times


def written_out_rhs(name: str, field, z: torch.Tensor, level: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
    """dz/dt of the module docstring's table, from the field's matrices, for the control's level X(t)
    and rate dX/dt (B, C) (rate[:, 0] = 1: the time channel)."""
    U, b = field.input_map.weight, field.input_map.bias
    n = field.hidden_size
    if name == "lipschitz-cde":
        return z @ field.A.T + torch.tanh(z @ field.W.T + b) + rate @ U.T
    if name == "ctrnn-cde":
        return -z + torch.tanh(z @ field.M.T + b) + rate @ U.T
    Wa = field.M - field.M.T - field.gamma * torch.eye(n, dtype=z.dtype)
    if name == "antisymmetric-cde":
        return torch.tanh(z @ Wa.T + b) + rate @ U.T
    gate = torch.sigmoid(z @ Wa.T + level @ U[n:].T + b[n:])
    return gate * (torch.tanh(z @ Wa.T + b[:n]) + rate @ U[:n].T)


@pytest.mark.parametrize("name", NAMES)
def test_the_model_solves_the_written_out_equation(name):
    """On a linear path dX/dt is constant on each gap; solving the written-out dz/dt gap by gap (dopri5,
    tight tolerances, independent of torchcde) gives the model's final state and output."""
    model = build(name, interpolation="linear", method="dopri5", rtol=1e-10, atol=1e-10)
    values, times = batch()
    x, grid, last = model.on_grid(values, times)
    X = torch.cat([times.view(1, -1, 1).expand(3, -1, 1), values], -1)
    z = model.initial(X[:, 0])
    for k in range(len(times) - 1):
        dt = times[k + 1] - times[k]
        rate = (X[:, k + 1] - X[:, k]) / dt
        t0 = times[k]

        def f(t, zz, k=k, rate=rate, t0=t0):
            level = X[:, k] + (t - t0) * rate
            return written_out_rhs(name, model.field, zz, level, rate)

        z = solvers.odeint(f, z, times[k:k + 2], method="dopri5", rtol=1e-11, atol=1e-11)[-1]
    torch.testing.assert_close(model.trajectory(values, times)[:, -1], z, rtol=1e-7, atol=1e-8)
    torch.testing.assert_close(model(values, times), model.readout(z), rtol=1e-7, atol=1e-8)
    # a wrong sign on the control is caught at this tolerance
    with torch.no_grad():
        model.field.input_map.weight[:, 1:].neg_()
    assert not torch.allclose(model.trajectory(values, times)[:, -1], z, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_prod_is_the_matrix_form_times_the_rate(name):
    model = build(name)
    values, times = batch()
    x, grid, _ = model.on_grid(values, times)
    X = model.control(model.coefficients(x, grid), grid)
    func = model.driving(X)
    z = torch.randn(3, 4, dtype=torch.float64)
    t = (grid[1] + grid[2]) / 2
    rate = X.derivative(t)
    torch.testing.assert_close(func.prod(t, z, rate), (func(t, z) @ rate.unsqueeze(-1)).squeeze(-1))


def test_the_input_enters_by_its_increments_whatever_the_times():
    """With the drift switched off (M = 0, gamma = 0, b = 0: tanh(W_a z + b) = 0) and no weight on the time
    channel, dz = V dX: the final state is z(t_1) + V (x_T - x_1) for any sampling times (natural spline,
    dopri5 stopping at the knots); the held seed field reads the same samples differently when the times
    change."""
    model = build("antisymmetric-cde", method="dopri5", rtol=1e-11, atol=1e-11)
    field = model.field
    with torch.no_grad():
        field.M.zero_()
        field.input_map.bias.zero_()
        field.input_map.weight[:, 0].zero_()
    field.gamma = 0.0
    values, times = batch(T=7)
    warped = times[0] + (times - times[0]) ** 1.7  # another increasing sampling of the same values
    V = field.input_map.weight[:, 1:]
    X1 = torch.cat([times[0].expand(3, 1), values[:, 0]], -1)
    expected = model.initial(X1) + (values[:, -1] - values[:, 0]) @ V.T
    for t in (times, warped):
        torch.testing.assert_close(model.trajectory(values, t)[:, -1], expected, rtol=1e-9, atol=1e-9)
    seed = build_model("antisymmetric", 2, 3, 4).double()
    assert not torch.allclose(seed(values, times), seed(values, warped), atol=1e-6)


def test_the_drift_acts_for_the_elapsed_time():
    """With the control off (U = 0) the state follows the seed field's autonomous flow z' = f(z, b) for
    the span of the times: stretching the times stretches the flow."""
    model = build("lipschitz-cde")
    with torch.no_grad():
        model.field.input_map.weight.zero_()
    values, times = batch()
    z0 = model.initial(torch.cat([times[0].expand(3, 1), values[:, 0]], -1))
    field = model.field
    bias = field.input_map.bias
    for scale in (1.0, 2.5):
        t = times[0] + scale * (times - times[0])
        flow = solvers.odeint(lambda s, z: field.rhs(z, bias), z0, t[[0, -1]], method="dopri5", rtol=1e-11,
                              atol=1e-11)[-1]
        got = build("lipschitz-cde", method="dopri5", rtol=1e-10, atol=1e-10)
        got.load_state_dict(model.state_dict())
        torch.testing.assert_close(got.trajectory(values, t)[:, -1], flow, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("name", ["lipschitz-cde", "antisymmetric-gated-cde"])
def test_gradients_match_finite_differences(name):
    model = build(name, H=3, step_size=0.2)
    values, times = batch(B=2, T=4)
    for p in (model.field.input_map.weight, next(iter(model.field.parameters()))):
        def loss(q, p=p):
            saved = p.detach().clone()
            with torch.no_grad():
                p.copy_(q)
            try:
                return model(values, times).square().sum()
            finally:
                with torch.no_grad():
                    p.copy_(saved)

        out = model(values, times).square().sum()
        (g,) = torch.autograd.grad(out, p)
        direction = torch.randn_like(p)
        h = 1e-6
        fd = (loss(p.detach() + h * direction) - loss(p.detach() - h * direction)) / (2 * h)
        torch.testing.assert_close((g * direction).sum(), fd.detach(), rtol=1e-6, atol=1e-8)


def test_names_kinds_and_errors():
    for name in NAMES:
        assert name in MODELS and MODELS[name].kind == "baseline" and name in BASELINES
        assert CONTROLLED[name].FAMILY == name[: -len("-cde")]
        assert CONTROLLED[name].WEIGHT_PENALTY == 0.0
    with pytest.raises(ValueError, match="'lipschitz-cde' is a CDE, driven by dX"):
        build_model("lipschitz-cde", 2, 2, 3, interpolation="hold")
    with pytest.raises(TypeError, match="family's subclass"):
        ControlledRNN(2, 3, 2)
    model = build("antisymmetric-gated-cde")
    with pytest.raises(ValueError, match="bind it to a path"):
        ControlledField(model.field).prod(0.0, torch.zeros(1, 4, dtype=torch.float64),
                                          torch.ones(1, 3, dtype=torch.float64))
    c = TrainConfig(task="digits", model="lipschitz-cde").resolved()
    assert c.method == "rk4" and c.weight_penalty == 0.0


def test_natural_spline_path_is_torchcdes():
    """The control is torchcde's natural cubic spline of [time, x] (the Neural CDE's path)."""
    model = build("ctrnn-cde")
    values, times = batch()
    x, grid, _ = model.on_grid(values, times)
    X = model.control(model.coefficients(x, grid), grid)
    ref = torchcde.CubicSpline(torchcde.natural_cubic_coeffs(x, grid), grid)
    t = (grid[2] + grid[3]) / 2
    torch.testing.assert_close(X.evaluate(t), ref.evaluate(t))
