"""UEA/UCR archives by name (uea:NAME) and drop_channels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralode_rnn.data import drop_channels, load_task, load_uea, uea_datasets
from neuralode_rnn.data.uea import class_order

pytest.importorskip("sktime")


def write_ts(path, name: str, part: str, series: list[np.ndarray], labels: list[str]) -> None:
    """A minimal multivariate .ts file: series (T_i, D) and labels."""
    dims = series[0].shape[1]
    lines = [f"@problemName {name}", "@timeStamps false", "@missing false", "@univariate "
             + ("true" if dims == 1 else "false"), f"@dimensions {dims}", "@equalLength false",
             "@classLabel true " + " ".join(sorted(set(labels))), "@data"]
    for s, label in zip(series, labels):
        lines.append(":".join(",".join(f"{v:.6f}" for v in s[:, d]) for d in range(dims)) + f":{label}")
    (path / f"{name}_{part}.ts").write_text("\n".join(lines) + "\n")


def test_bundled_classification_sets_are_listed():
    names = uea_datasets()
    assert {"BasicMotions", "JapaneseVowels", "ArrowHead", "GunPoint", "OSULeaf", "PLAID"} <= set(names)
    assert "Tecator" not in names  # a regression archive


def test_basic_motions_shapes_and_classes():
    data = load_task("uea:BasicMotions")
    assert data.name == "uea:BasicMotions" and data.kind == "classification" and data.n_classes == 4
    assert data.train.values.shape == (40, 100, 6) and data.test.values.shape == (40, 100, 6)
    assert data.train.times is None and not torch.isnan(data.train.values).any()
    assert (data.train.targets.bincount() == 10).all()
    assert data.info["labels"] == ["badminton", "running", "standing", "walking"]


def test_variable_lengths_are_padded_at_the_end():
    data = load_task("uea:JapaneseVowels")
    assert data.train.length == data.test.length == 29
    for split in (data.train, data.test):
        lengths = split.lengths
        assert int(lengths.min()) == 7
        padded = torch.arange(split.length)[None, :] >= lengths[:, None]
        assert torch.isnan(split.values[padded]).all() and not torch.isnan(split.values[~padded]).any()
    # the alias reads the same data
    vowels = load_task("vowels")
    torch.testing.assert_close(vowels.test.values, data.test.values, equal_nan=True)
    assert vowels.name == "vowels"


def test_standardisation_uses_the_training_split_only(tmp_path):
    # test values live far from the training values: any use of test statistics shows
    rng = np.random.default_rng(0)
    train = [rng.normal(2.0, 3.0, size=(int(n), 2)) for n in rng.integers(5, 12, size=20)]
    test = [rng.normal(50.0, 0.5, size=(int(n), 2)) for n in rng.integers(5, 12, size=10)]
    write_ts(tmp_path, "Toy", "TRAIN", train, ["a", "b"] * 10)
    write_ts(tmp_path, "Toy", "TEST", test, ["b", "a"] * 5)
    data = load_uea("Toy", path=tmp_path)
    flat = np.concatenate(train).round(6)
    mean, std = flat.mean(0), flat.std(0)
    observed = data.train.values[~torch.isnan(data.train.values)].reshape(-1, 2).double()
    torch.testing.assert_close(observed.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(observed.std(0, unbiased=False), torch.ones(2, dtype=torch.float64), atol=1e-6,
                               rtol=0)
    expected = (test[3].round(6) - mean) / std
    np.testing.assert_allclose(data.test.values[3, : len(test[3])].numpy(), expected, rtol=1e-5)
    assert data.test.values[~torch.isnan(data.test.values)].mean() > 10  # not re-centred on itself
    assert data.info["mean"] == pytest.approx(mean.tolist())


def test_standardisation_follows_the_returned_training_samples():
    full = load_uea("BasicMotions", standardize=False)
    capped = load_uea("BasicMotions", n_train=12, n_test=5, seed=3)
    raw = load_uea("BasicMotions", n_train=12, n_test=5, seed=3, standardize=False)
    mean = raw.train.values.double().mean((0, 1))
    assert not torch.allclose(mean, full.train.values.double().mean((0, 1)))
    torch.testing.assert_close(capped.train.values.double().mean((0, 1)), torch.zeros(6, dtype=torch.float64),
                               atol=1e-5, rtol=0)


def test_class_order_is_numeric_when_labels_are_numbers():
    assert class_order(["10", "2", "1", "9"]) == ["1", "2", "9", "10"]
    assert class_order(["walking", "badminton"]) == ["badminton", "walking"]


def test_unknown_archive_lists_the_bundled_ones():
    with pytest.raises(FileNotFoundError, match=r"NoSuchSet_TRAIN.ts.*BasicMotions"):
        load_task("uea:NoSuchSet")


def test_regression_archive_is_rejected():
    with pytest.raises(ValueError, match="no class labels"):
        load_task("uea:Tecator")


def test_uea_options_are_checked():
    with pytest.raises(TypeError, match="does not take permute"):
        load_task("uea:BasicMotions", permute=True)
    with pytest.raises(ValueError, match=r"unknown task 'nope'.*uea:NAME"):
        load_task("nope")


# ---------------------------------------------------------------------------------- drop_channels
@pytest.mark.parametrize("rate", [0.3, 0.5, 0.7])
def test_drop_channels_drops_each_value_with_probability_p(rate):
    data = load_task("uea:BasicMotions")  # 40 + 40 samples, 100 steps, 6 channels
    dropped = drop_channels(data, rate, seed=1)
    for before, after in ((data.train, dropped.train), (data.test, dropped.test)):
        assert after.values.shape == before.values.shape
        torch.testing.assert_close(after.resolved_times(), before.resolved_times())  # nothing moves
        gone = torch.isnan(after.values) & ~torch.isnan(before.values)
        n = int((~torch.isnan(before.values)).sum())  # 24,000 values: the share's sd is below 0.0033
        assert abs(int(gone.sum()) / n - rate) < 0.015
        kept = ~torch.isnan(after.values)
        torch.testing.assert_close(after.values[kept], before.values[kept])  # the rest untouched
        # independent per channel: the share is right in each channel and at each step position
        per_channel = gone.double().mean(dim=(0, 1))
        assert (per_channel - rate).abs().max() < 0.04
        # steps keep part of their channels, and some (about rate^6 of them) keep none but stay in place
        n_seen = kept.sum(2)
        assert ((n_seen > 0) & (n_seen < 6)).any()
        empty = float((n_seen == 0).double().mean())
        assert abs(empty - rate ** 6) < 0.02 + 0.5 * rate ** 6


def test_drop_channels_same_seed_same_mask_and_another_seed_another():
    data = load_task("uea:BasicMotions", n_train=10, n_test=6)
    a, b, c = drop_channels(data, 0.5, seed=3), drop_channels(data, 0.5, seed=3), drop_channels(data, 0.5, seed=4)
    for x, y, z in ((a.train, b.train, c.train), (a.test, b.test, c.test)):
        assert torch.equal(torch.isnan(x.values), torch.isnan(y.values))
        assert not torch.equal(torch.isnan(x.values), torch.isnan(z.values))
    assert a.info["drop_channels"] == 0.5 and a.info["drop_channels_seed"] == 3
    # through load_task: seeded drop_seed + 1, the same in a second call
    d, e = (load_task("uea:BasicMotions", drop_channels=0.5, n_train=10, n_test=6) for _ in range(2))
    assert torch.equal(torch.isnan(d.train.values), torch.isnan(e.train.values))
    torch.testing.assert_close(d.train.values, drop_channels(data, 0.5, seed=1).train.values, equal_nan=True)


def test_drop_channels_with_drop_and_its_checks():
    both = load_task("uea:BasicMotions", drop=0.5, drop_channels=0.5, n_train=8, n_test=4)
    assert both.info["drop"] == 0.5 and both.info["drop_channels"] == 0.5
    # half the steps go, then half the values of those left: about a quarter of 8 x 100 x 6
    assert float((~torch.isnan(both.train.values)).sum()) == pytest.approx(8 * 6 * 25, rel=0.1)
    for bad in (1.0, -0.1, True, "0.5", float("nan")):
        with pytest.raises(ValueError, match=r"drop_channels \(the probability that each value is missing\) must be "
                                             r"a number in \[0, 1\); got"):
            load_task("uea:BasicMotions", drop_channels=bad)
