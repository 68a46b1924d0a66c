"""Copy memory: full-capacity uRNN vs restricted-capacity uRNN vs LSTM (Wisdom et al. 2016, Sec. 5.2).

Input: 10 symbols from {1..8}, T - 1 blanks, a marker, 10 blanks; the target is blanks until the
marker and then the 10 symbols.  Cross-entropy at every step; the memoryless strategy scores
10 log 8 / (T + 20).  Models, each the discrete recurrence (DiscreteRNN on a FieldCell, Euler with
eps = 1, i.e. h_k = modReLU(W h_{k-1} + V x_k, b)) with a linear readout of [Re h, Im h] at every step:

* ``full``: UnitaryField, W over the whole unitary group by the Cayley step (lr_unitary),
  RMSprop (lr) for V, b and the readout, no gradient clipping (as in the paper);
* ``restricted``: RestrictedUnitaryField (W = D3 R2 F^-1 D2 Pi R1 F D1), RMSprop for all;
* ``orthogonal``: UnitaryField with W = B exp(X - X^H) (torch's orthogonal parametrization), RMSprop;
* ``lstm``: torch.nn.LSTM, RMSprop, gradients clipped to [-1, 1] (as the reference code does).

    python examples/copy_memory.py                      # quick run, prints final losses
    python examples/copy_memory.py --results            # CSV + PNG in docs/figures, section in docs/RESULTS_unitary.md
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.utils.parametrize import cached

import neuralode_rnn as nr
from neuralode_rnn import reports
from neuralode_rnn.data.synthetic import COPY_INPUT_SIZE, COPY_N_CLASSES, copy_baseline, make_copy
from neuralode_rnn.fields.restricted_unitary import RestrictedUnitaryField
from neuralode_rnn.optim import FullCapacityOptimizer, parametrize_unitary

UNITARY_TITLE = "## Unitary RNNs: full vs restricted capacity"

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("full", "restricted", "orthogonal", "lstm")

DEFAULTS = {
    "delays": (100, 200),
    "models": ("full", "restricted", "lstm"),
    "hidden": 128,
    "lstm_hidden": 128,
    "iterations": 600,
    "batch_size": 20,
    "lr": 1e-3,
    "lr_unitary": 1e-3,
    "eval_every": 50,
    "n_test": 200,
    "seed": 0,
    "threads": 1,
    "results": False,
    "out_dir": None,
    "verbose": True,
}


def build(kind: str, hidden: int, lstm_hidden: int, lr: float, lr_unitary: float, seed: int):
    """(model, features, optimizer, clip) for one model kind."""
    torch.manual_seed(seed)
    if kind == "lstm":
        model = nr.TorchRNN("lstm", COPY_INPUT_SIZE, lstm_hidden, COPY_N_CLASSES)
        return model, (lambda s: s), torch.optim.RMSprop(model.parameters(), lr=lr), 1.0
    if kind in ("full", "orthogonal"):
        field = nr.UnitaryField(COPY_INPUT_SIZE, hidden)
    elif kind == "restricted":
        field = RestrictedUnitaryField(COPY_INPUT_SIZE, hidden, permutation_seed=seed)
    else:
        raise ValueError(f"unknown model {kind!r}; expected one of {', '.join(MODELS)}")
    if kind == "orthogonal":
        parametrize_unitary(field, "U", "matrix_exp")
    model = nr.DiscreteRNN(field.discretize("euler", 1.0), COPY_N_CLASSES)
    # the full model's W takes the Cayley step; everything else (and every other model) RMSprop
    opt = FullCapacityOptimizer(model.parameters(), lr_unitary=lr_unitary, base=torch.optim.RMSprop, lr=lr)
    return model, field.features, opt, None


def copy_loss(model, features, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over every step and sequence."""
    with cached():  # the "orthogonal" model's W once per pass, not once per step
        logits = model.readout(features(model.trajectory(x)))
    return F.cross_entropy(logits.reshape(-1, COPY_N_CLASSES), y.reshape(-1))


def batch(n: int, T: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    inputs, targets = make_copy(n, T, generator)
    return F.one_hot(inputs, COPY_INPUT_SIZE).to(torch.float32), targets


def train_one(kind: str, T: int, cfg: dict) -> dict:
    model, features, opt, clip = build(kind, cfg["hidden"], cfg["lstm_hidden"], cfg["lr"], cfg["lr_unitary"],
                                       cfg["seed"])
    x_test, y_test = batch(cfg["n_test"], T, torch.Generator().manual_seed(cfg["seed"] + 12345))
    g = torch.Generator().manual_seed(cfg["seed"])  # fresh training sequences every iteration
    train_curve, test_curve = [], []
    t0 = time.time()

    def evaluate(it):
        with torch.no_grad():
            test_curve.append((it, float(copy_loss(model, features, x_test, y_test))))
        if cfg["verbose"]:
            print(f"  T={T} {kind:10s} it {it:5d} train {train_curve[-1][1] if train_curve else float('nan'):.4f} "
                  f"test {test_curve[-1][1]:.4f} (baseline {copy_baseline(T):.4f}) {time.time() - t0:.0f}s", flush=True)

    evaluate(0)
    for it in range(1, cfg["iterations"] + 1):
        x, y = batch(cfg["batch_size"], T, g)
        loss = copy_loss(model, features, x, y)
        opt.zero_grad()
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_value_(model.parameters(), clip)
        opt.step()
        train_curve.append((it, loss.item()))
        if it % cfg["eval_every"] == 0 or it == cfg["iterations"]:
            evaluate(it)
    return {"train": train_curve, "test": test_curve, "final": test_curve[-1][1], "seconds": time.time() - t0,
            "parameters": sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())}


