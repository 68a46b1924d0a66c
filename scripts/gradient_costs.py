"""Time and peak memory of each gradient mode on one model (docs/GRADIENTS.md).

Lipschitz RNN, B=16, N=128, D=1, float32, hold input at times 0.1 k, cross-entropy of the readout of
the last state; one forward+backward per measurement.  Rows: midpoint under backprop, checkpoint and
adjoint (the structured kernel), reversible_midpoint under backprop and reversible (the generic
driven term: the structured kernel does not take reversible steps).  Peak memory: a fresh
subprocess per row and T, the growth of the peak resident set size (VmHWM) over one run after a
warm-up at T=8 (allocator slack included).  Time: median of ``--repeats`` runs at the largest T,
rows interleaved, ``--threads`` threads.

    PYTHONPATH=. python scripts/gradient_costs.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

import neuralode_rnn as nr

ROWS = {
    "midpoint / backprop": ("midpoint", "backprop"),
    "midpoint / checkpoint": ("midpoint", "checkpoint"),
    "midpoint / adjoint": ("midpoint", "adjoint"),
    "reversible_midpoint / backprop": ("reversible_midpoint", "backprop"),
    "reversible_midpoint / reversible": ("reversible_midpoint", "reversible"),
}


def build(row: str, T: int, B: int = 16, N: int = 128):
    method, mode = ROWS[row]
    torch.manual_seed(0)
    model = nr.ContinuousRNN(nr.LipschitzField(1, N), 10, method=method, gradient=mode)
    x = torch.randn(B, T, 1)
    times = 0.1 * torch.arange(1, T + 1, dtype=torch.float32)
    y = torch.randint(0, 10, (B,))

    def run():
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x, times), y).backward()

    return run


def _vmhwm_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def memory_child(row: str, T: int) -> None:
    build(row, 8)()
    run = build(row, T)
    base = _vmhwm_kb()
    run()
    print(json.dumps({"peak_mb": (_vmhwm_kb() - base) / 1024}))


def memory(row: str, T: int, threads: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    res = subprocess.run([sys.executable, __file__, "--memory-child", row, "--T", str(T), str(T)], capture_output=True,
                         text=True, env=env, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])["peak_mb"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--T", type=int, nargs=2, default=[98, 784])
    ap.add_argument("--memory-child")
    args = ap.parse_args()
    if args.memory_child:
        torch.set_num_threads(args.threads)
        memory_child(args.memory_child, args.T[0])
        return
    torch.set_num_threads(args.threads)
    lo, hi = args.T
    runs = {row: build(row, hi) for row in ROWS}
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {row: [] for row in ROWS}
    for _ in range(args.repeats):
        for row, run in runs.items():
            t0 = time.perf_counter()
            run()
            times[row].append(time.perf_counter() - t0)
    med = {row: statistics.median(v) for row, v in times.items()}
    base = med["midpoint / backprop"]
    print(f"Lipschitz B=16 N=128 D=1 float32, torch {torch.__version__}, {args.threads} thread(s), "
          f"median of {args.repeats}")
    print()
    print(f"| method / gradient | forward+backward T={hi} (s) | / midpoint backprop | peak MB T={lo} | "
          f"peak MB T={hi} | T={hi} / T={lo} |")
    print("|---|---|---|---|---|---|")
    for row in ROWS:
        m_lo, m_hi = memory(row, lo, args.threads), memory(row, hi, args.threads)
        ratio = m_hi / m_lo if m_lo > 0 else float("nan")
        print(f"| {row} | {med[row]:.2f} | {med[row] / base:.2f} | {m_lo:.1f} | {m_hi:.1f} | {ratio:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
