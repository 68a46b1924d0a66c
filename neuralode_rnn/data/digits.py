"""Sequential scikit-learn digits: the 8x8 images of ``sklearn.datasets.load_digits`` read pixel by pixel."""

from __future__ import annotations

import numpy as np
import torch

from .base import (
    SequenceDataset,
    Split,
    as_values,
    capped_stratified_split,
    check_permute_flag,
    check_seed,
    seeded_permutation,
)

#: Seed of the fixed pixel permutation of ``permute=True``; separate from the split seed so that
#: every split seed sees the same permuted task.
DIGITS_PERMUTATION_SEED = 12008
N_TEST = 360


def load_digits(
    seed: int = 0,
    permute: bool = False,
    permutation_seed: int = DIGITS_PERMUTATION_SEED,
    n_train: int | None = None,
    n_test: int | None = None,
) -> SequenceDataset:
    """The 1,797 scikit-learn 8x8 digits as 64-step pixel sequences (D = 1), 10 classes.

    Pixels are scaled from 0..16 to [0, 1]. Split: stratified, 1,437 train / 360 test, drawn
    with ``seed``. ``permute=True`` reorders the 64 steps (row-major pixel order) by the fixed
    permutation ``torch.randperm(64)`` of a generator seeded ``permutation_seed`` (default
    12008), the same for train and test and independent of ``seed``. ``n_train``/``n_test``
    keep a seeded subset of each split (for quick tests).

    Returns values (N, 64, 1) float32, times None, targets (N,) int64.
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    seed = check_seed(seed)
    permute = check_permute_flag(permute)
    bunch = _sk_load_digits()
    images = bunch.data.astype(np.float32) / 16.0  # (1797, 64) row-major pixels
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = capped_stratified_split(labels, N_TEST, n_train, n_test, seed)

    values = as_values(images, 1)
    permutation = None
    if permute:
        permutation = seeded_permutation(64, check_seed(permutation_seed, "permutation_seed"))
        values = values[:, permutation]
    targets = torch.from_numpy(labels)
    order = "permuted" if permute else "row-major"
    return SequenceDataset(
        name="digits",
        kind="classification",
        train=Split(values[train_idx], targets[train_idx]),
        test=Split(values[test_idx], targets[test_idx]),
        n_classes=10,
        description=(
            f"scikit-learn 8x8 digits as 64-step {order} pixel sequences, D=1, pixels scaled to [0, 1]; "
            f"stratified 1437/360 split (seed {seed})."
        ),
        permutation=permutation,
        info={"seed": seed, "permutation_seed": permutation_seed if permute else None},
    )
