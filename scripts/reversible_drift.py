"""How far the reversible "reversible" gradient stays from backprop's on a contracting field (CTRNN,
h' = -h + tanh(W h + U x + b)) as the horizon grows, float64, reversible_midpoint, times 0.1 k
(docs/GRADIENTS.md): the reversible pair's backward reconstruction expands rounding at the rate the
field contracts.

    PYTHONPATH=. python scripts/reversible_drift.py
"""

from __future__ import annotations

import warnings

import torch

import neuralode_rnn as nr

DT = torch.float64


def main() -> None:
    print("| field | T (time 0.1 T) | gradient rel. error vs backprop | reconstruction error |")
    print("|---|---|---|---|")
    for name, make in (("CTRNN", lambda: nr.CTRNNField(2, 8)), ("Lipschitz", lambda: nr.LipschitzField(2, 8))):
        for T in (30, 100, 200, 400):
            torch.manual_seed(0)
            model = nr.ContinuousRNN(make(), 3, method="reversible_midpoint").to(DT)
            x = torch.randn(3, T, 2, dtype=DT)
            times = 0.1 * torch.arange(1, T + 1, dtype=DT)
            gs, stats = [], None
            for mode in ("backprop", "reversible"):
                m = model.with_solver(gradient=mode)
                model.zero_grad()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    m(x, times).pow(2).sum().backward()
                gs.append(torch.cat([p.grad.reshape(-1) for p in model.field.parameters()]))
                stats = m.stats
            err = float((gs[0] - gs[1]).norm() / gs[0].norm())
            print(f"| {name} | {T} | {err:.1e} | {stats.reconstruction_error:.1e} |", flush=True)


if __name__ == "__main__":
    main()
