"""The irregular-series study behind docs/IRREGULAR.md (issue 10): this library's continuous models
against the standard baselines of irregular time-series classification, on UEA/UCR sets and
MNIST-1D with 0/30/50/70% of each sample's observations dropped, and on the timing task.

    python scripts/irregular.py plan                 # the grid, the budget, nothing run
    python scripts/irregular.py run --workers 2      # selection, then the test runs: docs/irregular/runs.csv
    python scripts/irregular.py report               # docs/IRREGULAR.md, selection.csv and the plot

Protocol (every model the same; the numbers are in ``SETS``, ``SPACES``, ``SELECT_DROP``):

1. Selection.  Each model has a list of ``K`` configurations (``SPACES``: the learning rate for
   all; eps, solver, interpolation and time-aware inputs for the continuous ones; eps for the
   baselines that read times).  Each is trained once (seed 0) at ``SELECT_DROP`` on 75% of the
   training samples and scored on the other 25% (``TrainConfig.validation``: a fixed seeded choice;
   standardisation and input scales come from the 75%; the test split is never read).  The score
   is the mean validation accuracy of the last three epochs (ties: lower validation loss).
2. Test.  The chosen configuration is trained on the full training split with seeds 0, 1, 2 at
   every drop rate and scored on the test split at the last epoch (no early stopping).

Sizes: LSTM/GRU/GRU-dt/GRU-D/ODE-RNN have N = 64 (their usual size here); Neural CDE N = 32
(Kidger et al.'s CharacterTrajectories size); each continuous model of this library gets the
largest N whose parameter count (with its input channels) is at most the GRU's on that set.

``run`` skips runs already in docs/irregular/runs.csv, so a killed study continues where it
stopped (a run killed mid-way resumes from its last checkpoint).  Each run is one
``neuralode_rnn.training.train`` call (what ``neuralode-rnn train`` runs, without the per-epoch
curves.png; the equivalent command is stored with every run) in a pool of ``--workers`` processes
with one torch thread each; run directories go to docs/irregular/runs/ (not committed).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "docs" / "irregular"
RUNS_CSV = OUT / "runs.csv"
SELECTION_CSV = OUT / "selection.csv"
PLOT = OUT / "accuracy_vs_drop.png"
DOC = ROOT / "docs" / "IRREGULAR.md"
RUN_DIRS = OUT / "runs"

SEEDS = (0, 1, 2)
DROPS = (0.0, 0.3, 0.5, 0.7)
SELECT_DROP = 0.5
VALIDATION = 0.25
CLIP = 1.0
BASE_HIDDEN = 64
NCDE_HIDDEN = 32

# set key -> (label, task, loader options, epochs, batch size)
SETS: dict[str, tuple[str, str, dict, int, int]] = {
    "JapaneseVowels": ("JapaneseVowels", "uea:JapaneseVowels", {}, 30, 32),
    "BasicMotions": ("BasicMotions", "uea:BasicMotions", {}, 30, 8),
    "ItalyPowerDemand": ("ItalyPowerDemand", "uea:ItalyPowerDemand", {}, 40, 8),
    "GunPoint": ("GunPoint", "uea:GunPoint", {}, 25, 10),
    "mnist1d": ("MNIST-1D (1000 training samples)", "mnist1d", {"n_train": 1000}, 12, 32),
}

CONTINUOUS = ("lipschitz", "antisymmetric", "antisymmetric-gated", "ctrnn")
BASELINES = ("gru", "gru-dt", "gru-d", "ode-rnn", "ncde")
MODELS = BASELINES + CONTINUOUS
LABELS = {"gru": "GRU (time-blind)", "lstm": "LSTM (time-blind)", "gru-dt": "GRU-dt", "gru-d": "GRU-D",
          "ode-rnn": "ODE-RNN", "ncde": "Neural CDE", "lipschitz": "Lipschitz", "antisymmetric": "Antisymmetric",
          "antisymmetric-gated": "Antisymmetric gated", "ctrnn": "CTRNN"}

TIME_AWARE = "time,intensity,mask"


def _space(base: dict, variants: list[dict]) -> list[dict]:
    return [{**base, **v} for v in variants]


# model -> its K configurations (TrainConfig fields).  K is the same for every model.
LRS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.05)
SPACES: dict[str, list[dict]] = {
    # time-blind and gap-reading GRUs: the learning rate is their only knob
    "gru": [{"lr": lr} for lr in LRS],
    "gru-dt": [{"lr": lr} for lr in LRS],
    "gru-d": [{"lr": lr} for lr in LRS],
    # ODE-RNN: lr and the time scale of its ODE (phase 1 found it needs a small one)
    "ode-rnn": [{"lr": lr, "eps": eps} for lr in (0.001, 0.003, 0.01) for eps in (0.01, 0.1)]
    + [{"lr": 0.003, "eps": 0.03}, {"lr": 0.003, "eps": 1.0}],
    # Neural CDE: lr and the scale of its time channel, rk4 on the cubic path (torchcde's examples);
    # the cheaper midpoint rule and the linear path
    "ncde": [{"lr": lr, "eps": eps, "method": "rk4"} for lr in (0.001, 0.003, 0.01) for eps in (0.1, 1.0)]
    + [{"lr": 0.003, "eps": 1.0, "method": "midpoint"},
       {"lr": 0.003, "eps": 1.0, "method": "rk4", "interpolation": "linear"}],
}
# this library's continuous models: solver (one Euler step per gap, or dopri5 over each gap) x
# time-aware inputs at a central eps, then a smaller and a larger eps, and lr / 3 and 3 lr (a validation pilot
# at 70% dropped: dopri5 and the time-aware inputs helped most, eps mattered, lr 0.01 hurt)
CENTRAL_EPS = {"lipschitz": (0.1, 0.03, 0.3), "antisymmetric": (0.1, 0.03, 0.3),
               "antisymmetric-gated": (0.1, 0.03, 0.3), "ctrnn": (0.3, 0.1, 1.0)}  # central, smaller, larger
for _family, (_eps, *_others) in CENTRAL_EPS.items():
    SPACES[_family] = (
        [{"lr": 0.003, "eps": _eps, "method": method, "inputs": inputs}
         for method in ("euler", "dopri5") for inputs in (None, TIME_AWARE)]
        + [{"lr": 0.003, "eps": e, "method": "dopri5", "inputs": TIME_AWARE} for e in _others]
        + [{"lr": lr, "eps": _eps, "method": "dopri5", "inputs": TIME_AWARE} for lr in (0.001, 0.01)])
K = 8
for _m, _configs in SPACES.items():
    if len(_configs) != K:
        raise RuntimeError(f"{_m} has {len(_configs)} configurations; every model gets K = {K}")

# timing task: fixed settings (no selection), 3 seeds
TIMING = ("timing", "timing", {}, 10, 64)
TIMING_MODELS: dict[str, dict] = {
    "gru": {"model": "gru"},
    "lstm": {"model": "lstm"},
    "lipschitz-discrete": {"model": "lipschitz-discrete", "eps": 0.1},
    "gru-dt": {"model": "gru-dt"},
    "gru-d": {"model": "gru-d"},
    "ode-rnn": {"model": "ode-rnn", "eps": 0.1},
    "ncde": {"model": "ncde", "hidden_size": NCDE_HIDDEN},
    "lipschitz": {"model": "lipschitz", "eps": 0.1},
    "lipschitz+time": {"model": "lipschitz", "eps": 0.1, "inputs": "time"},
    "antisymmetric": {"model": "antisymmetric", "eps": 0.1},
    "antisymmetric-gated": {"model": "antisymmetric-gated", "eps": 0.1},
    "ctrnn": {"model": "ctrnn", "eps": 0.1},
}
TIMING_BLIND = ("gru", "lstm", "lipschitz-discrete")

FIELDS = ("stage", "set", "model", "config", "drop", "seed", "options", "hidden_size", "parameters", "epochs",
          "accuracy", "accuracy_last3", "loss", "loss_last3", "train_accuracy", "train_seconds", "nfe", "status",
          "command")


# ------------------------------------------------------------------------------------- configs
def config_id(model: str, options: dict) -> str:
    """A short stable name of one configuration, e.g. "lr0.003-eps0.1-time,intensity,mask-euler"."""
    parts = [f"lr{options['lr']:g}"]
    if "eps" in options:
        parts.append(f"eps{options['eps']:g}")
    if options.get("inputs"):
        parts.append(options["inputs"].replace("time,intensity,mask", "tim"))
    if "method" in options and model not in ("gru", "gru-dt", "gru-d", "lstm"):
        parts.append(options["method"])
    if options.get("interpolation"):
        parts.append(options["interpolation"])
    return "-".join(parts)


def job_config_id(stage: str, model: str, options: dict) -> str:
    """The configuration id of a job (timing-task jobs use the default lr 0.003)."""
    return config_id(model, {"lr": 0.003, **options} if stage == "timing" else options)


def job_key(job: tuple) -> tuple:
    stage, set_key, model, options, drop, seed = job
    return _key(stage, set_key, model, job_config_id(stage, model, options), drop, seed)


def hidden_for(model: str, set_key: str, options: dict) -> int:
    """N of ``model`` on ``set_key``: 64 for the GRU-like baselines, 32 for the Neural CDE, and for
    this library's continuous models the largest N with no more parameters than the GRU (N = 64)."""
    if model not in CONTINUOUS:
        return NCDE_HIDDEN if model == "ncde" else BASE_HIDDEN
    d, c, extra = _shape(set_key, options.get("inputs"))
    from neuralode_rnn.zoo import build_model, count_parameters

    budget = count_parameters(build_model("gru", d, c, BASE_HIDDEN))
    lo, hi = 4, 512
    while lo < hi:  # largest N with count(N) <= budget (the count grows with N)
        mid = (lo + hi + 1) // 2
        if count_parameters(build_model(model, d + extra, c, mid)) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


