"""Run directories that cannot be mixed up or lost.

A run directory holds

    config.json       the full, resolved training configuration
    metrics.csv       one row per finished epoch (``METRIC_FIELDS``): the same bytes for the same seed
    timing.csv        the wall-clock time of each epoch (``TIMING_FIELDS``), kept out of metrics.csv
    last.pt           checkpoint after the last finished epoch (model, optimiser, schedule, epoch,
                      metrics so far, and every RNG state), what ``--resume`` continues from
    previous.pt       the checkpoint before it: the fallback when last.pt is damaged or missing
    best.pt           only in a run with a validation split (``TrainConfig.validation > 0``): the
                      checkpoint of the epoch with the best *validation* metric so far.  A run
                      without one measures its epochs on the test split and keeps no best.pt
                      (choosing an epoch there would be selection on the test set); a best.pt in
                      such a directory (written before this rule) is never loaded as "best"
                      (``runs.open_run`` refuses it)
    summary.json      runs with a validation split, when they end: the best validation epoch, whether
                      early stopping fired, and the validation and test metrics of the weights of
                      that epoch, restored (``TrainResult.summary``; the test split's only use)
    checkpoints.json  the SHA-256 of every checkpoint written, so a damaged file is recognised
    curves.png        loss and accuracy against epoch
    status.txt        "running ...", "finished ...", "stopped ..." or the error that ended the run
    writer.lock       who is writing the run (pid, host, start time, command)

Every file is written atomically: to a temporary file in the same directory (created with mode
0666, so the user's umask applies as to any other file), flushed, fsynced, then ``os.replace``-d
over the target, so a process killed at any moment leaves either the old file or the new one.

**One writer.**  :meth:`RunDir.lock` takes an exclusive ``fcntl.flock`` on ``writer.lock`` for the
life of a training run; a second writer gets :class:`RunDirBusyError` naming the holder.  The
kernel drops the lock when the holder's process ends, however it ends (kill -9 included), so a
stale lock never blocks a resume.

**Two good checkpoints.**  :meth:`RunDir.save_checkpoint` serialises the state once, records its
SHA-256 in checkpoints.json, writes it to a temporary file, reads it back and compares the
digest (a failed or short write is caught there), and only then moves last.pt to previous.pt and
the new file to last.pt.  :meth:`RunDir.load_checkpoint` checks a file's digest against the ones
recorded and that it unpickles; ``which="last"`` falls back to previous.pt with a warning naming
the damaged or missing file.  (``torch.load`` checks no CRC: a flipped byte inside a tensor loads
silently, which is why the digests are kept.)
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import hashlib
import io
import json
import os
import random
import socket
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "CHECKPOINTS",
    "METRIC_FIELDS",
    "TIMING_FIELDS",
    "CheckpointError",
    "Lock",
    "RunDir",
    "RunDirBusyError",
    "atomic_save",
    "atomic_write",
    "fresh_run_dir",
    "rng_state",
    "set_rng_state",
]

METRIC_FIELDS = ("epoch", "task", "model", "lr", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
                 "nfe", "evaluated_on")
"""Columns of metrics.csv: ``task`` and ``model`` name the run (every file says whose it is);
``nfe`` is the mean function evaluations per training batch (solver calls of the field for
continuous models, cell stages x steps for discrete ones); accuracies are empty for regression
tasks; ``evaluated_on`` is "test" or "validation" (``TrainConfig.validation``).  Only what the
seed determines: two runs with the same seed write the same bytes."""

TIMING_FIELDS = ("epoch", "epoch_seconds", "wall_seconds")
"""Columns of timing.csv (the rows' keys of the same names): ``wall_seconds`` is cumulative over
the run, resumptions included.  Times differ from run to run, so they are not in metrics.csv."""

CHECKPOINTS = ("last", "previous", "best")
"""The checkpoint names :meth:`RunDir.load_checkpoint` takes."""

_KEEP_DIGESTS = {"last": 3, "best": 2}  # recorded digests kept per kind: enough for every file on disk


class RunDirBusyError(RuntimeError):
    """Another process is writing this run directory (it holds ``writer.lock``)."""


class CheckpointError(RuntimeError):
    """No usable checkpoint where one is needed (damaged or missing files), or a write that did not verify."""


# ------------------------------------------------------------------------------------- files
def atomic_write(path: str | os.PathLike, write: Callable[[io.BufferedWriter], None]) -> None:
    """Write ``path`` atomically: ``write(f)`` fills a temporary file that then replaces ``path``.

    The temporary file is created with mode 0666 minus the umask (``tempfile.mkstemp`` would make
    it 0600 whatever the umask).  If ``write`` raises, it is removed and ``path`` left as it was.
    """
    path = Path(path)
    tmp = _temporary(path)
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _temporary(path: Path) -> Path:
    """A fresh name next to ``path`` (hidden, pid and random suffix: never shared by two writers)."""
    return path.parent / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"


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


def fresh_run_dir(parent: str | os.PathLike, name: str) -> Path:
    """A new, empty directory ``parent/name-YYYYmmdd-HHMMSS[-k]``, created here (never shared).

    ``mkdir`` without ``exist_ok`` is the atomic test: two processes starting in the same second
    get different suffixes.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for k in range(1000):
        path = parent / (f"{name}-{stamp}" + (f"-{k}" if k else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a fresh run directory {parent / name}-{stamp}-*")


# ------------------------------------------------------------------------------------- lock
@dataclass
class Lock:
    """An exclusive ``flock`` on a run directory's writer.lock; :meth:`release` (or the end of the
    process) frees it."""

    path: Path
    fd: int | None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        return (f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')} "
                f"({info.get('command')})")
    except (OSError, ValueError):
        return "another process (its details could not be read)"


# ------------------------------------------------------------------------------------- the directory
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
    def timing_path(self) -> Path:
        return self.path / "timing.csv"

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def previous(self) -> Path:
        return self.path / "previous.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    @property
    def manifest_path(self) -> Path:
        return self.path / "checkpoints.json"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def plot_path(self) -> Path:
        return self.path / "curves.png"

    @property
    def status_path(self) -> Path:
        return self.path / "status.txt"

    @property
    def lock_path(self) -> Path:
        return self.path / "writer.lock"

    def checkpoint_path(self, which: str) -> Path:
        if which not in CHECKPOINTS:
            raise ValueError(f"checkpoint must be one of {', '.join(map(repr, CHECKPOINTS))}; got {which!r}")
        return self.path / f"{which}.pt"

    # ---------------------------------------------------------------- state of the directory
    def holds_run(self) -> bool:
        """Whether a run was started here (config.json or any checkpoint or metrics exist)."""
        return any(p.exists() for p in (self.config_path, self.metrics_path, self.last, self.previous, self.best))

    def finished_epochs(self) -> int:
        """Epochs recorded in metrics.csv (0 when there is none)."""
        if not self.metrics_path.exists():
            return 0
        try:
            return len(self.read_metrics())
        except (OSError, csv.Error, ValueError):
            return 0

    # ---------------------------------------------------------------- writing
    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def lock(self, command: str | None = None) -> Lock:
        """Take the exclusive writer lock, or raise :class:`RunDirBusyError` naming its holder."""
        self.create()
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no locking, say so once
            warnings.warn("fcntl is not available: run directories are not locked against a second writer",
                          stacklevel=2)
            return Lock(self.lock_path, fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirBusyError(f"{self.path} is being written by {_holder(self.lock_path)}; wait for that run "
                                  f"to end, or choose another run directory") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.datetime.now().isoformat(timespec="seconds"),
                "command": command or " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        return Lock(self.lock_path, fd)

    def write_config(self, config: dict) -> None:
        _atomic_text(self.config_path, json.dumps(config, indent=2, sort_keys=True) + "\n")

    def read_config(self) -> dict:
        if not self.config_path.exists():
            raise FileNotFoundError(f"{self.config_path} not found: is {self.path} a run directory?")
        try:
            return json.loads(self.config_path.read_text())
        except ValueError as exc:
            raise ValueError(f"{self.config_path} is not valid JSON ({exc})") from None

    def write_metrics(self, rows: list[dict]) -> None:
        """Rewrite metrics.csv and timing.csv from all rows so far (the checkpoint holds the same
        rows, so a resumed run never duplicates or loses one)."""
        for path, fields in ((self.metrics_path, METRIC_FIELDS), (self.timing_path, TIMING_FIELDS)):
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in fields})
            _atomic_text(path, buf.getvalue())

    def read_metrics(self) -> list[dict]:
        with open(self.metrics_path, newline="") as f:
            return list(csv.DictReader(f))

    def read_timing(self) -> list[dict]:
        """The rows of timing.csv (``TIMING_FIELDS``); none for a run written before it existed."""
        if not self.timing_path.exists():
            return []
        with open(self.timing_path, newline="") as f:
            return list(csv.DictReader(f))

    def read_rows(self) -> list[dict]:
        """The rows of metrics.csv with the times of timing.csv (by epoch) added: the rows as the
        training loop kept them (values as strings)."""
        times = {r["epoch"]: r for r in self.read_timing()}
        return [{**times.get(r["epoch"], {}), **r} for r in self.read_metrics()]

    def write_summary(self, summary: dict) -> None:
        _atomic_text(self.summary_path, json.dumps(summary, indent=2, sort_keys=True) + "\n")

    def read_summary(self) -> dict | None:
        """summary.json, or None when the run has none (no validation split, or not ended)."""
        if not self.summary_path.exists():
            return None
        return json.loads(self.summary_path.read_text())

    def write_status(self, text: str) -> None:
        _atomic_text(self.status_path, text.rstrip("\n") + "\n")

    def write_plot(self, png: bytes) -> None:
        """curves.png replaced atomically by ``png`` (the bytes of ``neuralode_rnn.plots.curves_png``)."""
        atomic_write(self.plot_path, lambda f: f.write(png))

    def clear(self) -> None:
        """Remove this run's checkpoints, digests, metrics, timing, curves and status (for a fresh start)."""
        for p in (self.last, self.previous, self.best, self.manifest_path, self.metrics_path, self.timing_path,
                  self.plot_path, self.status_path, self.summary_path):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    # ---------------------------------------------------------------- checkpoints
    def _read_manifest(self) -> dict | None:
        if not self.manifest_path.exists():
            return None
        try:
            return json.loads(self.manifest_path.read_text())
        except (OSError, ValueError):
            return {"sha256": {}}  # damaged: no file can be vouched for, each is checked by loading

    def _record(self, digest: str, kind: str, epoch: int) -> None:
        manifest = self._read_manifest() or {"sha256": {}}
        entries = manifest.setdefault("sha256", {})
        entry = entries.setdefault(digest, {"epoch": epoch, "kinds": []})
        entry["kinds"] = sorted(set(entry.get("kinds", [])) | {kind})
        entry["saved"] = datetime.datetime.now().isoformat(timespec="seconds")
        keep = set()
        for k, n in _KEEP_DIGESTS.items():
            mine = sorted((e.get("saved", ""), e.get("epoch", -1), d) for d, e in entries.items()
                          if k in e.get("kinds", ()))
            keep.update(d for _, _, d in mine[-n:])
        manifest["sha256"] = {d: e for d, e in entries.items() if d in keep}
        _atomic_text(self.manifest_path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")

    def _write_verified(self, data: bytes, digest: str, path: Path) -> Path:
        """``data`` in a temporary file next to ``path``, read back and checked; returns its name."""
        tmp = _temporary(path)
        try:
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            back = hashlib.sha256(tmp.read_bytes()).hexdigest()
            if back != digest:
                raise CheckpointError(f"{path} did not verify after writing (read back {back[:12]}..., wrote "
                                      f"{digest[:12]}...); the previous checkpoints are kept")
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return tmp

    def save_checkpoint(self, state: dict, best: bool = False) -> None:
        """Write ``state`` as last.pt (the old last.pt becomes previous.pt), and as best.pt if ``best``.

        Each file is verified (read back, SHA-256 compared) before it replaces anything.
        """
        buf = io.BytesIO()
        torch.save(state, buf)
        data = buf.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        epoch = int(state.get("epoch", -1))
        self._record(digest, "last", epoch)  # recorded first: every file on disk stays vouched for
        tmp = self._write_verified(data, digest, self.last)
        if self.last.exists():
            os.replace(self.last, self.previous)
        os.replace(tmp, self.last)
        if best:
            self._record(digest, "best", epoch)
            os.replace(self._write_verified(data, digest, self.best), self.best)
        _fsync_dir(self.path)

    def _read_checkpoint(self, path: Path, map_location) -> dict:
        """The state in ``path``, or CheckpointError saying what is wrong with the file."""
        if not path.exists():
            raise CheckpointError(f"{path} is missing")
        data = path.read_bytes()
        manifest = self._read_manifest()
        if manifest is not None and hashlib.sha256(data).hexdigest() not in manifest.get("sha256", {}):
            raise CheckpointError(f"{path} is damaged: its SHA-256 matches no checkpoint this run wrote "
                                  f"({len(data)} bytes)")
        try:
            # weights_only=False: the checkpoint holds RNG states (numpy arrays, python tuples)
            state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=False)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means a damaged file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"{path} could not be read ({type(exc).__name__}: {first})") from None
        if not isinstance(state, dict) or "model" not in state:
            raise CheckpointError(f"{path} is not a training checkpoint (no model state)")
        return state

    def load_checkpoint(self, which: str = "last", map_location: str | torch.device = "cpu",
                        fallback: bool = True) -> dict:
        """Load and verify a checkpoint: "last", "previous" or "best".

        ``which="last"`` with ``fallback`` (default) tries previous.pt when last.pt is damaged or
        missing, with a warning naming the bad file.  Raises :class:`CheckpointError` (listing
        every file tried and what was wrong) when none is usable.
        """
        return self.open_checkpoint(which, map_location, fallback)[0]

    def open_checkpoint(self, which: str = "last", map_location: str | torch.device = "cpu",
                        fallback: bool = True) -> tuple[dict, Path]:
        """:meth:`load_checkpoint`, and the file the state came from."""
        path = self.checkpoint_path(which)
        order = [path] + ([self.previous] if which == "last" and fallback else [])
        problems = []
        for candidate in order:
            try:
                state = self._read_checkpoint(candidate, map_location)
            except CheckpointError as exc:
                problems.append(str(exc))
                continue
            if problems:
                warnings.warn(f"{problems[0]}; using {candidate.name} (epoch {state.get('epoch')}) instead",
                              RuntimeWarning, stacklevel=3)
            return state, candidate
        raise CheckpointError(f"no usable {which} checkpoint in {self.path}: " + "; ".join(problems))


def _fsync_dir(path: Path) -> None:
    """Make the renames in ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
