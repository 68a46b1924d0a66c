"""Issue 18's goal for the "reversible" gradient mode at T=784, and the coupling study behind it
(docs/GRADIENTS.md).

    PYTHONPATH=. python scripts/reversible_drift.py goal [--dtype float64|float32] [--fields ...] [--methods ...]
    PYTHONPATH=. python scripts/reversible_drift.py coupling

``goal``: B=3, N=8, D=2, hold input at times 0.1 k, k = 1..784, loss sum(readout^2) (the tests'
setting at issue 18's length), each field with reversible_euler / _midpoint / _rk4 / _dopri5 (rtol
1e-6): the relative error of the field's parameter gradient in the "reversible" mode against
backprop through the same reversible solve, in the same dtype; the anchor spacing the mode learned
(None: no anchor needed); the largest |readout| (a forward that blew up shows here); and in float32
the distance of backprop's own float32 gradient from the float64 one (the float32 gradient's
rounding floor on this problem; the model and inputs are made in float64 and cast).  Rows print as
they finish; ``--fields``/``--methods`` run a part.  Coupling 0.999 (the default) for every field,
and a smaller one (``--stable``) for the contracting fields, whose forward it stabilises.

``coupling``: the linear test equation y' = a y, step h, z = h a: per-step growth of the reversible
pair's forward (its largest eigenvalue modulus; > 1 means the forward itself is unstable) and of
the backward reconstruction (the inverse's), for the base methods and couplings lambda.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

import neuralode_rnn as nr
import solvers
from solvers.reversible_gradient import anchor_spacing
from solvers.tableaux import reversible

FIELDS = {
    "lipschitz": lambda: nr.LipschitzField(2, 8),
    "antisymmetric": lambda: nr.AntisymmetricField(2, 8),
    "gated": lambda: nr.AntisymmetricField(2, 8, gated=True),
    "ctrnn": lambda: nr.CTRNNField(2, 8),
    "unitary": lambda: nr.UnitaryField(2, 8),
}
METHODS = ("euler", "midpoint", "rk4", "dopri5")
CONTRACTING = ("ctrnn", "unitary")


def gradient(field: str, method: str, coupling: float, mode: str, dtype: torch.dtype, T: int
             ) -> tuple[torch.Tensor, object, float]:
    """The field's parameter gradient (float64 copy), the model's solve, and max |readout|."""
    torch.manual_seed(0)
    opts = {"rtol": 1e-6, "atol": 1e-8} if method == "dopri5" else {}
    model = nr.ContinuousRNN(FIELDS[field](), 3, method=reversible(method, coupling), **opts).double()
    torch.manual_seed(1)
    x = torch.randn(3, T, 2, dtype=torch.float64)
    times = 0.1 * torch.arange(1, T + 1, dtype=torch.float64)
    model, x, times = model.to(dtype), x.to(dtype), times.to(dtype)
    m = model.with_solver(gradient=mode)
    model.zero_grad()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = m(x, times)
        out.pow(2).sum().backward()
    g = torch.cat([(torch.view_as_real(p.grad) if p.grad.is_complex() else p.grad).reshape(-1)
                   for p in model.field.parameters()]).detach().to(torch.float64)
    return g, m, float(out.detach().abs().max())


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def goal(dtype: torch.dtype, fields: list[str], methods: list[str], stable: float, T: int, runs: int) -> None:
    f32 = dtype == torch.float32
    print(f"T={T}, B=3, N=8, {str(dtype).removeprefix('torch.')}, torch {torch.__version__}, one thread")
    print()
    print("| field | method | coupling | max abs readout | reversible vs backprop | anchor spacing learned | "
          "reversible s (1st, 2nd) |" + (" backprop float32 vs float64 |" if f32 else ""))
    print("|---|---|---|---|---|---|---|" + ("---|" if f32 else ""))
    for method in methods:  # method by method, so a partial run covers every field
        for field in fields:
            couplings = (0.999, stable) if field in CONTRACTING else (0.999,)
            for lam in couplings:
                try:
                    ref, _, out = gradient(field, method, lam, "backprop", dtype, T)
                except solvers.NonFiniteStateError:  # the forward itself blew up (an unstable pair)
                    print(f"| {field} | reversible_{method} | {lam:g} | not finite | | | |" + (" |" if f32 else ""),
                          flush=True)
                    continue
                secs = []
                for _ in range(runs):  # a second run uses the anchors the first one learned
                    t0 = time.perf_counter()
                    g, m, _ = gradient(field, method, lam, "reversible", dtype, T)
                    secs.append(time.perf_counter() - t0)
                    spacing = anchor_spacing(m.spec)
                floor = ""
                if f32:
                    ref64, _, _ = gradient(field, method, lam, "backprop", torch.float64, T)
                    floor = f" {rel(ref, ref64):.1e} |"
                print(f"| {field} | reversible_{method} | {lam:g} | {out:.3g} | {rel(g, ref):.1e} | {spacing} | "
                      f"{', '.join(f'{x:.1f}' for x in secs)} |{floor}", flush=True)


def coupling() -> None:
    def R(z: complex, method: str) -> complex:
        terms = {"euler": 1, "midpoint": 2, "rk4": 4}[method]
        return sum(z ** k / np.prod(range(1, k + 1)) for k in range(terms + 1))

    lams = (1.0, 0.999, 0.99, 0.9, 0.8, 0.5)
    print("forward / backward growth per step of the reversible pair on y' = a y, z = h a")
    print()
    print("| method | z | " + " | ".join(f"lambda {lam:g}" for lam in lams) + " |")
    print("|---|---|" + "---|" * len(lams))
    for method in ("euler", "midpoint", "rk4"):
        for z in (-1.0, -0.3, -0.1, -0.01, 0.1j, 1j, -0.1 + 1j, 0.1):
            cells = []
            for lam in lams:
                r, s = R(z, method) - 1, R(-z, method) - 1
                M = np.array([[lam, 1 - lam + r], [-s * lam, 1 - s * (1 - lam + r)]], dtype=complex)
                fwd = np.abs(np.linalg.eigvals(M)).max()
                bwd = np.abs(np.linalg.eigvals(np.linalg.inv(M))).max()
                cells.append(f"{fwd:.3f} / {bwd:.3f}")
            print(f"| {method} | {z:g} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=("goal", "coupling"))
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    ap.add_argument("--fields", nargs="+", default=list(FIELDS), choices=list(FIELDS))
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--stable", type=float, default=0.8, help="the contracting fields' second coupling")
    ap.add_argument("--T", type=int, default=784)
    ap.add_argument("--runs", type=int, default=2, help="reversible runs per row (the 2nd with the learned anchors)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.what == "coupling":
        coupling()
    else:
        goal(getattr(torch, args.dtype), args.fields, args.methods, args.stable, args.T, args.runs)


if __name__ == "__main__":
    main()
