"""How far the reversible "reversible" gradient stays from backprop's on a contracting field (CTRNN,
h' = -h + tanh(W h + U x + b)) as the horizon grows, float64, reversible_midpoint, times 0.1 k
(docs/GRADIENTS.md): the reversible pair's backward reconstruction expands rounding at the rate the
field contracts.

    PYTHONPATH=. python scripts/reversible_drift.py
    PYTHONPATH=. python scripts/reversible_drift.py --full32   # issue 18's shape in float32 (~8 GB peak)
"""

from __future__ import annotations

import argparse
import warnings

import torch

import neuralode_rnn as nr

DT = torch.float64


def gradient_error(model: nr.ContinuousRNN, loss) -> tuple[float, object]:
    """The field's parameter gradient of ``loss(m)`` under the "reversible" mode against backprop's
    (relative error), and the reversible solve's statistics."""
    gs, stats = [], None
    for mode in ("backprop", "reversible"):
        m = model.with_solver(gradient=mode)
        model.zero_grad()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss(m).backward()
        gs.append(torch.cat([p.grad.reshape(-1) for p in model.field.parameters()]))
        stats = m.stats
    return float((gs[0] - gs[1]).norm() / gs[0].norm()), stats


def full32() -> None:
    """B=16, T=784, N=128, float32, cross-entropy on random labels: Lipschitz and Antisymmetric."""
    print("| field | method | gradient rel. error vs backprop | reconstruction error |")
    print("|---|---|---|---|")
    for name, make in (("Lipschitz", lambda: nr.LipschitzField(1, 128)),
                       ("Antisymmetric", lambda: nr.AntisymmetricField(1, 128))):
        for method in ("reversible_midpoint", "reversible_rk4"):
            torch.manual_seed(0)
            model = nr.ContinuousRNN(make(), 10, method=method)
            x = torch.randn(16, 784, 1)
            times = 0.1 * torch.arange(1, 785, dtype=torch.float32)
            y = torch.randint(0, 10, (16,))
            err, stats = gradient_error(model, lambda m, x=x, t=times, y=y: torch.nn.functional.cross_entropy(m(x, t), y))
            print(f"| {name} | {method} | {err:.1e} | {stats.reconstruction_error:.1e} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full32", action="store_true")
    if ap.parse_args().full32:
        full32()
        return
    print("| field | T (time 0.1 T) | gradient rel. error vs backprop | reconstruction error |")
    print("|---|---|---|---|")
    for name, make in (("CTRNN", lambda: nr.CTRNNField(2, 8)), ("Lipschitz", lambda: nr.LipschitzField(2, 8))):
        for T in (30, 100, 200, 400):
            torch.manual_seed(0)
            model = nr.ContinuousRNN(make(), 3, method="reversible_midpoint").to(DT)
            x = torch.randn(3, T, 2, dtype=DT)
            times = 0.1 * torch.arange(1, T + 1, dtype=DT)
            err, stats = gradient_error(model, lambda m, x=x, t=times: m(x, t).pow(2).sum())
            print(f"| {name} | {T} | {err:.1e} | {stats.reconstruction_error:.1e} |", flush=True)


if __name__ == "__main__":
    main()
