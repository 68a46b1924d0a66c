"""UEA/UCR classification archives, by name, from the ``.ts`` files that ``sktime`` bundles.

``load_task("uea:BasicMotions")`` (or ``load_uea("BasicMotions")``) reads ``NAME_TRAIN.ts`` and
``NAME_TEST.ts`` with sktime's own parser (``sktime.datasets.load_from_tsfile``: a well-kept
reader of the format, so none is written here) and returns a :class:`SequenceDataset` on the
archive's official split.  The sets sktime 1.x ships offline are listed by :func:`uea_datasets`
(ArrowHead, BasicMotions, GunPoint, ItalyPowerDemand, JapaneseVowels, OSULeaf, PLAID, ACSF1, ...);
any other classification archive in the same layout is read from ``path=`` or
``$NEURALODE_RNN_UEA_DIR``.

Variable lengths (JapaneseVowels 7..29, PLAID 100..1344 steps) are NaN-padded at the END to the
longest sample of both splits, so each sample is read out at its last observed step.

Standardisation (``standardize=True``, default; :func:`neuralode_rnn.data.standardize.standardize`):
every channel is shifted and scaled by the mean and standard deviation of its observed values in
the TRAINING samples that are returned (after ``n_train``), and the same two numbers are applied
to the test split: the test split never informs the preprocessing.  A constant training channel
is only centred (scale 1).  With a validation split (``load_task(..., validation=...)``) the
statistics come from the samples the run trains on, without the held-out ones.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch

from .base import SequenceDataset, Split, cap_indices, check_cap, check_seed
from .standardize import standardize as standardize_splits

ENV_VAR = "NEURALODE_RNN_UEA_DIR"


def sktime_data_dir() -> Path | None:
    """sktime's bundled data folder, located without importing sktime (its import takes seconds)."""
    spec = importlib.util.find_spec("sktime")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        folder = Path(root) / "datasets" / "data"
        if folder.is_dir():
            return folder
    return None


def candidate_dirs(name: str, path: str | os.PathLike | None = None) -> list[Path]:
    """Directories searched for ``NAME_TRAIN.ts``: ``path``; else ``$NEURALODE_RNN_UEA_DIR/NAME``,
    ``$NEURALODE_RNN_UEA_DIR``, then sktime's bundled ``datasets/data/NAME``."""
    if path is not None:
        return [Path(path)]
    dirs = []
    if os.environ.get(ENV_VAR):
        dirs += [Path(os.environ[ENV_VAR]) / name, Path(os.environ[ENV_VAR])]
    bundled = sktime_data_dir()
    if bundled is not None:
        dirs.append(bundled / name)
    return dirs


def header(file: Path) -> dict[str, str]:
    """The ``@key value`` lines of a ``.ts`` file before ``@data``, keys lower-cased."""
    out: dict[str, str] = {}
    with open(file, encoding="utf-8", errors="replace") as handle:
        for raw in handle:
            line = raw.strip()
            if not line.startswith("@"):
                continue
            key, _, value = line[1:].partition(" ")
            if key.lower() == "data":
                break
            out[key.lower()] = value.strip()
    return out


def is_classification(file: Path) -> bool:
    """Whether a ``.ts`` file declares class labels (``@classLabel true ...``)."""
    return header(file).get("classlabel", "false").lower().startswith("true")


def uea_datasets(path: str | os.PathLike | None = None) -> list[str]:
    """Names of the classification archives found offline: sub-folders of ``path`` (default
    sktime's bundled data folder) holding ``NAME_TRAIN.ts`` and ``NAME_TEST.ts`` with class labels."""
    root = Path(path) if path is not None else sktime_data_dir()
    if root is None or not root.is_dir():
        return []
    names = []
    for folder in sorted(root.iterdir()):
        train, test = folder / f"{folder.name}_TRAIN.ts", folder / f"{folder.name}_TEST.ts"
        if train.is_file() and test.is_file() and is_classification(train):
            names.append(folder.name)
    return names


