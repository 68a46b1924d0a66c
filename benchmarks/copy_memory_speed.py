"""Time per step of the copy-memory example's training iteration against the fast path alone, same shapes.

    PYTHONPATH=. python benchmarks/copy_memory_speed.py                 # T = 1000, writes benchmarks/COPY_MEMORY_SPEED.md
    PYTHONPATH=. python benchmarks/copy_memory_speed.py --T 200 --repeats 3 --no-write

Shapes: the example's (batch 20, N = 128 complex units, 10 input channels, 9 classes), T + 20 steps.
Rows, each one forward and backward pass per repetition:

* **example iteration**: ``examples/copy_memory.py``'s own ``train_step`` on a fresh batch (sequence
  generation, the ContinuousRNN's trajectory, the readout and cross-entropy at every step, backward,
  the optimiser step: Cayley on W and RMSprop for the rest, or RMSprop for the restricted uRNN);
* **fast path**: the same ContinuousRNN's ``trajectory`` on the same shapes, backward from the sum
  of the states' real and imaginary parts: the solve alone;
* **discrete cell (before)**: the DiscreteRNN on the field's Euler cell, the example's model until
  this change, same loss as the fast-path row.

The goal (issue 19): example iteration / fast path <= 1.2 for the full-capacity uRNN.

Timing: one process, ``torch.set_num_threads(--threads)`` (default 1), every row warmed up once,
then ``--repeats`` rounds in which every row runs once in turn (interleaved, so a burst of load from
other jobs hits all rows alike); medians per row, ratios between medians of this run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch

import neuralode_rnn as nr
from solvers.kernels import cpu_model

HERE = Path(__file__).resolve().parent
GOAL = 1.2


def load_example():
    spec = importlib.util.spec_from_file_location("copy_memory_example", HERE.parent / "examples" / "copy_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def solve_backward(model, x: torch.Tensor) -> None:
    """Forward and backward of the solve alone: trajectory, then the sum of its real and imaginary parts."""
    model.zero_grad(set_to_none=True)
    h = model.trajectory(x)
    (h.real.sum() + h.imag.sum()).backward()


def rows_for(ex, kind: str, T: int, batch_size: int, hidden: int) -> dict:
    """name -> callable running one repetition, for one uRNN kind."""
    model, features, opt, clip = ex.build(kind, hidden, hidden, 1e-3, 1e-3, seed=0)
    if not isinstance(model, nr.ContinuousRNN):
        raise TypeError(f"the example's {kind!r} model is a {type(model).__name__}, not the fast path (ContinuousRNN)")
    g = torch.Generator().manual_seed(0)
    x, _ = ex.batch(batch_size, T, torch.Generator().manual_seed(1))
    discrete = nr.DiscreteRNN(model.field.discretize("euler", 1.0), model.readout.out_features)
    return {
        "example iteration": lambda: ex.train_step(model, features, opt, clip, *ex.batch(batch_size, T, g)),
        "fast path": lambda: solve_backward(model, x),
        "discrete cell (before)": lambda: solve_backward(discrete, x),
    }


def measure(rows: dict, repeats: int) -> tuple[dict, dict]:
    """One warm-up each, then ``repeats`` interleaved rounds: (median seconds per row, median over
    rounds of each row's time / the fast path's time in the same round)."""
    for run in rows.values():
        run()
    times = {name: [] for name in rows}
    for _ in range(repeats):
        for name, run in rows.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    paired = {name: statistics.median(a / b for a, b in zip(v, times["fast path"])) for name, v in times.items()}
    return {name: statistics.median(v) for name, v in times.items()}, paired


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--T", type=int, default=1000, help="the copy delay; each sequence has T + 20 steps")
    p.add_argument("--kinds", nargs="+", default=["full", "restricted"], choices=["full", "restricted", "orthogonal"])
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-write", action="store_true", help="print only (no benchmarks/COPY_MEMORY_SPEED.md)")
    a = p.parse_args(argv)
    if a.T < 1 or a.repeats < 1:
        raise SystemExit(f"--T and --repeats must be >= 1; got --T {a.T} --repeats {a.repeats}")
    torch.set_num_threads(a.threads)
    ex = load_example()
    steps = a.T + 20
    lines = ["| model | row | ms per step (median) | / fast path (ratio of medians) | / fast path (median of "
             "same-round ratios) |", "|---|---|---|---|---|"]
    ratios = {}
    for kind in a.kinds:
        med, paired = measure(rows_for(ex, kind, a.T, a.batch_size, a.hidden), a.repeats)
        ratios[kind] = med["example iteration"] / med["fast path"]
        for name, sec in med.items():
            lines.append(f"| {kind} | {name} | {1e3 * sec / steps:.3f} | {sec / med['fast path']:.2f} | "
                         f"{paired[name]:.2f} |")
    cmd = "PYTHONPATH=. python benchmarks/copy_memory_speed.py" + ("" if argv is None else " " + " ".join(argv))
    if argv is None:
        cmd = "PYTHONPATH=. python benchmarks/copy_memory_speed.py " + " ".join(sys.argv[1:])
    verdict = ", ".join(f"{k}: {r:.2f} ({'met' if r <= GOAL else 'not met'})" for k, r in ratios.items())
    text = (f"# Copy memory: the example's time per step against the fast path\n\n"
            f"Command: `{cmd.strip()}`; {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
            f"{cpu_model()}, torch {torch.__version__}, {a.threads} thread(s); batch {a.batch_size}, "
            f"N = {a.hidden}, T = {a.T} ({steps} steps), medians of {a.repeats} interleaved repeats after one "
            f"warm-up each.\n\n" + "\n".join(lines) +
            f"\n\nExample iteration / fast path, ratio of medians (goal <= {GOAL}): {verdict}.\n")
    print(text)
    if not a.no_write:
        (HERE / "COPY_MEMORY_SPEED.md").write_text(text)
    return ratios


if __name__ == "__main__":
    main()
