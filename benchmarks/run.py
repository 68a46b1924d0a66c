"""Speed and memory of this library's continuous-time RNNs against their peers, in one process.

    PYTHONPATH=. python benchmarks/run.py            # full run (~25 minutes), writes benchmarks/RESULTS.md
    PYTHONPATH=. python benchmarks/run.py --quick    # a few minutes: smaller T, fewer repeats of memory
    PYTHONPATH=. python benchmarks/run.py --device cuda   # every row on a GPU (peak memory: CUDA allocations)

Four suites, each a set of rows timed against each other (forward, cross-entropy on a linear readout
of the last state, backward, unless the row says "inference" or "floor"):

* **fixed** (the Lipschitz RNN's ordered pixel-MNIST shapes: B = 128, N = 128, D = 1, eps = 0.03,
  T in {98, 392, 784}): Euler / midpoint / RK4 under every gradient mode and reversible_midpoint under
  backprop and the reversible mode, against the Lipschitz paper's reference loop, a three-op hand
  loop (``h = addmm(tanh(addmm(Z[t], h, W^T)), h, I + eps A^T, beta=eps)``), torchdiffeq and
  torchcde, torch.nn.LSTM/GRU and a matmul floor;
* **adaptive** (B = 64, N = 128, D = 1, T = 200): dopri5 / tsit5 on a held and a cubic input,
  under backprop, checkpoint and the adjoint, against the fixed-step fast path (per function
  evaluation) and torchdiffeq's dopri5 on a hand-written hold lookup;
* **unitary** (B = 20, N = 128, D = 1, T = 200): the full-capacity uRNN, Euler with step 1, against a
  plain complex loop with modReLU.
* **batch** (N = 128, D = 1; each shape timed on its own): the Euler fast path, the three-op hand loop and
  torch.nn.GRU at B = 8, 32, 64, 128 with T = 400, and the uRNN against the plain complex loop at B = 8
  and 20 with T = 200 (``--quick``: half the T); the goals table reads every shape.

Timing: one process, torch.set_num_threads(THREADS) fixed, every row warmed up once, then
``repeats`` rounds in which every row of a suite runs once in turn (interleaved, so a burst of load by
other jobs on a shared machine hits all rows alike); the tables report medians, and ratios are
taken between medians of the same run.  Rows report their function evaluations (NFE) where they
have some, so costs per evaluation can be compared.

Peak memory: for each row, a fresh subprocess builds the row, runs it once at a small T (library
initialisation), records its peak resident set size (``VmHWM`` of /proc/self/status), runs the row
once at the measured T, and reports the growth of the peak (page granularity, allocator slack
included); with ``--device cuda`` the growth of ``torch.cuda.max_memory_allocated`` instead.

Device: ``--device`` (default cpu) is torch's default device for the whole run (``with
torch.device(...)``), so every row builds its data, parameters and states there; each timed call
ends with ``torch.cuda.synchronize()`` on a GPU, so a row's time includes the kernels it queued.

The CPU model, torch version, threads and the kernel the structured path chose on this machine
(``solvers.tanh_kernel``) are written beside the results.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
import torchdiffeq

import neuralode_rnn as nr
import solvers
from neuralode_rnn.fields.unitary import modrelu
from solvers.kernels import cpu_model

HERE = Path(__file__).resolve().parent
THREADS = 1
CLASSES = 10
EPS = 0.03

SUITES = {
    "fixed": {"B": 128, "N": 128, "D": 1, "T": (98, 392, 784), "T_quick": (98, 196), "mem_T": (98, 784),
              "mem_T_quick": (98, 196)},
    "adaptive": {"B": 64, "N": 128, "D": 1, "T": (200,), "T_quick": (100,), "mem_T": (100, 400),
                 "mem_T_quick": (50, 200)},
    "unitary": {"B": 20, "N": 128, "D": 1, "T": (200,), "T_quick": (100,), "mem_T": (), "mem_T_quick": ()},
    # the batch sweep: shapes (B, T), each timed on its own (its rows interleaved); "B" and "T" unused
    "batch": {"B": None, "N": 128, "D": 1, "T": (), "T_quick": (), "mem_T": (), "mem_T_quick": (),
              "shapes": {"lipschitz": [(8, 400), (32, 400), (64, 400), (128, 400)], "unitary": [(8, 200), (20, 200)]},
              "shapes_quick": {"lipschitz": [(8, 200), (32, 200), (64, 200), (128, 200)],
                               "unitary": [(8, 100), (20, 100)]}},
}

Run = Callable[[], "int | None"]  # a row's one repetition; returns its function evaluations (or None)


# ---------------------------------------------------------------------------- data
def _data(B: int, T: int, D: int, seed: int = 0):
    g = torch.Generator(torch.get_default_device()).manual_seed(seed)
    x = torch.randn(B, T, D, generator=g)
    y = torch.randint(0, CLASSES, (B,), generator=g)
    times = EPS * torch.arange(1, T + 1, dtype=torch.float32)
    return x, y, times


# ---------------------------------------------------------------------------- library rows
def _library(family: str, method: str, gradient: str, interpolation: str = "hold", inference: bool = False,
             rtol: float = 1e-3, atol: float = 1e-5):
    def build(s: dict, T: int) -> Run:
        torch.manual_seed(0)
        B, N, D = s["B"], s["N"], s["D"]
        field = nr.LipschitzField(D, N) if family == "lipschitz" else nr.AntisymmetricField(D, N, gamma=0.01)
        model = nr.ContinuousRNN(field, CLASSES, method=method, gradient=gradient, interpolation=interpolation,
                                 rtol=rtol, atol=atol)
        x, y, times = _data(B, T, D)
        if inference:
            def run():
                with torch.no_grad():
                    model(x, times)
                return model.nfe
            return run

        def run():
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x, times), y).backward()
            return model.nfe
        return run
    return build


def _irregular(s: dict, T: int) -> Run:
    """Per-sample times: each sample keeps a random half of the T points; B x T/2 samples."""
    torch.manual_seed(0)
    B, N, D = s["B"], s["N"], s["D"]
    model = nr.ContinuousRNN(nr.LipschitzField(D, N), CLASSES, method="euler")
    g = torch.Generator(torch.get_default_device()).manual_seed(1)
    x_full, y, times_full = _data(B, T, D)
    keep = torch.rand(B, T, generator=g).argsort(1)[:, :T // 2].sort(1).values
    x = x_full.gather(1, keep.unsqueeze(-1))
    times = times_full[keep]

    def run():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x, times), y).backward()
        return model.nfe
    return run


def _halved(s: dict, T: int) -> Run:
    """The regular case with the irregular one's number of steps (T/2 samples, shared times)."""
    return _library("lipschitz", "euler", "backprop")(s, T // 2)


# ---------------------------------------------------------------------------- hand-written peers
def _symmetric_skew(M: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    return beta * (M - M.T) + (1 - beta) * (M + M.T) - gamma * torch.eye(M.shape[0])


class _ReferenceLipschitz(torch.nn.Module):
    """The Lipschitz RNN written as its reference code (erichson/LipschitzRNN) writes it: a Python
    loop over time that, at every step, applies the input map (nn.Linear) to x[:, t], composes A and
    W from their raw parameters, and takes h <- h + eps h A + eps tanh(h W + z)."""

    def __init__(self, N: int, D: int):
        super().__init__()
        self.E = torch.nn.Linear(D, N)
        self.C = torch.nn.Parameter(torch.randn(N, N) / N)
        self.B = torch.nn.Parameter(torch.randn(N, N) / N)
        self.D = torch.nn.Linear(N, CLASSES)
        self.N = N

    def forward(self, x):
        h = torch.zeros(x.shape[0], self.N)
        for t in range(x.shape[1]):
            z = self.E(x[:, t, :])
            A = _symmetric_skew(self.B, 0.75, 0.001)
            W = _symmetric_skew(self.C, 0.75, 0.001)
            h = h + EPS * torch.matmul(h, A) + EPS * torch.tanh(torch.matmul(h, W) + z)
        return self.D(h)


class _ThreeOp(torch.nn.Module):
    """The tightest hand loop: inputs projected once, matrices composed once, three ops a step:
    ``h = addmm(tanh(addmm(Z[t], h, W^T)), h, I + eps A^T, beta=eps)``."""

    def __init__(self, N: int, D: int):
        super().__init__()
        self.field = nr.LipschitzField(D, N)
        self.readout = torch.nn.Linear(N, CLASSES)
        self.N = N

    def forward(self, x):
        f = self.field
        Z = f.input_map(x).transpose(0, 1)  # (T, B, N): one matmul for all steps
        W_T = f.W.t()
        fold = torch.eye(self.N) + EPS * f.A.t()
        h = torch.zeros(x.shape[0], self.N)
        for z in Z.unbind(0):
            h = torch.addmm(torch.tanh(torch.addmm(z, h, W_T)), h, fold, beta=EPS)
        return self.readout(h)


def _module_row(cls):
    def build(s: dict, T: int) -> Run:
        torch.manual_seed(0)
        model = cls(s["N"], s["D"])
        x, y, _ = _data(s["B"], T, s["D"])

        def run():
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            return T
        return run
    return build


class _HoldField(torch.nn.Module):
    """A torchdiffeq user's Lipschitz field: the held input looked up per call (step k reads x_k on
    (t_{k-1}, t_k]), counting its calls."""

    def __init__(self, field: nr.LipschitzField, x: torch.Tensor, times: torch.Tensor):
        super().__init__()
        self.field, self.x, self.knots = field, x, times.double()
        self.nfe = 0

    def forward(self, t, h):
        self.nfe += 1
        k = int(torch.searchsorted(self.knots, t.detach().double().reshape(1)).clamp(max=self.x.shape[1] - 1))
        return self.field(h, self.x[:, k])


def _torchdiffeq(method: str):
    def build(s: dict, T: int) -> Run:
        torch.manual_seed(0)
        B, N, D = s["B"], s["N"], s["D"]
        field = nr.LipschitzField(D, N)
        readout = torch.nn.Linear(N, CLASSES)
        x, y, times = _data(B, T, D)
        func = _HoldField(field, x, times)
        # only the end point: asking torchdiffeq for all T outputs makes its backward O(T^2)
        t = torch.tensor([0.0, float(times[-1])])
        if method == "euler":
            kw = dict(method="euler", options={"step_size": EPS})
        else:
            kw = dict(method=method, rtol=1e-3, atol=1e-5, options={"jump_t": times.double()})

        def run():
            field.zero_grad(set_to_none=True)
            func.nfe = 0
            h = torchdiffeq.odeint(func, torch.zeros(B, N), t, **kw)[-1]
            F.cross_entropy(readout(h), y).backward()
            return func.nfe
        return run
    return build


class _CDEField(torch.nn.Module):
    """dh = (h A^T + tanh(h W^T + b)) dt + U dx: the Lipschitz field as a controlled differential
    equation, the form torchcde integrates (dX = (dt, dx))."""

    def __init__(self, N: int, D: int):
        super().__init__()
        self.field = nr.LipschitzField(D, N)
        self.U = torch.nn.Parameter(torch.randn(N, D) / D ** 0.5)
        self.N, self.D = N, D

    def forward(self, t, h):
        f = self.field.rhs(h, self.field.input_map.bias)
        return torch.cat([f.unsqueeze(-1), self.U.expand(h.shape[0], self.N, self.D)], -1)


def _torchcde(s: dict, T: int) -> Run:
    import torchcde

    torch.manual_seed(0)
    B, N, D = s["B"], s["N"], s["D"]
    func = _CDEField(N, D)
    readout = torch.nn.Linear(N, CLASSES)
    x, y, times = _data(B, T, D)
    t = torch.cat([torch.zeros(1), times])
    path = torch.cat([t.view(1, -1, 1).expand(B, -1, 1), torch.cat([x[:, :1], x], 1)], -1)
    coeffs = torchcde.linear_interpolation_coeffs(path, t=t)

    def run():
        func.zero_grad(set_to_none=True)
        X = torchcde.LinearInterpolation(coeffs, t=t)
        h = torchcde.cdeint(X, func, torch.zeros(B, N), X.interval, adjoint=False, method="euler",
                            options={"step_size": EPS})[:, -1]
        F.cross_entropy(readout(h), y).backward()
        return T
    return run


def _torch_rnn(kind: str):
    def build(s: dict, T: int) -> Run:
        torch.manual_seed(0)
        model = nr.TorchRNN(kind, s["D"], s["N"], CLASSES)
        x, y, _ = _data(s["B"], T, s["D"])

        def run():
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            return None
        return run
    return build


def _floor(s: dict, T: int) -> Run:
    """Forward-only chain of the step's two (B, N) x (N, N) products: no activation, no autograd."""
    N, B = s["N"], s["B"]
    W1, W2 = torch.randn(N, N) / N, torch.randn(N, N) / N

    def run():
        h = torch.randn(B, N)
        for _ in range(T):
            h = torch.mm(torch.mm(h, W1), W2)
        return None
    return run


def _unitary_library(s: dict, T: int) -> Run:
    torch.manual_seed(0)
    B, N, D = s["B"], s["N"], s["D"]
    model = nr.ContinuousRNN(nr.UnitaryField(D, N), CLASSES, method="euler")
    x, y, _ = _data(B, T, D)  # times None: t_k = k, Euler steps of 1: the uRNN cell

    def run():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        return model.nfe
    return run


def _unitary_loop(s: dict, T: int) -> Run:
    """A plain complex loop: inputs projected once, h <- modReLU(h W^T + V x_t, b)."""
    torch.manual_seed(0)
    B, N, D = s["B"], s["N"], s["D"]
    field = nr.UnitaryField(D, N)
    readout = torch.nn.Linear(2 * N, CLASSES)
    x, y, _ = _data(B, T, D)

    def run():
        field.zero_grad(set_to_none=True)
        readout.zero_grad(set_to_none=True)
        u = field.input_map(x)
        steps = torch.complex(u[..., :N], u[..., N:]).unbind(1)
        W_T = field.U.t()
        h = torch.zeros(B, N, dtype=torch.complex64)
        for v in steps:
            h = modrelu(h @ W_T + v, field.b)
        F.cross_entropy(readout(torch.cat([h.real, h.imag], -1)), y).backward()
        return T
    return run


# ---------------------------------------------------------------------------- the rows of each suite
REF = "reference loop (paper code)"
THREE = "three-op hand loop"
FLOOR = "floor (2 matmuls/step, forward only)"
TDQ_EULER = "torchdiffeq euler, hold lookup"
TDQ_DOPRI5 = "torchdiffeq dopri5, hold lookup (jump_t)"
EULER = "lipschitz euler backprop"
UNITARY = "unitary euler, step 1 (ContinuousRNN)"
UNITARY_LOOP = "plain complex loop with modReLU"
REV, REV_BP = "lipschitz reversible_midpoint reversible", "lipschitz reversible_midpoint backprop"


def rows(suite: str, quick: bool) -> dict[str, Callable[[dict, int], Run]]:
    out: dict[str, Callable[[dict, int], Run]] = {}
    if suite == "fixed":
        for family in ("lipschitz", "antisymmetric"):
            for method in ("euler", "midpoint", "rk4"):
                for gradient in ("backprop", "checkpoint", "adjoint"):
                    if quick and (method == "rk4" or family == "antisymmetric") and gradient != "backprop":
                        continue
                    out[f"{family} {method} {gradient}"] = _library(family, method, gradient)
        for gradient in ("backprop", "reversible"):  # issue 18: the reversible mode against backprop, same solve
            out[f"lipschitz reversible_midpoint {gradient}"] = _library("lipschitz", "reversible_midpoint", gradient)
        out["lipschitz euler inference"] = _library("lipschitz", "euler", "backprop", inference=True)
        out[REF] = _module_row(_ReferenceLipschitz)
        out[THREE] = _module_row(_ThreeOp)
        out[TDQ_EULER] = _torchdiffeq("euler")
        out["torchcde cdeint euler (CDE form)"] = _torchcde
        out["torch.nn.LSTM"] = _torch_rnn("lstm")
        out["torch.nn.GRU"] = _torch_rnn("gru")
        out[FLOOR] = _floor
    elif suite == "adaptive":
        out["lipschitz euler backprop"] = _library("lipschitz", "euler", "backprop")
        out["lipschitz euler adjoint"] = _library("lipschitz", "euler", "adjoint")
        out["lipschitz rk4 backprop"] = _library("lipschitz", "rk4", "backprop")
        for method in ("dopri5", "tsit5"):
            for gradient in ("backprop", "checkpoint", "adjoint"):
                out[f"lipschitz {method} {gradient}, hold"] = _library("lipschitz", method, gradient)
        out["lipschitz dopri5 inference, hold"] = _library("lipschitz", "dopri5", "backprop", inference=True)
        out["lipschitz dopri5 backprop, cubic"] = _library("lipschitz", "dopri5", "backprop", "cubic")
        out["lipschitz dopri5 adjoint, cubic"] = _library("lipschitz", "dopri5", "adjoint", "cubic")
        out[TDQ_DOPRI5] = _torchdiffeq("dopri5")
    elif suite == "unitary":
        out[UNITARY] = _unitary_library
        out[UNITARY_LOOP] = _unitary_loop
    return out


def batch_rows(kind: str) -> dict[str, Callable[[dict, int], Run]]:
    """The batch sweep's rows of one kind of shape: "lipschitz" (the Euler fast path, the three-op hand
    loop, torch.nn.GRU) or "unitary" (the uRNN and the plain complex loop)."""
    if kind == "lipschitz":
        return {EULER: _library("lipschitz", "euler", "backprop"), THREE: _module_row(_ThreeOp),
                "torch.nn.GRU": _torch_rnn("gru")}
    return {UNITARY: _unitary_library, UNITARY_LOOP: _unitary_loop}


def shape_label(B: int, T: int) -> str:
    return f"B={B} T={T}"


# ---------------------------------------------------------------------------- measuring
def _sync() -> None:
    """Wait for the kernels queued on the default device (a GPU runs them asynchronously)."""
    if torch.get_default_device().type == "cuda":
        torch.cuda.synchronize()


def time_rows(suite: str, builders: dict, T: int, repeats: int, log, B: int | None = None) -> tuple[dict, dict]:
    s = SUITES[suite] if B is None else dict(SUITES[suite], B=B)
    runs = {name: build(s, T) for name, build in builders.items()}
    nfe = {name: run() for name, run in runs.items()}  # warm-up, and the evaluations of each row
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(repeats):
        for name, run in runs.items():
            _sync()
            start = time.perf_counter()
            run()
            _sync()
            times[name].append(time.perf_counter() - start)
        log(f"  {suite} {'' if B is None else f'B={B} '}T={T} repeat {r + 1}/{repeats} done")
    return times, nfe


def _vmhwm_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def memory_child(suite: str, name: str, T: int, quick: bool, device: str = "cpu") -> None:
    torch.set_num_threads(THREADS)
    with _on(device):
        build = rows(suite, quick)[name]
        build(SUITES[suite], 8)()  # initialise libraries and allocator pools on a tiny problem
        run = build(SUITES[suite], T)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            run()
            torch.cuda.synchronize()
            peak_mb = (torch.cuda.max_memory_allocated() - base) / 2 ** 20
        else:
            base = _vmhwm_kb()
            run()
            peak_mb = (_vmhwm_kb() - base) / 1024
    print(json.dumps({"peak_mb": peak_mb}))


def memory_rows(suite: str, names: list[str], T: int, quick: bool, log, device: str = "cpu") -> dict[str, float]:
    out = {}
    env = dict(os.environ, PYTHONPATH=str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for name in names:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-child", name, "--suite", suite, "--T", str(T),
               "--device", device]
        if quick:
            cmd.append("--quick")
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
        if res.returncode != 0:
            log(f"  memory {name} T={T} failed: {res.stderr.strip().splitlines()[-1:]}")
            out[name] = math.nan
            continue
        out[name] = json.loads(res.stdout.strip().splitlines()[-1])["peak_mb"]
    log(f"  {suite} memory at T={T} done")
    return out


# ---------------------------------------------------------------------------- goals and report

def _fmt(v, digits: int = 0) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:,.{digits}f}"


def goals(res: dict) -> list[tuple[str, str, str, bool | None]]:
    """(goal, target, reached, ok), each from one suite's medians of this run."""
    g = []

    def add(label, limit, value):
        ok = None if value is None or math.isnan(value) else value <= limit
        g.append((label, f"<= {limit}", _fmt(value, 2), ok))

    if "fixed" in res:
        _fixed_goals(res["fixed"], add)
    if "adaptive" in res:
        _adaptive_goals(res["adaptive"], add)
    if "unitary" in res:
        un = res["unitary"]
        Tu = max(un["med"])
        u = un["med"][Tu]
        add(f"unitary Euler (step 1) / plain complex loop (T={Tu})", 1.0, u[UNITARY] / u[UNITARY_LOOP])
    if "batch" in res:
        _batch_goals(res["batch"], add)
    return g


def _batch_goals(ba: dict, add) -> None:
    """Each shape of the batch sweep read on its own: the Euler fast path against the three-op hand loop
    (<= 1.2 at B = 8, where a step's few kernels are short and per-step overhead shows most; <= 1.0
    above), the uRNN against the plain complex loop (<= 1.0)."""
    for label, m in ba["med"].items():
        if EULER in m:
            B = ba["shape"][label][0]
            add(f"Euler fast path / three-op hand loop (batch sweep, {label})", 1.2 if B <= 8 else 1.0,
                m[EULER] / m[THREE])
        if UNITARY in m:
            add(f"unitary Euler (step 1) / plain complex loop (batch sweep, {label})", 1.0, m[UNITARY] / m[UNITARY_LOOP])


def _fixed_goals(fx: dict, add) -> None:
    T = max(fx["med"])
    m = fx["med"][T]
    eu = m["lipschitz euler backprop"]
    add(f"Euler fast path / three-op hand loop (fixed, T={T})", 1.0, eu / m[THREE])
    add(f"Euler fast path / the paper's loop (fixed, T={T})", 0.5, eu / m[REF])
    add(f"midpoint / Euler (fixed, T={T})", 2.1, m["lipschitz midpoint backprop"] / eu)
    add(f"RK4 / Euler (fixed, T={T})", 4.2, m["lipschitz rk4 backprop"] / eu)
    add(f"inference / floor (fixed, T={T})", 1.3, m["lipschitz euler inference"] / m[FLOOR])
    add(f"Euler adjoint / backprop (fixed, T={T})", 1.5, m["lipschitz euler adjoint"] / eu)
    if REV in m:
        add(f"reversible_midpoint: reversible / backprop of the same solve (fixed, T={T})", 2.0, m[REV] / m[REV_BP])
    mem = fx.get("mem", {})
    if mem:
        lo, hi = min(mem), max(mem)
        add(f"checkpoint / backprop peak memory (fixed, T={hi})", 0.25,
            mem[hi]["lipschitz euler checkpoint"] / mem[hi]["lipschitz euler backprop"])
        add(f"Euler adjoint peak memory T={hi} / T={lo}", 1.3,
            mem[hi]["lipschitz euler adjoint"] / mem[lo]["lipschitz euler adjoint"])
        if REV in mem[hi] and REV in mem[lo]:
            add(f"reversible_midpoint reversible peak memory T={hi} / T={lo}", 1.3, mem[hi][REV] / mem[lo][REV])
    if "irregular" in fx:
        ir = fx["irregular"]
        add(f"irregular (per-sample times, 50% dropped, T={T}) / regular with T={T // 2}", 1.5,
            ir["irregular"] / ir["regular"])


def _adaptive_goals(ad: dict, add) -> None:
    Ta = max(ad["med"])
    a, n = ad["med"][Ta], ad["nfe"][Ta]

    def per(name):
        return a[name] / n[name]

    add(f"dopri5 per evaluation / RK4 fast path per evaluation, hold (T={Ta})", 1.5,
        per("lipschitz dopri5 backprop, hold") / per("lipschitz rk4 backprop"))
    add(f"dopri5 per evaluation / RK4 fast path per evaluation, cubic (T={Ta})", 2.0,
        per("lipschitz dopri5 backprop, cubic") / per("lipschitz rk4 backprop"))
    add(f"dopri5 solve / torchdiffeq dopri5 on a hold lookup (T={Ta})", 0.5,
        a["lipschitz dopri5 backprop, hold"] / a[TDQ_DOPRI5])
    add(f"dopri5 adjoint / dopri5 backprop, hold (T={Ta})", 1.5,
        a["lipschitz dopri5 adjoint, hold"] / a["lipschitz dopri5 backprop, hold"])
    add(f"Euler adjoint / Euler backprop (T={Ta})", 1.5,
        a["lipschitz euler adjoint"] / a["lipschitz euler backprop"])
    amem = ad.get("mem", {})
    if amem:
        lo, hi = min(amem), max(amem)
        add(f"dopri5 adjoint peak memory T={hi} / T={lo}", 1.3,
            amem[hi]["lipschitz dopri5 adjoint, hold"] / amem[lo]["lipschitz dopri5 adjoint, hold"])


def _suite_table(name: str, r: dict) -> list[str]:
    s = SUITES[name]
    Ts = sorted(r["med"])
    lines = [f"## Suite {name}: B = {s['B']}, N = {s['N']}, D = {s['D']}", ""]
    ref = REF if name == "fixed" else None
    head = "| row | " + " | ".join(f"T={T} ms" for T in Ts) + " | " + " | ".join(f"NFE T={T}" for T in Ts) + \
           " | " + " | ".join(f"ms/NFE T={T}" for T in Ts)
    cols = 1 + 3 * len(Ts)
    if ref:
        head += " | " + " | ".join(f"x paper loop T={T}" for T in Ts)
        cols += len(Ts)
    lines += [head + " |", "|" + "---|" * cols]
    for row in r["med"][Ts[0]]:
        cells = [_fmt(r["med"][T][row] * 1e3) for T in Ts]
        cells += [_fmt(r["nfe"][T][row]) if r["nfe"][T][row] is not None else "" for T in Ts]
        cells += [_fmt(r["med"][T][row] * 1e3 / r["nfe"][T][row], 3) if r["nfe"][T][row] else "" for T in Ts]
        if ref:
            cells += [_fmt(r["med"][T][row] / r["med"][T][ref], 2) for T in Ts]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    mem = r.get("mem", {})
    if mem:
        mts = sorted(mem)
        lines += ["", f"Peak memory (MB), suite {name}:", "",
                  "| row | " + " | ".join(f"T={T}" for T in mts) + f" | T={mts[-1]} / T={mts[0]} |",
                  "|" + "---|" * (2 + len(mts))]
        for row in mem[mts[0]]:
            vals = [mem[T].get(row, math.nan) for T in mts]
            ratio = vals[-1] / vals[0] if vals[0] and vals[0] > 0 else math.nan
            lines.append(f"| {row} | " + " | ".join(_fmt(v, 1) for v in vals) + f" | {_fmt(ratio, 2)} |")
    if name == "fixed" and "irregular" in r:
        ir = r["irregular"]
        T = max(Ts)
        lines += ["", f"Irregular sampling (Lipschitz Euler, backprop): per-sample times keeping a random 50% of "
                      f"T = {T} points, on the index clock, against shared times with T = {T // 2} (the same number "
                      f"of steps): {_fmt(ir['irregular'] * 1e3)} ms against {_fmt(ir['regular'] * 1e3)} ms."]
    return lines + [""]


def _batch_table(r: dict) -> list[str]:
    s = SUITES["batch"]
    lines = [f"## Suite batch: N = {s['N']}, D = {s['D']}, each shape timed on its own", "",
             "| shape | row | ms | x three-op loop | x plain complex loop |", "|---|---|---|---|---|"]
    for label, m in r["med"].items():
        for row, v in m.items():
            three = _fmt(v / m[THREE], 2) if THREE in m else ""
            loop = _fmt(v / m[UNITARY_LOOP], 2) if UNITARY_LOOP in m else ""
            lines.append(f"| {label} | {row} | {_fmt(v * 1e3, 1)} | {three} | {loop} |")
    return lines + [""]


def report(res: dict, meta: dict) -> str:
    lines = ["# Benchmarks", "",
             f"Generated by `PYTHONPATH=. python benchmarks/run.py{' --quick' if meta['quick'] else ''}"
             f"{'' if meta.get('device', 'cpu') == 'cpu' else ' --device ' + meta['device']}` on "
             f"{meta['date']} in {meta['seconds']} s: torch {meta['torch']}, torchdiffeq {meta['torchdiffeq']}, "
             f"{meta['threads']} thread(s) (`torch.set_num_threads`), **CPU: {meta['cpu']}** ({meta['cores']} cores, "
             f"shared with other jobs while this ran); tanh kernel chosen by measurement on this machine: "
             f"`{meta['kernel']}`.", "",
             "Forward + cross-entropy on a readout of the last state + backward, unless marked; float32.  "
             f"Milliseconds are medians of {meta['repeats']} interleaved repeats in one process; ratios are between "
             "medians of this run only (the machine's load moves absolute times by up to 30%).  NFE: function "
             "evaluations of one repeat (ms/NFE compares costs per evaluation).  Peak memory: growth of a fresh "
             "subprocess's peak RSS (VmHWM) over one repeat after a warm-up at T = 8 (MB, page granularity).", "",
             "## Goals", "", "| goal | target | reached | |", "|---|---|---|---|"]
    for label, target, value, ok in goals(res):
        lines.append(f"| {label} | {target} | {value} | {'yes' if ok else 'NO' if ok is False else ''} |")
    lines.append("")
    lines += bounds(res, meta.get("op_costs"))
    for name in res:
        lines += _batch_table(res[name]) if name == "batch" else _suite_table(name, res[name])
    lines += ["## How", "",
              "Every row of this library runs on one Runge-Kutta engine (`solvers/engine.py`, `solvers/stepper.py`). "
              "The Lipschitz and antisymmetric fields declare the form y A^T + sigma(y W^T + x U^T + b) and run on "
              "the structured term (`solvers/linear_activation.py`): the input read through a cursor with its "
              "coefficients projected once per chunk of 64 pieces (`solvers/inputs.py`), a few fused kernels per "
              "stage (an Euler step is addmm, the activation, addmm with the step folded into I + dt A^T), tanh "
              "computed as `torch.tanh` or as 2 sigmoid(2z) - 1 by what this CPU runs faster "
              f"(`{meta['kernel']}` here), on a fixed grid the stage states and activations written by the kernels "
              "into per-chunk buffers, the backward pass the discrete adjoint of the recorded steps (fixed or "
              "adaptive) with one matmul per stage and the weight gradients in one matmul per chunk of steps; the "
              "adjoint mode integrates the state and its adjoint backward with a closed-form vector-Jacobian product "
              "and adds the weight gradients as a quadrature of the backward stages, chunk by chunk (memory flat in "
              "T).  The unitary field runs the generic driven term with complex inputs projected per chunk; on a "
              "fixed Euler grid under backprop the field's own loop (`fields/unitary.py`, `euler_steps`: exactly "
              "the uRNN cell at step 1, one addmm and modReLU's six kernels per step without autograd) with a "
              "hand-written backward (modReLU's Jacobian factors for all steps at once, a conjugate product, an "
              "addcmul and a matmul per step, the weight gradient in one matmul)."]
    return "\n".join(lines) + "\n"


def op_costs(B: int, N: int, repeats: int = 9) -> dict[str, float]:
    """Seconds per call on this CPU of the step's pieces at the fixed suite's shapes, interleaved,
    medians: a (B, N) x (N, N) matmul, the activation as the structured term computes it (the
    kernel :func:`solvers.tanh_kernel` chose) and a scaled add (one Runge-Kutta stage combination)."""
    h, W, z = torch.randn(B, N), torch.randn(N, N), torch.randn(B, N)
    out = torch.empty_like(z)
    minus_one = torch.full((), -1.0)
    kernel = solvers.tanh_kernel(torch.float32)

    def act():
        if kernel == "tanh":
            torch.tanh(z, out=out)
        else:
            torch.sigmoid(z, out=out)
            torch.add(minus_one, out, alpha=2.0, out=out)

    ops = {"matmul": lambda: torch.mm(h, W, out=out), "activation": act,
           "scaled add": lambda: torch.add(h, z, alpha=0.5, out=out)}
    rounds: dict[str, list[float]] = {k: [] for k in ops}
    for fn in ops.values():
        for _ in range(50):
            fn()
    for _ in range(repeats):
        for k, fn in ops.items():
            t0 = time.perf_counter()
            for _ in range(200):
                fn()
            rounds[k].append((time.perf_counter() - t0) / 200)
    return {k: statistics.median(v) for k, v in rounds.items()}


def bounds(res: dict, costs: dict[str, float] | None) -> list[str]:
    """What this CPU's own arithmetic allows for the goals that compare unlike work, from this run."""
    lines = ["## Bounds on this CPU", ""]
    if costs:
        mm, act, axpy = costs["matmul"], costs["activation"], costs["scaled add"]
        rk4 = solvers.tableau("rk4")
        combos = sum(v != 0.0 for row in rk4.a for v in row) + sum(v != 0.0 for v in rk4.b)
        s = SUITES["fixed"]
        lines.append(
            f"Per call at B = {s['B']}, N = {s['N']} (medians, interleaved): matmul {mm * 1e6:.1f} us, activation "
            f"{act * 1e6:.1f} us, scaled add {axpy * 1e6:.1f} us.  The floor row does two matmuls a step and no "
            f"activation; an inference step does the same two matmuls (as addmm) and the activation, so "
            f"inference / floor cannot go below (2 matmul + activation) / (2 matmul) = "
            f"{(2 * mm + act) / (2 * mm):.2f} here.  An Euler step folds the linear part into its second addmm "
            f"(two products and the activation); an RK4 step (`rk4`, the 3/8 rule) evaluates the field four times "
            f"(two products and the activation each) and makes {combos} scaled adds for its stage combinations, so "
            f"RK4 / Euler in forward arithmetic is at least (4 (2 matmul + activation) + {combos} add) / "
            f"(2 matmul + activation) = {(4 * (2 * mm + act) + combos * axpy) / (2 * mm + act):.2f} here.")
        lines.append("")
    ad = res.get("adaptive")
    if ad:
        Ta = max(ad["med"])
        a = ad["med"][Ta]
        fwd = a.get("lipschitz dopri5 inference, hold")
        bp, adj = a.get("lipschitz dopri5 backprop, hold"), a.get("lipschitz dopri5 adjoint, hold")
        if fwd and bp and adj:
            lines.append(
                f"dopri5 on the held input (T = {Ta}): the forward solve alone takes {fwd * 1e3:,.0f} ms, so the "
                f"backward pass costs {(bp - fwd) * 1e3:,.0f} ms under backprop (the discrete adjoint of the "
                f"recorded stages: one product per stage) and {(adj - fwd) * 1e3:,.0f} ms under the adjoint, "
                f"which integrates the state again beside its adjoint (each backward evaluation is a forward "
                f"evaluation plus a vector-Jacobian product on a doubled state, with steps chosen anew by the "
                f"controller).  Adjoint / backprop <= 1.5 would need that backward pass to cost at most "
                f"{(1.5 * bp - fwd) * 1e3:,.0f} ms.")
            lines.append("")
    return lines if len(lines) > 2 else []


def _batch_suite(quick: bool, repeats: int, s: dict, kinds: tuple[str, ...] | None = None) -> dict:
    """Every shape of the batch sweep (of the given ``kinds``: all by default), its rows interleaved;
    results keyed by ``shape_label``."""
    r: dict = {"med": {}, "nfe": {}, "times": {}, "shape": {}}
    for kind, shapes in s["shapes_quick" if quick else "shapes"].items():
        if kinds is not None and kind not in kinds:
            continue
        for B, T in shapes:
            label = shape_label(B, T)
            times, nfe = time_rows("batch", batch_rows(kind), T, repeats, _log, B=B)
            r["times"][label], r["nfe"][label], r["shape"][label] = times, nfe, (B, T)
            r["med"][label] = {k: statistics.median(v) for k, v in times.items()}
    return r


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(quick: bool = False, repeats: int = 5, memory: bool = True, out_dir: Path = HERE,
         suites: tuple[str, ...] = tuple(SUITES), device: str = "cpu", batch_kinds: tuple[str, ...] | None = None) -> str:
    with _on(device):
        return _main(quick, repeats, memory, out_dir, suites, device, batch_kinds)


def _on(device: str):
    """torch's default device set to ``device`` for a block; nothing on the CPU (a default-device mode
    would add its dispatch cost to every torch call the benchmark times)."""
    return contextlib.nullcontext() if torch.device(device).type == "cpu" else torch.device(device)


def _main(quick: bool, repeats: int, memory: bool, out_dir: Path, suites: tuple[str, ...], device: str,
          batch_kinds: tuple[str, ...] | None = None) -> str:
    torch.set_num_threads(THREADS)
    start = time.time()
    res: dict = {}
    for suite in suites:
        s = SUITES[suite]
        if suite == "batch":
            res[suite] = _batch_suite(quick, repeats, s, batch_kinds)
            _log(f"suite {suite} done ({time.time() - start:.0f} s)")
            continue
        builders = rows(suite, quick)
        r: dict = {"med": {}, "nfe": {}, "times": {}}
        for T in (s["T_quick"] if quick else s["T"]):
            times, nfe = time_rows(suite, builders, T, repeats, _log)
            r["times"][T], r["nfe"][T] = times, nfe
            r["med"][T] = {k: statistics.median(v) for k, v in times.items()}
        if suite == "fixed":
            T = max(r["med"])
            pair = {"irregular": _irregular, "regular": _halved}
            times, _ = time_rows(suite, pair, T, repeats, _log)
            r["irregular"] = {k: statistics.median(v) for k, v in times.items()}
        if memory and s["mem_T"]:
            names = [n for n in builders if n != FLOOR]
            r["mem"] = {T: memory_rows(suite, names, T, quick, _log, device)
                        for T in (s["mem_T_quick"] if quick else s["mem_T"])}
        res[suite] = r
        _log(f"suite {suite} done ({time.time() - start:.0f} s)")
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "torch": torch.__version__,
            "torchdiffeq": torchdiffeq.__version__, "threads": torch.get_num_threads(), "cpu": cpu_model(),
            "cores": os.cpu_count(), "device": device, "quick": quick, "repeats": repeats, "kernel": solvers.tanh_kernel(torch.float32),
            "op_costs": op_costs(SUITES["fixed"]["B"], SUITES["fixed"]["N"]), "seconds": round(time.time() - start)}
    text = report(res, meta)
    print(text)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "RESULTS.md").write_text(text)
    (out_dir / "results.json").write_text(json.dumps(
        {"meta": meta, "suites": {k: {"median_s": {str(T): v for T, v in r["med"].items()},
                                      "nfe": {str(T): v for T, v in r["nfe"].items()},
                                      "times_s": {str(T): v for T, v in r["times"].items()},
                                      "peak_mb": {str(T): v for T, v in r.get("mem", {}).items()},
                                      "irregular_s": r.get("irregular")} for k, r in res.items()},
         "goals": [dict(zip(("goal", "target", "reached", "ok"), g)) for g in goals(res)]}, indent=1))
    with open(out_dir / "results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["suite", "row", "T", "median_ms", "nfe", "peak_mb", "torch", "threads", "cpu", "kernel", "date"])
        for suite, r in res.items():
            for T, med in r["med"].items():
                for row, v in med.items():
                    w.writerow([suite, row, T, round(v * 1e3, 2), r["nfe"][T][row],
                                round(r.get("mem", {}).get(T, {}).get(row, math.nan), 1), meta["torch"],
                                meta["threads"], meta["cpu"], meta["kernel"], meta["date"]])
    return text


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller T: a few minutes")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved repeats per row (median reported)")
    ap.add_argument("--no-memory", action="store_true", help="skip the per-row memory subprocesses")
    ap.add_argument("--out", type=Path, default=HERE, help="directory for RESULTS.md, results.json/csv")
    ap.add_argument("--suites", default=",".join(SUITES), help=f"comma-separated subset of {', '.join(SUITES)}")
    ap.add_argument("--device", default="cpu", help="torch device every row runs on (default cpu), e.g. cuda")
    ap.add_argument("--batch-kinds", default=None,
                    help="the batch sweep's shapes to time: a comma-separated subset of lipschitz, unitary (default both)")
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    ap.add_argument("--suite", help=argparse.SUPPRESS)
    ap.add_argument("--T", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    try:
        dev = torch.device(args.device)
    except RuntimeError as e:
        raise SystemExit(f"--device: not a torch device: {args.device!r} ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: torch sees no CUDA device here (torch.cuda.is_available() is False)")
    if args.memory_child:
        memory_child(args.suite, args.memory_child, args.T, args.quick, args.device)
    else:
        if args.repeats < 5:
            raise SystemExit(f"--repeats must be at least 5 (medians of >= 5); got {args.repeats}")
        chosen = tuple(s.strip() for s in args.suites.split(",") if s.strip())
        unknown = sorted(set(chosen) - set(SUITES))
        if unknown:
            raise SystemExit(f"--suites: unknown {unknown}; expected some of {', '.join(SUITES)}")
        kinds = None
        if args.batch_kinds is not None:
            kinds = tuple(k.strip() for k in args.batch_kinds.split(",") if k.strip())
            known = tuple(SUITES["batch"]["shapes"])
            if not kinds or set(kinds) - set(known):
                raise SystemExit(f"--batch-kinds: expected a comma-separated subset of {', '.join(known)}; "
                                 f"got {args.batch_kinds!r}")
        main(quick=args.quick, repeats=args.repeats, memory=not args.no_memory, out_dir=args.out, suites=chosen,
             device=args.device, batch_kinds=kinds)
