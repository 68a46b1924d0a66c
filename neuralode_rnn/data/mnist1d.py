"""MNIST-1D (Greydanus 2020), generated offline with the ``mnist1d`` package's ``make_dataset``."""

from __future__ import annotations

import random

import numpy as np
import torch

from .base import (
    SequenceDataset,
    Split,
    as_values,
    check_cap,
    check_permute_flag,
    check_seed,
    seeded_permutation,
)

MNIST1D_PERMUTATION_SEED = 12008


def load_mnist1d(
    seed: int = 42,
    permute: bool = False,
    permutation_seed: int = MNIST1D_PERMUTATION_SEED,
    n_train: int | None = None,
    n_test: int | None = None,
    num_samples: int = 5000,
    train_split: float = 0.8,
) -> SequenceDataset:
    """MNIST-1D: 40-step univariate sequences (D = 1), 10 classes, 4,000 train / 1,000 test.

    Generated, never downloaded: ``mnist1d.data.make_dataset(get_dataset_args())`` with the
    package's default transform settings, ``num_samples``, ``train_split`` and ``seed``
    (default 42, the package's own). The package standardises the whole generated set to
    zero mean and unit variance; that is kept. Generation takes about a second, so nothing is
    cached. ``make_dataset`` seeds Python's and NumPy's global RNGs; their states are restored
    afterwards. ``n_train``/``n_test`` keep the first samples of each (already shuffled) split.
    ``permute=True`` reorders the 40 steps by ``torch.randperm(40)`` of a generator seeded
    ``permutation_seed``, independent of ``seed``.

    Returns values (N, 40, 1) float32, times None, targets (N,) int64.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    seed = check_seed(seed)
    permute = check_permute_flag(permute)
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 20:
        raise ValueError(f"num_samples must be an int >= 20; got {num_samples!r}")
    if not 0.0 < train_split < 1.0:
        raise ValueError(f"train_split must lie in (0, 1); got {train_split!r}")
    args = get_dataset_args()
    args.seed = seed
    args.num_samples = num_samples
    args.train_split = train_split
    args.shuffle_seq = False
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)

    n_train = check_cap(n_train, "n_train", len(data["y"]))
    n_test = check_cap(n_test, "n_test", len(data["y_test"]))
    train_values = as_values(data["x"][:n_train], 1)
    test_values = as_values(data["x_test"][:n_test], 1)
    permutation = None
    if permute:
        permutation = seeded_permutation(
            train_values.shape[1], check_seed(permutation_seed, "permutation_seed")
        )
        train_values, test_values = train_values[:, permutation], test_values[:, permutation]
    return SequenceDataset(
        name="mnist1d",
        kind="classification",
        train=Split(train_values, torch.as_tensor(data["y"][:n_train], dtype=torch.int64)),
        test=Split(test_values, torch.as_tensor(data["y_test"][:n_test], dtype=torch.int64)),
        n_classes=10,
        description=(
            f"MNIST-1D generated offline by mnist1d.make_dataset (seed {seed}), 40 steps, D=1, "
            f"standardised by the package; {'permuted' if permute else 'ordered'}."
        ),
        permutation=permutation,
        info={"seed": seed, "permutation_seed": permutation_seed if permute else None},
    )
