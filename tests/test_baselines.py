"""The irregular-series baselines: GRU-dt, GRU-D, ODE-RNN and Neural CDE (neuralode_rnn.baselines)."""

from __future__ import annotations

import pytest
import torch
import torchcde
from torch import nn

from neuralode_rnn.baselines import BASELINES, GRUD, ODERNN, GRUdt, NeuralCDE, build_baseline
from neuralode_rnn.models import last_observed_index
from neuralode_rnn.zoo import MODELS, build_model, uses_times

NAN = float("nan")
NAMES = sorted(BASELINES)


def irregular_batch(B: int = 3, T: int = 6, D: int = 2, seed: int = 0):
    """float64 values with missing entries and NaN padding, per-sample increasing times."""
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    values[0, 1, 0] = NAN
    values[1, 2, 1] = NAN
    values[1, 4:] = NAN  # sample 1 has 4 observations
    if B > 2:
        values[2, 5:] = NAN  # sample 2 has 5
    times = torch.cumsum(0.2 + torch.rand(B, T, generator=g, dtype=torch.float64), dim=1)
    return values, times


def carry_forward(values: torch.Tensor) -> torch.Tensor:
    """Causal carry-forward of missing entries, 0 before a channel's first observation, written out."""
    x = values.clone()
    B, T, D = x.shape
    for b in range(B):
        for k in range(T):
            for d in range(D):
                if torch.isnan(x[b, k, d]):
                    x[b, k, d] = x[b, k - 1, d] if k > 0 else 0.0
    return x


def is_cde(name: str) -> bool:
    """Neural CDE or a seed field in controlled form (both on the Neural CDE's path and solve)."""
    return issubclass(BASELINES[name][0], NeuralCDE)


def build(name: str, D: int = 2, H: int = 5, O: int = 3, **kw) -> nn.Module:
    torch.manual_seed(0)
    if is_cde(name):  # the random times' smallest gap would make the default rk4 step tiny (slow tests)
        kw.setdefault("step_size", 0.1)
    return build_baseline(name, D, O, H, **kw).double()


@pytest.mark.parametrize("name", NAMES)
def test_shapes_for_every_kind_of_times(name):
    model = build(name)
    values, times = irregular_batch()
    for t in (None, times[0], times):
        out = model(values, t)
        assert out.shape == (3, 3) and torch.isfinite(out).all()
    assert model.trajectory(values, times).shape == (3, 6, 5)


@pytest.mark.parametrize("name", NAMES)
def test_padding_does_not_change_a_samples_output(name):
    if is_cde(name):
        pytest.skip("the Neural CDE's (and the controlled fields') natural spline is global over the batch's time grid (the reference keeps "
                    "every series on one full grid): its output depends on the grid, see test_ncde_*")
    model = build(name)
    values, times = irregular_batch()
    batch = model(values, times)
    alone = model(values[1:2, :4], times[1:2, :4])  # sample 1 without its padding
    torch.testing.assert_close(batch[1:2], alone, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_the_times_matter(name):
    model = build(name)
    values, times = irregular_batch()
    values = values.nan_to_num(0.0)  # so gru-d's decays also see a missing entry only through delta
    values[:, 2] = NAN
    assert not torch.allclose(model(values, times), model(values, 2.0 * times))


@pytest.mark.parametrize("name", NAMES)
def test_zoo_builds_and_lists_them(name):
    assert MODELS[name].kind == "baseline" and MODELS[name].eps == 1.0
    model = build_model(name, 4, 2, 8)
    assert uses_times(model)
    assert model(torch.randn(2, 5, 4), torch.arange(1.0, 6.0)).shape == (2, 2)


@pytest.mark.parametrize("name", NAMES)
def test_channel_check(name):
    with pytest.raises(ValueError, match="values must have 2 channels"):
        build(name)(torch.randn(2, 4, 3, dtype=torch.float64))


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name):
    model = build(name)
    values, times = irregular_batch()
    model(values, times).pow(2).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


# ------------------------------------------------------------------------------------------ GRU-dt
def test_gru_dt_reads_the_gaps():
    model = build("gru-dt")
    values, times = irregular_batch()
    x = carry_forward(values)
    gaps = torch.cat([torch.zeros(3, 1, dtype=torch.float64), times.diff(dim=1)], 1)
    states, _ = model.rnn(torch.cat([x, gaps.unsqueeze(-1)], -1))
    expected = model.readout(states[torch.arange(3), last_observed_index(values)])
    torch.testing.assert_close(model(values, times), expected)
    assert model.rnn.input_size == 3


