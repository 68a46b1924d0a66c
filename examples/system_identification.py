"""System identification of a teacher uRNN: full capacity vs restricted capacity (Wisdom et al. 2016, Sec. 5.1).

A teacher uRNN with a Haar-random unitary W (N complex units) is driven by complex Gaussian inputs;
a student that shares the teacher's input map, bias and readout learns only its recurrence matrix,
given (input, output) sequences, minimising the MSE of all outputs.  Students:

* ``full``: W over the whole unitary group, trained by the Cayley step (FullCapacityOptimizer);
* ``restricted``: W = D3 R2 F^-1 D2 Pi R1 F D1 (7N real parameters), trained by RMSprop;
* ``orthogonal``: W = B exp(X - X^H) (torch's orthogonal parametrization), trained by RMSprop.

The paper's claim: for N > 7 the restricted family cannot reach a generic unitary matrix, so its
test MSE stays well above the full-capacity student's.

Departure from the paper: T = 20 here, not 150.  From a random start, with T = 150 the loss over
U(N) was nearly flat for every step size tried (measured, N = 8, loss averaged over outputs:
19.7 -> 15.8 in 300 iterations at the best lambda, 1e-3, against 5.6 -> 0.03 in 200 iterations at
T = 20 and lambda = 0.03), and the budget of this run is minutes.

    python examples/system_identification.py                 # a quick run, prints a table
    python examples/system_identification.py --results       # CSV + PNG in docs/figures, section in docs/RESULTS_unitary.md
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import torch
from torch.nn.utils.parametrize import cached

import neuralode_rnn as nr
from neuralode_rnn import reports
from neuralode_rnn.data.sysid import load_sysid
from neuralode_rnn.fields.restricted_unitary import RestrictedUnitaryField
from neuralode_rnn.optim import CayleyOptimizer, parametrize_unitary

UNITARY_TITLE = "## Unitary RNNs: full vs restricted capacity"

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("full", "restricted", "orthogonal")

DEFAULTS = {
    "sizes": (4, 8, 16, 32),
    "kinds": ("full", "restricted"),
    "T": 20,
    "n_train": 2000,
    "n_test": 200,
    "iterations": 1500,
    "batch_size": 50,
    "lr_unitary": 2e-3,
    "lr": 1e-2,
    "eval_every": 100,
    "seeds": (0,),
    "teacher": "haar",
    "threads": 1,
    "results": False,
    "out_dir": None,
    "verbose": True,
}


def make_student(data, kind: str, seed: int, lr_unitary: float, lr: float):
    """(field, model, optimizer) for a student sharing the teacher's V = I and b; only W is trained."""
    N = data.info["N"]
    torch.manual_seed(10_000 + seed)  # not the data's seed: that would draw the teacher's own W
    if kind in ("full", "orthogonal"):
        field = nr.UnitaryField(2 * N, N)
    elif kind == "restricted":
        field = RestrictedUnitaryField(2 * N, N, permutation_seed=seed)
    else:
        raise ValueError(f"unknown student {kind!r}; expected one of {', '.join(KINDS)}")
    with torch.no_grad():
        field.input_map.weight.copy_(torch.eye(2 * N))
        field.b.copy_(data.info["b"].to(field.b.dtype))
    field.input_map.weight.requires_grad_(False)
    field.b.requires_grad_(False)
    model = nr.DiscreteRNN(field.discretize("euler", 1.0), 1)  # its readout is unused: outputs are [Re h, Im h]
    if kind == "full":
        opt = CayleyOptimizer([field.U], lr=lr_unitary)
    elif kind == "orthogonal":
        parametrize_unitary(field, "U", "matrix_exp")
        opt = torch.optim.RMSprop([field.parametrizations.U.original], lr=lr)
    else:
        opt = torch.optim.RMSprop([field.theta, field.reflections], lr=lr)
    return field, model, opt


def predict(field, model, values: torch.Tensor) -> torch.Tensor:
    with cached():  # one matrix exponential per pass for the "orthogonal" student
        return field.features(model.trajectory(values))


