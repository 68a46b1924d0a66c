"""Missing values per channel (``--drop-channels``): what GRU-D, the time-aware inputs and every
baseline see, and steps with every channel missing handled as each model's reference does."""

from __future__ import annotations

import pytest
import torch
import torchcde

from neuralode_rnn.baselines import GRUD, ODERNN, GRUdt, NeuralCDE
from neuralode_rnn.baselines.spline import natural_cubic_coeffs
from neuralode_rnn.data import drop_channels, load_task
from neuralode_rnn.inputs import time_features, time_since_observation, trailing_padding

NAN = float("nan")


@pytest.fixture
def batch():
    """float64, 3 samples x 7 steps x 3 channels: partial steps, a step with every channel missing
    inside each sample (step 3), and sample 1 padded after step 5."""
    g = torch.Generator().manual_seed(0)
    values = torch.randn(3, 7, 3, generator=g, dtype=torch.float64)
    values[0, 1, 0] = values[1, 2, 1:] = values[2, 4, 2] = values[2, 5, :2] = NAN
    values[:, 3] = NAN  # every channel missing, before each sample's last observation
    values[1, 6:] = NAN  # padding of sample 1
    times = torch.cumsum(0.3 + torch.rand(3, 7, generator=g, dtype=torch.float64), dim=1)
    return values, times


def test_trailing_padding_is_only_after_the_last_observation(batch):
    values, _ = batch
    pad = trailing_padding(values)
    assert not pad[:, 3].any()  # the empty step inside a sample is not padding
    assert pad[1, 6] and not pad[0].any() and not pad[2].any()


def test_gru_d_sees_the_mask_and_decays_per_channel():
    data = drop_channels(load_task("uea:BasicMotions", n_train=6, n_test=2), 0.5, seed=0)
    values, times = data.train.values[:, :20].double(), data.train.resolved_times()[:, :20]
    model = GRUD(6, 4, 4).double().fit_mean(values)
    x_hat, m, _ = model.imputed(values, times)
    observed = ~torch.isnan(values)
    assert torch.equal(m.bool(), observed)  # one mask entry per channel
    partial = observed.any(-1) & ~observed.all(-1)
    assert partial.sum() > 20  # most steps keep part of their channels
    torch.testing.assert_close(x_hat[observed], values[observed])
    # a missing value decays from the channel's last observation towards its mean, by its own delta
    delta = time_since_observation(values, times)
    b, k, d = (int(i) for i in torch.nonzero(~observed[:, 1:])[0])
    k += 1
    last = max(j for j in range(k) if observed[b, j, d]) if observed[b, :k, d].any() else None
    gamma = torch.exp(-torch.relu(delta[b, k, d] * model.decay_x_weight[d] + model.decay_x_bias[d]))
    start = values[b, last, d] if last is not None else model.x_mean[d]
    torch.testing.assert_close(x_hat[b, k, d], gamma * start + (1 - gamma) * model.x_mean[d])
    assert delta[b, k, d] == times[b, k] - times[b, last if last is not None else 0]


def test_the_mask_and_intensity_inputs_see_values_missing_per_channel(batch):
    values, times = batch
    out = time_features(values, times, "time,intensity,mask", time_scale=1.0, count_scale=1.0)
    D = 3
    mask, counts = out[..., 1 + D + D:], out[..., 1 + D:1 + 2 * D]
    real = ~trailing_padding(values)
    torch.testing.assert_close(mask[real], (~torch.isnan(values))[real].double())
    torch.testing.assert_close(counts[real], (~torch.isnan(values)).double().cumsum(1)[real])
    # the step with every value missing: its time, the counts so far, a zero mask (Kidger et al.'s time and
    # intensity channels are observed at every step of the grid)
    torch.testing.assert_close(out[:, 3, D], times[:, 3])
    torch.testing.assert_close(counts[:, 3], counts[:, 2])
    assert (mask[:, 3] == 0).all()
    assert torch.isnan(out[1, 6]).all()  # padding stays unobserved: the readout step is unchanged


def test_gru_d_steps_through_a_step_with_every_channel_missing(batch):
    """Che et al.'s GRU-D runs on the full grid: a step with m = 0 everywhere is an update with decayed
    inputs and decayed state, and the next step's delta counts the time since the last observation."""
    values, times = batch
    model = GRUD(3, 5, 2).double().fit_mean(values)
    states = model.trajectory(values, times)
    assert (states[:, 3] - states[:, 2]).abs().amax(-1).min() > 1e-6  # the state moved at the empty step
    delta = time_since_observation(values, times)
    torch.testing.assert_close(delta[0, 4, 1], times[0, 4] - times[0, 2])  # across the empty step
    # it is an update, not a skipped step: removing the step changes the output
    keep = [0, 1, 2, 4, 5, 6]
    assert (model(values, times) - model(values[:, keep], times[:, keep])).abs().max() > 1e-6


