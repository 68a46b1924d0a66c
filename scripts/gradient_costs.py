"""Time and peak memory of each gradient mode on one model (docs/GRADIENTS.md).

Lipschitz RNN, B=16, N=128, D=1, float32, hold input at times 0.1 k, cross-entropy of the readout of
the last state; one forward+backward per measurement.  Rows: midpoint under backprop, checkpoint and
adjoint, reversible_midpoint under backprop and reversible (all on the structured kernel).  Peak memory: a fresh
subprocess per row and T, the growth of the peak resident set size (VmHWM) over one run after a
warm-up at T=8 (allocator slack included).  Time: median of ``--repeats`` runs at the largest T,
rows interleaved, ``--threads`` threads.

    PYTHONPATH=. python scripts/gradient_costs.py --threads 1
    PYTHONPATH=. python scripts/gradient_costs.py --threads 1 --field ctrnn --coupling 0.8 --rows reversible

``--generic`` adds each row on the generic driven term (the field's rhs with autograd), timed only.
``--field`` takes another field (CTRNN: h' = -h + ..., whose reversible backward keeps anchors),
``--coupling`` the reversible methods' lambda, ``--rows reversible`` only the two reversible rows
(``reversible-mode`` only the last), ``--memory-repeats`` the median peak of that many processes.
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
from solvers.kernels import cpu_model
from solvers.tableaux import reversible

ROWS = {
    "midpoint / backprop": ("midpoint", "backprop"),
    "midpoint / checkpoint": ("midpoint", "checkpoint"),
    "midpoint / adjoint": ("midpoint", "adjoint"),
    "reversible_midpoint / backprop": ("reversible_midpoint", "backprop"),
    "reversible_midpoint / reversible": ("reversible_midpoint", "reversible"),
}


FIELDS = {"lipschitz": nr.LipschitzField, "antisymmetric": nr.AntisymmetricField, "ctrnn": nr.CTRNNField}


def build(row: str, T: int, B: int = 16, N: int = 128, field: str = "lipschitz", coupling: float | None = None,
          generic: bool = False):
    method, mode = ROWS[row]
    if coupling is not None and method.startswith("reversible_"):
        method = reversible(method.removeprefix("reversible_"), coupling)
    torch.manual_seed(0)
    f = FIELDS[field](1, N)
    if generic:  # the field's rhs on the generic driven term (autograd), not the structured kernel
        f.structure = lambda: None
    model = nr.ContinuousRNN(f, 10, method=method, gradient=mode)
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


def memory_child(row: str, T: int, field: str, coupling: float | None) -> None:
    build(row, 8, field=field, coupling=coupling)()
    run = build(row, T, field=field, coupling=coupling)
    base = _vmhwm_kb()
    run()
    print(json.dumps({"peak_mb": (_vmhwm_kb() - base) / 1024}))


def memory(row: str, T: int, threads: int, field: str, coupling: float | None) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    extra = ["--field", field] + ([] if coupling is None else ["--coupling", str(coupling)])
    res = subprocess.run([sys.executable, __file__, "--memory-child", row, "--T", str(T), str(T), *extra],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])["peak_mb"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--T", type=int, nargs=2, default=[98, 784])
    ap.add_argument("--field", choices=list(FIELDS), default="lipschitz")
    ap.add_argument("--coupling", type=float, default=None, help="the reversible methods' lambda (default 0.999)")
    ap.add_argument("--rows", choices=("all", "reversible", "reversible-mode"), default="all")
    ap.add_argument("--memory-repeats", type=int, default=1, help="fresh processes per peak (their median)")
    ap.add_argument("--generic", action="store_true",
                    help="also each row on the generic driven term (timed only)")
    ap.add_argument("--memory-child")
    args = ap.parse_args()
    if args.memory_child:
        torch.set_num_threads(args.threads)
        memory_child(args.memory_child, args.T[0], args.field, args.coupling)
        return
    torch.set_num_threads(args.threads)
    lo, hi = args.T
    rows = [r for r in ROWS if args.rows == "all" or (r.startswith("reversible_") and
                                                      (args.rows == "reversible" or r.endswith("/ reversible")))]
    runs = {row: build(row, hi, field=args.field, coupling=args.coupling) for row in rows}
    if args.generic:
        runs.update({f"{row}, generic term": build(row, hi, field=args.field, coupling=args.coupling, generic=True)
                     for row in rows})
        rows = list(runs)
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {row: [] for row in rows}
    for _ in range(args.repeats):
        for row, run in runs.items():
            t0 = time.perf_counter()
            run()
            times[row].append(time.perf_counter() - t0)
    med = {row: statistics.median(v) for row, v in times.items()}
    base = med[rows[0]]
    lam = "" if args.coupling is None else f", reversible coupling {args.coupling:g}"
    print(f"{args.field} B=16 N=128 D=1 float32{lam}, torch {torch.__version__}, {args.threads} thread(s), "
          f"median of {args.repeats}, {cpu_model()}")
    print()
    print(f"| method / gradient | forward+backward T={hi} (s) | / {rows[0]} | peak MB T={lo} | "
          f"peak MB T={hi} | T={hi} / T={lo} |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        if row not in ROWS:  # a generic-term row: timed only
            print(f"| {row} | {med[row]:.2f} | {med[row] / base:.2f} | | | |", flush=True)
            continue
        m_lo, m_hi = (statistics.median(memory(row, T, args.threads, args.field, args.coupling)
                                        for _ in range(args.memory_repeats)) for T in (lo, hi))
        ratio = m_hi / m_lo if m_lo > 0 else float("nan")
        print(f"| {row} | {med[row]:.2f} | {med[row] / base:.2f} | {m_lo:.1f} | {m_hi:.1f} | {ratio:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
