"""The timing task: its label lives only in the observation times."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from neuralode_rnn.data import load_timing
from neuralode_rnn.zoo import build_model


def test_timing_values_do_not_depend_on_the_label():
    a = load_timing(n_train=50, n_test=20, seed=4)
    b = load_timing(n_train=50, n_test=20, seed=4, frequencies=(5.0, 7.0, 11.0, 13.0))
    # same seed, other frequencies: the same values and labels, only the times change
    assert torch.equal(a.train.values, b.train.values) and torch.equal(a.train.targets, b.train.targets)
    assert not torch.allclose(a.train.times, b.train.times)
    # the times scale as 1 / f: class c's times are its phases over f_c * mean step
    f_a = torch.tensor([1.0, 1.5, 2.25, 3.375])[a.train.targets]
    f_b = torch.tensor([5.0, 7.0, 11.0, 13.0])[a.train.targets]
    torch.testing.assert_close(a.train.times * f_a[:, None], b.train.times * f_b[:, None], rtol=1e-5, atol=1e-5)


def test_timing_mean_gap_is_one_over_the_frequency():
    data = load_timing(n_train=400, n_test=10)
    gaps = data.train.times.diff(dim=1).mean(1)
    for c, f in enumerate((1.0, 1.5, 2.25, 3.375)):
        assert gaps[data.train.targets == c].mean().item() == pytest.approx(1 / f, rel=0.05)


def test_timing_input_checks():
    with pytest.raises(ValueError, match="at least two distinct positive"):
        load_timing(frequencies=(1.0, 1.0))
    with pytest.raises(ValueError, match="step_low <= step_high"):
        load_timing(step_low=1.0, step_high=0.5)


def _train_and_score(name: str, data, eps: float | None, reads_times: bool) -> float:
    torch.manual_seed(0)
    model = build_model(name, 1, 4, 16, eps=eps)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    scale = 1.0 if eps is None else eps
    for epoch in range(8):
        for v, t, y in data.train.batches(64, shuffle=True, seed=epoch):
            loss = F.cross_entropy(model(v, scale * t if reads_times else None), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        t = data.test.times
        out = model(data.test.values, scale * t if reads_times else None)
    return (out.argmax(-1) == data.test.targets).float().mean().item()


def test_timing_needs_the_times():
    data = load_timing(n_train=512, n_test=400, length=24)
    blind = _train_and_score("gru", data, None, reads_times=False)
    gaps = _train_and_score("gru-dt", data, 1.0, reads_times=True)
    continuous = _train_and_score("lipschitz", data, 0.1, reads_times=True)
    assert blind < 0.4  # chance is 0.25; 400 test samples
    assert gaps > 0.7 and continuous > 0.9
