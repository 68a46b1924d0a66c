"""Sequential Fashion-MNIST read from the idx files of Debian's ``dataset-fashion-mnist`` package."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

from .base import SequenceDataset, Split, cap_indices, check_cap, check_permute_flag, check_seed
from .mnist5k import check_rows_permute, pixel_sequences

#: Where ``apt-get install dataset-fashion-mnist`` puts the files (``dpkg -L dataset-fashion-mnist``).
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_VAR = "NEURALODE_RNN_FASHION_DIR"
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def candidate_dirs(path: str | os.PathLike | None = None) -> list[Path]:
    """Directories searched, in order: ``path``, then ``$NEURALODE_RNN_FASHION_DIR``, then Debian's."""
    if path is not None:
        return [Path(path)]
    dirs = [Path(os.environ[ENV_VAR])] if os.environ.get(ENV_VAR) else []
    return dirs + [DEBIAN_DIR]


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def find_fashion_files(path: str | os.PathLike | None = None) -> dict[str, Path]:
    """The four idx files (``.gz`` or not) from the first directory holding all of them.

    Raises FileNotFoundError naming every directory looked at and how to install the data.
    """
    looked = candidate_dirs(path)
    for directory in looked:
        found = {key: _find(directory, stem) for key, stem in FILES.items()}
        if all(found.values()):
            return found  # type: ignore[return-value]
    raise FileNotFoundError(
        "Fashion-MNIST idx files ("
        + ", ".join(f"{s}[.gz]" for s in FILES.values())
        + ") not found in "
        + ", ".join(str(d) for d in looked)
        + ". Install them with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or set the environment "
        f"variable {ENV_VAR} to a directory holding them (in Python also load_fashion(..., path=DIRECTORY))."
    )


def read_idx(file: Path) -> np.ndarray:
    """Read an idx file (optionally gzipped) into a uint8 array of its stated shape."""
    opener = gzip.open if file.suffix == ".gz" else open
    with opener(file, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{file} is not an unsigned-byte idx file (magic bytes {data[:4]!r})")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    array = np.frombuffer(data, dtype=np.uint8, offset=offset)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{file} holds {array.size} bytes of data; its header promises shape {shape}")
    return array.reshape(shape)


def load_fashion(
    seed: int = 0,
    permute: bool = False,
    rows: bool = False,
    n_train: int | None = None,
    n_test: int | None = None,
    path: str | os.PathLike | None = None,
) -> SequenceDataset:
    """Fashion-MNIST (60,000 train / 10,000 test, the official split) as sequences, 10 classes.

    Pixel mode (default): 784 steps of one pixel (D = 1), row-major; ``rows=True``: 28 steps of
    one 28-pixel row (D = 28). Pixels scaled from 0..255 to [0, 1]. ``permute=True`` (pixel mode
    only) applies the permuted-MNIST convention ``torch.manual_seed(12008); torch.randperm(784)``.
    ``n_train``/``n_test`` keep a subset of each split drawn with ``seed`` (the full split
    ignores ``seed``). Files are looked for in ``path``, else ``$NEURALODE_RNN_FASHION_DIR``,
    else ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``).

    Returns values (N, 784, 1) or (N, 28, 28) float32, times None, targets (N,) int64.
    """
    seed = check_seed(seed)
    permute = check_permute_flag(permute)
    check_rows_permute(rows, permute)
    files = find_fashion_files(path)
    splits = []
    for part, cap, offset in (("train", n_train, 0), ("test", n_test, 1)):
        labels = read_idx(files[f"{part}_labels"]).astype(np.int64)
        images = read_idx(files[f"{part}_images"])
        if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
            raise ValueError(
                f"Fashion-MNIST {part} files disagree: images {images.shape}, labels {labels.shape}; "
                "expected (N, 28, 28) and (N,)"
            )
        idx = cap_indices(len(labels), check_cap(cap, f"n_{part}", len(labels)), seed + offset)
        pixels = images[idx].reshape(len(idx), 784).astype(np.float32) / 255.0
        values, permutation = pixel_sequences(pixels, rows, permute)
        splits.append(Split(values, torch.from_numpy(labels[idx])))
    mode = "28 rows of 28 pixels" if rows else ("784 permuted pixels" if permute else "784 pixels")
    return SequenceDataset(
        name="fashion",
        kind="classification",
        train=splits[0],
        test=splits[1],
        n_classes=10,
        description=(
            f"Fashion-MNIST as sequences of {mode}, pixels scaled to [0, 1]; official 60000/10000 split"
            + (f", capped to {len(splits[0])}/{len(splits[1])} (seed {seed})" if n_train or n_test else "")
            + f"; read from {files['train_images'].parent}."
        ),
        permutation=permutation,
        info={"seed": seed, "rows": rows, "classes": CLASSES, "directory": str(files["train_images"].parent)},
    )
