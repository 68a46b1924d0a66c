"""The presets study behind docs/PRESETS.md: ``neuralode-rnn train`` with nothing but ``--task``
and ``--model`` (each setting from ``neuralode_rnn.data.presets``), against the best documented
configuration of the same model on the same task, same seeds.

    python scripts/presets.py run [--seeds 0,1,2] [--cells digits/lipschitz,...]   # docs/presets/runs.csv
    python scripts/presets.py report                                               # docs/PRESETS.md

``run`` trains each cell not yet in docs/presets/runs.csv with the command line a user would type
(plus ``--seed``, ``--threads 1``, ``--quiet`` and a run directory under docs/presets/runs/, not
committed), one at a time, and appends one row per finished run: a killed sweep continues where
it stopped.  Seeds go outermost (seed 0 of every cell first).  ``report`` reads that file and the
documented runs (docs/results/results.csv, docs/irregular/runs.csv) and writes the page; every
number on it comes from those files.

Small functions (cells, command, one run, one row, the documented best, the table) so that a
shared study harness can take them over.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "presets"
CSV = OUT / "runs.csv"
DOCUMENTED_CSV = OUT / "documented.csv"
PAGE = ROOT / "docs" / "PRESETS.md"
RESULTS_CSV = ROOT / "docs" / "results" / "results.csv"
IRREGULAR_CSV = ROOT / "docs" / "irregular" / "runs.csv"

# cell task key -> (label, CLI task arguments, RESULTS.md task key, IRREGULAR.md set or None)
TASKS = {
    "digits": ("digits (64 steps)", ["--task", "digits"], "digits", None),
    "digits-permuted": ("permuted digits", ["--task", "digits", "--permute"], "digits-permuted", None),
    "mnist1d": ("MNIST-1D (40 steps)", ["--task", "mnist1d"], "mnist1d", None),
    "japanesevowels": ("JapaneseVowels", ["--task", "uea:JapaneseVowels"], "vowels", "JapaneseVowels"),
}
MODELS = ("lipschitz", "antisymmetric", "gru", "lstm")
# model -> the model keys of docs/results/results.csv that are the same model (its variants)
RESULTS_MODELS = {"lipschitz": ("lipschitz-euler", "lipschitz-midpoint"), "antisymmetric": ("antisymmetric",),
                  "gru": ("gru",), "lstm": ("lstm",)}
FIELDS = ("task", "model", "seed", "method", "eps", "recipe", "lr", "epochs", "batch_size", "hidden_size", "source",
          "test_accuracy", "train_seconds", "status", "command", "finished", "cpu_seconds")
MARGIN = 2.0  # points: the goal of issue 17


def cells(selected: str | None = None) -> list[tuple[str, str]]:
    """(task key, model) pairs in table order; ``selected`` "digits/lipschitz,mnist1d/gru" narrows them."""
    every = [(t, m) for t in TASKS for m in MODELS]
    if not selected:
        return every
    wanted = [tuple(s.split("/")) for s in selected.split(",")]
    unknown = [w for w in wanted if w not in every]
    if unknown:
        raise SystemExit(f"unknown cells {unknown}; expected task/model with task in {list(TASKS)}, model in {MODELS}")
    return [c for c in every if c in wanted]


def command(task: str, model: str, seed: int, run_dir: Path | None = None) -> list[str]:
    """The ``neuralode-rnn train`` arguments of one run: the task and the model, nothing else that
    changes what is trained (seed, threads, quiet and the run directory do not)."""
    args = ["train", *TASKS[task][1], "--model", model, "--seed", str(seed), "--threads", "1", "--quiet"]
    return args + (["--run-dir", str(run_dir), "--fresh"] if run_dir is not None else [])


def read_rows(path: Path = CSV) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_row(row: dict, path: Path = CSV) -> None:
    """Append one finished run to ``path`` (header written when the file is new; a file written
    with fewer columns is rewritten with the new ones empty first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    if not new:
        with open(path, newline="") as f:
            header = next(csv.reader(f), [])
        if tuple(header) != FIELDS:
            old = read_rows(path)
            with open(path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=FIELDS)
                w.writeheader()
                w.writerows({k: r.get(k, "") for k in FIELDS} for r in old)
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            w.writeheader()
        w.writerow({k: row.get(k, "") for k in FIELDS})


def run_one(task: str, model: str, seed: int, documented_args: list[str] | None = None) -> dict:
    """Train one cell through the command line and return its row (test accuracy of the last
    epoch, training wall time from the run's timing.csv, the settings and their preset source).
    With ``documented_args``: the best documented configuration's command instead (a rerun on
    this machine, for the time comparison)."""
    run_dir = OUT / "runs" / f"{task}__{model}__s{seed}" if documented_args is None else \
        OUT / "runs" / f"documented__{task}__{model}__s{seed}"
    if documented_args is None:
        args = command(task, model, seed, run_dir)
    else:
        args = ["train", *documented_args, "--seed", str(seed), "--threads", "1", "--quiet", "--run-dir", str(run_dir),
                "--fresh"]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-m", "neuralode_rnn.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU time of the whole process (imports and data loading included, the same for every run):
    # unlike wall time, it does not grow when other jobs share the cores
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    shown = "neuralode-rnn " + " ".join(a for a in args if a not in ("--quiet", "--fresh")).replace(str(ROOT) + os.sep, "")
    row = {"task": task, "model": model, "seed": seed, "command": shown,
           "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    if proc.returncode != 0:
        return dict(row, status=f"failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    config = json.loads((run_dir / "config.json").read_text())
    with open(run_dir / "metrics.csv", newline="") as f:
        last = list(csv.DictReader(f))[-1]
    with open(run_dir / "timing.csv", newline="") as f:
        seconds = float(list(csv.DictReader(f))[-1]["wall_seconds"])
    sources = config.get("sources", {})
    source = sorted({s.removeprefix("preset:") for s in sources.values() if s.startswith("preset:")})
    return dict(row, **{k: config.get(k) for k in ("method", "eps", "recipe", "lr", "epochs", "batch_size",
                                                      "hidden_size")},
                source="; ".join(source), test_accuracy=float(last["test_accuracy"]), train_seconds=seconds,
                cpu_seconds=round(cpu, 2), status="ok")


def run(seeds: list[int], selected: str | None, rerun_documented: bool = False) -> None:
    """Train the missing (cell, seed) runs; with ``rerun_documented`` the best documented
    configuration of each cell instead, into docs/presets/documented.csv."""
    path = DOCUMENTED_CSV if rerun_documented else CSV
    done = {(r["task"], r["model"], int(r["seed"])) for r in read_rows(path) if r["status"] == "ok"}
    for seed in seeds:
        for task, model in cells(selected):
            if (task, model, seed) in done:
                continue
            row = run_one(task, model, seed, best_documented(task, model)[1]["args"] if rerun_documented else None)
            append_row(row, path)
            print(f"{task}/{model} seed {seed}: {row.get('test_accuracy', '')} {row.get('train_seconds', '')}s "
                  f"{row['status']}", flush=True)


# ------------------------------------------------------------------------------ the documented best
def documented(task: str, model: str) -> dict[str, dict]:
    """Documented configurations of ``model`` on ``task``: name -> {"seeds": {seed: (test accuracy
    %, train seconds)}, "args": the ``train`` arguments of seed 0 without seed and run directory},
    from docs/results/results.csv and (JapaneseVowels) docs/irregular/runs.csv."""
    _, task_args, results_task, irregular_set = TASKS[task]
    configs: dict[str, dict] = {}
    for r in read_rows(RESULTS_CSV):
        if r["task"] == results_task and r["model"] in RESULTS_MODELS[model] and r["status"] == "ok":
            name = f"RESULTS.md {r['model']}" + (f" eps {float(r['eps']):g}" if r["eps"] else "")
            epochs, batch = r["epochs"], {"digits": 64, "digits-permuted": 64, "mnist1d": 128, "vowels": 32}[results_task]
            args = [*task_args, "--model", r["model_name"], "--hidden-size", "64", "--lr", "0.003", "--epochs", epochs,
                    "--batch-size", str(batch)]
            if r["eps"]:
                args += ["--method", r["method"], "--eps", f"{float(r['eps']):g}"]
            c = configs.setdefault(name, {"seeds": {}, "args": args})
            c["seeds"][int(r["seed"])] = (100 * float(r["test_accuracy"]), float(r["train_seconds"]))
    if irregular_set:
        for r in read_rows(IRREGULAR_CSV):
            if (r["set"] == irregular_set and r["model"] == model and r["stage"] == "test"
                    and float(r["drop"]) == 0 and r["status"] == "ok"):
                name = f"IRREGULAR.md {r['model']} {r['config']} (N {r['hidden_size']})"
                words = r["command"].split()[2:]  # after "neuralode-rnn train"
                args = [w for i, w in enumerate(words) if w not in ("--seed", "--threads", "--run-dir")
                        and (i == 0 or words[i - 1] not in ("--seed", "--threads", "--run-dir"))]
                c = configs.setdefault(name, {"seeds": {}, "args": args})
                c["seeds"][int(r["seed"])] = (100 * float(r["accuracy"]), float(r["train_seconds"]))
    return configs


def best_documented(task: str, model: str) -> tuple[str, dict]:
    """The documented configuration with the highest mean test accuracy over its seeds."""
    configs = documented(task, model)
    name = max(configs, key=lambda k: statistics.mean(a for a, _ in configs[k]["seeds"].values()))
    return name, configs[name]


# ------------------------------------------------------------------------------ report
def _mean(xs: list[float]) -> str:
    if not xs:
        return "-"
    return f"{statistics.mean(xs):.1f}" + (f" ± {statistics.stdev(xs):.1f}" if len(xs) > 1 else "")


def table_rows() -> list[list[str]]:
    """One row per cell: the preset's runs against the best documented configuration on the same
    seeds; times from the reruns of that configuration on this machine (documented.csv) where
    they exist, else the documented times (marked *, measured under another load)."""
    rows = [r for r in read_rows() if r["status"] == "ok"]
    reruns = [r for r in read_rows(DOCUMENTED_CSV) if r["status"] == "ok"]
    out = []
    for task, model in cells():
        mine = {int(r["seed"]): r for r in rows if r["task"] == task and r["model"] == model}
        again = {int(r["seed"]): r for r in reruns if r["task"] == task and r["model"] == model}
        name, best = best_documented(task, model)
        seeds = sorted(set(mine) & set(best["seeds"]))
        preset_acc = [100 * float(mine[s]["test_accuracy"]) for s in seeds]
        best_acc = [best["seeds"][s][0] for s in seeds]
        preset_sec = [float(mine[s]["train_seconds"]) for s in seeds]
        timed = [s for s in seeds if s in again]
        cpu = [s for s in timed if mine[s].get("cpu_seconds") and again[s].get("cpu_seconds")]
        if cpu:  # process CPU seconds, both sides measured here: robust to the load
            best_sec, star = [float(again[s]["cpu_seconds"]) for s in cpu], " cpu"
            preset_timed = [float(mine[s]["cpu_seconds"]) for s in cpu]
        elif timed:  # wall seconds of both, measured here (noisy under load)
            best_sec, star = [float(again[s]["train_seconds"]) for s in timed], ""
            preset_timed = [float(mine[s]["train_seconds"]) for s in timed]
        else:
            best_sec, star, preset_timed = [best["seeds"][s][1] for s in seeds], "*", preset_sec
        rerun_acc = [100 * float(again[s]["test_accuracy"]) for s in timed]
        if seeds:
            gap = statistics.mean(best_acc) - statistics.mean(preset_acc)
            slower = statistics.mean(preset_timed) > statistics.mean(best_sec)
            verdict = ("yes" if gap <= MARGIN else "no") + (", slower" + star if slower else ", not slower" + star)
        else:
            gap, verdict = None, "not run"
        r0 = mine[seeds[0]] if seeds else {}
        setting = ""
        if r0:
            setting = (f"{r0['method']} eps {float(r0['eps']):g}, " if r0.get("eps") else "") + \
                f"lr {float(r0['lr']):g}, {r0['epochs']} ep, batch {r0['batch_size']}"
        rerun_gap = "-"
        if timed:
            rerun_gap = f"{statistics.mean(rerun_acc) - statistics.mean(100 * float(mine[s]['test_accuracy']) for s in timed):+.1f}"
        out.append([TASKS[task][0], model, setting, ", ".join(map(str, seeds)) or "-", _mean(preset_acc),
                    name, _mean(best_acc), "-" if gap is None else f"{gap:+.1f}",
                    f"{_mean(rerun_acc)} ({', '.join(map(str, timed))}; gap {rerun_gap})" if timed else "-",
                    _mean(preset_timed) + star, _mean(best_sec) + star, verdict])
    return out


def report() -> None:
    head = ["task", "model", "preset (from `list presets`)", "seeds", "preset test %", "best documented",
            "documented test %, same seeds", "gap (points)", "rerun of it here, test % (seeds; gap to the preset on them)", "preset s", "documented s",
            f"within {MARGIN:g}?"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows()]
    text = PAGE.read_text() if PAGE.exists() else ""
    start, end = "<!-- table: scripts/presets.py report -->", "<!-- end table -->"
    table = start + "\n" + "\n".join(lines) + "\n" + end
    if start in text and end in text:
        text = text[:text.index(start)] + table + text[text.index(end) + len(end):]
    else:
        text = text + "\n" + table + "\n"
    PAGE.write_text(text)
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    r.add_argument("--cells", help="task/model,... (default all 16)")
    r.add_argument("--documented", action="store_true",
                   help="rerun the best documented configuration of each cell (docs/presets/documented.csv)")
    sub.add_parser("report")
    args = p.parse_args(argv)
    if args.cmd == "run":
        run([int(s) for s in args.seeds.split(",")], args.cells, args.documented)
    else:
        report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
