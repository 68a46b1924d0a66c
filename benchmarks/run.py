"""Speed and memory of this library's continuous-time RNNs against their peers, in one process.

    PYTHONPATH=. python benchmarks/run.py            # full run (~20 minutes), writes benchmarks/RESULTS.md
    PYTHONPATH=. python benchmarks/run.py --quick    # a few minutes: T = 98, 196, fewer rows

Shapes as the Lipschitz RNN's ordered pixel-MNIST set-up: B = 128, N = 128, D = 1, float32, step
eps = 0.03, T in {98, 196, 392, 784}; each row is a forward pass, a cross-entropy loss on a linear
readout of the last state and a backward pass, unless it says "inference" or "floor".

Timing: one process, torch.set_num_threads(THREADS) fixed, every row warmed up once, then
``repeats`` rounds in which every row runs once in turn (interleaved, so a burst of load from other
jobs on a shared machine hits all rows alike); the table reports medians, and ratios are taken
between medians of the same run.

Peak memory: for each row, a fresh subprocess builds the row, runs it once at T = 8 (library
initialisation), records its peak resident set size (``VmHWM`` of /proc/self/status), runs the row
once at the measured T, and reports the growth of the peak: the extra memory the forward and
backward pass needed at their high-water mark (page granularity, includes allocator slack).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchdiffeq

import neuralode_rnn as nr

HERE = Path(__file__).resolve().parent
B, N, D, EPS, CLASSES = 128, 128, 1, 0.03, 10
THREADS = 1
T_FULL = (98, 196, 392, 784)
T_QUICK = (98, 196)


# ---------------------------------------------------------------------------- the rows
def _data(T: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, D, generator=g)
    y = torch.randint(0, CLASSES, (B,), generator=g)
    times = EPS * torch.arange(1, T + 1, dtype=torch.float32)
    return x, y, times


def _library(family: str, method: str, gradient: str, inference: bool = False):
    def build(T: int):
        torch.manual_seed(0)
        field = nr.LipschitzField(D, N) if family == "lipschitz" else nr.AntisymmetricField(D, N, gamma=0.01)
        model = nr.ContinuousRNN(field, CLASSES, method=method, gradient=gradient)
        x, y, times = _data(T)
        if inference:
            def run():
                with torch.no_grad():
                    model(x, times)
            return run

        def run():
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x, times), y).backward()
        return run
    return build


def _irregular(T: int):
    """Per-sample times: each sample keeps a random half of the T points; B x T/2 samples."""
    torch.manual_seed(0)
    model = nr.ContinuousRNN(nr.LipschitzField(D, N), CLASSES, method="euler")
    g = torch.Generator().manual_seed(1)
    x_full, y, times_full = _data(T)
    keep = torch.rand(B, T, generator=g).argsort(1)[:, :T // 2].sort(1).values
    x = x_full.gather(1, keep.unsqueeze(-1))
    times = times_full[keep]

    def run():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x, times), y).backward()
    return run


def _halved(T: int):
    """The regular case with the irregular one's number of steps (T/2 samples, shared times)."""
    return _library("lipschitz", "euler", "backprop")(T // 2)


def _symmetric_skew(M: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    return beta * (M - M.T) + (1 - beta) * (M + M.T) - gamma * torch.eye(M.shape[0])


class _ReferenceLipschitz(torch.nn.Module):
    """The Lipschitz RNN written as its reference code (erichson/LipschitzRNN) writes it: a Python
    loop over time that, at every step, applies the input map (nn.Linear) to x[:, t], composes A and
    W from their raw parameters, and takes h <- h + eps h A + eps tanh(h W + z).  With
    ``compose_once`` the matrices are composed once per forward pass: a tuned hand-written loop."""

    def __init__(self, compose_once: bool = False):
        super().__init__()
        self.E = torch.nn.Linear(D, N)
        self.C = torch.nn.Parameter(torch.randn(N, N) / N)
        self.B = torch.nn.Parameter(torch.randn(N, N) / N)
        self.D = torch.nn.Linear(N, CLASSES)
        self.beta, self.gamma, self.eps = 0.75, 0.001, EPS
        self.compose_once = compose_once

    def forward(self, x):
        h = torch.zeros(x.shape[0], N)
        if self.compose_once:
            A = _symmetric_skew(self.B, self.beta, self.gamma)
            W = _symmetric_skew(self.C, self.beta, self.gamma)
        for t in range(x.shape[1]):
            z = self.E(x[:, t, :])
            if not self.compose_once:
                A = _symmetric_skew(self.B, self.beta, self.gamma)
                W = _symmetric_skew(self.C, self.beta, self.gamma)
            h = h + self.eps * torch.matmul(h, A) + self.eps * torch.tanh(torch.matmul(h, W) + z)
        return self.D(h)


def _reference(compose_once: bool):
    def build(T: int):
        torch.manual_seed(0)
        model = _ReferenceLipschitz(compose_once)
        x, y, _ = _data(T)

        def run():
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
        return run
    return build


class _HoldField(torch.nn.Module):
    """A naive torchdiffeq user's Lipschitz field: the input looked up (zero-order hold) per call."""

    def __init__(self, field: nr.LipschitzField, x: torch.Tensor):
        super().__init__()
        self.field, self.x = field, x

    def forward(self, t, h):
        k = min(round(float(t) / EPS), self.x.shape[1] - 1)  # step [t_k, t_k + eps] reads sample k
        return self.field(h, self.x[:, k])


def _torchdiffeq(T: int):
    torch.manual_seed(0)
    field = nr.LipschitzField(D, N)
    readout = torch.nn.Linear(N, CLASSES)
    x, y, _ = _data(T)
    # Only the end point is asked for, with step_size = eps: asking for all T outputs would make
    # torchdiffeq write each into a preallocated solution tensor, whose backward is O(T^2).
    t = torch.tensor([0.0, T * EPS])
    func = _HoldField(field, x)

    def run():
        field.zero_grad(set_to_none=True)
        h = torchdiffeq.odeint(func, torch.zeros(B, N), t, method="euler", options={"step_size": EPS})[-1]
        F.cross_entropy(readout(h), y).backward()
    return run


class _CDEField(torch.nn.Module):
    """dh = (h A^T + tanh(h W^T + b)) dt + U dx: the Lipschitz field with the input entering as a
    controlled differential equation, the form torchcde integrates (dX = (dt, dx))."""

    def __init__(self):
        super().__init__()
        self.field = nr.LipschitzField(D, N)
        self.U = torch.nn.Parameter(torch.randn(N, D) / D ** 0.5)

    def forward(self, t, h):
        f = self.field.rhs(h, self.field.input_map.bias)  # (B, N) drift per unit time
        return torch.cat([f.unsqueeze(-1), self.U.expand(h.shape[0], N, D)], -1)


def _torchcde(T: int):
    import torchcde

    torch.manual_seed(0)
    func = _CDEField()
    readout = torch.nn.Linear(N, CLASSES)
    x, y, times = _data(T)
    t = torch.cat([torch.zeros(1), times])
    path = torch.cat([t.view(1, -1, 1).expand(B, -1, 1), torch.cat([x[:, :1], x], 1)], -1)
    coeffs = torchcde.linear_interpolation_coeffs(path, t=t)

    def run():
        func.zero_grad(set_to_none=True)
        X = torchcde.LinearInterpolation(coeffs, t=t)
        h = torchcde.cdeint(X, func, torch.zeros(B, N), X.interval, adjoint=False, method="euler",
                            options={"step_size": EPS})[:, -1]
        F.cross_entropy(readout(h), y).backward()
    return run


def _torch_rnn(kind: str):
    def build(T: int):
        torch.manual_seed(0)
        model = nr.TorchRNN(kind, D, N, CLASSES)
        x, y, _ = _data(T)

        def run():
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
        return run
    return build


def _floor(T: int):
    """Forward-only chain of the step's two (B, N) x (N, N) products: no activation, no autograd."""
    W1, W2 = torch.randn(N, N) / N, torch.randn(N, N) / N

    def run():
        h = torch.randn(B, N)
        for _ in range(T):
            h = torch.mm(torch.mm(h, W1), W2)
    return run


def rows(quick: bool) -> dict[str, tuple[str, callable]]:
    """name -> (group, builder(T) -> run())."""
    out: dict[str, tuple[str, callable]] = {}
    methods = ("euler", "midpoint") if quick else ("euler", "midpoint", "rk4")
    for family in ("lipschitz", "antisymmetric"):
        for method in methods:
            for gradient in ("backprop", "checkpoint", "adjoint"):
                if gradient == "adjoint" and method != "euler":
                    # rk4: no torchdiffeq method computes our classical rk4 step; midpoint works
                    # (tests) but is left out to keep the full run within its time budget
                    continue
                out[f"{family} {method} {gradient}"] = ("library", _library(family, method, gradient))
    out["lipschitz euler inference"] = ("library", _library("lipschitz", "euler", "backprop", inference=True))
    out["reference loop (paper code)"] = ("peer", _reference(False))
    out["hand loop, matrices composed once"] = ("peer", _reference(True))
    out["torchdiffeq odeint euler, hold input"] = ("peer", _torchdiffeq)
    out["torchcde cdeint euler (CDE form)"] = ("peer", _torchcde)
    out["torch.nn.LSTM"] = ("peer", _torch_rnn("lstm"))
    out["torch.nn.GRU"] = ("peer", _torch_rnn("gru"))
    out["floor (2 matmuls/step, forward only)"] = ("floor", _floor)
    return out


REF = "reference loop (paper code)"
FLOOR = "floor (2 matmuls/step, forward only)"


# ---------------------------------------------------------------------------- measuring
def time_rows(builders: dict, T: int, repeats: int, log) -> dict[str, list[float]]:
    runs = {name: build(T) for name, (_, build) in builders.items()}
    for run in runs.values():
        run()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
        log(f"  T={T} repeat {r + 1}/{repeats} done")
    return times


def _vmhwm_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def memory_child(name: str, T: int, quick: bool) -> None:
    torch.set_num_threads(THREADS)
    build = rows(quick)[name][1]
    build(8)()  # initialise libraries and allocator pools on a tiny problem
    run = build(T)
    base = _vmhwm_kb()
    run()
    print(json.dumps({"peak_mb": (_vmhwm_kb() - base) / 1024}))


def memory_rows(names: list[str], T: int, quick: bool, log) -> dict[str, float]:
    out = {}
    env = dict(os.environ, PYTHONPATH=str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for name in names:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-child", name, "--T", str(T)]
        if quick:
            cmd.append("--quick")
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
        if res.returncode != 0:
            log(f"  memory {name} T={T} failed: {res.stderr.strip().splitlines()[-1:]}")
            out[name] = math.nan
            continue
        out[name] = json.loads(res.stdout.strip().splitlines()[-1])["peak_mb"]
    log(f"  memory at T={T} done")
    return out


# ---------------------------------------------------------------------------- reporting
def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _fmt(v: float, digits: int = 0) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v:,.{digits}f}"


def goals(med: dict, mem: dict, Ts: tuple[int, ...]) -> list[tuple[str, str, str, bool | None]]:
    """(goal, target, reached, ok) at the largest T of the run."""
    T = max(Ts)
    m = med[T]
    lip = m["lipschitz euler backprop"]
    g = []

    def add(label, target, value, limit):
        g.append((label, f"<= {target}", _fmt(value, 2), None if math.isnan(value) else value <= limit))

    add(f"Lipschitz Euler / reference loop (T={T})", "0.65", lip / m[REF], 0.65)
    add(f"Lipschitz Euler / naive torchdiffeq (T={T})", "0.35", lip / m["torchdiffeq odeint euler, hold input"], 0.35)
    add(f"Lipschitz Euler / torch.nn.LSTM (T={T})", "0.35", lip / m["torch.nn.LSTM"], 0.35)
    add(f"Lipschitz Euler / floor (T={T})", "4.5", lip / m[FLOOR], 4.5)
    add(f"Lipschitz midpoint / Euler (T={T})", "2.1", m["lipschitz midpoint backprop"] / lip, 2.1)
    if "lipschitz rk4 backprop" in m:
        add(f"Lipschitz RK4 / Euler (T={T})", "4.2", m["lipschitz rk4 backprop"] / lip, 4.2)
    add(f"inference (no_grad) / floor (T={T})", "1.3", m["lipschitz euler inference"] / m[FLOOR], 1.3)
    lo, hi = min(Ts), max(Ts)
    if mem:
        add(f"adjoint peak memory T={hi} / T={lo}", "1.3",
            mem[hi]["lipschitz euler adjoint"] / mem[lo]["lipschitz euler adjoint"], 1.3)
        add(f"checkpoint / backprop peak memory (T={hi})", "0.25",
            mem[hi]["lipschitz euler checkpoint"] / mem[hi]["lipschitz euler backprop"], 0.25)
    if "irregular" in med:
        ir = med["irregular"]
        add(f"irregular (per-sample times, 50% dropped, T={hi}) / regular with T={hi // 2}", "1.5",
            ir["irregular"] / ir["regular"], 1.5)
    return g


def report(med, mem, Ts, repeats, meta, groups) -> str:
    lines = ["# Benchmarks", "",
             f"Generated by `PYTHONPATH=. python benchmarks/run.py{' --quick' if meta['quick'] else ''}` on "
             f"{meta['date']}: torch {meta['torch']}, torchdiffeq {meta['torchdiffeq']}, "
             f"{meta['threads']} thread(s) (`torch.set_num_threads`), CPU: {meta['cpu']} "
             f"({meta['cores']} cores, shared with other jobs while this ran).", "",
             f"B = {B}, N = {N}, D = {D}, float32, eps = {EPS}; forward + cross-entropy on a readout of the "
             f"last state + backward, unless marked.  Milliseconds are medians of {repeats} interleaved "
             "repeats in one process; ratios are between medians of this run only (the machine's "
             "load moves absolute times by up to 30%).", "",
             "Peak memory: growth of the process's peak RSS (VmHWM) over one forward+backward, in a "
             "fresh subprocess per row after a warm-up at T = 8 (MB; page granularity).", ""]
    names = list(med[Ts[0]])
    lines += ["## Goals", "", "| goal | target | reached | |", "|---|---|---|---|"]
    for label, target, value, ok in goals(med, mem, Ts):
        lines.append(f"| {label} | {target} | {value} | {'yes' if ok else 'NO' if ok is False else ''} |")
    lines += ["", "## Time (ms) and ratios", ""]
    head = "| row | " + " | ".join(f"T={T} ms" for T in Ts) + " | " + \
           " | ".join(f"x ref T={T}" for T in Ts) + " | " + " | ".join(f"x floor T={T}" for T in Ts) + " |"
    lines += [head, "|" + "---|" * (1 + 3 * len(Ts))]
    for name in names:
        cells = [_fmt(med[T][name] * 1e3) for T in Ts]
        cells += [_fmt(med[T][name] / med[T][REF], 2) for T in Ts]
        cells += [_fmt(med[T][name] / med[T][FLOOR], 2) for T in Ts]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if mem:
        mts = sorted(mem)
        lines += ["", "## Peak memory (MB)", "", "| row | " + " | ".join(f"T={T}" for T in mts) +
                  f" | T={mts[-1]} / T={mts[0]} |", "|" + "---|" * (2 + len(mts))]
        for name in names:
            if name not in mem[mts[0]]:
                continue
            vals = [mem[T].get(name, math.nan) for T in mts]
            ratio = vals[-1] / vals[0] if vals[0] and vals[0] > 0 else math.nan
            lines.append(f"| {name} | " + " | ".join(_fmt(v, 1) for v in vals) + f" | {_fmt(ratio, 2)} |")
    T = max(Ts)
    m = med[T]
    lip = m["lipschitz euler backprop"]
    bound = 3 * m[FLOOR]
    lines += ["", "## How, and what was not reached", "",
              "How: the fast path (`solvers.integrate_driven`, `solvers/linear_activation.py`) evaluates the "
              "input at every stage of every step in one batched call and projects it in one matmul; the "
              "Lipschitz/Antisymmetric fields declare their form y A^T + sigma(y W^T + x U^T + b), which one "
              "custom autograd Function integrates: a forward of four ops per Euler step (addmm, sigmoid, add, "
              "addmm with the step folded into I + dt A^T; tanh computed as 2 sigmoid(2z) - 1 because "
              "torch.tanh is ~10x slower than sigmoid on this CPU), a backward running the discrete adjoint "
              "with one (B, 2N) x (2N, N) matmul per step, and the weight gradients as one matmul per chunk "
              "of 64 steps.  Checkpoint keeps the states at the start of ceil(sqrt(T))-step segments and "
              "recomputes each in backward; the adjoint is torchdiffeq's, with the input map applied per "
              "evaluation so that nothing of size T x N is held.", "",
              f"Not reached: Lipschitz Euler at {lip / m['torchdiffeq odeint euler, hold input']:.2f}x naive "
              f"torchdiffeq and {lip / m['torch.nn.LSTM']:.2f}x torch.nn.LSTM (goal 0.35).  A step's forward "
              "and backward need at least six (B, N) x (N, N) matmuls (two forward, two for the state "
              "adjoint, two for the weight gradients), three times the floor's two: "
              f"{bound * 1e3:,.0f} ms at T={T}, i.e. {bound / m['torchdiffeq odeint euler, hold input']:.2f}x "
              f"torchdiffeq and {bound / m['torch.nn.LSTM']:.2f}x the LSTM in this run, above 0.35 before any "
              f"other cost; the fast path is at {lip / m[FLOOR]:.2f}x the floor, {lip / bound:.2f}x that bound.  "
              "The issue measured torchdiffeq at 14x and the LSTM at 19x its floor; here they run at "
              f"{m['torchdiffeq odeint euler, hold input'] / m[FLOOR]:.1f}x and {m['torch.nn.LSTM'] / m[FLOOR]:.1f}x "
              "(the naive torchdiffeq row asks only for the end state; asking for all T states costs O(T^2) "
              "in its backward and was 19 s at T=784 in a first run).  Tried: batching all weight gradients "
              "into one matmul over T x B rows (no faster than per-chunk: MKL is as efficient on the 128^3 "
              "products), fusing the two forward matmuls into one (N, 2N) product (slower: the slices and "
              "adds cost more than they save)."]
    if "irregular" in med:
        ir = med["irregular"]
        hi = max(Ts)
        lines += ["", "## Irregular sampling", "",
                  f"Lipschitz Euler, backprop.  Irregular: per-sample times, each sample keeps a random "
                  f"50% of T = {hi} points (B x {hi // 2}, integrated on the index clock with per-sample "
                  f"step sizes).  Regular: shared times, T = {hi // 2}: the same number of steps.", "",
                  "| case | ms |", "|---|---|",
                  f"| irregular | {_fmt(ir['irregular'] * 1e3)} |", f"| regular | {_fmt(ir['regular'] * 1e3)} |",
                  f"| ratio | {_fmt(ir['irregular'] / ir['regular'], 2)} |"]
    return "\n".join(lines) + "\n"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(quick: bool = False, repeats: int = 5, memory: bool = True, out_dir: Path = HERE,
         irregular: bool = True) -> str:
    torch.set_num_threads(THREADS)
    Ts = T_QUICK if quick else T_FULL
    builders = rows(quick)
    groups = {name: g for name, (g, _) in builders.items()}
    log = _log
    start = time.time()
    all_times: dict = {}
    med: dict = {}
    for T in Ts:
        all_times[T] = time_rows(builders, T, repeats, log)
        med[T] = {k: statistics.median(v) for k, v in all_times[T].items()}
        log(f"T={T} timed ({time.time() - start:.0f} s)")
    if irregular:
        T = max(Ts)
        pair = {"irregular": lambda _T: _irregular(T), "regular": lambda _T: _halved(T)}
        ir = time_rows({k: ("", v) for k, v in pair.items()}, T, repeats, log)
        all_times["irregular"] = ir
        med["irregular"] = {k: statistics.median(v) for k, v in ir.items()}
    mem: dict = {}
    if memory:
        names = [n for n in builders if groups[n] != "floor"]
        for T in (min(Ts), max(Ts)):
            mem[T] = memory_rows(names, T, quick, log)
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "torch": torch.__version__,
            "torchdiffeq": torchdiffeq.__version__, "threads": torch.get_num_threads(), "cpu": _cpu(),
            "cores": os.cpu_count(), "quick": quick, "repeats": repeats, "B": B, "N": N, "D": D,
            "eps": EPS, "seconds": round(time.time() - start)}
    text = report(med, mem, Ts, repeats, meta, groups)
    print(text)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "RESULTS.md").write_text(text)
    (out_dir / "results.json").write_text(json.dumps(
        {"meta": meta, "times_s": {str(k): v for k, v in all_times.items()},
         "median_s": {str(k): v for k, v in med.items()}, "peak_mb": {str(k): v for k, v in mem.items()},
         "goals": [dict(zip(("goal", "target", "reached", "ok"), g)) for g in goals(med, mem, Ts)]}, indent=1))
    with open(out_dir / "results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row", "T", "median_ms", "x_ref", "x_floor", "peak_mb", "torch", "threads", "cpu", "date"])
        for T in Ts:
            for name, v in med[T].items():
                w.writerow([name, T, round(v * 1e3, 2), round(v / med[T][REF], 3), round(v / med[T][FLOOR], 3),
                            round(mem.get(T, {}).get(name, math.nan), 1), meta["torch"], meta["threads"],
                            meta["cpu"], meta["date"]])
    return text


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="T = 98, 196 and fewer rows: a few minutes")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved repeats per row (median reported)")
    ap.add_argument("--no-memory", action="store_true", help="skip the per-row memory subprocesses")
    ap.add_argument("--out", type=Path, default=HERE, help="directory for RESULTS.md, results.json/csv")
    ap.add_argument("--render", action="store_true",
                    help="only re-render RESULTS.md from the results.json of an earlier run in --out")
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    ap.add_argument("--T", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.T, args.quick)
    elif args.render:
        saved = json.loads((args.out / "results.json").read_text())
        meta = saved["meta"]
        def key(k):
            return k if k == "irregular" else int(k)
        med = {key(k): v for k, v in saved["median_s"].items()}
        mem = {int(k): v for k, v in saved["peak_mb"].items()}
        Ts = tuple(sorted(k for k in med if k != "irregular"))
        text = report(med, mem, Ts, meta["repeats"], meta, {})
        (args.out / "RESULTS.md").write_text(text)
        print(text)
    else:
        if args.repeats < 5:
            raise SystemExit(f"--repeats must be at least 5 (medians of >= 5); got {args.repeats}")
        main(quick=args.quick, repeats=args.repeats, memory=not args.no_memory, out_dir=args.out)