_SHAPES: dict[str, tuple[int, int]] = {}


def _shape(set_key: str, inputs: str | None) -> tuple[int, int, int]:
    """(D, classes, extra input channels of ``inputs``) of a set."""
    if set_key not in _SHAPES:
        from neuralode_rnn.data import load_task

        _, task, options, _, _ = SETS[set_key] if set_key in SETS else TIMING
        data = load_task(task, **options)
        _SHAPES[set_key] = (data.input_size, data.output_size)
    d, c = _SHAPES[set_key]
    from neuralode_rnn.inputs import TimeFeatures

    extra = TimeFeatures(inputs).extra_channels(d) if inputs else 0
    return d, c, extra


def make_config(stage: str, set_key: str, model: str, options: dict, drop: float, seed: int):
    """The TrainConfig of one run: "select" (seed 0, 75% of the training split, scored on the other
    25%), "test" (the full training split, scored on the test split) or "timing"."""
    from neuralode_rnn.training import TrainConfig

    label, task, task_options, epochs, batch = TIMING if stage == "timing" else SETS[set_key]
    options = dict(options)
    name = options.pop("model", model)
    if stage == "timing":
        hidden = options.pop("hidden_size", BASE_HIDDEN)
    else:
        hidden = hidden_for(model, set_key, options)
    cid = job_config_id(stage, model, options)
    run_name = f"{set_key}__{model}__{cid}__drop{drop:g}__s{seed}"
    return TrainConfig(task=task, task_options=dict(task_options), drop=drop, model=name, hidden_size=hidden,
                       epochs=epochs, batch_size=batch, seed=seed, clip=CLIP,
                       validation=VALIDATION if stage == "select" else 0.0,
                       run_dir=str(RUN_DIRS / stage / run_name), quiet=True, threads=1, **options)


