"""The common return type of every task: a :class:`SequenceDataset` holding two :class:`Split` s.

Conventions (shared with ``neuralode_rnn.interpolate`` and the models):

- ``values`` is ``(N, T, D)`` float32, batch-first, time on axis 1. NaN marks a missing
  observation. Variable-length or irregular samples are compacted to the front and padded
  with NaN at the END, so a model reads out the state at each sample's last observed step
  (``Split.lengths - 1``).
- ``times`` is ``None`` (the samples sit at t_k = k, k = 1..T, as in DESIGN.md) or ``(N, T)``
  float32, strictly increasing along each row, padding included.
- ``targets`` is ``(N,)`` int64 for ``kind="classification"``, ``(N, ...)`` float32 for
  ``kind="regression"`` and ``(N, T)`` int64 per-step classes for ``kind="sequence"``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

KINDS = ("classification", "regression", "sequence")

#: Seed of the permuted-MNIST convention of the seed papers (Lipschitz RNN code:
#: ``torch.manual_seed(12008); perm = torch.randperm(784)``).
MNIST_PERMUTATION_SEED = 12008

Batch = tuple[Tensor, "Tensor | None", Tensor]


def mnist_permutation(length: int = 784, seed: int = MNIST_PERMUTATION_SEED) -> Tensor:
    """The pixel permutation of sequential permuted MNIST, ``(length,)`` int64.

    Equal to ``torch.manual_seed(seed); torch.randperm(length)`` but drawn from a local
    ``torch.Generator``, so the global torch RNG state is left untouched.
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(length, generator=generator)


def seeded_permutation(length: int, seed: int) -> Tensor:
    """A fixed permutation of ``length`` time steps from a local generator seeded ``seed``."""
    return mnist_permutation(length, seed)