def main(**config) -> list[dict]:
    """Train each model at each delay T; returns one row per (T, model)."""
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; expected some of {', '.join(DEFAULTS)}")
    cfg = {**DEFAULTS, **config}
    for kind in cfg["models"]:
        if kind not in MODELS:
            raise ValueError(f"unknown model {kind!r}; expected one of {', '.join(MODELS)}")
    torch.set_num_threads(cfg["threads"])
    rows = [{"T": T, "model": kind, "baseline": copy_baseline(T), **train_one(kind, T, cfg)}
            for T in cfg["delays"] for kind in cfg["models"]]
    if cfg["verbose"]:
        print(table(rows))
    if cfg["results"]:
        write_results(rows, cfg)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| T | model | real parameters | baseline | test CE at start | test CE at end | lowest test CE | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lowest = min(v for _, v in r["test"])
        lines.append(f"| {r['T']} | {r['model']} | {r['parameters']} | {r['baseline']:.4f} | {r['test'][0][1]:.4f} | "
                     f"{r['final']:.4f} | {lowest:.4f} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def write_results(rows: list[dict], cfg: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(cfg["out_dir"]) if cfg["out_dir"] else ROOT / "docs"
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    stem = "copy_memory" + "".join(f"_T{T}" for T in cfg["delays"])
    with open(fig_dir / f"{stem}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["T", "model", "split", "iteration", "cross_entropy", "baseline"])
        for r in rows:
            for split in ("train", "test"):
                for it, ce in r[split]:
                    w.writerow([r["T"], r["model"], split, it, f"{ce:.6e}", f"{r['baseline']:.6e}"])
    delays = list(cfg["delays"])
    fig, axes = plt.subplots(1, len(delays), figsize=(5.5 * len(delays), 4), squeeze=False)
    for ax, T in zip(axes[0], delays):
        for r in (r for r in rows if r["T"] == T):
            its, ce = zip(*r["test"])
            line, = ax.plot(its, ce, "o-", ms=3, label=f"{r['model']} (test)")
            # training loss, smoothed over 20 iterations
            tr = torch.tensor([v for _, v in r["train"]])
            if len(tr) >= 20:
                sm = torch.nn.functional.avg_pool1d(tr[None, None], 20, 1)[0, 0]
                ax.plot(range(20, 20 + len(sm)), sm, color=line.get_color(), alpha=0.35, lw=0.8)
        ax.axhline(copy_baseline(T), color="k", ls="--", lw=1, label="memoryless baseline")
        ax.set(yscale="log", xlabel="iteration", ylabel="cross-entropy per step", title=f"copy memory, T = {T}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(fig_dir / f"{stem}.png", dpi=120)
    plt.close(fig)
    text = (f"### Copy memory, T = {', '.join(map(str, delays))}\n\n"
            f"Command: `{command_line(cfg)}` (torch {torch.__version__}, {cfg['threads']} thread).\n\n"
            f"uRNNs: N = {cfg['hidden']} complex units, discrete recurrence (Euler, eps = 1); LSTM: "
            f"{cfg['lstm_hidden']} units. Batch {cfg['batch_size']} of fresh sequences per iteration, "
            f"{cfg['iterations']} iterations, RMSprop lr {cfg['lr']} (LSTM gradients clipped to [-1, 1]); "
            f"full capacity: Cayley step lambda = {cfg['lr_unitary']}. Test: {cfg['n_test']} fixed sequences; "
            f"faint lines: training loss (20-iteration mean).\n\n"
            f"{table(rows)}\n\n![copy memory](figures/{stem}.png)\n\nData: `docs/figures/{stem}.csv`.\n")
    reports.write_section(out / "RESULTS_unitary.md", stem, text, UNITARY_TITLE)


RESULT_FLAGS = ("delays", "models", "hidden", "lstm_hidden", "iterations", "batch_size", "lr", "lr_unitary",
                "eval_every", "n_test", "seed")
"""The settings a --results command line repeats when they differ from DEFAULTS."""


def command_line(cfg: dict) -> str:
    return reports.command_line("python examples/copy_memory.py --results", cfg, DEFAULTS, RESULT_FLAGS)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--delays", type=int, nargs="+", default=list(DEFAULTS["delays"]))
    p.add_argument("--models", nargs="+", default=list(DEFAULTS["models"]), choices=MODELS)
    p.add_argument("--hidden", type=int, default=DEFAULTS["hidden"])
    p.add_argument("--lstm-hidden", type=int, default=DEFAULTS["lstm_hidden"])
    p.add_argument("--iterations", type=int, default=DEFAULTS["iterations"])
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    p.add_argument("--lr-unitary", type=float, default=DEFAULTS["lr_unitary"])
    p.add_argument("--eval-every", type=int, default=DEFAULTS["eval_every"])
    p.add_argument("--n-test", type=int, default=DEFAULTS["n_test"])
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    p.add_argument("--threads", type=int, default=DEFAULTS["threads"])
    p.add_argument("--results", action="store_true", help="write CSV/PNG to docs/figures and the markdown section")
    p.add_argument("--out-dir", default=None, help="instead of docs/ (for trial runs)")
    a = p.parse_args()
    main(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in vars(a).items()})
