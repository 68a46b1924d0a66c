"""Copy memory: full-capacity uRNN vs restricted-capacity uRNN vs LSTM (Wisdom et al. 2016, Sec. 5.2).

Input: 10 symbols from {1..8}, T - 1 blanks, a marker, 10 blanks; the target is blanks until the
marker and then the 10 symbols.  Cross-entropy at every step; the memoryless strategy scores
10 log 8 / (T + 20).  The uRNNs run through the library's fast path: a ContinuousRNN of the field,
Euler with one step of size 1 per sample on a hold input, which is the paper's recurrence
h_k = modReLU(W h_{k-1} + V x_k, b) exactly (tests/test_unitary.py checks the identity against the
DiscreteRNN cell); a linear readout of [Re h, Im h] at every step:

* ``full``: UnitaryField, W over the whole unitary group by the Cayley step (lr_unitary),
  RMSprop (lr) for V, b and the readout, no gradient clipping (as in the paper);
* ``restricted``: RestrictedUnitaryField (W = D3 R2 F^-1 D2 Pi R1 F D1), RMSprop for all;
* ``orthogonal``: UnitaryField with W = B exp(X - X^H) (torch's orthogonal parametrization), RMSprop;
* ``lstm``: torch.nn.LSTM, RMSprop, gradients clipped to [-1, 1] (as the reference code does).

    python examples/copy_memory.py                      # quick run (T = 100, 100 iterations), prints the table
    python examples/copy_memory.py --results            # CSV + PNG in docs/figures, section in docs/RESULTS_unitary.md

Long runs (T = 1000): ``--checkpoint-dir DIR`` saves every run at each evaluation to DIR/T{T}_{model}.pt
and rewrites DIR/status.md (the table so far, each run's status); the same command again resumes
where it stopped (the same training sequences, optimiser state and curves).  ``--report-only`` makes
the table, plot and section from the checkpoints as they are, training nothing: a run the budget
cut short is reported with the iterations it had.
"""

from __future__ import annotations

import argparse
import csv
import os
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
    "delays": (100,),
    "models": ("full", "restricted", "lstm"),
    "hidden": 128,
    "lstm_hidden": 128,
    "iterations": 100,
    "batch_size": 20,
    "lr": 1e-3,
    "lr_unitary": 1e-3,
    "eval_every": 25,
    "n_test": 200,
    "seed": 0,
    "threads": 1,
    "results": False,
    "out_dir": None,
    "checkpoint_dir": None,
    "report_only": False,
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
    # Euler, one step of size 1 per sample (times t_k = k), hold input: the paper's cell, on the fast path
    model = nr.ContinuousRNN(field, COPY_N_CLASSES, method="euler")
    # the full model's W takes the Cayley step; everything else (and every other model) RMSprop
    opt = FullCapacityOptimizer(model.parameters(), lr_unitary=lr_unitary, base=torch.optim.RMSprop, lr=lr)
    return model, field.features, opt, None


