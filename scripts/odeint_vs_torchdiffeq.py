"""Side by side: solvers.odeint and torchdiffeq.odeint on the same problems; the numbers of docs/ODEINT.md.

    python -m scripts.odeint_vs_torchdiffeq          (from the project's root)

Prints, for every torchdiffeq method name, the largest difference between the two libraries'
outputs and both evaluation counts (float64, a small nonlinear time-dependent field), then how far
each embedded pair's outputs between steps (the dense output) are from the exact solution of
y' = -2 t y^2 at rtol 1e-8.
"""

from __future__ import annotations

import torch
import torchdiffeq

import solvers

DT = torch.float64


class Field(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = torch.randn(3, 3, generator=g, dtype=DT) * 0.6
        self.b = torch.randn(3, generator=g, dtype=DT) * 0.3
        self.nfe = 0

    def forward(self, t, y):
        self.nfe += 1
        return torch.tanh(y @ self.w.T + self.b) * torch.cos(t) - 0.3 * y


def compare() -> None:
    y0 = torch.linspace(-0.7, 0.9, 3, dtype=DT)
    t = torch.linspace(0, 4, 9, dtype=DT)
    print(f"{'method':16s} {'max |ours - torchdiffeq|':>25s} {'nfe ours':>9s} {'nfe torchdiffeq':>16s}")
    for method in ("euler", "midpoint", "heun2", "heun3", "rk4", "dopri5", "bosh3", "dopri8", "adaptive_heun",
                   "fehlberg2", "explicit_adams", "implicit_adams"):
        kw = dict(rtol=1e-8, atol=1e-10)
        if method in ("explicit_adams", "implicit_adams"):
            kw["options"] = {"step_size": 0.05}
        out = {}
        for lib in (solvers, torchdiffeq):
            f = Field()
            with torch.no_grad():
                out[lib.__name__] = (lib.odeint(f, y0, t, method=method, **kw), f.nfe)
        diff = float((out["solvers"][0] - out["torchdiffeq"][0]).abs().max())
        print(f"{method:16s} {diff:25.2e} {out['solvers'][1]:9d} {out['torchdiffeq'][1]:16d}")


def dense_outputs() -> None:
    def field(t, y):
        return -2 * t * y * y

    t = torch.linspace(0, 3, 31, dtype=DT)
    exact = 1 / (1 + t * t)
    print(f"\n{'pair':16s} {'max error, outputs inside steps':>32s} {'with options step_t=t':>22s}")
    for name in ("dopri5", "tsit5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun"):
        row = []
        for options in (None, {"step_t": t}):
            sol = solvers.odeint(field, torch.ones(1, dtype=DT), t, method=name, rtol=1e-8, atol=1e-10,
                                 options=options)
            row.append(float((sol[:, 0] - exact).abs().max()))
        print(f"{name:16s} {row[0]:32.1e} {row[1]:22.1e}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, torchdiffeq {torchdiffeq.__version__}")
    compare()
    dense_outputs()
