"""What a run will cost before it allocates: solver steps per solve, and peak memory.

A run that cannot fit is refused in one line before the model or its batches exist, naming the
estimate, the limit and the fix, instead of growing until the kernel kills it or a huge
allocation ends in a traceback:

* :func:`check_step_count`: a fixed-step solve whose grid (``step_size`` against the span of the
  sample times) exceeds the solver's step limit (``solvers.DEFAULT_MAX_STEPS``, which no flag
  changes) is a ValueError (bad input) naming the smallest ``--step-size`` that fits;
* :func:`check_memory`: :func:`estimate_memory` against the memory available
  (:func:`available_memory`: /proc/meminfo's MemAvailable, or the cgroup's limit when lower) or
  ``TrainConfig.memory_limit`` (GB; ``math.inf``: no check) raises :class:`MemoryBudgetError`.

The estimate is an order of magnitude, not a measurement: parameters with their gradient and
Adam's two moments, plus the activations backprop keeps through the solve, about
``steps x batch x hidden x (stages + 1) x bytes`` (a stage evaluation and the state per step);
``gradient="checkpoint"`` keeps one state per step and ``"adjoint"`` one per sample.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import solvers

from ..zoo import model_spec
from .recipes import parse_recipe_solvers, substep_size

__all__ = ["MemoryBudgetError", "MemoryEstimate", "available_memory", "check_memory", "check_step_count",
           "estimate_memory", "solve_span"]

GB = 1e9


class MemoryBudgetError(MemoryError):
    """The estimated peak memory of a run exceeds what is available (or ``memory_limit``)."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of the parameters (with gradient and optimiser state) and of the stored activations
    of one training batch, and the words that say where the activations come from."""

    parameters: float
    activations: float
    what: str

    @property
    def total(self) -> float:
        return self.parameters + self.activations


def available_memory() -> tuple[float, str]:
    """(bytes, where the number comes from): MemAvailable of /proc/meminfo (else the free physical
    pages, ``os.sysconf``), lowered to the cgroup v2 limit minus its usage when that is smaller."""
    avail, source = math.inf, "unknown"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail, source = float(line.split()[1]) * 1024, "MemAvailable"
                    break
    except OSError:
        pass
    if not math.isfinite(avail):
        try:
            avail = float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
            source = "free physical memory"
        except (ValueError, OSError, AttributeError):
            pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = float(f.read().strip())
        if limit != "max" and float(limit) - used < avail:
            avail, source = max(float(limit) - used, 0.0), "the cgroup's memory.max minus its usage"
    except (OSError, ValueError):
        pass
    return avail, source


def _training_solvers(c) -> list[tuple[str, float | None]]:
    """(method, step size or None for one step per gap) of every solve a training batch may use."""
    if c.recipe in ("cycle", "random"):
        return [(m, substep_size(c.step_size, c.eps, s)) for m, s in parse_recipe_solvers(c.recipe_solvers)]
    return [(c.method, c.step_size)]


def solve_span(c, length: int, times=None) -> tuple[float, float]:
    """(span of scaled time one solve covers, typical gap): eps x T for samples at t_k = k (the
    solve starts one gap before the first sample), else eps x the range of ``times`` plus a gap."""
    eps = c.eps if c.eps is not None else 1.0
    if times is None or length < 2:
        return eps * length, eps
    t = times.double()
    gap = float((t.amax() - t.amin()) / (length - 1))
    return eps * (float(t.amax() - t.amin()) + gap), eps * gap


def _steps_per_gap(method: str, step: float | None, gap: float) -> int:
    if step is None or solvers.METHODS[method].kind != "fixed":
        return 1
    return max(1, math.ceil(gap / step - 1e-9))


def check_step_count(c, length: int, times=None, flag: str = "--step-size") -> None:
    """ValueError when a fixed-step solve of ``c`` (resolved; continuous models) over ``length``
    samples needs more steps than the solver's limit ``solvers.DEFAULT_MAX_STEPS``."""
    if model_spec(c.model).kind != "continuous" or c.step_size is None:
        return
    span, gap = solve_span(c, length, times)
    limit = solvers.DEFAULT_MAX_STEPS
    for method, step in [(c.method, c.step_size)] + _training_solvers(c):
        if step is None or solvers.METHODS[method].kind != "fixed":
            continue
        steps = max(length, math.ceil(span / step))
        if steps > limit:
            smallest = c.step_size * steps / limit
            raise ValueError(
                f"{flag} {c.step_size:g} makes {steps:,} {method} steps per solve ({length} samples over "
                f"{span:.4g} of scaled time, eps {c.eps:g}), more than the solver's limit of {limit:,} steps per "
                f"solve; use {flag} >= {smallest:.3g}, or leave {flag} out for one step per sample gap")