def train_one(data, kind: str, iterations: int, batch_size: int, lr_unitary: float, lr: float, eval_every: int,
              seed: int, verbose: bool = True) -> dict:
    field, model, opt = make_student(data, kind, seed, lr_unitary, lr)
    train, test = data.train, data.test
    g = torch.Generator().manual_seed(seed + 1)
    curve = []

    def evaluate(it):
        with torch.no_grad():
            mse = float((predict(field, model, test.values) - test.targets).pow(2).mean())
        curve.append((it, mse))
        if verbose:
            print(f"  N={data.info['N']:3d} {kind:10s} it {it:5d} test MSE {mse:.3e}", flush=True)

    t0 = time.time()
    evaluate(0)
    for it in range(1, iterations + 1):
        idx = torch.randint(0, train.n_samples, (batch_size,), generator=g)
        # squared error summed over the 2N outputs, averaged over batch and time: with the plain
        # (unnormalised) Cayley step, one lambda then suits every N
        loss = (predict(field, model, train.values[idx]) - train.targets[idx]).pow(2).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % eval_every == 0 or it == iterations:
            evaluate(it)
    W = field.W.detach()
    eye = torch.eye(W.shape[0], dtype=W.dtype)
    return {"curve": curve, "final": curve[-1][1], "seconds": time.time() - t0,
            "unitarity": float((W.mH @ W - eye).abs().max()),
            "w_error": float((W.to(torch.complex128) - data.info["W"]).abs().pow(2).sum().sqrt())}


def main(**config) -> list[dict]:
    """Train every student kind for every N; returns one row per (N, kind)."""
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; expected some of {', '.join(DEFAULTS)}")
    cfg = {**DEFAULTS, **config}
    for kind in cfg["kinds"]:
        if kind not in KINDS:
            raise ValueError(f"unknown student {kind!r}; expected one of {', '.join(KINDS)}")
    torch.set_num_threads(cfg["threads"])
    rows = []
    for seed in cfg["seeds"]:  # each seed: a new teacher, data set and student initialisation
        for N in cfg["sizes"]:
            data = load_sysid(N=N, T=cfg["T"], n_train=cfg["n_train"], n_test=cfg["n_test"], seed=seed,
                              teacher=cfg["teacher"])
            for kind in cfg["kinds"]:
                r = train_one(data, kind, cfg["iterations"], cfg["batch_size"], cfg["lr_unitary"], cfg["lr"],
                              cfg["eval_every"], seed, cfg["verbose"])
                rows.append({"N": N, "kind": kind, "seed": seed, "baseline_mse": data.info["baseline_mse"], **r})
    if cfg["verbose"]:
        print(table(rows))
    if cfg["results"]:
        write_results(rows, cfg)
    return rows


def _groups(rows: list[dict]) -> list[tuple[int, str, list[dict]]]:
    keys = list(dict.fromkeys((r["N"], r["kind"]) for r in rows))
    return [(n, k, [r for r in rows if (r["N"], r["kind"]) == (n, k)]) for n, k in keys]