def test_gru_dt_steps_through_it_with_held_values_and_the_gap(batch):
    values, times = batch
    model = GRUdt(3, 5, 2).double()
    x = model.step_inputs(values, times)
    torch.testing.assert_close(x[:, 3, :3], x[:, 2, :3])  # values carried forward
    torch.testing.assert_close(x[:, 3, 3], times[:, 3] - times[:, 2])
    states = model.trajectory(values, times)
    assert (states[:, 3] - states[:, 2]).abs().amax(-1).min() > 1e-6


@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_ode_rnn_only_evolves_at_a_step_with_every_channel_missing(batch, method):
    """Rubanova et al.'s masked update (latent_ode ``GRU_unit``: new_y = mask * new_y + (1 - mask) * y):
    the ODE carries the state across the step, the GRU does not read it."""
    values, times = batch
    model = ODERNN(3, 5, 2, method=method).double()
    states = model.trajectory(values, times)
    with torch.no_grad():
        evolved = model.evolve(states[:, 2], times[:, 3] - times[:, 2])
        torch.testing.assert_close(states[:, 3], evolved)
        # at a step with part of its channels the GRU does read it
        after = model.evolve(states[:, 1], times[:, 2] - times[:, 1])
        assert (states[1, 2] - after[1]).abs().max() > 1e-6


def test_ncde_keeps_a_step_with_every_channel_missing_as_a_knot(batch):
    """Kidger et al. keep every series on its full grid with the time channel observed at every step;
    the natural spline fills the values through each channel's observations (torchcde's rule)."""
    values, times = batch
    model = NeuralCDE(3, 4, 2).double()
    shared = times[0].expand(3, -1)  # one grid for the batch, so the knots are the steps themselves
    x, grid, last = model.on_grid(values, shared)
    torch.testing.assert_close(grid, times[0])  # the empty step's time is on the grid
    torch.testing.assert_close(x[:, 3, 0], grid[3].expand(3))  # its time channel is observed
    assert torch.isnan(x[:, 3, 1:]).all()
    assert torch.isnan(x[1, 6]).all() and last.tolist() == [6, 5, 6]  # padding: not observed, not read
    torch.testing.assert_close(model.coefficients(x, grid), torchcde.natural_cubic_coeffs(x, grid))


@pytest.mark.parametrize("shape, p", [((3, 7, 2), 0.5), ((8, 29, 12), 0.7), ((5, 10, 3), 0.3), ((4, 2, 2), 0.5),
                                      ((6, 12, 4), 0.9)])
def test_vectorised_natural_spline_equals_torchcdes_with_missing_values(shape, p):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    x[torch.rand(*shape, generator=g) < p] = NAN
    x[0, :, 0] = NAN  # a channel never observed
    x[-1, 0, :] = NAN  # leading and trailing gaps
    x[-1, -1, :] = NAN
    x[-1, 0, -1] = 1.5
    t = torch.cumsum(0.1 + torch.rand(shape[1], generator=g, dtype=torch.float64), 0)
    ours = natural_cubic_coeffs(x, t)
    assert not torch.isnan(ours).any()
    torch.testing.assert_close(ours, torchcde.natural_cubic_coeffs(x, t), rtol=1e-9, atol=1e-9)


def test_vectorised_natural_spline_float32_and_no_missing_values():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 9, 3, generator=g)
    t = torch.cumsum(0.2 + torch.rand(9, generator=g), 0)
    torch.testing.assert_close(natural_cubic_coeffs(x, t), torchcde.natural_cubic_coeffs(x, t), rtol=1e-4, atol=1e-4)


def test_drop_channels_is_recorded_in_config_json_and_repeats_the_same_data(tmp_path):
    import json

    from neuralode_rnn.training import TrainConfig, load_data, train

    config = TrainConfig(task="uea:BasicMotions", model="gru", drop_channels=0.3, hidden_size=4, epochs=1,
                         batch_size=4, task_options={"n_train": 8, "n_test": 4}, quiet=True, threads=1,
                         run_dir=str(tmp_path / "run"))
    train(config)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["drop_channels"] == 0.3 and stored["drop"] == 0.0
    again = load_data(TrainConfig(**{k: stored[k] for k in ("task", "model", "drop_channels", "task_options")}))
    first = load_data(config.resolved())
    assert torch.equal(torch.isnan(again.train.values), torch.isnan(first.train.values))  # same seed, same mask
    assert "30% of values dropped per channel" in config.resolved().label