# ------------------------------------------------------------------------------------------- GRU-D
def test_gru_d_follows_the_papers_equations():
    model = build("gru-d", H=4)
    with torch.no_grad():
        model.x_mean.copy_(torch.tensor([0.3, -0.2]))
        model.decay_x_bias.copy_(torch.tensor([0.1, -0.05]))
    values, times = irregular_batch()
    B, T, D = values.shape
    H = 4
    P = {n: p.detach() for n, p in model.named_parameters()}
    W_all, b_all = P["input_gates.weight"], P["input_gates.bias"]
    V_all, U_rz, U = P["mask_gates.weight"], P["hidden_gates.weight"], P["hidden_candidate.weight"]
    mean = model.x_mean
    h = torch.zeros(B, H, dtype=torch.float64)
    delta = torch.zeros(B, D, dtype=torch.float64)
    x_last = mean.expand(B, D).clone()
    m_prev = torch.zeros(B, D, dtype=torch.float64)
    expected = []
    for k in range(T):
        m = (~torch.isnan(values[:, k])).double()
        if k > 0:  # Che et al. eq. 2
            gap = (times[:, k] - times[:, k - 1]).unsqueeze(1)
            delta = torch.where(m_prev.bool(), gap, gap + delta)
        x = values[:, k].nan_to_num(0.0)
        gamma_x = torch.exp(-torch.clamp(P["decay_x_weight"] * delta + P["decay_x_bias"], min=0))
        gamma_h = torch.exp(-torch.clamp(delta @ P["decay_h.weight"].T + P["decay_h.bias"], min=0))
        x_hat = m * x + (1 - m) * (gamma_x * x_last + (1 - gamma_x) * mean)
        h_hat = gamma_h * h
        W_r, W_z, W = W_all[:H], W_all[H:2 * H], W_all[2 * H:]
        b_r, b_z, b = b_all[:H], b_all[H:2 * H], b_all[2 * H:]
        V_r, V_z, V = V_all[:H], V_all[H:2 * H], V_all[2 * H:]
        U_r, U_z = U_rz[:H], U_rz[H:]
        r = torch.sigmoid(x_hat @ W_r.T + h_hat @ U_r.T + m @ V_r.T + b_r)
        z = torch.sigmoid(x_hat @ W_z.T + h_hat @ U_z.T + m @ V_z.T + b_z)
        candidate = torch.tanh(x_hat @ W.T + (r * h_hat) @ U.T + m @ V.T + b)
        h = (1 - z) * h_hat + z * candidate
        expected.append(h)
        x_last = torch.where(m.bool(), x, x_last)
        m_prev = m
    torch.testing.assert_close(model.trajectory(values, times), torch.stack(expected, 1))


def test_gru_d_fit_mean():
    model = GRUD(2, 3, 2)
    model.fit_mean(torch.tensor([[[1.0, NAN], [3.0, 4.0]]]))
    torch.testing.assert_close(model.x_mean, torch.tensor([2.0, 4.0]))


# ----------------------------------------------------------------------------------------- ODE-RNN
def test_ode_rnn_evolve_matches_a_written_out_rk4():
    model = build("ode-rnn", method="rk4", step_size=0.1)
    f = model.dynamics
    h = torch.randn(3, 5, dtype=torch.float64)
    gaps = torch.tensor([0.25, 0.05, 0.31], dtype=torch.float64)
    n = 4  # ceil(0.31 / 0.1) steps of gap / 4 for every sample
    y = h.clone()
    dt = (gaps / n).unsqueeze(1)
    with torch.no_grad():
        for _ in range(n):
            k1 = f(y)
            k2 = f(y + dt / 2 * k1)
            k3 = f(y + dt / 2 * k2)
            k4 = f(y + dt * k3)
            y = y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        torch.testing.assert_close(model.evolve(h, gaps), y)


def test_ode_rnn_euler_recurrence_written_out():
    model = build("ode-rnn")  # euler, one step per gap
    values, times = irregular_batch()
    x = carry_forward(values)
    h = torch.zeros(3, 5, dtype=torch.float64)
    expected = []
    with torch.no_grad():
        for k in range(6):
            if k > 0:
                h = h + (times[:, k] - times[:, k - 1]).unsqueeze(1) * model.dynamics(h)
            seen = ~torch.isnan(values[:, k]).all(-1, keepdim=True)  # the reference's masked update
            h = torch.where(seen, model.cell(x[:, k], h), h)
            expected.append(h)
        torch.testing.assert_close(model.trajectory(values, times), torch.stack(expected, 1))