def table(rows: list[dict]) -> str:
    """One line per (N, student): median over seeds, then each seed's value."""
    lines = [("| N | student | seeds | final test MSE, median | final test MSE per seed | predict-0 MSE (median) | "
             "Frobenius error of W per seed | unitarity error (max) | seconds (total) |"),
             "|---|---|---|---|---|---|---|---|---|"]
    for n, kind, rs in _groups(rows):
        finals = [r["final"] for r in rs]
        w_errors = ", ".join(f"{r['w_error']:.2f}" for r in rs)
        lines.append(f"| {n} | {kind} | {len(rs)} | {_median(finals):.3g} | {', '.join(f'{v:.3g}' for v in finals)} | "
                     f"{_median([r['baseline_mse'] for r in rs]):.3g} | {w_errors} | "
                     f"{max(r['unitarity'] for r in rs):.1e} | {sum(r['seconds'] for r in rs):.0f} |")
    return "\n".join(lines)


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def write_results(rows: list[dict], cfg: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    out = Path(cfg["out_dir"]) if cfg["out_dir"] else ROOT / "docs"
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    with open(fig_dir / "sysid.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seed", "N", "student", "iteration", "test_mse", "baseline_mse"])
        for r in rows:
            for it, mse in r["curve"]:
                w.writerow([r["seed"], r["N"], r["kind"], it, f"{mse:.6e}", f"{r['baseline_mse']:.6e}"])
    sizes = list(dict.fromkeys(r["N"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for kind in dict.fromkeys(r["kind"] for r in rows):
        med = [_median([r["final"] for r in rows if r["N"] == n and r["kind"] == kind]) for n in sizes]
        line, = axes[0].plot(sizes, med, "o-", label=f"{kind} (median)")
        pts = [(r["N"], r["final"]) for r in rows if r["kind"] == kind]
        axes[0].plot(*zip(*pts), "x", color=line.get_color(), alpha=0.6)
    base = [_median([r["baseline_mse"] for r in rows if r["N"] == n]) for n in sizes]
    axes[0].plot(sizes, base, "k--", label="predict 0")
    axes[0].axvline(7, color="grey", lw=0.8, ls=":")
    axes[0].set(xscale="log", yscale="log", xlabel="N (complex units)", ylabel="final test MSE",
                title="system identification, teacher W Haar-random")
    axes[0].set_xticks(sizes, [str(n) for n in sizes])
    axes[0].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[0].legend()
    for r in (r for r in rows if r["seed"] == rows[0]["seed"]):
        its, mse = zip(*r["curve"])
        axes[1].plot(its, mse, ("-" if r["kind"] == "full" else "--"), label=f"{r['kind']} N={r['N']}")
    axes[1].set(yscale="log", xlabel="iteration", ylabel="test MSE", title=f"training curves, seed {rows[0]['seed']}")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(fig_dir / "sysid.png", dpi=120)
    plt.close(fig)
    cmd = command_line(cfg)
    text = (f"### System identification (teacher uRNN, only W learnt)\n\n"
            f"Command: `{cmd}` (torch {torch.__version__}, {cfg['threads']} thread).\n\n"
            f"Teacher: W Haar-random on U(N) ({cfg['teacher']}), V = I, readout = I, b ~ U[-0.11, -0.09]; "
            f"T = {cfg['T']}, {cfg['n_train']} training and {cfg['n_test']} test sequences, batch {cfg['batch_size']}, "
            f"{cfg['iterations']} iterations. Full capacity: Cayley step, lambda = {cfg['lr_unitary']}; "
            f"restricted/orthogonal: RMSprop lr {cfg['lr']}. Test MSE over all outputs; "
            f"predict-0 is the MSE of the zero prediction. Seeds {', '.join(map(str, cfg['seeds']))}: each "
            f"draws its own teacher, data and student start (crosses in the plot: single seeds).\n\n"
            f"{table(rows)}\n\n![system identification](figures/sysid.png)\n\nData: `docs/figures/sysid.csv`.\n")
    reports.write_section(out / "RESULTS_unitary.md", "system_identification", text, UNITARY_TITLE)


RESULT_FLAGS = ("sizes", "kinds", "T", "n_train", "n_test", "iterations", "batch_size", "lr_unitary", "lr",
                "eval_every", "seeds", "teacher")
"""The settings a --results command line repeats when they differ from DEFAULTS."""


def command_line(cfg: dict) -> str:
    return reports.command_line("python examples/system_identification.py --results", cfg, DEFAULTS,
                                RESULT_FLAGS)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULTS["sizes"]))
    p.add_argument("--kinds", nargs="+", default=list(DEFAULTS["kinds"]), choices=KINDS)
    p.add_argument("--T", type=int, default=DEFAULTS["T"])
    p.add_argument("--n-train", type=int, default=DEFAULTS["n_train"])
    p.add_argument("--n-test", type=int, default=DEFAULTS["n_test"])
    p.add_argument("--iterations", type=int, default=DEFAULTS["iterations"])
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    p.add_argument("--lr-unitary", type=float, default=DEFAULTS["lr_unitary"])
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    p.add_argument("--eval-every", type=int, default=DEFAULTS["eval_every"])
    p.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULTS["seeds"]))
    p.add_argument("--teacher", default=DEFAULTS["teacher"], choices=("haar", "restricted"))
    p.add_argument("--threads", type=int, default=DEFAULTS["threads"])
    p.add_argument("--results", action="store_true", help="write CSV/PNG to docs/figures and the markdown section")
    p.add_argument("--out-dir", default=None, help="instead of docs/ (for trial runs)")
    a = p.parse_args()
    main(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in vars(a).items()})