def check_seed(seed: Any, name: str = "seed") -> int:
    """``seed`` as an int; a TypeError naming ``name`` for anything else (bools included)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be an int; got {seed!r} of type {type(seed).__name__}")
    return int(seed)


def check_cap(n: Any, name: str, available: int) -> int:
    """Validate a size cap ``n_train``/``n_test``: None means all ``available`` samples."""
    if n is None:
        return available
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name} must be a positive int or None; got {n!r}")
    if n > available:
        raise ValueError(f"{name} = {n} exceeds the {available} samples available in this split")
    return int(n)


def cap_indices(available: int, n: int, seed: int) -> np.ndarray:
    """Indices of a seeded subset of size ``n`` of ``range(available)``, in their original order.

    ``n == available`` returns every index, so an uncapped load ignores the seed.
    """
    if n >= available:
        return np.arange(available)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(available, size=n, replace=False))


def _collate(items: list[Batch], has_times: bool) -> Batch:
    values = torch.stack([item[0] for item in items])
    targets = torch.stack([item[2] for item in items])
    times = torch.stack([item[1] for item in items]) if has_times else None
    return values, times, targets


@dataclass(frozen=True, eq=False)
class Split(Dataset):
    """One split of a task: ``values`` (N, T, D), ``targets`` (N, ...), ``times`` None or (N, T).

    A ``torch.utils.data.Dataset``: ``split[i]`` is ``(values[i], times[i], targets[i])``; when
    ``times`` is None the item's times are ``1, 2, ..., T`` so that the default collate works.
    ``split.loader(...)`` and ``split.batches(...)`` give ``times=None`` batches for such splits.
    """

    values: Tensor
    targets: Tensor
    times: Tensor | None = None

    def __post_init__(self) -> None:
        v, y, t = self.values, self.targets, self.times
        if not isinstance(v, Tensor) or v.ndim != 3 or not v.is_floating_point():
            raise ValueError(
                f"values must be a floating (N, T, D) tensor; got {type(v).__name__} "
                f"with shape {tuple(getattr(v, 'shape', ()))} and dtype {getattr(v, 'dtype', None)}"
            )
        if not isinstance(y, Tensor) or y.ndim < 1 or y.shape[0] != v.shape[0]:
            raise ValueError(
                f"targets must be a tensor with {v.shape[0]} rows (one per sample of values "
                f"{tuple(v.shape)}); got shape {tuple(getattr(y, 'shape', ()))}"
            )
        if t is not None:
            if not isinstance(t, Tensor) or tuple(t.shape) != tuple(v.shape[:2]) or not t.is_floating_point():
                raise ValueError(
                    f"times must be None or a floating (N, T) = {tuple(v.shape[:2])} tensor; "
                    f"got shape {tuple(getattr(t, 'shape', ()))} and dtype {getattr(t, 'dtype', None)}"
                )
            bad = (t[:, 1:] <= t[:, :-1]).nonzero()
            if len(bad):
                i, k = (int(a) for a in bad[0])
                raise ValueError(
                    "times must be strictly increasing along the last axis; got "
                    f"times[{i}, {k + 1}] = {float(t[i, k + 1])} <= times[{i}, {k}] = {float(t[i, k])}"
                )

    def __len__(self) -> int:
        return self.values.shape[0]

    def __getitem__(self, index: int) -> Batch:
        if self.times is None:
            times = torch.arange(1, self.values.shape[1] + 1, dtype=self.values.dtype)
        else:
            times = self.times[index]
        return self.values[index], times, self.targets[index]

    @property
    def n_samples(self) -> int:
        return self.values.shape[0]

    @property
    def length(self) -> int:
        """T, the padded sequence length."""
        return self.values.shape[1]

    @property
    def input_size(self) -> int:
        return self.values.shape[2]

    @property
    def lengths(self) -> Tensor:
        """``(N,)`` int64: one plus the index of each sample's last step with any observed channel.

        The model's readout for sample i is its state at step ``lengths[i] - 1``.
        """
        observed = ~torch.isnan(self.values).all(dim=2)
        steps = torch.arange(1, self.length + 1, device=observed.device)
        return (observed * steps).amax(dim=1).to(torch.int64)

    def resolved_times(self) -> Tensor:
        """``(N, T)`` times, materialising ``1..T`` when ``times`` is None."""
        if self.times is not None:
            return self.times
        grid = torch.arange(1, self.length + 1, dtype=self.values.dtype, device=self.values.device)
        return grid.expand(self.n_samples, -1)

    def subset(self, index: Tensor | np.ndarray | slice) -> Split:
        """The samples at ``index`` as a new Split."""
        if isinstance(index, np.ndarray):
            index = torch.as_tensor(index, dtype=torch.int64)
        times = None if self.times is None else self.times[index]
        return Split(self.values[index], self.targets[index], times)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Split:
        """Move to ``device``; a floating ``dtype`` applies to values, times and float targets."""

        def move(x: Tensor) -> Tensor:
            return x.to(device=device, dtype=dtype if (dtype is not None and x.is_floating_point()) else None)

        times = None if self.times is None else move(self.times)
        return Split(move(self.values), move(self.targets), times)

    def batches(
        self, batch_size: int, shuffle: bool = False, seed: int | None = None, drop_last: bool = False
    ) -> Iterator[Batch]:
        """Yield ``(values (B, T, D), times (B, T) or None, targets (B, ...))`` by slicing.

        Faster than a DataLoader for in-memory tensors. ``shuffle`` draws the order from a
        generator seeded ``seed`` (a fresh random order each call when ``seed`` is None).
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
        n = self.n_samples
        if shuffle:
            generator = torch.Generator()
            generator.manual_seed(seed if seed is not None else int(torch.randint(2**62, ()).item()))
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            idx = order[start : start + batch_size]
            times = None if self.times is None else self.times[idx]
            yield self.values[idx], times, self.targets[idx]

    def loader(
        self, batch_size: int, shuffle: bool = False, seed: int | None = None, **kwargs: Any
    ) -> DataLoader:
        """A ``torch.utils.data.DataLoader`` over this split yielding ``(values, times or None, targets)``.

        ``seed`` seeds the shuffling generator; other keyword arguments go to DataLoader.
        """
        if seed is not None and "generator" not in kwargs:
            kwargs["generator"] = torch.Generator().manual_seed(seed)
        collate = functools.partial(_collate, has_times=self.times is not None)
        return DataLoader(self, batch_size=batch_size, shuffle=shuffle, collate_fn=collate, **kwargs)