def find_uea_files(name: str, path: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """``(NAME_TRAIN.ts, NAME_TEST.ts)`` from the first directory of :func:`candidate_dirs` holding both."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a UEA/UCR archive name such as 'BasicMotions'; got {name!r}")
    looked = candidate_dirs(name, path)
    for directory in looked:
        train, test = directory / f"{name}_TRAIN.ts", directory / f"{name}_TEST.ts"
        if train.is_file() and test.is_file():
            return train, test
    offline = uea_datasets()
    raise FileNotFoundError(
        f"{name}_TRAIN.ts / {name}_TEST.ts not found in "
        + (", ".join(str(d) for d in looked) or "any directory (sktime is not installed)")
        + ". Classification sets bundled offline: "
        + (", ".join(offline) if offline else "none (pip install sktime)")
        + f"; or set the environment variable {ENV_VAR} to a folder holding the .ts files (command line and "
        f"Python; in Python also load_uea(..., path=FOLDER)); `neuralode-rnn list tasks` lists the sets found."
    )


def read_uea(file: Path) -> tuple[list[np.ndarray], list[str]]:
    """A ``.ts`` file as a list of ``(T_i, D)`` float arrays (NaN = missing) and their string labels.

    Parsed once per file and version (sktime's reader takes a few seconds on the larger sets); the
    arrays are read-only, copies are the caller's.
    """
    file = Path(file)
    if not is_classification(file):
        raise ValueError(f"{file} has no class labels (@classLabel false or missing): a regression or "
                         "unlabelled archive; uea:NAME loads classification archives")
    stat = file.stat()
    series, labels = _parse(str(file.resolve()), stat.st_mtime_ns, stat.st_size)
    return list(series), list(labels)


@functools.lru_cache(maxsize=16)
def _parse(file: str, mtime_ns: int, size: int) -> tuple[tuple[np.ndarray, ...], tuple[str, ...]]:
    from sktime.datasets import load_from_tsfile

    frames, labels = load_from_tsfile(file, return_data_type="df-list", replace_missing_vals_with="NaN")
    series = []
    for frame in frames:
        array = frame.to_numpy(dtype=np.float64)
        array.setflags(write=False)
        series.append(array)
    return tuple(series), tuple(np.asarray(labels).astype(str).tolist())


def class_order(labels: list[str]) -> list[str]:
    """Distinct labels, numerically ordered when all are numbers (so '10' follows '9'), else sorted."""
    distinct = sorted(set(labels))
    try:
        return sorted(distinct, key=float)
    except ValueError:
        return distinct


def pad_end(series: list[np.ndarray], length: int) -> torch.Tensor:
    """Stack ``(T_i, D)`` arrays into ``(N, length, D)`` float32, NaN-padded at the end."""
    out = np.full((len(series), length, series[0].shape[1]), np.nan, dtype=np.float32)
    for i, s in enumerate(series):
        out[i, : len(s)] = s
    return torch.from_numpy(out)


def load_uea(
    name: str,
    seed: int = 0,
    n_train: int | None = None,
    n_test: int | None = None,
    standardize: bool = True,
    path: str | os.PathLike | None = None,
    task_name: str | None = None,
) -> SequenceDataset:
    """UEA/UCR archive ``name`` (e.g. "BasicMotions"), official train/test split, classification.

    Labels become classes 0..C-1 in :func:`class_order`.  ``n_train``/``n_test`` keep a subset
    drawn with ``seed`` (the full splits ignore it).  ``standardize``: see the module docstring
    (statistics of the returned training samples only).  ``task_name`` names the dataset
    (default ``"uea:NAME"``).

    Returns values (N, T_max, D) float32, NaN-padded at the end of shorter samples, times None
    (t_k = k), targets (N,) int64.
    """
    seed = check_seed(seed)
    if not isinstance(standardize, bool):
        raise TypeError(f"standardize must be a bool; got {standardize!r}")
    train_file, test_file = find_uea_files(name, path)
    parts = [read_uea(train_file), read_uea(test_file)]
    dims = {s.shape[1] for series, _ in parts for s in series}
    if len(dims) != 1:
        raise ValueError(f"{name}: samples have different numbers of channels {sorted(dims)}")
    classes = class_order([label for _, labels in parts for label in labels])
    length = max(len(s) for series, _ in parts for s in series)
    splits = []
    for (series, labels), cap, part, offset in zip(parts, (n_train, n_test), ("train", "test"), (0, 1)):
        idx = cap_indices(len(labels), check_cap(cap, f"n_{part}", len(labels)), seed + offset)
        values = pad_end([series[i] for i in idx], length)
        targets = torch.tensor([classes.index(labels[i]) for i in idx], dtype=torch.int64)
        splits.append(Split(values, targets))
    lengths = [len(s) for series, _ in parts for s in series]
    span = f"length {length}" if min(lengths) == length else f"lengths {min(lengths)}..{length} NaN-padded at the end"
    data = SequenceDataset(
        name=task_name or f"uea:{name}",
        kind="classification",
        train=splits[0],
        test=splits[1],
        n_classes=len(classes),
        description=(
            f"{name} (UEA/UCR archive, sktime's bundled .ts files), {splits[0].input_size} channel(s), {span}, "
            + ("standardised per channel with training statistics" if standardize else "raw values")
            + f"; official split {len(parts[0][1])}/{len(parts[1][1])}"
            + (f", capped to {len(splits[0])}/{len(splits[1])} (seed {seed})" if n_train or n_test else "")
            + f"; {len(classes)} classes."
        ),
        info={
            "archive": name,
            "seed": seed,
            "standardize": standardize,
            "labels": classes,
            "mean": None,
            "std": None,
            "directory": str(train_file.parent),
        },
    )
    return standardize_splits(data) if standardize else data