def command_for(config) -> str:
    """The ``neuralode-rnn train`` command of a run (its run directory replaced by runs/X)."""
    from neuralode_rnn.training import TrainConfig

    default = TrainConfig()
    parts = ["neuralode-rnn train", f"--task {config.task}"]
    for key, flag in (("n_train", "--n-train"), ("n_test", "--n-test")):
        if key in config.task_options:
            parts.append(f"{flag} {config.task_options[key]}")
    if config.drop:
        parts.append(f"--drop {config.drop:g}")
    parts.append(f"--model {config.model}")
    for key in ("inputs", "method", "eps", "interpolation", "step_size", "lr"):
        value = getattr(config, key)
        if value is not None and value != getattr(default, key):
            parts.append(f"--{key.replace('_', '-')} {value if isinstance(value, str) else format(value, 'g')}")
    if config.validation:
        parts.append(f"--validation {config.validation:g}")
    parts += [f"--hidden-size {config.hidden_size}", f"--epochs {config.epochs}", f"--batch-size {config.batch_size}",
              f"--clip {config.clip:g}", f"--seed {config.seed}", "--threads 1", "--run-dir runs/X"]
    return " ".join(parts)


# ------------------------------------------------------------------------------------- running
def run_one(job: tuple) -> dict:
    """job = (stage, set, model, options, drop, seed): train it (resuming a killed run) and return its row."""
    import torch

    from neuralode_rnn.training import NonFiniteLossError, RunDir, default_callbacks, train

    torch.set_num_threads(1)
    stage, set_key, model, options, drop, seed = job
    config = make_config(stage, set_key, model, options, drop, seed)
    rd = RunDir(config.run_dir)
    if rd.config_path.exists():  # killed mid-way: continue it
        config.resume = True
    row = {"stage": stage, "set": set_key, "model": model,
           "config": job_config_id(stage, model, options),
           "drop": drop, "seed": seed, "options": json.dumps(options, sort_keys=True),
           "hidden_size": config.hidden_size, "epochs": config.epochs, "command": command_for(config)}
    try:
        # no curves.png per epoch: drawing it costs about as much as an epoch of these small models
        result = train(config, callbacks=default_callbacks(config, curves=False))
        rows = result.rows
        row.update(parameters=result.parameters, status="ok")
    except NonFiniteLossError as exc:
        rows = rd.read_metrics() if rd.metrics_path.exists() else []
        row.update(parameters=_parameters(config), status="diverged: " + str(exc).split(";")[0])
    except Exception as exc:  # noqa: BLE001 - a solver at its limits: recorded, the study goes on
        rows = rd.read_metrics() if rd.metrics_path.exists() else []
        row.update(parameters=_parameters(config), status=f"error: {type(exc).__name__}: {' '.join(str(exc).split())}"
                   [:300])
    if rows:
        last3 = rows[-3:]
        row.update(accuracy=rows[-1]["test_accuracy"] if row["status"] == "ok" else "",
                   accuracy_last3=sum(float(r["test_accuracy"]) for r in last3) / len(last3),
                   loss=rows[-1]["test_loss"], loss_last3=sum(float(r["test_loss"]) for r in last3) / len(last3),
                   train_accuracy=rows[-1]["train_accuracy"], train_seconds=rows[-1]["wall_seconds"],
                   nfe=rows[-1]["nfe"])
    if row["status"] != "ok":
        row["accuracy_last3"] = ""
    return row


