"""How far each gradient mode is from the gradient of the computed forward pass (issue 18's table).

For each field (Lipschitz, Antisymmetric) and method, one batch of B sequences of T samples (D = 1,
hold input, times t_k = 0.1 k, cross-entropy of a readout of the last state on random labels): the
relative error ||g - g_bp|| / ||g_bp|| of the field's parameter gradient under ``gradient="adjoint"``
(and "checkpoint", "reversible" when the method is reversible) against backprop through the same
solve, next to the adjoint's measured reconstruction error (``model.stats.reconstruction_error``) and
whether it warned (``solvers.AdjointAccuracyWarning``); and, for the reversible version of the method,
``gradient="reversible"`` against backprop through that reversible solve.  Prints a markdown table
(docs/GRADIENTS.md).

    PYTHONPATH=. OMP_NUM_THREADS=1 python scripts/gradients.py --batch 16 --length 784 --hidden 128
    PYTHONPATH=. OMP_NUM_THREADS=1 python scripts/gradients.py --batch 4 --length 784 --hidden 32 --reversible
"""

from __future__ import annotations

import argparse
import warnings

import torch

import neuralode_rnn as nr
import solvers
from solvers.reconstruction import flush_accuracy_checks, reset_adjoint_warnings

FIELDS = {
    "Lipschitz": lambda n: nr.LipschitzField(1, n),
    "Antisymmetric": lambda n: nr.AntisymmetricField(1, n),
}
CASES = [("euler", {}), ("rk4", {}), ("dopri5", {"rtol": 1e-3, "atol": 1e-5}), ("dopri5", {"rtol": 1e-6, "atol": 1e-8})]


def gradient(model: nr.ContinuousRNN, x: torch.Tensor, times: torch.Tensor, y: torch.Tensor, mode: str):
    m = model.with_solver(gradient=mode)
    model.zero_grad()
    loss = torch.nn.functional.cross_entropy(m(x, times), y)
    loss.backward()
    g = torch.cat([p.grad.reshape(-1) for p in model.field.parameters()]).clone()
    return g, m.stats


def case(field: str, method: str, opts: dict, B: int, T: int, N: int, dtype: torch.dtype, reversible: bool,
         seed: int = 0) -> dict:
    torch.manual_seed(seed)
    model = nr.ContinuousRNN(FIELDS[field](N), 10, method=method, **opts).to(dtype)
    x = torch.randn(B, T, 1, dtype=dtype)
    times = 0.1 * torch.arange(1, T + 1, dtype=dtype)
    y = torch.randint(0, 10, (B,))
    rev_error = float("nan")
    if reversible:  # backprop through a reversible solve runs on the generic term: memory O(B N T stages)
        rev = model.with_solver(method=f"reversible_{method}")
        g_bp, _ = gradient(rev, x, times, y, "backprop")
        g_rev, _ = gradient(rev, x, times, y, "reversible")
        rev_error = float((g_rev - g_bp).norm() / g_bp.norm())
    ref, _ = gradient(model, x, times, y, "backprop")
    row = {"field": field, "method": method + (f" rtol {opts['rtol']:g}" if opts else ""),
           "reversible": rev_error}
    for mode in ("checkpoint", "adjoint"):
        reset_adjoint_warnings()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            g, stats = gradient(model, x, times, y, mode)
            flush_accuracy_checks()
        row[mode] = float((g - ref).norm() / ref.norm())
        if mode == "adjoint":
            row["reconstruction"] = stats.reconstruction_error
            row["warned"] = any(issubclass(w.category, solvers.AdjointAccuracyWarning) for w in caught)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--length", type=int, default=784)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--reversible", action="store_true", help="also the reversible mode's column (memory-hungry)")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    print(f"B={args.batch}, T={args.length}, N={args.hidden}, {args.dtype}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s); relative error of the field's parameter gradient against backprop")
    print()
    extra = " reversible_<method>: reversible vs its backprop |" if args.reversible else ""
    print(f"| field | method | adjoint | reconstruction error | warns | checkpoint |{extra}")
    print("|---|---|---|---|---|---|" + ("---|" if args.reversible else ""))
    for field in FIELDS:
        for method, opts in CASES:
            r = case(field, method, opts, args.batch, args.length, args.hidden, dtype, args.reversible)
            print(f"| {r['field']} | {r['method']} | {r['adjoint']:.2e} | {r['reconstruction']:.2e} | "
                  f"{'yes' if r['warned'] else 'no'} | {r['checkpoint']:.1e} |" +
                  (f" {r['reversible']:.1e} |" if args.reversible else ""), flush=True)


if __name__ == "__main__":
    main()
