"""UEA/UCR archives by name (uea:NAME) and drop_channels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralode_rnn.data import drop_channels, drop_observations, load_task, load_uea, uea_datasets
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
def test_drop_channels_removes_the_share_of_each_channel(rate):
    data = load_task("uea:BasicMotions", n_train=10, n_test=6)
    dropped = drop_channels(data, rate, seed=1)
    for before, after in ((data.train, dropped.train), (data.test, dropped.test)):
        n_before = (~torch.isnan(before.values)).sum(1)  # (N, D)
        n_after = (~torch.isnan(after.values)).sum(1)
        assert torch.equal(n_after, n_before - torch.floor(n_before * rate).long())
        # no step without an observation before the padding; times strictly increasing
        observed = ~torch.isnan(after.values).all(2)
        assert torch.equal(observed, torch.arange(after.length)[None] < after.lengths[:, None])
        assert (after.times[:, 1:] > after.times[:, :-1]).all()
        # every kept value is the original value at its original time
        for i in (0, 3):
            for k in range(int(after.lengths[i])):
                step = int(after.times[i, k]) - 1
                kept = ~torch.isnan(after.values[i, k])
                assert torch.equal(after.values[i, k][kept], before.values[i, step][kept])
    # the channels are thinned independently: some steps keep only part of their channels
    partial = (~torch.isnan(dropped.train.values)).sum(2)
    assert ((partial > 0) & (partial < 6)).any()


def test_drop_channels_through_load_task_and_with_drop():
    a = load_task("uea:BasicMotions", drop_channels=0.5, n_train=8, n_test=4)
    b = drop_channels(load_task("uea:BasicMotions", n_train=8, n_test=4), 0.5, seed=1)  # drop_seed + 1
    torch.testing.assert_close(a.train.values, b.train.values, equal_nan=True)
    both = load_task("uea:BasicMotions", drop=0.5, drop_channels=0.5, n_train=8, n_test=4)
    assert both.info["drop"] == 0.5 and both.info["drop_channels"] == 0.5
    assert float((~torch.isnan(both.train.values)).sum()) == pytest.approx(8 * 6 * 25, rel=0.05)
    with pytest.raises(ValueError, match=r"drop_channels \(the share of each channel's observations"):
        load_task("uea:BasicMotions", drop_channels=1.0)


def test_one_channel_drop_channels_matches_drop_observations_counts():
    data = load_task("digits", n_train=20, n_test=10)
    a, b = drop_channels(data, 0.5), drop_observations(data, 0.5)
    assert torch.equal(a.train.lengths, b.train.lengths)