def _parameters(config) -> int:
    from neuralode_rnn.training import build_run
    from neuralode_rnn.zoo import count_parameters

    return count_parameters(build_run(config)[1])


def read_rows(path: Path | None = None) -> list[dict]:
    path = RUNS_CSV if path is None else path
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_row(row: dict, path: Path | None = None) -> None:
    path = RUNS_CSV if path is None else path
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in FIELDS})
        f.flush()
        os.fsync(f.fileno())


def _key(stage: str, set_key: str, model: str, cid: str, drop: float, seed: int) -> tuple:
    return stage, set_key, model, cid, round(float(drop), 3), int(seed)


def done_keys(rows: list[dict]) -> set[tuple]:
    return {_key(r["stage"], r["set"], r["model"], r["config"], r["drop"], r["seed"]) for r in rows}


def selection_scores(rows: list[dict], set_key: str, model: str) -> dict[str, tuple[float, float] | None]:
    """config id -> (mean validation accuracy of the last 3 epochs, mean validation loss), None when
    the run failed; only the configurations of ``SPACES[model]`` that have run."""
    out = {}
    for r in rows:
        if r["stage"] == "select" and r["set"] == set_key and r["model"] == model:
            out[r["config"]] = ((float(r["accuracy_last3"]), float(r["loss_last3"])) if r["status"] == "ok"
                                else None)
    return out


def chosen(rows: list[dict], set_key: str, model: str) -> dict | None:
    """The selected configuration of ``model`` on ``set_key`` (best score, ties: lower loss, then
    the earlier in ``SPACES``), or None while its selection runs are not all done."""
    scores = selection_scores(rows, set_key, model)
    ids = [config_id(model, o) for o in SPACES[model]]
    if not all(i in scores for i in ids):
        return None
    ok = [(scores[i][0], -scores[i][1], -n, o) for n, (i, o) in enumerate(zip(ids, SPACES[model]))
          if scores[i] is not None]
    if not ok:
        raise LookupError(f"every selection run of {model} on {set_key} failed")
    return max(ok, key=lambda t: t[:3])[3]


def jobs(rows: list[dict], sets: list[str], models: list[str], timing: bool) -> tuple[list[tuple], list[tuple]]:
    """(selection jobs to run, test jobs that can run now), skipping those in ``rows``."""
    done = done_keys(rows)
    select, test = [], []
    for s in sets:
        for m in models:
            for o in SPACES[m]:
                if _key("select", s, m, config_id(m, o), SELECT_DROP, 0) not in done:
                    select.append(("select", s, m, o, SELECT_DROP, 0))
            best = chosen(rows, s, m)
            if best is None:
                continue
            for drop in DROPS:
                for seed in SEEDS:
                    if _key("test", s, m, config_id(m, best), drop, seed) not in done:
                        test.append(("test", s, m, best, drop, seed))
    if timing:
        for m, o in TIMING_MODELS.items():
            for seed in SEEDS:
                if _key("timing", "timing", m, job_config_id("timing", m, o), 0.0, seed) not in done:
                    test.append(("timing", "timing", m, o, 0.0, seed))
    return select, test


