"""Issue 18 item 5: what a reversible forward costs in accuracy and time when a model is trained
with it.  The Lipschitz RNN on digits and MNIST-1D, each task's preset (``neuralode-rnn list
presets``: eps, lr, epochs, batch; MNIST-1D at fewer epochs, ``EPOCHS``) with the method replaced by midpoint / rk4 (backprop) and
reversible_midpoint / reversible_rk4 (gradient "reversible"), the same seeds, one torch thread, one
run at a time, through the command line (the command is stored with each row).

    python scripts/reversible_training.py run      # every missing run -> docs/gradients/training.csv
    python scripts/reversible_training.py report   # the table of docs/GRADIENTS.md

``run`` goes seed by seed (all cells of seed 0 first: the midpoint pair on both tasks, then the rk4
pair), skips finished rows and resumes a run killed mid-way from its last checkpoint (the run directories are under docs/gradients/runs/, not committed).
Time is the training wall time of the run's timing.csv (epochs with their test evaluation) and the
CPU time of the command (data loading included, less disturbed by other jobs on the shared cores).
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "gradients"
CSV = OUT / "training.csv"
RUNS = OUT / "runs"
TASKS = ("digits", "mnist1d")
# (method, gradient): the plain methods with backprop against their reversible versions with the
# reversible mode
CELLS = (("midpoint", "backprop"), ("reversible_midpoint", "reversible"), ("rk4", "backprop"),
         ("reversible_rk4", "reversible"))
SEEDS = (0, 1, 2)
# the order runs go in: per seed, the midpoint pair on both tasks, then the rk4 pair on both (MNIST-1D's
# shorter budget first)
ORDER = [(seed, task, cell) for seed in SEEDS for pair, tasks in ((CELLS[:2], TASKS), (CELLS[2:], TASKS[::-1]))
         for task in tasks for cell in pair]
# epochs where the budget is below the preset's: MNIST-1D at 10 of its 40 (the shared machine ran about
# 8x slower than unloaded, and a reversible epoch costs 7x a structured-kernel one)
EPOCHS = {"mnist1d": 10}
FIELDS = ["task", "method", "gradient", "seed", "test_accuracy", "train_seconds", "cpu_seconds", "command"]


def rows() -> list[dict]:
    if not CSV.exists():
        return []
    with open(CSV, newline="") as f:
        return list(csv.DictReader(f))


def command(task: str, method: str, gradient: str, seed: int) -> list[str]:
    run_dir = RUNS / f"{task}__{method}__s{seed}"
    return ["neuralode-rnn", "train", "--task", task, "--model", "lipschitz", "--method", method, "--gradient",
            gradient, "--seed", str(seed), *(["--epochs", str(EPOCHS[task])] if task in EPOCHS else []), "--threads", "1",
            "--quiet", "--run-dir", str(run_dir.relative_to(ROOT))]


def run_one(task: str, method: str, gradient: str, seed: int) -> dict:
    """Train one run (or collect it, when its directory says it finished: CPU time then unknown)."""
    cmd = command(task, method, gradient, seed)
    run_dir = ROOT / cmd[-1]
    status = run_dir / "status.txt"
    cpu: float | str = ""
    if not (status.exists() and status.read_text().startswith("finished")):
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        if (run_dir / "last.pt").exists():
            args = ["train", "--resume", cmd[-1]]
        else:  # a directory a run was killed in before its first checkpoint starts again
            args = [*cmd[1:], *(["--fresh"] if run_dir.exists() else [])]
        subprocess.run([sys.executable, "-m", "neuralode_rnn.cli", *args], cwd=ROOT, env=env, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1)
    with open(run_dir / "metrics.csv", newline="") as f:
        last = list(csv.DictReader(f))[-1]
    with open(run_dir / "timing.csv", newline="") as f:
        wall = float(list(csv.DictReader(f))[-1]["wall_seconds"])
    return {"task": task, "method": method, "gradient": gradient, "seed": seed,
            "test_accuracy": float(last["test_accuracy"]), "train_seconds": round(wall, 1),
            "cpu_seconds": cpu, "command": " ".join(cmd)}


def run() -> None:
    done = {(r["task"], r["method"], r["seed"]) for r in rows()}
    for seed, task, (method, gradient) in ORDER:
        if (task, method, str(seed)) in done:
            continue
        row = run_one(task, method, gradient, seed)
        new = not CSV.exists()
        OUT.mkdir(parents=True, exist_ok=True)
        with open(CSV, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=FIELDS, lineterminator="\n")
            if new:
                w.writeheader()
            w.writerow(row)
        print(row, flush=True)


def report() -> str:
    table = rows()
    seeds_of = {}
    for r in table:
        seeds_of.setdefault((r["task"], r["method"]), []).append(r)
    lines = ["| task | method (gradient) | seeds | test % (mean ± sd) | train s (mean) | cpu s (mean) | "
             "vs the plain method, same seeds: points | time ratio |", "|---|---|---|---|---|---|---|---|"]
    for task in TASKS:
        for method, gradient in CELLS:
            rs = seeds_of.get((task, method), [])
            if not rs:
                lines.append(f"| {task} | {method} ({gradient}) | none yet | | | | | |")
                continue
            acc = [100 * float(r["test_accuracy"]) for r in rs]
            sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
            wall = statistics.mean(float(r["train_seconds"]) for r in rs)
            cpus = [float(r["cpu_seconds"]) for r in rs if r["cpu_seconds"]]
            cpu = f"{statistics.mean(cpus):.0f}" if cpus else "?"
            cmp_, ratio = "", ""
            if method.startswith("reversible_"):
                base = {r["seed"]: r for r in seeds_of.get((task, method.removeprefix("reversible_")), [])}
                pairs = [(r, base[r["seed"]]) for r in rs if r["seed"] in base]
                if pairs:
                    diff = statistics.mean(100 * (float(r["test_accuracy"]) - float(b["test_accuracy"]))
                                           for r, b in pairs)
                    cmp_ = f"{diff:+.1f} ({len(pairs)} seeds)"
                    ratio = f"{statistics.mean(float(r['train_seconds']) / float(b['train_seconds']) for r, b in pairs):.1f}x"
            seeds = ", ".join(sorted(r["seed"] for r in rs))
            lines.append(f"| {task} | {method} ({gradient}) | {seeds} | {statistics.mean(acc):.1f} ± {sd:.1f} | "
                         f"{wall:.0f} | {cpu} | {cmp_} | {ratio} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=("run", "report"))
    if ap.parse_args().command == "run":
        run()
    else:
        print(report())


if __name__ == "__main__":
    main()
