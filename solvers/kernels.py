"""How tanh is computed in the structured kernel, chosen once per machine and then kept.

``torch.tanh`` and 2 sigmoid(2 z) - 1 agree to the last few bits only, so a solve gives slightly
different numbers with each, and a training run's results depend on which was used.  Which is
faster depends on the CPU (``torch.tanh`` is ten times slower than ``sigmoid`` on some builds and
four times faster on others), so the choice is measured, but a measurement under load can come
out either way: choosing afresh in every process made the same seed give different results.

So :func:`tanh_kernel` answers, in this order:

1. the process-wide pin (:func:`pin_tanh_kernel`; a training run pins the kernel it recorded);
2. ``SOLVERS_TANH_KERNEL=tanh|sigmoid``;
3. this machine's cache file, one per (CPU model, torch version, device type, dtype), in
   ``$SOLVERS_CACHE_DIR``, else ``$XDG_CACHE_HOME/neuralode_rnn``, else ``~/.cache/neuralode_rnn``;
4. a measurement (the two kernels timed interleaved on a (64, 128) block, median of several
   rounds), stored in the cache file.  The file is written completely under a temporary name and
   then hard-linked to its final name, which fails if it exists: the first writer wins, and every
   process uses what the file holds after its own attempt, so processes racing on a fresh machine
   all end up with the same kernel.  If the cache directory cannot be written, the measurement is
   used for this process with one warning.

GPUs (any non-CPU device) use ``torch.tanh`` without measuring: both are memory-bound single
kernels there and tanh is one fewer.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import platform
import time
import warnings
from pathlib import Path

import torch

__all__ = ["TANH_KERNELS", "cpu_model", "kernel_cache_dir", "pin_tanh_kernel", "pinned_tanh_kernel", "tanh_kernel"]

TANH_KERNELS = ("tanh", "sigmoid")
"""``"tanh"``: ``torch.tanh``; ``"sigmoid"``: 2 sigmoid(2 z) - 1 with the 2 folded into the weights."""

_PIN: str | None = None
_KERNELS: dict[tuple[str, torch.dtype], str] = {}  # this process's answers (the file is read once per key)
_WARNED = False


def _check(name: object, what: str) -> str:
    if name not in TANH_KERNELS:
        raise ValueError(f"{what} must be 'tanh' or 'sigmoid'; got {name!r}")
    return name  # type: ignore[return-value]


def pin_tanh_kernel(name: str | None) -> str | None:
    """Make every later :func:`tanh_kernel` call of this process answer ``name`` ("tanh" or
    "sigmoid"); None removes the pin.  Returns the previous pin (to restore it)."""
    global _PIN
    previous = _PIN
    _PIN = None if name is None else _check(name, "pin_tanh_kernel's name")
    return previous


def pinned_tanh_kernel() -> str | None:
    """The current process-wide pin, or None."""
    return _PIN


def kernel_cache_dir() -> Path:
    """Where the per-machine choices are kept (see the module docstring)."""
    if os.environ.get("SOLVERS_CACHE_DIR"):
        return Path(os.environ["SOLVERS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "neuralode_rnn"


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo, else what ``platform`` says): what a kernel choice or a
    benchmark is recorded against."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _cache_key(device: torch.device, dtype: torch.dtype) -> dict:
    return {"cpu": cpu_model(), "torch": torch.__version__, "device": device.type,
            "dtype": str(dtype).replace("torch.", "")}


def tanh_kernel(dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> str:
    """"tanh" or "sigmoid": how the structured kernel computes tanh for states of ``dtype`` on
    ``device``: the pin, else ``SOLVERS_TANH_KERNEL``, else this machine's cached measurement (see
    the module docstring)."""
    if _PIN is not None:
        return _PIN
    forced = os.environ.get("SOLVERS_TANH_KERNEL")
    if forced:
        return _check(forced, "SOLVERS_TANH_KERNEL")
    device = torch.device(device)
    key = (device.type, dtype)
    choice = _KERNELS.get(key)
    if choice is None:
        choice = "tanh" if device.type != "cpu" else _cached(device, dtype)
        _KERNELS[key] = choice
    return choice


def _cached(device: torch.device, dtype: torch.dtype) -> str:
    """The cache file's kernel for this machine, measuring and storing it first if there is none."""
    key = _cache_key(device, dtype)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    directory = kernel_cache_dir()
    path = directory / f"tanh_kernel-{digest}.json"
    stored = _read(path, key)
    if stored is not None:
        return stored
    times = _measure(dtype, device)
    choice = "tanh" if times["tanh"] <= times["sigmoid"] else "sigmoid"
    record = dict(key, kernel=choice, seconds=times,
                  measured=datetime.datetime.now().isoformat(timespec="seconds"))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(record, f, indent=1, sort_keys=True)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)  # atomic, complete, and refused if another process got there first
            except FileExistsError:
                if _read(path, key) is None:  # a damaged file (never one of ours): replace it
                    os.replace(tmp, path)
                    tmp = None
        finally:
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
    except OSError as exc:
        _warn_once(f"the tanh kernel choice could not be cached in {directory} ({exc}); measured {choice!r} for "
                   f"this process only, so another process may choose differently: set SOLVERS_CACHE_DIR to a "
                   f"writable directory or SOLVERS_TANH_KERNEL=tanh|sigmoid")
        return choice
    stored = _read(path, key)
    return stored if stored is not None else choice


def _read(path: Path, key: dict) -> str | None:
    """The kernel a cache file holds for ``key``, or None (missing, damaged or another key)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or any(record.get(k) != v for k, v in key.items()):
        return None
    kernel = record.get("kernel")
    return kernel if kernel in TANH_KERNELS else None


def _warn_once(message: str) -> None:
    global _WARNED
    if not _WARNED:
        _WARNED = True
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def _measure(dtype: torch.dtype, device: torch.device) -> dict[str, float]:
    """Median seconds of 40 calls of each kernel on a (64, 128) block, 7 interleaved rounds."""
    # no draw from the global RNG: whether a process measured must not change what a seed gives
    z = torch.linspace(-3.0, 3.0, 64 * 128, dtype=dtype, device=device).reshape(64, 128)
    out = torch.empty_like(z)
    minus_one = torch.full((), -1.0, dtype=dtype, device=device)

    def with_tanh():
        torch.tanh(z, out=out)

    def with_sigmoid():
        torch.sigmoid(z, out=out)
        torch.add(minus_one, out, alpha=2.0, out=out)

    rounds: dict[str, list[float]] = {"tanh": [], "sigmoid": []}
    for fn in (with_tanh, with_sigmoid):
        for _ in range(20):
            fn()
    for _ in range(7):
        for name, fn in (("tanh", with_tanh), ("sigmoid", with_sigmoid)):
            t0 = time.perf_counter()
            for _ in range(40):
                fn()
            rounds[name].append(time.perf_counter() - t0)
    return {k: sorted(v)[len(v) // 2] for k, v in rounds.items()}