def run(workers: int, sets: list[str], models: list[str], timing: bool) -> None:
    """Selection runs first; a model's test runs are queued as soon as its selection on a set is
    complete, ahead of the remaining selection runs, so a study cut short has whole cells."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    OUT.mkdir(parents=True, exist_ok=True)
    rows = read_rows()
    select, test = jobs(rows, sets, models, timing)
    print(f"{len(select)} selection runs and {len(test)} test/timing runs ready ({len(rows)} rows already in "
          f"{RUNS_CSV}), {workers} workers", flush=True)
    t0 = time.time()
    queued = {job_key(j) for j in select + test}
    pending = list(test) + list(select)
    n_done = 0
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        running = {}
        while pending or running:
            while pending and len(running) < workers:
                job = pending.pop(0)
                running[pool.submit(run_one, job)] = job
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                row = future.result()
                append_row(row)
                rows.append(row)
                n_done += 1
                print(f"[{n_done} {time.time() - t0:.0f}s] {row['stage']} {row['set']} {row['model']} {row['config']} "
                      f"drop {row['drop']} seed {row['seed']}: acc {row.get('accuracy')} (last3 "
                      f"{row.get('accuracy_last3')}) params {row.get('parameters')} {row.get('train_seconds')}s "
                      f"{row['status']}", flush=True)
                if job[0] == "select":
                    _, new = jobs(rows, [job[1]], [job[2]], False)
                    new = [j for j in new if job_key(j) not in queued]
                    queued.update(job_key(j) for j in new)
                    pending = new + pending  # ahead of the remaining selection runs
    print(f"done in {time.time() - t0:.0f}s", flush=True)


# ------------------------------------------------------------------------------------- report
def _stats(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    return mean, (math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0)


def test_summary(rows: list[dict], stage: str = "test") -> dict[tuple[str, str, float], dict]:
    """(set, model, drop) -> {"mean", "std", "n", "failed", "parameters", "seconds", "config"} of the
    runs of ``stage`` (accuracies in %)."""
    cells: dict[tuple[str, str, float], list[dict]] = {}
    for r in rows:
        if r["stage"] == stage:
            cells.setdefault((r["set"], r["model"], round(float(r["drop"]), 3)), []).append(r)
    out = {}
    for key, rs in cells.items():
        ok = [100 * float(r["accuracy"]) for r in rs if r["status"] == "ok"]
        secs = [float(r["train_seconds"]) for r in rs if r["train_seconds"]]
        mean, std = _stats(ok) if ok else (math.nan, math.nan)
        out[key] = {"mean": mean, "std": std, "n": len(ok), "failed": len(rs) - len(ok),
                    "parameters": int(rs[0]["parameters"]) if rs[0]["parameters"] else None,
                    "seconds": sum(secs) / len(secs) if secs else math.nan, "config": rs[0]["config"],
                    "hidden": rs[0]["hidden_size"]}
    return out


def best_continuous(rows: list[dict], set_key: str) -> str | None:
    """This library's continuous model chosen on validation for ``set_key``: the family whose chosen
    configuration has the best selection score (ties: lower validation loss)."""
    best = None
    for m in CONTINUOUS:
        c = chosen(rows, set_key, m)
        if c is None:
            return None
        score = selection_scores(rows, set_key, m)[config_id(m, c)]
        if best is None or (score[0], -score[1]) > best[0]:
            best = ((score[0], -score[1]), m)
    return best[1]


def _cell(s: dict | None) -> str:
    if s is None:
        return "not run"
    text = "—" if s["n"] == 0 else f"{s['mean']:.1f} ± {s['std']:.1f}" + (f" (n={s['n']})" if s["n"] < 3 else "")
    return text + (f" [{s['failed']} failed]" if s["failed"] else "")


def write_selection_csv(rows: list[dict]) -> None:
    """docs/irregular/selection.csv: per set, model and configuration its validation score and
    whether it was chosen."""
    with open(SELECTION_CSV, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["set", "model", "config", "options", "hidden_size", "parameters", "val_accuracy_last3",
                         "val_loss_last3", "train_seconds", "status", "chosen"])
        for s in SETS:
            for m in MODELS:
                c = chosen(rows, s, m)
                cid = None if c is None else config_id(m, c)
                for r in rows:
                    if r["stage"] == "select" and r["set"] == s and r["model"] == m:
                        writer.writerow([s, m, r["config"], r["options"], r["hidden_size"], r["parameters"],
                                         r["accuracy_last3"], r["loss_last3"], r["train_seconds"], r["status"],
                                         "yes" if r["config"] == cid else ""])


def plot(rows: list[dict], path: Path | None = None) -> None:
    """Test accuracy (mean over seeds, bars: std) against drop rate, one panel per set, a line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = PLOT if path is None else path
    summary = test_summary(rows)
    sets = [s for s in SETS if any(k[0] == s for k in summary)]
    if not sets:
        return
    cols = min(3, len(sets))
    nrows = math.ceil(len(sets) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 4.0 * nrows), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, s in zip(axes.flat, sets):
        for i, m in enumerate(MODELS):
            pts = [(d, summary[(s, m, d)]) for d in DROPS if (s, m, d) in summary and summary[(s, m, d)]["n"]]
            if not pts:
                continue
            ax.errorbar([100 * d for d, _ in pts], [p["mean"] for _, p in pts], yerr=[p["std"] for _, p in pts],
                        label=LABELS[m], color=colors(i), marker="o" if m in CONTINUOUS else "s", capsize=2,
                        linestyle="-" if m in CONTINUOUS else "--", linewidth=1.6 if m in CONTINUOUS else 1.1)
        ax.set_title(SETS[s][0])
        ax.set_xlabel("observations dropped (%)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_xticks([100 * d for d in DROPS])
        ax.grid(alpha=0.3)
    spare = list(axes.flat)[len(sets):]
    for ax in spare:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.suptitle("Accuracy against drop rate (mean ± std over 3 seeds; solid: this library's continuous models)")
    if spare:  # the legend in the empty panel
        spare[0].legend(handles, labels, loc="center", frameon=False, fontsize=11)
        fig.tight_layout(rect=(0, 0, 1, 0.96))
    else:
        fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), frameon=False)
        fig.tight_layout(rect=(0, 0.12, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plan() -> None:
    """Print the grid: per set the hidden sizes and parameter counts of every configuration."""
    from neuralode_rnn.training import build_run
    from neuralode_rnn.zoo import count_parameters

    print(f"K = {K} configurations per model, selection at drop {SELECT_DROP} on {VALIDATION:.0%} of the training "
          f"samples, then {len(DROPS)} drop rates x {len(SEEDS)} seeds")
    for s in SETS:
        print(f"\n{s}: {SETS[s][3]} epochs, batch {SETS[s][4]}")
        for m in MODELS:
            for o in SPACES[m]:
                c = make_config("test", s, m, o, 0.0, 0)
                print(f"  {m:<20} {config_id(m, o):<36} N = {c.hidden_size:<4} "
                      f"{count_parameters(build_run(c)[1])} parameters")
    n_select = len(SETS) * len(MODELS) * K
    n_test = len(SETS) * len(MODELS) * len(DROPS) * len(SEEDS)
    print(f"\n{n_select} selection runs, {n_test} test runs, {len(TIMING_MODELS) * len(SEEDS)} timing runs")


# Commentary written after reading the generated tables (no numbers that are not in them).
NOTES: list[str] = []


def _goal_check(summary: dict, set_key: str, model: str) -> str:
    """"beats every baseline at every rate; loses <= 3 points to 70%" for one model, in words."""
    s = set_key
    lose = []
    for d in DROPS:
        top = max(BASELINES, key=lambda b: summary[(s, b, d)]["mean"])
        gap = summary[(s, model, d)]["mean"] - summary[(s, top, d)]["mean"]
        if gap < 0:
            lose.append(f"{100 * d:g}%: {LABELS[top]} {summary[(s, top, d)]['mean']:.1f} vs "
                        f"{summary[(s, model, d)]['mean']:.1f} ({gap:+.2f})")
    drop_loss = summary[(s, model, 0.0)]["mean"] - summary[(s, model, 0.7)]["mean"]
    return (("at least as accurate as every baseline at every drop rate: **yes**" if not lose else
             "at least as accurate as every baseline: **no** (" + "; ".join(lose) + ")")
            + f"; loss from 0% to 70% dropped {drop_loss:.1f} points: "
            + ("**yes** (<= 3)" if drop_loss <= 3 else "**no** (> 3)"))


def _goal_lines(rows: list[dict], summary: dict) -> list[str]:
    out = []
    for s in SETS:
        m = best_continuous(rows, s)
        if m is None or not all((s, x, d) in summary for x in MODELS for d in DROPS):
            out.append(f"- {SETS[s][0]}: incomplete.")
            continue
        params = summary[(s, m, 0.0)]["parameters"]
        gru = summary[(s, "gru", 0.0)]["parameters"]
        out.append(f"- {SETS[s][0]}: chosen continuous model **{LABELS[m]}** ({params} parameters, GRU {gru}): "
                   + _goal_check(summary, s, m) + ".")
        oracle = max(CONTINUOUS, key=lambda c: sum(summary[(s, c, d)]["mean"] for d in DROPS))
        if oracle != m:
            out.append(f"  Read off the test numbers instead (optimistic: a choice the protocol cannot make), the "
                       f"continuous family with the best mean over the four rates is {LABELS[oracle]} "
                       f"({summary[(s, oracle, 0.0)]['parameters']} parameters): " + _goal_check(summary, s, oracle)
                       + ".")
    return out


def report() -> str:
    import torch

    rows = read_rows()
    write_selection_csv(rows)
    plot(rows)
    summary = test_summary(rows)
    timing = test_summary(rows, "timing")
    seconds = sum(float(r["train_seconds"]) for r in rows if r["train_seconds"])
    n = {st: sum(r["stage"] == st for r in rows) for st in ("select", "test", "timing")}
    lines = [
        "# Irregular time series: continuous models against the standard baselines",
        "",
        "Generated by `python scripts/irregular.py report` from `docs/irregular/runs.csv` (every run: stage,",
        "set, model, configuration, drop rate, seed, parameters, training seconds, accuracy and the",
        "`neuralode-rnn train` command that repeats it), which `python scripts/irregular.py run --workers 2`",
        "fills; `docs/irregular/selection.csv` holds the validation scores of every configuration tried.",
        "Every number below comes from those files.",
        "",
        "## Protocol and budget",
        "",
        f"Data sets: {', '.join(SETS[s][0] for s in SETS)}; sktime's bundled UEA/UCR files (official train/test",
        "split, standardised per channel with training statistics) and MNIST-1D (generated; its first 1000",
        "training samples, all 1000 test samples). Drop rates: "
        + ", ".join(f"{100 * d:g}%" for d in DROPS) + " of each sample's time points removed at random",
        "(`--drop`, the Neural CDE protocol; the rest keep their original times), independently per sample.",
        "",
        "Every model gets the same budget:",
        "",
        f"1. **Selection**: K = {K} configurations per model (listed below), each trained once (seed 0) at",
        f"   {100 * SELECT_DROP:g}% dropped on {100 - 100 * VALIDATION:g}% of the training samples and scored on the other "
        f"{100 * VALIDATION:g}%",
        f"   (`--validation {VALIDATION:g}`: a fixed seeded choice; standardisation and input scales come from the",
        "   samples trained on; the test split is never read). Score: mean validation accuracy of the last",
        "   three epochs (ties: lower validation loss).",
        f"2. **Test**: the chosen configuration, trained on the full training split with seeds "
        f"{', '.join(map(str, SEEDS))} at every",
        "   drop rate, scored on the test split after the last epoch (no early stopping).",
        "",
        f"Shared by all: Adam, lr x 0.1 after 90% of the epochs, gradient norm clipped at {CLIP:g}, float32,",
        "one torch thread per run. Sizes: GRU, LSTM, GRU-dt, GRU-D and ODE-RNN have N = 64; the Neural CDE",
        f"N = {NCDE_HIDDEN} (Kidger et al.'s size for CharacterTrajectories; torchcde, f an MLP with one hidden layer",
        f"of {NCDE_HIDDEN}); each continuous model of this library the largest N whose parameter count, with",
        "its input channels, is at most the GRU's on that set (the N and counts are in the tables).",
        "",
        "| set | epochs | batch | training / test samples |",
        "|---|---|---|---|",
    ]
    from neuralode_rnn.data import load_task

    for label, task, options, epochs, batch in SETS.values():
        data = load_task(task, **options)
        lines.append(f"| {label} | {epochs} | {batch} | {data.train.n_samples} / {data.test.n_samples} |")
    lines += ["", f"Configurations (K = {K} for every model; unlisted settings at their defaults: hold interpolation",
              "and one solver step per sample gap for the continuous models, cubic path for the Neural CDE):", ""]
    for m in MODELS:
        lines.append(f"- {LABELS[m]} (`{m}`): " + "; ".join(f"`{config_id(m, o)}`" for o in SPACES[m]))
    lines += [
        "",
        "Names: `lrA-epsB` learning rate and time scale eps (times fed to the model are eps x t; t_k = k",
        "on the full grid), `tim` = `--inputs time,intensity,mask` (time channel, observations so far per",
        "channel, observation mask), then the solver and interpolation.",
        "",
        f"**Budget spent**: {n['select']} selection runs, {n['test']} test runs and {n['timing']} timing-task runs, "
        f"{seconds / 3600:.2f} hours",
        f"of training in total (sum of the runs' wall times, torch {torch.__version__}, 2 runs at a time on 2 CPU",
        "cores shared with other jobs at `nice -n 10`: read times as ratios between models, not as speeds).",
        "",
        "## Does the best continuous model beat every baseline, and lose at most 3 points to 70% dropped?",
        "",
        "\"Best continuous model\" is chosen on validation, not on the test numbers: per set, the family",
        "among Lipschitz, Antisymmetric, Antisymmetric gated and CTRNN whose chosen configuration has",
        "the best selection score. Means over 3 seeds.",
        "",
        *_goal_lines(rows, summary),
        "",
        "![accuracy against drop rate](irregular/accuracy_vs_drop.png)",
        "",
    ]
    for s in SETS:
        if not any(k[0] == s for k in summary):
            continue
        bc = best_continuous(rows, s)
        lines += [f"## {SETS[s][0]}", "",
                  f"Test accuracy (%), mean ± std over 3 seeds. Command: `python scripts/irregular.py run --sets {s}`",
                  "then `python scripts/irregular.py report`; each run's own command is in `runs.csv`.", "",
                  "| model | configuration (chosen) | N | parameters | " + " | ".join(f"{100 * d:g}% dropped" for d in DROPS)
                  + " | s / run |", "|---" * (5 + len(DROPS)) + "|"]
        for m in MODELS:
            cells = [summary.get((s, m, d)) for d in DROPS]
            first = next((c for c in cells if c), None)
            if first is None:
                continue
            secs = [c["seconds"] for c in cells if c and not math.isnan(c["seconds"])]
            name = LABELS[m] + (" ← chosen continuous" if m == bc else "")
            lines.append(f"| {name} | `{first['config']}` | {first['hidden']} | {first['parameters']} | "
                         + " | ".join(_cell(c) for c in cells) + f" | {sum(secs) / len(secs):.0f} |")
        lines.append("")
    lines += ["## Selection: validation accuracy (%) of every configuration", "",
              f"Mean of the last three epochs, seed 0, {100 * SELECT_DROP:g}% dropped; * = chosen. From "
              "`docs/irregular/selection.csv`.", ""]
    for s in SETS:
        sel = [(m, selection_scores(rows, s, m)) for m in MODELS]
        if not any(sc for _, sc in sel):
            continue
        lines += [f"**{SETS[s][0]}**", "", "| model | " + " | ".join(f"config {i + 1}" for i in range(K)) + " |",
                  "|---" * (K + 1) + "|"]
        for m, sc in sel:
            c = chosen(rows, s, m)
            cid = None if c is None else config_id(m, c)
            cols = []
            for o in SPACES[m]:
                i = config_id(m, o)
                v = sc.get(i, "not run")
                cols.append(v if isinstance(v, str) else "failed" if v is None else
                            f"{100 * v[0]:.1f}{'*' if i == cid else ''} `{i}`")
            lines.append(f"| {LABELS[m]} | " + " | ".join(cols) + " |")
        lines.append("")
    if timing:
        lines += ["## The timing task: the label lives in the timing", "",
                  "`neuralode-rnn train --task timing` (2000 / 1000 samples, 32 observations each, 4 classes: the",
                  "frequency of a sine seen at random phases; the values alone carry no information, chance is",
                  f"25%). Fixed settings, no selection: {TIMING[3]} epochs, batch {TIMING[4]}, lr 0.003, N = 64 (Neural CDE "
                  f"{NCDE_HIDDEN}), 3 seeds.",
                  "Command: `python scripts/irregular.py run --sets --timing` then `report`.", "",
                  "| model | reads the times | configuration | parameters | test accuracy (%) | s / run |",
                  "|---|---|---|---|---|---|"]
        for m in TIMING_MODELS:
            t = timing.get(("timing", m, 0.0))
            if t is None:
                continue
            reads = "no (time-blind)" if m in TIMING_BLIND else \
                "yes (time channel)" if "inputs" in TIMING_MODELS[m] else "yes"
            lines.append(f"| `{m}` | {reads} | `{t['config']}` | {t['parameters']} | {_cell(t)} | {t['seconds']:.0f} |")
        lines.append("")
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines += ["## Failed runs", ""]
        lines += [f"- {r['stage']} {r['set']} / {r['model']} `{r['config']}` drop {r['drop']} seed {r['seed']}: "
                  f"{r['status']}" for r in failed]
        lines.append("")
    lines += ["## Reading the tables", "", *(NOTES or ["(to be written after the study)"]), ""]
    lines += ["## Commands", "",
              "The whole study: `python scripts/irregular.py run --workers 2 && python scripts/irregular.py report`",
              "(resumable; `--sets NAME ...`, `--models NAME ...` and `--timing` restrict it). One test run per model",
              "on the first set, seed 0 (the study adds `--seed 1`, `--seed 2` and the other drop rates):", "", "```"]
    first = next(iter(SETS))
    for m in MODELS:
        r = next((r for r in rows if r["stage"] == "test" and r["set"] == first and r["model"] == m
                  and float(r["drop"]) == SELECT_DROP and r["seed"] == "0"), None)
        if r is not None:
            lines.append(r["command"])
    lines += ["```", ""]
    text = "\n".join(lines)
    DOC.write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="train every missing run (selection first, then the test runs)")
    p.add_argument("--workers", type=int, default=2, help="parallel trainings (default 2: the machine's cores)")
    p.add_argument("--sets", nargs="*", default=list(SETS), choices=list(SETS))
    p.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--timing", action="store_true", help="also the timing task (its own fixed settings)")
    sub.add_parser("report", help="write docs/IRREGULAR.md, selection.csv and the plot from runs.csv")
    sub.add_parser("plan", help="print the configurations, their sizes and the number of runs")
    args = parser.parse_args(argv)
    if args.command == "run":
        if args.workers < 1:
            parser.error(f"--workers must be >= 1; got {args.workers}")
        run(args.workers, args.sets, args.models, args.timing)
    elif args.command == "plan":
        plan()
    else:
        print(report())


if __name__ == "__main__":
    main()