def test_ode_rnn_adaptive_solve_is_accurate():
    exact = build("ode-rnn", method="rk4", step_size=0.001)
    adaptive = build("ode-rnn", method="dopri5", rtol=1e-9, atol=1e-9)
    h = torch.randn(2, 5, dtype=torch.float64)
    gaps = torch.tensor([0.5, 2.0], dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(adaptive.evolve(h, gaps), exact.evolve(h, gaps), rtol=1e-7, atol=1e-7)
    assert adaptive.nfe > 0


def test_ode_rnn_checks():
    with pytest.raises(ValueError, match="unknown method 'rk5'"):
        ODERNN(2, 3, 2, method="rk5")
    with pytest.raises(ValueError, match="step_size must be None or a positive"):
        ODERNN(2, 3, 2, step_size=0.0)


# ------------------------------------------------------------------------------------- Neural CDE
def test_ncde_coefficients_fill_missing_values_as_torchcde_does():
    values, times = irregular_batch()
    for interpolation, coeffs in (("natural", torchcde.natural_cubic_coeffs), ("linear", torchcde.linear_interpolation_coeffs),
                                  ("cubic", torchcde.hermite_cubic_coefficients_with_backward_differences)):
        model = build("ncde", interpolation=interpolation)
        x, grid, _ = model.on_grid(values, times)  # [time, values] with NaN on the batch's time grid
        assert torch.isnan(x).any()
        torch.testing.assert_close(model.coefficients(x, grid), coeffs(x, grid))  # torchcde's own NaN path


def test_ncde_grid_is_the_union_of_the_batchs_observation_times():
    model = build("ncde")
    values, times = irregular_batch()
    x, grid, last = model.on_grid(values, times)
    seen = ~torch.isnan(values).all(-1)
    torch.testing.assert_close(grid, torch.unique(times[seen]))
    for b in range(3):
        k = torch.searchsorted(grid, times[b][seen[b]])
        torch.testing.assert_close(x[b, k, 0], times[b][seen[b]])  # the time channel at the sample's own times
        torch.testing.assert_close(x[b, k, 1:], values[b][seen[b]], equal_nan=True)
        assert torch.isnan(x[b, :, 0]).sum() == grid.numel() - int(seen[b].sum())  # NaN at the others' times
        assert grid[last[b]] == times[b][seen[b]][-1]


@pytest.mark.parametrize("interpolation", ["natural", "cubic", "linear"])
def test_ncde_equals_torchcde_cdeint_on_the_same_coefficients(interpolation):
    model = build("ncde", interpolation=interpolation, step_size=None)
    values, times = irregular_batch(T=4)
    x, grid, last = model.on_grid(values, times)
    coeffs = model.coefficients(x, grid)
    X = torchcde.LinearInterpolation(coeffs, grid) if interpolation == "linear" else torchcde.CubicSpline(coeffs, grid)
    z0 = model.initial(X.evaluate(grid[0]))
    step = (grid[1:] - grid[:-1]).min().item()  # the reference's rk4 step: the smallest gap
    z = torchcde.cdeint(X=X, func=model.func, z0=z0, t=grid, method="rk4", adjoint=False, options={"step_size": step})
    expected = model.readout(z[torch.arange(3), last])
    torch.testing.assert_close(model(values, times), expected)
    # the time channel is the first path channel: the real times, held after the last observation
    torch.testing.assert_close(X.evaluate(grid[last[1]])[1, 0], times[1, 3])
    torch.testing.assert_close(X.evaluate(grid[-1])[1, 0], times[1, 3])


class ReferenceFinalTanh(nn.Module):
    """patrick-kidger/NeuralCDE experiments/models/vector_fields.py FinalTanh, written out."""

    def __init__(self, input_channels, hidden_channels, hidden_hidden_channels, num_hidden_layers):
        super().__init__()
        self.input_channels, self.hidden_channels = input_channels, hidden_channels
        self.linear_in = nn.Linear(hidden_channels, hidden_hidden_channels)
        self.linears = nn.ModuleList(nn.Linear(hidden_hidden_channels, hidden_hidden_channels)
                                     for _ in range(num_hidden_layers - 1))
        self.linear_out = nn.Linear(hidden_hidden_channels, input_channels * hidden_channels)

    def forward(self, z):
        z = self.linear_in(z)
        z = z.relu()
        for linear in self.linears:
            z = linear(z)
            z = z.relu()
        z = self.linear_out(z).view(*z.shape[:-1], self.hidden_channels, self.input_channels)
        z = z.tanh()
        return z


def test_ncde_defaults_and_equations_are_the_references():
    """Kidger et al.'s UEA configuration (experiments/uea.py, common.py, models/metamodel.py): FinalTanh
    with 3 hidden layers of 32, a natural cubic spline of [time, x] over the observation times,
    torchdiffeq rk4 with step = the smallest gap, penalty 0.03 x sum of the field's parameter norms."""
    import inspect

    defaults = {k: p.default for k, p in inspect.signature(NeuralCDE).parameters.items()}
    assert (defaults["hidden_hidden_size"], defaults["num_layers"], defaults["interpolation"], defaults["method"],
            defaults["step_size"]) == (32, 3, "natural", "rk4", None)
    assert NeuralCDE.WEIGHT_PENALTY == 0.03
    torch.manual_seed(1)
    D, H = 2, 4
    model = NeuralCDE(D, H, 3).double()
    assert len(list(model.func.parameters())) == 2 * 4  # linear_in, 2 linears, linear_out
    reference = ReferenceFinalTanh(D + 1, H, 32, 3).double()
    reference.load_state_dict(model.func.state_dict())
    z = torch.randn(5, H, dtype=torch.float64)
    torch.testing.assert_close(model.func(None, z), reference(z), rtol=0, atol=1e-6)
    # the whole model on a shared irregular grid, as the reference's NeuralCDE.forward computes it
    times = torch.tensor([0.0, 1.0, 3.0, 4.0, 6.0, 7.0], dtype=torch.float64)
    values = torch.randn(3, 6, D, dtype=torch.float64)
    X = torch.cat([times.view(1, 6, 1).expand(3, 6, 1), values], -1)  # time first, as preprocess_data appends it
    spline = torchcde.CubicSpline(torchcde.natural_cubic_coeffs(X, times), times)
    z0 = model.initial(spline.evaluate(times[0]))
    zT = torchcde.cdeint(X=spline, func=lambda t, z: reference(z), z0=z0, t=times[[0, -1]], method="rk4",
                         options={"step_size": 1.0})[:, -1]
    torch.testing.assert_close(model(values, times), model.readout(zT), rtol=0, atol=1e-6)
    # and a wrong field (no final tanh) is caught at that tolerance
    h = model.func.linear_in(z).relu()
    for linear in model.func.linears:
        h = linear(h).relu()
    raw = model.func.linear_out(h)
    assert not torch.allclose(raw.tanh(), raw, atol=1e-6)


def test_ncde_training_defaults_are_the_references():
    """`train --model ncde` with nothing else trains as the reference's UEA runs (experiments/uea.py: batch
    32, 1000 epochs at most, 32 hidden channels; common.py: the penalty, ReduceLROnPlateau on
    the validation accuracy, 50 epochs without progress, the best validation weights; datasets/common.py:
    70/15/15, so validation is 15/85 of the non-test samples), but for the learning rate: 0.003 (the
    reference's 0.001 scored lower on validation, docs/PRESETS.md); the other models keep theirs."""
    from neuralode_rnn.training import TrainConfig

    c = TrainConfig(task="uea:JapaneseVowels", drop=0.5, model="ncde").resolved()
    assert (c.hidden_size, c.lr, c.batch_size, c.epochs, c.patience, c.schedule, c.plateau_factor,
            c.plateau_patience, c.validate_every, c.weight_penalty, c.tie_break, c.clip, c.optimizer, c.dtype) == \
        (32, 0.003, 32, 1000, 50, "plateau", 0.1, 1, 10, 0.03, "none", None, "adam", "float32")
    assert c.validation == pytest.approx(0.15 / 0.85, rel=1e-12)
    assert (c.method, c.interpolation, c.step_size, c.field_width, c.field_depth, c.inputs) == \
        ("rk4", "natural", None, None, None, None)  # None: the class's 3 x 32, step = smallest gap; no intensity
    assert c.sources["lr"].startswith("preset:reference ncde")
    # what chooses on a validation split goes with it: --validation 0 trains the task's epochs, step schedule
    plain = TrainConfig(task="uea:JapaneseVowels", model="ncde", validation=0.0).resolved()
    assert (plain.patience, plain.schedule, plain.plateau_patience, plain.epochs, plain.lr) == (None, "step", 10, 50, 0.003)
    # a caller who sets the validation split sets the protocol: the preset's patience, schedule, readings
    # come with its own split only (so the studies' commands, which set every flag, keep their meaning)
    own = TrainConfig(task="uea:JapaneseVowels", model="ncde", validation=0.25).resolved()
    assert (own.validation, own.schedule, own.plateau_patience, own.patience, own.validate_every, own.epochs) == \
        (0.25, "step", 10, None, 1, 50)
    own = TrainConfig(task="uea:JapaneseVowels", model="ncde", validation=0.25, patience=5).resolved()
    assert (own.patience, own.epochs) == (5, 1000)  # the preset's epochs are a cap for early stopping
    gru = TrainConfig(task="uea:JapaneseVowels", drop=0.5, model="gru").resolved()
    assert (gru.validation, gru.patience, gru.schedule, gru.hidden_size, gru.lr, gru.epochs) == (0.0, None, "step", 64, 0.003, 50)


def test_ncde_gradient_matches_finite_differences():
    model = build("ncde", H=3)
    values, times = irregular_batch(B=2, T=4)
    p = model.initial.bias
    loss = model(values, times).pow(2).sum()
    (grad,) = torch.autograd.grad(loss, p)
    eps = 1e-6
    for i in range(p.numel()):
        with torch.no_grad():
            p[i] += eps
            up = model(values, times).pow(2).sum()
            p[i] -= 2 * eps
            down = model(values, times).pow(2).sum()
            p[i] += eps
        assert grad[i].item() == pytest.approx(((up - down) / (2 * eps)).item(), rel=1e-5, abs=1e-8)


def test_ncde_adaptive_and_adjoint_agree_with_fine_backprop():
    values, times = irregular_batch(B=2, T=4)
    times = (times * 10).round() / 10  # knots on the fixed-step grid (gaps >= 0.2 stay increasing)
    fine = build("ncde", method="rk4", step_size=0.01)
    adaptive = build("ncde", method="dopri5", rtol=1e-8, atol=1e-8)
    with torch.no_grad():
        # rk4 with steps of 0.01 (gaps 0.2-1.2) is accurate to ~1e-5 here (the path's curvature jumps at knots off its grid)
        torch.testing.assert_close(adaptive(values, times), fine(values, times), rtol=1e-4, atol=1e-5)
    adjoint = build("ncde", method="rk4", step_size=0.01, gradient="adjoint")
    fine(values, times).sum().backward()
    adjoint(values, times).sum().backward()
    # torchcde's adjoint solves backward on the same grid: gradients agree to the solve's error (~1e-6)
    for name in ("initial.weight", "func.linear_in.weight"):
        a, r = dict(adjoint.named_parameters())[name].grad, dict(fine.named_parameters())[name].grad
        assert ((a - r).norm() / r.norm()).item() < 1e-4, name


def test_ncde_checks():
    with pytest.raises(ValueError, match="interpolation must be one of cubic, linear, natural"):
        NeuralCDE(2, 3, 2, interpolation="hold")
    with pytest.raises(ValueError, match="not a torchdiffeq method"):
        NeuralCDE(2, 3, 2, method="ralston")
    with pytest.raises(ValueError, match="held .* path"):
        build_model("ncde", 2, 2, 3, interpolation="hold")
    with pytest.raises(ValueError, match="at least two time steps"):
        NeuralCDE(2, 3, 2).trajectory(torch.randn(1, 1, 2))


def test_gru_dt_is_a_plain_gru_on_regular_times():
    model = GRUdt(2, 4, 3)
    values = torch.randn(2, 5, 2)
    gaps = torch.tensor([0.0, 1, 1, 1, 1]).view(1, 5, 1).expand(2, 5, 1)
    states, _ = model.rnn(torch.cat([values, gaps], -1))
    torch.testing.assert_close(model(values), model.readout(states[:, -1]))


@pytest.mark.parametrize("cls", [GRUdt, ODERNN])
def test_a_non_finite_or_mistyped_h0_is_refused(cls):
    """Issue 16 items 5, 9: an h0 holding NaN (or float64 for a float32 model) named, not a NaN output
    or "mat1 and mat2 must have the same dtype"."""
    model = cls(2, 4, 3)
    values = torch.randn(2, 5, 2)
    h0 = torch.zeros(2, 4)
    h0[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"h0 must be finite; got h0\[1, 2\] = nan"):
        model.trajectory(values, None, h0)
    with pytest.raises(TypeError, match=r"h0 must have the model's dtype torch.float32; got torch.float64"):
        model.trajectory(values, None, torch.zeros(2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"h0 must have shape \(batch, hidden_size\) = \(2, 4\); got \(4,\)"):
        model.trajectory(values, None, torch.zeros(4))