def estimate_memory(c, length: int | None, input_size: int = 1, output_size: int = 1, times=None) -> MemoryEstimate:
    """The peak memory of one training step of the resolved config ``c`` on sequences of
    ``length`` samples (None: unknown, the parameters only) with ``input_size`` channels."""
    spec = model_spec(c.model)
    size = 8 if c.dtype == "float64" else 4
    size *= 2 if spec.family == "unitary" else 1  # complex hidden state and weights
    h, d = c.hidden_size, input_size
    # the largest of the families' parameter counts: four (h x (h + d)) blocks (LSTM gates), a readout
    parameters = (4 * h * (h + d) + h * (output_size + 2)) * size * 4  # weights, gradient, Adam's m and v
    if not length:
        return MemoryEstimate(parameters, 0.0, f"hidden size {h}: {parameters / GB:.3g} GB of parameters and "
                                               f"optimiser state")
    n_train = c.task_options.get("n_train")
    batch = min(c.batch_size, n_train) if isinstance(n_train, int) else c.batch_size
    if spec.kind == "continuous":
        _, gap = solve_span(c, length, times)
        per_gap = {m: _steps_per_gap(m, s, gap) * ((solvers.METHODS[m].stages or 1) + 1)
                   for m, s in _training_solvers(c)}
        method = max(per_gap, key=per_gap.get)
        stored = per_gap[method]
        if c.gradient == "checkpoint":
            stored = max(1, stored // ((solvers.METHODS[method].stages or 1) + 1))
            how = "checkpointed states"
        elif c.gradient == "adjoint":
            stored, how = 1, "adjoint: one state per sample"
        else:
            how = f"backprop through {method}: {stored} stored tensors per sample gap"
    elif spec.kind == "discrete":
        stored = (solvers.METHODS[c.method].stages or 1) + 1
        how = f"backprop through the {c.method} cell"
    else:
        stored, how = 6, "the recurrent cell's gates"
    activations = float(length) * stored * batch * h * size + 4.0 * batch * length * d * size
    what = (f"{activations / GB:.3g} GB of activations: {length:,} samples x batch {batch} x hidden {h} x "
            f"{stored} ({how}), {c.dtype}; {parameters / GB:.3g} GB of parameters and optimiser state")
    return MemoryEstimate(parameters, activations, what)


def check_memory(c, length: int | None, input_size: int = 1, output_size: int = 1, times=None) -> None:
    """Raise :class:`MemoryBudgetError` when :func:`estimate_memory` exceeds ``c.memory_limit``
    (GB) or, when that is None, the memory available now; ``memory_limit = math.inf`` skips it."""
    limit = getattr(c, "memory_limit", None)
    if limit is not None and math.isinf(limit):
        return
    est = estimate_memory(c, length, input_size, output_size, times)
    if limit is not None:
        budget, source = limit * GB, "--memory-limit, memory_limit"
    else:
        budget, source = available_memory()
    if est.total <= budget:
        return
    fixes = []
    if model_spec(c.model).kind == "continuous" and c.gradient == "backprop" and length:
        from dataclasses import replace

        lighter = estimate_memory(replace(c, gradient="checkpoint"), length, input_size, output_size, times)
        fixes.append(f"--gradient checkpoint (about {lighter.total / GB:.3g} GB) or adjoint")
    fixes.append("a smaller --batch-size" if length else "")
    fixes.append("a smaller --hidden-size")
    if length and "T" in c.task_options:
        fixes.append("a smaller --seq-len")
    fixes = [f for f in fixes if f]
    raise MemoryBudgetError(
        f"this run needs about {est.total / GB:.3g} GB ({est.what}), more than the {budget / GB:.3g} GB available "
        f"({source}); use {' or '.join(fixes)}; --memory-limit GB sets the budget, "
        f"--no-memory-check (memory_limit=math.inf) skips this check")