def copy_loss(model, features, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over every step and sequence."""
    with cached():  # the "orthogonal" model's W once per pass, not once per step
        logits = model.readout(features(model.trajectory(x)))
    return F.cross_entropy(logits.reshape(-1, COPY_N_CLASSES), y.reshape(-1))


def train_step(model, features, opt, clip, x: torch.Tensor, y: torch.Tensor) -> float:
    """One training iteration on the batch (x, y): loss, backward, clipping (LSTM), optimiser step;
    returns the loss."""
    loss = copy_loss(model, features, x, y)
    opt.zero_grad()
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_value_(model.parameters(), clip)
    opt.step()
    return loss.item()


def batch(n: int, T: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    inputs, targets = make_copy(n, T, generator)
    return F.one_hot(inputs, COPY_INPUT_SIZE).to(torch.float32), targets


def checkpoint_path(cfg: dict, T: int, kind: str) -> Path | None:
    return None if cfg["checkpoint_dir"] is None else Path(cfg["checkpoint_dir"]) / f"T{T}_{kind}.pt"


def save_atomic(obj, path: Path) -> None:
    """torch.save to a temporary file, then rename: a run killed mid-save keeps its last checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def parameter_count(model) -> int:
    """Real parameters (a complex entry counts twice)."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())


def train_one(kind: str, T: int, cfg: dict, on_eval=None) -> dict:
    """Train one model at delay T for cfg["iterations"]; resumes from its checkpoint when there is one.

    Returns the row: train/test curves [(iteration, CE)], final test CE, seconds (training and
    evaluation, summed over resumed sessions), real parameters, iterations done and status
    ("finished", or "stopped at iteration k of n" for a report of a run not finished)."""
    model, features, opt, clip = build(kind, cfg["hidden"], cfg["lstm_hidden"], cfg["lr"], cfg["lr_unitary"],
                                       cfg["seed"])
    x_test, y_test = batch(cfg["n_test"], T, torch.Generator().manual_seed(cfg["seed"] + 12345))
    g = torch.Generator().manual_seed(cfg["seed"])  # fresh training sequences every iteration
    state = {"train": [], "test": [], "iteration": 0, "seconds": 0.0}
    ckpt = checkpoint_path(cfg, T, kind)
    if ckpt is not None and ckpt.exists():
        saved = torch.load(ckpt, weights_only=False)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        g.set_state(saved["generator"])
        state = saved["state"]
    n = cfg["iterations"]

    def row(status: str) -> dict:
        return {"train": state["train"], "test": state["test"], "final": state["test"][-1][1],
                "seconds": state["seconds"], "parameters": parameter_count(model),
                "iterations": state["iteration"], "status": status}

    def status() -> str:
        return "finished" if state["iteration"] >= n else f"stopped at iteration {state['iteration']} of {n}"

    if cfg["report_only"]:
        if not state["test"]:
            return None
        return row(status())
    t0 = time.time() - state["seconds"]

    def evaluate(it):
        with torch.no_grad():
            state["test"].append((it, float(copy_loss(model, features, x_test, y_test))))
        state["seconds"] = time.time() - t0
        if ckpt is not None:
            state["iteration"] = it
            save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(), "generator": g.get_state(),
                         "state": state}, ckpt)
            if on_eval is not None:
                on_eval(kind, T, row(status()))
        if cfg["verbose"]:
            train = state["train"][-1][1] if state["train"] else float("nan")
            print(f"  T={T} {kind:10s} it {it:5d} train {train:.4f} test {state['test'][-1][1]:.4f} "
                  f"(baseline {copy_baseline(T):.4f}) {state['seconds']:.0f}s", flush=True)

    if not state["test"]:
        evaluate(0)
    for it in range(state["iteration"] + 1, n + 1):
        state["train"].append((it, train_step(model, features, opt, clip, *batch(cfg["batch_size"], T, g))))
        state["iteration"] = it
        if it % cfg["eval_every"] == 0 or it == n:
            evaluate(it)
    state["seconds"] = time.time() - t0
    return row(status())


def main(**config) -> list[dict]:
    """Train each model at each delay T; returns one row per (T, model)."""
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; expected some of {', '.join(DEFAULTS)}")
    cfg = {**DEFAULTS, **config}
    for kind in cfg["models"]:
        if kind not in MODELS:
            raise ValueError(f"unknown model {kind!r}; expected one of {', '.join(MODELS)}")
    if cfg["report_only"] and cfg["checkpoint_dir"] is None:
        raise ValueError("report_only=True reads the runs' checkpoints: give checkpoint_dir (--checkpoint-dir) too")
    torch.set_num_threads(cfg["threads"])
    plan = [(T, kind) for T in cfg["delays"] for kind in cfg["models"]]
    done: dict[tuple[int, str], dict] = {}

    def on_eval(kind, T, row):  # the status table, rewritten at every checkpoint
        done[T, kind] = {"T": T, "model": kind, "baseline": copy_baseline(T), **row}
        write_status(cfg, plan, done)

    rows = []
    for T, kind in plan:
        r = train_one(kind, T, cfg, on_eval)
        if r is not None:  # report_only: a run never started has no row
            rows.append(done.setdefault((T, kind), {"T": T, "model": kind, "baseline": copy_baseline(T), **r}))
    if cfg["checkpoint_dir"] is not None:
        write_status(cfg, plan, {(r["T"], r["model"]): r for r in rows})
    if cfg["verbose"]:
        print(table(rows))
    if cfg["results"]:
        write_results(rows, cfg)
    return rows


def table(rows: list[dict]) -> str:
    """The results table; a run not finished says where it stopped in its last column."""
    lines = ["| T | model | real parameters | baseline | test CE at start | test CE at end | lowest test CE | seconds "
             "| iterations |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lowest = min(v for _, v in r["test"])
        its = str(r["iterations"]) if r["status"] == "finished" else f"{r['iterations']} (stopped; budget)"
        lines.append(f"| {r['T']} | {r['model']} | {r['parameters']} | {r['baseline']:.4f} | {r['test'][0][1]:.4f} | "
                     f"{r['final']:.4f} | {lowest:.4f} | {r['seconds']:.0f} | {its} |")
    return "\n".join(lines)


def write_status(cfg: dict, plan: list[tuple[int, str]], done: dict) -> None:
    """DIR/status.md: the table of the runs so far and the status of every planned run."""
    rows = [done[key] for key in plan if key in done]
    lines = [f"Copy memory study, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}. "
             f"Resume / report: `{command_line(cfg)} --checkpoint-dir {cfg['checkpoint_dir']}` "
             f"(add --report-only for the section without training).", "", table(rows) if rows else "(no runs yet)",
             "", "Status:"]
    for T, kind in plan:
        r = done.get((T, kind))
        lines.append(f"- T = {T} {kind}: " + ("not started" if r is None else r["status"] if r["status"] == "finished"
                                              else f"running or stopped at iteration {r['iterations']} of "
                                                   f"{cfg['iterations']}"))
    path = Path(cfg["checkpoint_dir"]) / "status.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


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
            cut = "" if r["status"] == "finished" else f", stopped at {r['iterations']}"
            line, = ax.plot(its, ce, "o-", ms=3, label=f"{r['model']} (test{cut})")
            # training loss, smoothed over 20 iterations
            tr = torch.tensor([v for _, v in r["train"]])
            if len(tr) >= 20:
                sm = torch.nn.functional.avg_pool1d(tr[None, None], 20, 1)[0, 0]
                ax.plot(range(20, 20 + len(sm)), sm, color=line.get_color(), alpha=0.35, lw=0.8)
        ax.axhline(copy_baseline(T), color="k", ls="--", lw=1, label="memoryless baseline")
        ax.axhline(copy_baseline(T) / 10, color="k", ls=":", lw=1, label="a tenth of it")
        ax.set(yscale="log", xlabel="iteration", ylabel="cross-entropy per step", title=f"copy memory, T = {T}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(fig_dir / f"{stem}.png", dpi=120)
    plt.close(fig)
    text = (f"### Copy memory, T = {', '.join(map(str, delays))}\n\n"
            f"Command: `{command_line(cfg)}` (torch {torch.__version__}, {cfg['threads']} thread).\n\n"
            f"uRNNs: N = {cfg['hidden']} complex units, ContinuousRNN (Euler, one step of size 1 per sample, hold "
            f"input: the paper's recurrence); LSTM: "
            f"{cfg['lstm_hidden']} units. Batch {cfg['batch_size']} of fresh sequences per iteration, "
            f"{cfg['iterations']} iterations, RMSprop lr {cfg['lr']} (LSTM gradients clipped to [-1, 1]); "
            f"full capacity: Cayley step lambda = {cfg['lr_unitary']}. Test: {cfg['n_test']} fixed sequences; "
            f"faint lines: training loss (20-iteration mean). Seconds: training and evaluation, single thread; "
            f"iterations: those run (a run the time budget stopped says so).\n\n"
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
    p.add_argument("--checkpoint-dir", default=None,
                   help="save each run at every evaluation and resume from there; DIR/status.md: the table so far")
    p.add_argument("--report-only", action="store_true",
                   help="with --checkpoint-dir: table, plot and section from the checkpoints, no training")
    a = p.parse_args()
    main(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in vars(a).items()})