@dataclass(frozen=True, eq=False)
class SequenceDataset:
    """A task: train and test :class:`Split` s plus metadata.

    Fields: ``name``; ``kind`` in ``KINDS``; ``train``, ``test``; ``n_classes`` (classification
    and sequence tasks; None for regression); ``description`` (one paragraph: source,
    normalisation, split); ``permutation`` the ``(T,)`` time permutation applied (None if
    ordered); ``info`` any further loader settings (seeds, drop rate).

    ``final_test``: the task's own test split when ``test`` holds a validation split
    (``validation_split``), transformed as the others (standardisation, drops, input features);
    None otherwise.  Training selects on ``test`` and scores ``final_test`` once, at the end, with
    the weights chosen on validation (``training.loop``).
    """

    name: str
    kind: str
    train: Split
    test: Split
    n_classes: int | None
    description: str
    permutation: Tensor | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    final_test: Split | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if self.train.input_size != self.test.input_size:
            raise ValueError(
                f"train and test must have the same input size; got {self.train.input_size} "
                f"and {self.test.input_size}"
            )
        if self.final_test is not None and self.final_test.input_size != self.train.input_size:
            raise ValueError(f"train and final_test must have the same input size; got {self.train.input_size} "
                             f"and {self.final_test.input_size}")

    def map_splits(self, function: Callable[[Split], Split], **changes: Any) -> SequenceDataset:
        """``data`` with ``function`` applied to train, test and final_test (when there is one), and ``changes``."""
        final = None if self.final_test is None else function(self.final_test)
        return self.replace(train=function(self.train), test=function(self.test), final_test=final, **changes)

    @property
    def input_size(self) -> int:
        """D, the number of channels per step."""
        return self.train.input_size

    @property
    def output_size(self) -> int:
        """Width of the model output: ``n_classes``, or the flattened regression target size."""
        if self.n_classes is not None:
            return self.n_classes
        return int(np.prod(self.train.targets.shape[1:], dtype=np.int64))

    def replace(self, **changes: Any) -> SequenceDataset:
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        return (
            f"SequenceDataset(name={self.name!r}, kind={self.kind!r}, n_classes={self.n_classes}, "
            f"train={tuple(self.train.values.shape)}, test={tuple(self.test.values.shape)}, "
            f"times={'per-sample' if self.train.times is not None else 'None'}, "
            f"permuted={self.permutation is not None})"
        )


def as_values(array: np.ndarray | Tensor, input_size: int) -> Tensor:
    """``(N, T*D)`` or ``(N, T, D)`` array -> ``(N, T, D)`` float32 tensor (row-major time)."""
    tensor = torch.as_tensor(np.asarray(array), dtype=torch.float32)
    return tensor.reshape(tensor.shape[0], -1, input_size).contiguous()


def check_permute_flag(permute: Any) -> bool:
    if not isinstance(permute, bool):
        raise TypeError(f"permute must be a bool; got {permute!r}")
    return permute


def stratified_split(labels: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified train/test indices (scikit-learn), each sorted ascending."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    train, test = train_test_split(idx, test_size=n_test, random_state=seed, stratify=labels)
    return np.sort(train), np.sort(test)


def capped_stratified_split(labels: np.ndarray, test_size: int, n_train: Any, n_test: Any,
                            seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``stratified_split`` of ``test_size`` test samples, then each side cut to its cap
    (``n_train``/``n_test``, None: all; a seeded subset in the original order, the test side's
    seed ``seed + 1``)."""
    train, test = stratified_split(labels, test_size, seed)
    train = train[cap_indices(len(train), check_cap(n_train, "n_train", len(train)), seed)]
    test = test[cap_indices(len(test), check_cap(n_test, "n_test", len(test)), seed + 1)]
    return train, test
