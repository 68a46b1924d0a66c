"""Japanese Vowels (UCI; UEA archive), read from the ``.ts`` files bundled with ``sktime``."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import torch

from .base import SequenceDataset, Split, cap_indices, check_cap, check_seed

ENV_VAR = "NEURALODE_RNN_VOWELS_DIR"
N_CHANNELS = 12


def candidate_dirs(path: str | os.PathLike | None = None) -> list[Path]:
    """Directories searched: ``path``; else ``$NEURALODE_RNN_VOWELS_DIR``, then sktime's bundled copy.

    sktime is located with ``importlib.util.find_spec`` (not imported: its import takes a second).
    """
    if path is not None:
        return [Path(path)]
    dirs = [Path(os.environ[ENV_VAR])] if os.environ.get(ENV_VAR) else []
    spec = importlib.util.find_spec("sktime")
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            dirs.append(Path(root) / "datasets" / "data" / "JapaneseVowels")
    return dirs


def find_vowels_files(path: str | os.PathLike | None = None) -> tuple[Path, Path]:
    looked = candidate_dirs(path)
    for directory in looked:
        train, test = directory / "JapaneseVowels_TRAIN.ts", directory / "JapaneseVowels_TEST.ts"
        if train.is_file() and test.is_file():
            return train, test
    raise FileNotFoundError(
        "JapaneseVowels_TRAIN.ts / JapaneseVowels_TEST.ts not found in "
        + (", ".join(str(d) for d in looked) or "any directory (sktime is not installed)")
        + f". Install sktime (`pip install sktime`, which bundles them), or pass path=... or set {ENV_VAR}."
    )


def read_ts(file: Path) -> tuple[list[np.ndarray], list[str]]:
    """Parse a multivariate ``.ts`` file: a list of ``(T_i, D)`` float arrays and their string labels.

    Data lines read ``d1_v1,d1_v2,...:d2_v1,...:...:label``; ``?`` is a missing value (NaN).
    """
    series, labels = [], []
    in_data = False
    with open(file, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                in_data = line.lower().startswith("@data")
                continue
            *dims, label = line.split(":")
            channels = [
                np.array([float("nan") if v == "?" else float(v) for v in d.split(",")]) for d in dims
            ]
            if len({len(c) for c in channels}) != 1:
                raise ValueError(
                    f"{file}:{number}: channels have different lengths {[len(c) for c in channels]}"
                )
            series.append(np.stack(channels, axis=1))
            labels.append(label.strip())
    if not series:
        raise ValueError(f"{file} has no @data section or no cases")
    return series, labels


def pad_end(series: list[np.ndarray], length: int) -> torch.Tensor:
    """Stack ``(T_i, D)`` arrays into ``(N, length, D)`` float32, NaN-padded at the end."""
    out = np.full((len(series), length, series[0].shape[1]), np.nan, dtype=np.float32)
    for i, s in enumerate(series):
        out[i, : len(s)] = s
    return torch.from_numpy(out)


def load_vowels(
    seed: int = 0,
    n_train: int | None = None,
    n_test: int | None = None,
    standardize: bool = True,
    path: str | os.PathLike | None = None,
) -> SequenceDataset:
    """Japanese Vowels: 12 LPC-cepstrum channels, 7..29 steps, 9 speakers; official 270/370 split.

    Variable length: each sample occupies steps ``0..T_i-1`` and is NaN-padded at the END to the
    longest sample of both splits (29), so a model reads out its state at the sample's last
    observed step, ``split.lengths - 1``. ``standardize=True`` (default) rescales each channel
    by the mean and standard deviation of the observed training values, the same for test.
    Labels 1..9 become classes 0..8. ``n_train``/``n_test`` keep a subset drawn with ``seed``.
    Read from ``sktime``'s bundled ``.ts`` files by this module's own parser (no network,
    no sktime import).

    Returns values (N, 29, 12) float32 with NaN padding, times None, targets (N,) int64.
    """
    seed = check_seed(seed)
    train_file, test_file = find_vowels_files(path)
    parts = [read_ts(train_file), read_ts(test_file)]
    classes = sorted({label for _, labels in parts for label in labels}, key=lambda s: (len(s), s))
    length = max(len(s) for series, _ in parts for s in series)
    splits = []
    mean = std = None
    for (series, labels), cap, part, offset in zip(parts, (n_train, n_test), ("train", "test"), (0, 1)):
        values = pad_end(series, length)
        if values.shape[-1] != N_CHANNELS:
            raise ValueError(f"expected {N_CHANNELS} channels in {part} file; got {values.shape[-1]}")
        if standardize:
            if mean is None:  # training statistics, over observed entries only
                flat = values.reshape(-1, N_CHANNELS)
                mean = torch.nanmean(flat, dim=0)
                std = torch.sqrt(torch.nanmean((flat - mean) ** 2, dim=0))
            values = (values - mean) / std
        targets = torch.tensor([classes.index(label) for label in labels], dtype=torch.int64)
        idx = cap_indices(len(labels), check_cap(cap, f"n_{part}", len(labels)), seed + offset)
        splits.append(Split(values[idx], targets[idx]))
    return SequenceDataset(
        name="vowels",
        kind="classification",
        train=splits[0],
        test=splits[1],
        n_classes=len(classes),
        description=(
            "Japanese Vowels (UEA), 12 channels, lengths 7..29 NaN-padded at the end to 29, "
            f"{'standardised per channel with training statistics' if standardize else 'raw values'}; "
            "official 270/370 split; 9 speakers."
        ),
        info={
            "seed": seed,
            "standardize": standardize,
            "labels": classes,
            "directory": str(train_file.parent),
        },
    )
