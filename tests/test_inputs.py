"""Time-aware input features (neuralode_rnn.inputs) and their task-level form (load_task(inputs=...))."""

from __future__ import annotations

import pytest
import torch

from neuralode_rnn import ContinuousRNN, LipschitzField
from neuralode_rnn.data import load_task
from neuralode_rnn.inputs import (
    TimeFeatures,
    forward_fill,
    observation_counts,
    parse_features,
    step_gaps,
    time_features,
    time_since_observation,
)
from neuralode_rnn.models import last_observed_index

NAN = float("nan")


@pytest.fixture
def sample():
    """Two samples, 5 steps, 2 channels: missing entries inside, sample 1 padded after step 3."""
    values = torch.tensor([
        [[1.0, NAN], [2.0, 5.0], [NAN, 6.0], [NAN, NAN], [4.0, 7.0]],
        [[NAN, 1.0], [3.0, NAN], [4.0, 2.0], [NAN, NAN], [NAN, NAN]],
    ], dtype=torch.float64)
    times = torch.tensor([[0.5, 1.0, 2.5, 3.0, 4.5], [1.0, 2.0, 4.0, 5.0, 6.0]], dtype=torch.float64)
    return values, times


def test_parse_features():
    assert parse_features("mask, time") == ("time", "mask")
    assert parse_features(None) == () and parse_features(["intensity"]) == ("intensity",)
    with pytest.raises(ValueError, match="unknown input feature 'clock'"):
        parse_features("time,clock")
    with pytest.raises(ValueError, match="'time' given twice"):
        parse_features("time,time")
    with pytest.raises(TypeError, match="comma-separated string"):
        parse_features(3)


def test_forward_fill_is_causal(sample):
    values, _ = sample
    filled = forward_fill(values, initial=torch.tensor([-1.0, -2.0], dtype=torch.float64))
    expected = torch.tensor([
        [[1.0, -2.0], [2.0, 5.0], [2.0, 6.0], [2.0, 6.0], [4.0, 7.0]],
        [[-1.0, 1.0], [3.0, 1.0], [4.0, 2.0], [4.0, 2.0], [4.0, 2.0]],
    ], dtype=torch.float64)
    torch.testing.assert_close(filled, expected)


def test_counts_and_gaps(sample):
    values, times = sample
    counts = observation_counts(values)
    torch.testing.assert_close(counts[0, :, 1], torch.tensor([0.0, 1, 2, 2, 3], dtype=torch.float64))
    torch.testing.assert_close(step_gaps(values, times)[0], torch.tensor([0.0, 0.5, 1.5, 0.5, 1.5],
                                                                          dtype=torch.float64))
    torch.testing.assert_close(step_gaps(values, None)[1], torch.tensor([0.0, 1, 1, 1, 1], dtype=torch.float64))


def test_time_since_observation_follows_the_papers_recursion(sample):
    values, times = sample
    delta = time_since_observation(values, times)
    m = ~torch.isnan(values)
    B, T, D = values.shape
    expected = torch.zeros(B, T, D, dtype=torch.float64)
    for b in range(B):
        for k in range(1, T):
            for d in range(D):
                gap = times[b, k] - times[b, k - 1]
                expected[b, k, d] = gap if m[b, k - 1, d] else gap + expected[b, k - 1, d]
    torch.testing.assert_close(delta, expected)


def test_time_features_layout_and_padding(sample):
    values, times = sample
    out = time_features(values, times, "time,intensity,mask", time_scale=2.0, count_scale=4.0)
    assert out.shape == (2, 5, 2 + 1 + 2 + 2)
    torch.testing.assert_close(out[..., :2], values, equal_nan=True)
    torch.testing.assert_close(out[0, :, 2], times[0] / 2.0)  # every step before the last observation
    torch.testing.assert_close(out[0, 4, 3:5], torch.tensor([3.0, 3.0], dtype=torch.float64) / 4.0)
    torch.testing.assert_close(out[1, 2, 5:], torch.tensor([1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(out[1, 1, 5:], torch.tensor([1.0, 0.0], dtype=torch.float64))
    # a step with nothing observed inside a sample: its time, the counts so far, a zero mask
    torch.testing.assert_close(out[0, 3, 2:], torch.tensor([1.5, 0.5, 0.5, 0.0, 0.0], dtype=torch.float64))
    # the padding after the last observation stays unobserved in every appended channel: same readout step
    assert torch.isnan(out[1, 3:]).all()
    assert torch.equal(last_observed_index(out), last_observed_index(values))


def test_a_model_reads_out_at_the_last_observation_with_features(sample):
    values, times = sample
    torch.manual_seed(0)
    feats = TimeFeatures("time,intensity,mask", time_scale=5.0, count_scale=3.0)
    model = ContinuousRNN(LipschitzField(2 + feats.extra_channels(2), 8), 3).double()
    full = model(feats(values, times), times)
    alone = model(feats(values[1:, :3], times[1:, :3]), times[1:, :3])  # sample 1 without its padding
    torch.testing.assert_close(full[1:], alone)


def test_fit_takes_scales_from_the_given_split(sample):
    values, times = sample
    feats = TimeFeatures.fit("time,intensity", values, times)
    assert float(feats.time_scale) == 4.5  # the last observed time (6.0 is padding)
    assert float(feats.count_scale) == 3.0
    assert feats.extra_channels(2) == 3


def test_task_level_features_use_training_scales_only():
    data = load_task("uea:BasicMotions", drop=0.5, inputs="time,intensity,mask")
    plain = load_task("uea:BasicMotions", drop=0.5)
    assert data.input_size == 6 + 1 + 6 + 6
    observed = ~torch.isnan(plain.train.values).all(2)
    t_max = plain.train.times.masked_fill(~observed, 0).max().item()
    assert data.info["time_scale"] == t_max and data.info["count_scale"] == 50
    torch.testing.assert_close(data.test.values[..., 6], plain.test.times / t_max *
                               torch.where(torch.isnan(plain.test.values).all(2), NAN, 1.0), equal_nan=True)
    assert torch.equal(data.test.lengths, plain.test.lengths)


def test_time_features_checks():
    with pytest.raises(ValueError, match="time_scale must be a positive number"):
        time_features(torch.zeros(1, 3, 1), None, "time", time_scale=0.0)
    with pytest.raises(ValueError, match="strictly increasing"):
        time_features(torch.zeros(1, 3, 1), torch.tensor([1.0, 1.0, 2.0]), "time")
