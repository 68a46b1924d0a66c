"""Run directories that survive faults.

A run directory holds

    config.json     the full, resolved training configuration
    metrics.csv     one row per finished epoch (``METRIC_FIELDS``)
    last.pt         checkpoint after the last finished epoch (model, optimiser, schedule, epoch,
                    metrics so far, and every RNG state), what ``--resume`` continues from
    best.pt         the checkpoint of the epoch with the best test metric so far
    curves.png      loss and accuracy against epoch
    status.txt      "running", "finished", "stopped ..." or the NaN-guard message

Every file is written atomically: to a temporary file in the same directory, flushed, fsynced,
then ``os.replace``-d over the target, so a process killed at any moment leaves either the old
file or the new one, never a partial one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["METRIC_FIELDS", "RunDir", "atomic_save", "atomic_write", "rng_state", "set_rng_state"]

METRIC_FIELDS = ("epoch", "lr", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "nfe",
                 "epoch_seconds", "wall_seconds")
"""Columns of metrics.csv: ``nfe`` is the mean function evaluations per training batch (solver
calls of the field for continuous models, cell stages x steps for discrete ones); accuracies are
empty for regression tasks; ``wall_seconds`` is cumulative over the run, resumptions included."""


def atomic_write(path: str | os.PathLike, write: Callable[[io.BufferedWriter], None]) -> None:
    """Write ``path`` atomically: ``write(f)`` fills a temporary file that then replaces ``path``.

    If ``write`` raises, the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)``, atomically."""
    atomic_write(path, lambda f: torch.save(obj, f))


def _atomic_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def rng_state() -> dict:
    """The global RNG states of python, numpy and torch (CPU, and CUDA when available)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class RunDir:
    """The files of one run (see the module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    # ---------------------------------------------------------------- paths
    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    @property
    def plot_path(self) -> Path:
        return self.path / "curves.png"

    @property
    def status_path(self) -> Path:
        return self.path / "status.txt"

    # ---------------------------------------------------------------- writing
    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def write_config(self, config: dict) -> None:
        _atomic_text(self.config_path, json.dumps(config, indent=2, sort_keys=True) + "\n")

    def read_config(self) -> dict:
        if not self.config_path.exists():
            raise FileNotFoundError(f"{self.config_path} not found: is {self.path} a run directory?")
        return json.loads(self.config_path.read_text())

    def write_metrics(self, rows: list[dict]) -> None:
        """Rewrite metrics.csv from all rows so far (the checkpoint holds the same rows, so a
        resumed run never duplicates or loses one)."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in METRIC_FIELDS})
        _atomic_text(self.metrics_path, buf.getvalue())

    def read_metrics(self) -> list[dict]:
        with open(self.metrics_path, newline="") as f:
            return list(csv.DictReader(f))

    def write_status(self, text: str) -> None:
        _atomic_text(self.status_path, text.rstrip("\n") + "\n")

    def save_checkpoint(self, state: dict, best: bool = False) -> None:
        atomic_save(state, self.last)
        if best:
            atomic_save(state, self.best)

    def load_checkpoint(self, which: str = "last", map_location: str | torch.device = "cpu") -> dict:
        """Load ``last.pt`` or ``best.pt``."""
        if which not in ("last", "best"):
            raise ValueError(f"checkpoint must be 'last' or 'best'; got {which!r}")
        path = self.last if which == "last" else self.best
        if not path.exists():
            raise FileNotFoundError(f"no {which} checkpoint in {self.path} (expected {path.name})")
        # weights_only=False: the checkpoint holds RNG states (numpy arrays, python tuples)
        return torch.load(path, map_location=map_location, weights_only=False)
