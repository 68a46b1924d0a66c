"""Synthetic long-memory tasks: the adding problem and the copy-memory problem."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import SequenceDataset, Split, check_seed

N_SYMBOLS = 8  # data symbols 1..8
N_COPY = 10  # symbols to remember
BLANK, MARKER = 0, 9
COPY_INPUT_SIZE = 10  # one-hot over {0 (blank), 1..8 (symbols), 9 (marker)}
COPY_N_CLASSES = 9  # targets lie in {0 (blank), 1..8}, as the output layer of Arjovsky et al. / Wisdom et al.


def _check_positive(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")
    return value


def copy_baseline(T: int) -> float:
    """Cross-entropy per step of the memoryless strategy on the copy task with delay ``T``.

    It outputs blank for the first T + 10 steps (no loss) and a uniform guess over the 8
    symbols for the last 10: ``10 log(8) / (T + 20)`` (Arjovsky et al. 2016, Wisdom et al. 2016).
    """
    T = _check_positive(T, "T")
    return N_COPY * math.log(N_SYMBOLS) / (T + 2 * N_COPY)


def make_adding(n: int, T: int, generator: torch.Generator) -> Split:
    """``n`` adding-problem samples: values (n, T, 2), targets (n, 1) float32."""
    numbers = torch.rand(n, T, generator=generator)
    half = T // 2
    first = torch.randint(0, half, (n,), generator=generator)
    second = torch.randint(half, T, (n,), generator=generator)
    markers = torch.zeros(n, T)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    targets = (numbers[rows, first] + numbers[rows, second]).unsqueeze(1)
    return Split(torch.stack([numbers, markers], dim=2), targets)


def load_adding(T: int = 100, n_train: int = 10000, n_test: int = 1000, seed: int = 0) -> SequenceDataset:
    """The adding problem (Hochreiter & Schmidhuber 1997, in the form of Arjovsky et al. 2016).

    Each step holds two channels: a number drawn uniformly from [0, 1) and a marker in {0, 1}.
    Exactly two steps are marked, one uniformly in the first half ``[0, T//2)`` and one in the
    second half ``[T//2, T)``; the target is the sum of the two marked numbers. Regression;
    predicting 1 always scores a mean squared error of 1/6. Train and test come from one
    generator seeded ``seed``.

    Returns values (N, T, 2) float32, times None, targets (N, 1) float32.
    """
    T = _check_positive(T, "T", 2)
    n_train, n_test = _check_positive(n_train, "n_train"), _check_positive(n_test, "n_test")
    generator = torch.Generator().manual_seed(check_seed(seed))
    return SequenceDataset(
        name="adding",
        kind="regression",
        train=make_adding(n_train, T, generator),
        test=make_adding(n_test, T, generator),
        n_classes=None,
        description=f"adding problem, T={T}, D=2 (number, marker), target = sum of the two marked numbers; "
        "constant-1 baseline MSE 1/6.",
        info={"T": T, "seed": seed, "baseline_mse": 1.0 / 6.0},
    )


def make_copy(n: int, T: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` copy-task sequences as symbol indices: inputs (n, T + 20), targets (n, T + 20) int64.

    Input: 10 symbols from {1..8}, T - 1 blanks, the marker 9, 10 blanks.
    Target: T + 10 blanks, then the 10 symbols (output right after the marker is read).
    """
    symbols = torch.randint(1, N_SYMBOLS + 1, (n, N_COPY), generator=generator)
    inputs = torch.zeros(n, T + 2 * N_COPY, dtype=torch.int64)
    inputs[:, :N_COPY] = symbols
    inputs[:, N_COPY + T - 1] = MARKER
    targets = torch.zeros(n, T + 2 * N_COPY, dtype=torch.int64)
    targets[:, T + N_COPY :] = symbols
    return inputs, targets


def load_copy(T: int = 100, n_train: int = 10000, n_test: int = 1000, seed: int = 0) -> SequenceDataset:
    """The copy-memory problem exactly as in Wisdom et al. 2016 (after Arjovsky et al. 2016).

    Sequences of length T + 20: 10 symbols drawn uniformly from {1..8}, then T - 1 blanks (0),
    the marker 9 (at 1-based position T + 10), then 10 blanks. The per-step target is T + 10
    blanks followed by the 10 symbols. Inputs are one-hot over 10 values; targets are classes
    in {0..8} (``n_classes = 9``). ``copy_baseline(T)`` is the memoryless cross-entropy.

    Returns values (N, T + 20, 10) float32 one-hot, times None, targets (N, T + 20) int64.
    """
    T = _check_positive(T, "T")
    n_train, n_test = _check_positive(n_train, "n_train"), _check_positive(n_test, "n_test")
    generator = torch.Generator().manual_seed(check_seed(seed))
    splits = []
    for n in (n_train, n_test):
        inputs, targets = make_copy(n, T, generator)
        splits.append(Split(F.one_hot(inputs, COPY_INPUT_SIZE).to(torch.float32), targets))
    return SequenceDataset(
        name="copy",
        kind="sequence",
        train=splits[0],
        test=splits[1],
        n_classes=COPY_N_CLASSES,
        description=f"copy memory, delay T={T}, length T+20, one-hot inputs of 10, per-step targets in 0..8; "
        f"memoryless baseline cross-entropy {copy_baseline(T):.4f}.",
        info={"T": T, "seed": seed, "baseline": copy_baseline(T)},
    )
