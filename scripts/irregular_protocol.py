"""The irregular study under the references' training protocol (issue 19 item 4): docs/IRREGULAR.md's
first part, from docs/irregular/protocol.csv.

    python scripts/irregular_protocol.py plan      # the runs in their order, nothing run
    python scripts/irregular_protocol.py run       # one run at a time: docs/irregular/protocol.csv
    python scripts/irregular_protocol.py run-reference [--sets S,...] [--seed N]   # the second pass
    python scripts/irregular_protocol.py report    # docs/IRREGULAR.md (with the earlier study after it)

The second pass (``REFERENCE_PASS``, docs/irregular/reference.csv) repeats the first pass's runs under
the reference's own loop: metrics read every 10 epochs, the lr cut after two readings without a
better validation accuracy, the run stopped more than 50 epochs after its training loss or accuracy
last improved (``--stop-on training``), at most 1000 epochs.  The first pass's 15-epoch patience on
the validation accuracy stopped models that were still fitting their training data.

Protocol (every model the same; Kidger et al.'s ``experiments/common.py`` with a smaller patience):
25% of the training samples held out for validation (``VALIDATION``, a fixed seeded choice,
standardised with the other 75%'s statistics); Adam, gradient norm clipped at 1, lr x 0.1 after
``PLATEAU_PATIENCE`` epochs without a better validation accuracy (``schedule="plateau"``); the run
stops after ``PATIENCE`` epochs without one (at most ``EPOCH_CAP``), restores the weights of its best
validation epoch and scores them once on the test split (summary.json).  Of the epochs with the
best validation accuracy the one with the lowest validation loss is kept (``TIE_BREAK``,
``--tie-break loss``; early stopping still reads the accuracy): a first pass with the reference's
rule, the first such epoch (docs/irregular/protocol_strict.csv), kept BasicMotions weights at a
median 73% training accuracy, its 10 validation samples saturating at once; a second, whose early
stopping also counted lower losses, ran a BasicMotions run to the epoch cap (a separated
validation set's loss keeps falling) and was dropped.  With PATIENCE = 3 x PLATEAU_PATIENCE a run that stops has had at least two
learning-rate cuts (lr / 100) since its last better epoch.

Two kinds of missingness: whole time steps (``--drop``, the Neural CDE protocol: the same share of
each sample's steps removed) and single values (``--drop-channels``: each (sample, step, channel)
value missing with that probability), the second only on the multichannel sets (on one channel the
two are the same kind); 0% dropped is shared by both.

What is cut (compute: two shared cores; the 198 runs took 1.5 hours of training, one at a time, over two sessions).  One seed.  No new selection: each
model runs the configuration chosen on validation in the earlier study (docs/irregular/runs.csv,
``irregular.chosen``), the Neural CDE its reference defaults with that study's learning rate; on
the univariate sets only the continuous family chosen on validation there
(``irregular.best_continuous``) runs; on the multichannel sets the other three families run after the
baselines, and once they all have, the family is chosen on this protocol's validation (``chosen_continuous``).
Runs go in the order of ``plan_jobs``: the multichannel sets first and whole, each with the
continuous model and GRU-D (the strongest baseline of the earlier study) first, so a study cut
short still decides the counts where it can, then the other continuous families there; then the
other sets of ``SET_ORDER``.

``run`` skips rows already in protocol.csv; a killed run resumes from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts import harness, irregular  # noqa: E402 - after the repo root is on the path


def strict_csv_path() -> Path:
    """The first pass, with ties of the validation accuracy not broken (kept as the reason for ``TIE_BREAK``)."""
    return irregular.OUT / "protocol_strict.csv"


VALIDATION = 0.25
SEED = 0
PATIENCE = 15
PLATEAU_PATIENCE = 5
EPOCH_CAP = 200
TIE_BREAK = "loss"


@dataclass(frozen=True)
class Pass:
    """One pass of the study: its stopping rule and schedule, and where its rows and runs go."""

    name: str
    patience: int
    plateau_patience: int
    validate_every: int
    stop_on: str
    epoch_cap: int
    seed: int = SEED
    table: str = ""
    """The stem of the pass's csv in docs/irregular/ when it differs from ``name`` (the run directories')."""

    def csv(self) -> Path:
        return irregular.OUT / f"{self.table or self.name}.csv"

    def run_dirs(self) -> Path:
        return irregular.RUN_DIRS / self.name


FIRST_PASS = Pass("protocol", PATIENCE, PLATEAU_PATIENCE, 1, "validation", EPOCH_CAP)
"""The first pass (protocol.csv): validation accuracy read every epoch, a patience of 15 on it."""
REFERENCE_PASS = Pass("reference", 50, 1, 10, "training", 1000)
"""The reference's loop (experiments/common.py): metrics read every 10 epochs, lr x 0.1 after two
readings without a better validation accuracy, stop more than 50 epochs after the last better
training loss or accuracy, at most 1000 epochs (reference.csv)."""
RATES = (0.3, 0.5, 0.7)
MULTICHANNEL = ("JapaneseVowels", "BasicMotions")
SET_ORDER = ("JapaneseVowels", "BasicMotions", "GunPoint", "ItalyPowerDemand", "mnist1d")
FIRST = ("continuous", "gru-d")  # decide the counts first
LATER = ("gru", "gru-dt", "ode-rnn", "ncde")
BASELINES = irregular.BASELINES
TEST_SAMPLES = {"JapaneseVowels": 370, "BasicMotions": 40, "GunPoint": 150, "ItalyPowerDemand": 1029, "mnist1d": 1000}
"""Test samples per set (the earlier study's table), for the size of one sample in points."""
TRAIN_SAMPLES = {"JapaneseVowels": 270, "BasicMotions": 40, "GunPoint": 50, "ItalyPowerDemand": 67, "mnist1d": 1000}
"""Training samples per set before the validation split (the optimiser steps per epoch follow)."""


def steps_per_epoch(set_key: str) -> int:
    """Optimiser steps per epoch on ``set_key``: the samples left after the validation split, in batches."""
    n = TRAIN_SAMPLES[set_key]
    return math.ceil((n - round(VALIDATION * n)) / irregular.SETS[set_key][4])
KINDS = {"steps": "whole steps dropped (--drop)", "channels": "values dropped per channel (--drop-channels)"}

FIELDS = ("set", "model", "config", "kind", "rate", "seed", "options", "hidden_size", "parameters", "epochs_cap",
          "epochs_run", "best_epoch", "early_stopped", "train_accuracy_best", "train_accuracy_last",
          "validation_accuracy", "test_accuracy", "train_seconds", "status", "command")


def earlier_rows() -> list[dict]:
    return irregular.read_rows()


def study_sets() -> list[str]:
    """The sets of ``SET_ORDER`` that the earlier study has (in that order)."""
    return [s for s in SET_ORDER if s in irregular.SETS]


def continuous_model(earlier: list[dict], set_key: str) -> str:
    """This library's continuous family chosen on validation for ``set_key`` in the earlier study."""
    m = irregular.best_continuous(earlier, set_key)
    if m is None:
        raise LookupError(f"the earlier study has no complete selection on {set_key}")
    return m


def families(earlier: list[dict], set_key: str) -> list[str]:
    """This library's continuous families run on ``set_key``: the earlier choice first, then (multichannel
    sets only, the last runs of the plan) the other families of ``irregular.CONTINUOUS``."""
    first = continuous_model(earlier, set_key)
    others = [m for m in irregular.CONTINUOUS if m != first] if set_key in MULTICHANNEL else []
    return [first, *others]


def chosen_continuous(c: dict, earlier: list[dict], set_key: str, kind: str) -> tuple[str, str]:
    """(family, how it was chosen) for one set and kind of missingness: when every family of ``families``
    has every rate of that kind, the one with the best mean validation accuracy over them (ties: the
    earlier order), "this protocol's validation"; until then the earlier study's validation choice."""
    fams = families(earlier, set_key)
    rates = (0.0, *RATES)
    if len(fams) > 1 and all((set_key, m, kind, r) in c for m in fams for r in rates):
        score = {m: sum(float(c[(set_key, m, kind, r)]["validation_accuracy"]) for r in rates) for m in fams}
        return max(fams, key=lambda m: (score[m], -fams.index(m))), "this protocol's validation"
    return fams[0], "the earlier study's validation"


def options_for(earlier: list[dict], set_key: str, model: str) -> dict:
    """The configuration of ``model`` on ``set_key``: the earlier study's choice on validation; for the
    Neural CDE only its learning rate (the rest: the reference defaults of ``ncde``)."""
    best = irregular.chosen(earlier, set_key, model)
    if best is None:
        raise LookupError(f"the earlier study has no complete selection of {model} on {set_key}")
    return {"lr": best["lr"]} if model == "ncde" else dict(best)


def conditions(set_key: str) -> list[tuple[str, float]]:
    """(kind, rate) of a set: 0% once, then whole steps and, on a multichannel set, values per channel."""
    out = [("steps", 0.0)] + [("steps", r) for r in RATES]
    if set_key in MULTICHANNEL:
        out += [("channels", r) for r in RATES]
    return out


def plan_jobs(earlier: list[dict]) -> list[tuple]:
    """Every job (set, model, options, kind, rate) in the order they run: on the multichannel sets
    ``FIRST`` models then ``LATER`` ones but the Neural CDE, then its runs there, then their other
    continuous families; then the ``FIRST`` models of the other sets, then their ``LATER`` ones."""
    ready = [s for s in study_sets() if irregular.best_continuous(earlier, s) is not None]  # the earlier choice made
    rest = [s for s in ready if s not in MULTICHANNEL]
    multi = [s for s in MULTICHANNEL if s in ready]
    quick = tuple(m for m in LATER if m != "ncde")  # the Neural CDE, the costliest, after the others
    order = ([(s, FIRST + quick) for s in multi] + [(s, ("ncde",)) for s in multi]
             + [(s, tuple(families(earlier, s)[1:])) for s in multi]
             + [(s, FIRST) for s in rest] + [(s, LATER) for s in rest])
    jobs = []
    for s, group in order:
        for m in group:
            model = continuous_model(earlier, s) if m == "continuous" else m
            o = options_for(earlier, s, model)
            jobs += [(s, model, o, kind, rate) for kind, rate in conditions(s)]
    return jobs


def config_id(model: str, options: dict) -> str:
    return irregular.config_id(model, options)


def make_config(job: tuple, p: Pass = FIRST_PASS):
    from neuralode_rnn.training import TrainConfig
    from neuralode_rnn.zoo import model_spec

    set_key, model, options, kind, rate = job
    _, task, task_options, _, batch = irregular.SETS[set_key]
    options = dict(options)
    hidden = irregular.hidden_for(model, set_key, options)
    if model_spec(model).kind == "continuous":
        options.setdefault("recipe", "fixed")  # the configuration's own solver, as in the earlier study
    drops = {"drop": rate} if kind == "steps" else {"drop_channels": rate}
    name = f"{set_key}__{model}__{config_id(model, options)}__{kind}{rate:g}__s{p.seed}"
    return TrainConfig(task=task, task_options=dict(task_options), model=model, hidden_size=hidden,
                       epochs=p.epoch_cap, batch_size=batch, seed=p.seed, clip=irregular.CLIP, validation=VALIDATION,
                       patience=p.patience, schedule="plateau", plateau_patience=p.plateau_patience,
                       validate_every=p.validate_every, stop_on=p.stop_on, tie_break=TIE_BREAK,
                       run_dir=str(p.run_dirs() / name), quiet=True, threads=1, **drops, **options)


def key(set_key: str, model: str, cid: str, kind: str, rate) -> tuple:
    return set_key, model, cid, kind, round(float(rate), 3)


def job_key(job: tuple) -> tuple:
    set_key, model, options, kind, rate = job
    return key(set_key, model, config_id(model, options), kind, rate)


def run_one(job: tuple, p: Pass = FIRST_PASS) -> dict:
    """Train one run of the pass ``p`` (resuming a killed one) and return its row."""
    import torch

    from neuralode_rnn.training import RunDir, default_callbacks, train

    torch.set_num_threads(1)
    set_key, model, options, kind, rate = job
    config = make_config(job, p)
    rd = RunDir(config.run_dir)
    if rd.config_path.exists():
        config.resume = True
    row = {"set": set_key, "model": model, "config": config_id(model, options), "kind": kind, "rate": rate,
           "seed": p.seed, "options": json.dumps(options, sort_keys=True), "hidden_size": config.hidden_size,
           "epochs_cap": p.epoch_cap, "command": harness.train_command(config)}
    try:
        result = train(config, callbacks=default_callbacks(config, curves=False))
        rows, summary = result.rows, result.summary
        row.update(parameters=result.parameters, status="ok")
    except Exception as exc:  # noqa: BLE001 - a diverged or failed run is recorded, the study goes on
        rows, summary = (rd.read_rows() if rd.metrics_path.exists() else []), None
        row.update(status=f"error: {type(exc).__name__}: {' '.join(str(exc).split())}"[:300])
    if rows:
        row.update(epochs_run=len(rows), train_accuracy_last=rows[-1]["train_accuracy"],
                   train_seconds=rows[-1]["wall_seconds"])
    if summary is not None:
        best = rows[summary["best_epoch"] - 1]
        row.update(best_epoch=summary["best_epoch"], early_stopped=int(bool(summary["early_stopped"])),
                   epochs_run=summary["epochs_run"], train_accuracy_best=best["train_accuracy"],
                   validation_accuracy=summary["validation_accuracy"], test_accuracy=summary["test_accuracy"])
    return row


def run() -> None:
    """Train every missing run of the first pass, one at a time (protocol.csv)."""
    earlier = earlier_rows()
    run_pass(FIRST_PASS, lambda rows: plan_jobs(earlier))


def plan() -> str:
    earlier = earlier_rows()
    lines = [f"{'set':<18}{'model':<22}{'config':<34}{'kind':<10}rate"]
    for s, m, o, kind, rate in plan_jobs(earlier):
        lines.append(f"{s:<18}{m:<22}{config_id(m, o):<34}{kind:<10}{rate:g}")
    lines.append(f"{len(lines) - 1} runs")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- report
def _pct(v) -> float:
    return 100 * float(v)


def cells(rows: list[dict]) -> dict[tuple[str, str, str, float], dict]:
    """(set, model, kind, rate) -> its row (status ok only); 0% rows count for both kinds."""
    out = {}
    for r in rows:
        if r["status"] != "ok" or r["test_accuracy"] == "":
            continue
        rate = round(float(r["rate"]), 3)
        kinds = KINDS if rate == 0.0 else (r["kind"],)
        for k in kinds:
            out[(r["set"], r["model"], k, rate)] = r
    return out


def verdict(c: dict, earlier: list[dict], set_key: str, kind: str) -> dict | None:
    """The two goals on one set and kind, None while a run they need is missing: ``beats`` (the
    continuous model at least as accurate as every baseline at every rate), its shortfalls, and
    ``loss`` (test points lost from 0% to 70%)."""
    cont, how = chosen_continuous(c, earlier, set_key, kind)
    return verdict_for(c, set_key, kind, cont, how)


def goal_counts(results: dict) -> tuple[dict, int, int]:
    """(the judged sets' verdicts, how many beat every baseline at every rate, how many lose at most 3
    points from 0% to 70%) of {set: verdict or None}."""
    judged = {s: v for s, v in results.items() if v is not None}
    return judged, sum(v["beats"] for v in judged.values()), sum(v["loss"] <= 3 for v in judged.values())


def verdict_for(c: dict, set_key: str, kind: str, cont: str, how: str) -> dict | None:
    """:func:`verdict` for the continuous model ``cont`` (chosen on ``how``)."""
    rates = (0.0, *RATES)
    need = [(set_key, m, kind, r) for m in (cont, *BASELINES) for r in rates]
    if any(n not in c for n in need):
        return None
    acc = {(m, r): _pct(c[(set_key, m, kind, r)]["test_accuracy"]) for m in (cont, *BASELINES) for r in rates}
    short = []
    for r in rates:
        best = max(BASELINES, key=lambda b: acc[(b, r)])
        if acc[(best, r)] > acc[(cont, r)]:
            short.append(f"{r:.0%}: {irregular.LABELS[best]} {acc[(best, r)]:.1f} vs {acc[(cont, r)]:.1f}")
    return {"model": cont, "how": how, "beats": not short, "short": short,
            "loss": acc[(cont, 0.0)] - acc[(cont, 0.7)]}


def goal_lines(label: str, sets: list[str], results: dict, notes: dict | None = None) -> list[str]:
    """The two goal counts of one kind of missingness and a line per set, from {set: verdict or None};
    ``notes`` adds a remark to a set's line."""
    judged, beats, steady = goal_counts(results)
    lines = [f"- **{label}**: sets with every run done {len(judged)} of {len(sets)}; the continuous model "
             f"chosen on validation is at least as accurate as every baseline at every rate on **{beats} of "
             f"{len(judged)}**, and loses at most 3 points from 0% to 70% on **{steady} of {len(judged)}**."]
    for s in sets:
        v = results[s]
        name = irregular.SETS[s][0]
        if v is None:
            lines.append(f"  - {name}: not judged (runs missing)")
            continue
        lines.append(f"  - {name}: {irregular.LABELS[v['model']]} (chosen on {v['how']}): at least as accurate as every "
                     f"baseline: **{'yes' if v['beats'] else 'no'}**" + (f" ({'; '.join(v['short'])})" if v["short"] else "")
                     + f"; loss from 0% to 70%: {v['loss']:.1f} points (**{'yes' if v['loss'] <= 3 else 'no'}**)"
                     + (f". {notes[s]}" if notes and notes.get(s) else ""))
    return lines


def unfitted_baselines(rows: list[dict], set_key: str, kind: str, seeds: tuple[int, ...] = (SEED,)) -> str:
    """A remark naming the baseline runs of one set and kind (of ``seeds``, 0% included) that ended below
    ``UNDERFIT`` training accuracy: a verdict against them compares with models that did not fit."""
    bad = [r for r in rows if r["set"] == set_key and r["model"] in BASELINES and r["status"] == "ok"
           and int(r["seed"]) in seeds and (r["kind"] == kind or float(r["rate"]) == 0.0)
           and r["train_accuracy_last"] != "" and float(r["train_accuracy_last"]) < UNDERFIT]
    if not bad:
        return ""
    return (f"Caveat: {len(bad)} baseline run(s) here ended below {UNDERFIT:.0%} training accuracy ("
            + ", ".join(f"{irregular.LABELS[r['model']]} {float(r['rate']):.0%}"
                        + (f" seed {r['seed']}" if len(seeds) > 1 else "") + f" {_pct(r['train_accuracy_last']):.0f}%"
                        for r in bad) + ")")


def strict_note() -> str:
    """What the first pass (ties not broken) kept on BasicMotions, from protocol_strict.csv."""
    rows = [r for r in harness.read_rows(strict_csv_path()) if r["status"] == "ok" and r["set"] == "BasicMotions"]
    if not rows:
        return ""
    fit = [_pct(r["train_accuracy_best"]) for r in rows]
    best = [int(r["best_epoch"]) for r in rows]
    return (f"A first pass with the strict rule (`docs/irregular/protocol_strict.csv`, stopped when this was seen) "
            f"kept, in its {len(rows)} BasicMotions runs, the weights of epochs {min(best)}-{max(best)} at "
            f"{min(fit):.0f}-{max(fit):.0f}% training accuracy (median {sorted(fit)[len(fit) // 2]:.0f}%; the "
            f"runs' last epochs: lowest {min(_pct(r['train_accuracy_last']) for r in rows):.0f}%).")


def report_section() -> list[str]:
    """The protocol study as markdown lines (the first part of docs/IRREGULAR.md)."""
    rows = harness.read_rows(FIRST_PASS.csv())
    earlier = earlier_rows()
    planned = plan_jobs(earlier)
    c = cells(rows)
    lines = ["## First pass: the references' protocol with a shorter stopping rule (issue 19)", "",
             "Generated by `python scripts/irregular_protocol.py report` from `docs/irregular/protocol.csv`, which",
             "`python scripts/irregular_protocol.py run` fills (one run at a time, resumable; each row holds the",
             "`neuralode-rnn train` command that repeats it). Every number in this section comes from that file.", "",
             f"Protocol: {VALIDATION:.0%} of the training samples held out for validation; Adam, gradient norm clipped "
             f"at 1, lr x 0.1 after {PLATEAU_PATIENCE} epochs without a better validation accuracy (reduce-on-plateau); "
             f"early stopping after {PATIENCE} epochs without a higher validation accuracy (cap {EPOCH_CAP} epochs); of "
             "the epochs with the best validation accuracy, the one with the lowest validation loss has its weights "
             "restored and scored once on the test split (`--tie-break loss`). Batch sizes as in the earlier study. "
             "Two kinds of missingness: whole steps dropped (`--drop`, the same share of each sample's steps, as "
             "below) and values dropped per channel (`--drop-channels P`: each (sample, step, channel) value missing "
             "with probability P, every step kept at its time, so the mask and intensity inputs and GRU-D's decays "
             "see partial steps), the second on the two multichannel sets only.", "",
             "Where this differs from the reference (patrick-kidger/NeuralCDE `experiments/common.py`): there the "
             "run stops when the *training* loss and accuracy have not improved for 50 epochs (metrics every 10 "
             "epochs, up to 1000) and the learning rate is cut after one evaluation without a better validation "
             "accuracy; the weights kept are those of the first evaluated epoch with the best validation accuracy. "
             f"Here the stop is on the validation accuracy with a patience of {PATIENCE} epochs, and the kept "
             "epoch is, of those with the best validation accuracy, the one with the lowest validation loss (the "
             "reference keeps the first): the validation splits are small (68 samples on JapaneseVowels, 10 on "
             "BasicMotions: one sample is 1.5 and 10 points), their accuracy saturates while the fit still "
             "improves. " + strict_note() + " A second pass whose early stopping also counted a lower loss at equal "
             "accuracy ran a BasicMotions run (Antisymmetric gated, 30% steps) to the 200-epoch cap, best epoch 199 "
             "(a separated validation set's loss keeps falling); it was dropped. The per-run tables give the training accuracy at the kept epoch and at the "
             "last.", "",
             "**What was cut** (two shared cores; 198 runs, one at a time, over two sessions): one seed (0); no new selection: each model "
             "runs the configuration it was chosen with on validation in the earlier study below (the Neural CDE "
             "its reference defaults, `ncde`: natural cubic spline in time, rk4 at the smallest gap, three hidden "
             "layers of 32, penalty 0.03, with that study's learning rate); on the univariate sets only the continuous family chosen on "
             "validation there runs; on the two multichannel sets all four families run (the other three after the baselines) and, "
             "once they have, the family is chosen per kind of missingness on this protocol's validation accuracy "
             "(mean over 0/30/50/70%), before that the earlier study's choice stands. The multichannel sets run "
             "first, each with the continuous model and GRU-D first; rows not run are marked.", ""]
    n_done = sum(job_key(j) in {key(r['set'], r['model'], r['config'], r['kind'], r['rate']) for r in rows}
                 for j in planned)
    secs = sum(float(r["train_seconds"] or 0) for r in rows)
    lines += [f"Runs done: **{n_done} of {len(planned)} planned**"
              + (" (partial: the study was stopped at the deadline; `run` continues it)" if n_done < len(planned)
                 else "") + f"; {secs / 3600:.2f} hours of training (sum of wall times, one torch thread, on a "
              "machine shared with other jobs: ratios only).", ""]
    # the goals
    lines += ["### The goals, per kind of missingness", ""]
    for kind, label in KINDS.items():
        sets = [s for s in study_sets() if kind == "steps" or s in MULTICHANNEL]
        results = {s: verdict(c, earlier, s, kind) if irregular.best_continuous(earlier, s) else None for s in sets}
        lines += goal_lines(label, sets, results)
    judged_all = [(kind, s, v) for kind in KINDS for s in study_sets()
                  if (kind == "steps" or s in MULTICHANNEL) and irregular.best_continuous(earlier, s)
                  for v in [verdict(c, earlier, s, kind)] if v is not None]
    lost = [(kind, s) for kind, s, v in judged_all if not v["beats"]]
    if judged_all:
        lines += ["", (f"**Plainly: the seed fields lose** to a baseline at some drop rate on {len(lost)} of the "
                       f"{len(judged_all)} judged (set, kind) pairs: "
                       + "; ".join(f"{irregular.SETS[s][0]} ({'steps' if k == 'steps' else 'per channel'})"
                                   for k, s in lost) + ".") if lost else
                  f"The chosen continuous model is at least as accurate as every baseline on all {len(judged_all)} "
                  "judged (set, kind) pairs."]
    lines += ["", "One seed: a difference of one test sample is " + ", ".join(
        f"{100 / n:.2f} points on {irregular.SETS[s][0]}" for s, n in TEST_SAMPLES.items() if s in study_sets())
        + "; the earlier study's seed-to-seed spread (its tables below) is the scale of noise to read these with."]
    ok = [r for r in rows if r["status"] == "ok" and r["early_stopped"] != ""]
    fired = [r for r in ok if r["early_stopped"] == "1"]
    n_fit, under, _ = _fit_counts(rows)
    lines += ["", f"Early stopping fired before the {EPOCH_CAP}-epoch cap in **{len(fired)} of {len(ok)}** finished "
              f"runs ({100 * len(fired) / max(len(ok), 1):.0f}%); but {under} of {n_fit} ended below {UNDERFIT:.0%} "
              "training accuracy: here a stop did not mean a model trained to convergence (the second pass, above)."]
    capped = [r for r in ok if r["early_stopped"] == "0"]
    if capped:
        lines.append("Runs that reached the cap: " + "; ".join(
            f"{irregular.SETS[r['set']][0]} {irregular.LABELS[r['model']]} {r['kind']} {float(r['rate']):.0%}"
            for r in capped) + ".")
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines.append("Failed runs: " + "; ".join(f"{r['set']} {r['model']} {r['kind']} {r['rate']}: {r['status']}"
                                                 for r in failed) + ".")
    lines.append("")
    lines += first_controlled_section(c, earlier)
    # per set: test accuracy table and the runs
    for s in study_sets():
        name = irregular.SETS[s][0]
        if irregular.best_continuous(earlier, s) is None:
            lines += [f"### {name}", "", "Not planned: the earlier study has no complete selection here.", ""]
            continue
        fams = families(earlier, s)
        models = [*fams, *BASELINES]
        conds = conditions(s)
        picks = "; ".join(f"{KINDS[k].split(' (')[0]}: {irregular.LABELS[m]} (on {how})"
                          for k in KINDS if k == "steps" or s in MULTICHANNEL
                          for m, how in [chosen_continuous(c, earlier, s, k)])
        lines += [f"### {name}", "",
                  "Test accuracy (%) of the best-validation weights, seed 0; in brackets the validation accuracy. "
                  f"The continuous model chosen on validation: {picks}.", "",
                  "| model | configuration | N | parameters | " + " | ".join(
                      ("0%" if r == 0 else f"{r:.0%} {'steps' if k == 'steps' else 'per channel'}") for k, r in conds)
                  + " |", "|---" * (4 + len(conds)) + "|"]
        for m in models:
            o = options_for(earlier, s, m)
            row0 = next((r for r in rows if r["set"] == s and r["model"] == m), None)
            vals = []
            for k, r in conds:
                x = c.get((s, m, k, r))
                vals.append("not run" if x is None else f"{_pct(x['test_accuracy']):.1f} ({_pct(x['validation_accuracy']):.1f})")
            lines.append(f"| {irregular.LABELS[m]} | `{config_id(m, o)}` | {irregular.hidden_for(m, s, o)} | "
                         f"{row0['parameters'] if row0 else '—'} | " + " | ".join(vals) + " |")
        lines += ["", "Every run: epochs run (of the cap), the best validation epoch, whether early stopping fired, "
                  "training accuracy at the best epoch and at the last, validation and test accuracy of the "
                  "restored weights, seconds.", "",
                  "| model | missing | epochs | best epoch | early stop | train (best) | train (last) | validation | "
                  "test | s |", "|---" * 10 + "|"]
        for m in models:
            for k, r in conds:
                x = next((row for row in rows if row["set"] == s and row["model"] == m and row["kind"] == k
                          and round(float(row["rate"]), 3) == r), None)
                what = "0%" if r == 0 else f"{r:.0%} {'steps' if k == 'steps' else 'per channel'}"
                if x is None:
                    lines.append(f"| {irregular.LABELS[m]} | {what} | not run | | | | | | | |")
                    continue
                if x["status"] != "ok":
                    lines.append(f"| {irregular.LABELS[m]} | {what} | {x['status'][:60]} | | | | | | | |")
                    continue
                lines.append(f"| {irregular.LABELS[m]} | {what} | {x['epochs_run']} | {x['best_epoch']} | "
                             f"{'yes' if x['early_stopped'] == '1' else 'no'} | {_pct(x['train_accuracy_best']):.1f} | "
                             f"{_pct(x['train_accuracy_last']):.1f} | {_pct(x['validation_accuracy']):.1f} | "
                             f"{_pct(x['test_accuracy']):.1f} | {float(x['train_seconds']):.0f} |")
        lines.append("")
    first = next((r for r in rows if r["status"] == "ok"), None)
    if first is not None:
        lines += ["One run's command (each row of protocol.csv holds its own):", "", "```", first["command"], "```", ""]
    return lines


# ------------------------------------------------------------------- the reference's stopping rule
REFERENCE_ORDER = ("ItalyPowerDemand", "GunPoint", "JapaneseVowels", "BasicMotions", "mnist1d")
"""The reference pass's sets, the cheapest first, so a pass cut short has judged whole sets."""


def reference_choice(ref: dict, first: dict, earlier: list[dict], set_key: str, kind: str) -> tuple[str, str]:
    """(family, how it was chosen) judged on the reference pass: once every family of ``families`` has
    every rate of ``kind`` in this pass's seed-0 cells ``ref``, the best mean validation accuracy there
    (``chosen_continuous``), "this pass's validation"; until then the first pass's choice (cells ``first``)."""
    fam, how = chosen_continuous(ref, earlier, set_key, kind)
    if how == "this protocol's validation":
        return fam, "this pass's validation"
    return chosen_continuous(first, earlier, set_key, kind)[0], "the first pass's validation"


def reference_jobs(first: dict, earlier: list[dict], sets: tuple[str, ...] = REFERENCE_ORDER,
                   ref: dict | None = None, seed: int = SEED) -> list[tuple]:
    """The reference pass's jobs in order, set by set: for each kind of missingness the continuous family
    ``reference_choice`` judges (this pass's seed-0 cells ``ref``) and the baselines but the Neural CDE,
    then the Neural CDE's runs (the costliest), each in the first pass's configuration; after every set,
    with seed 0 only, the other families on the multichannel sets, so the family is chosen on this pass."""
    jobs = []
    ready = [x for x in sets if x in study_sets() and irregular.best_continuous(earlier, x)]
    for s in ready:
        kinds = [k for k in KINDS if k == "steps" or s in MULTICHANNEL]
        later = []
        for kind in kinds:
            conds = [(k, r) for k, r in conditions(s) if k == kind or r == 0.0]  # 0% (kind "steps") counts for both
            cont = reference_choice(ref or {}, first, earlier, s, kind)[0]
            for m in dict.fromkeys((cont, *BASELINES)):
                group = later if m == "ncde" else jobs
                group += [(s, m, options_for(earlier, s, m), k, r) for k, r in conds]
        jobs += later
    if seed == SEED:
        jobs += [(s, m, options_for(earlier, s, m), k, r) for s in ready if s in MULTICHANNEL
                 for m in families(earlier, s) for k, r in conditions(s)]
    seen, out = set(), []
    for j in jobs:  # a family chosen for both kinds runs 0% once
        if job_key(j) not in seen:
            seen.add(job_key(j))
            out.append(j)
    return out


def run_reference(sets: tuple[str, ...] = REFERENCE_ORDER, seed: int = SEED,
                  models: tuple[str, ...] | None = None) -> None:
    """Train every missing run of the reference pass with ``seed`` on ``sets`` (of ``models`` only, if given),
    one at a time (reference.csv, every seed; processes on disjoint (sets, seed, models) may share the file:
    each row is one append)."""
    p = dataclasses.replace(REFERENCE_PASS, seed=seed)
    first = cells(harness.read_rows(FIRST_PASS.csv()))

    def jobs(rows: list[dict]) -> list[tuple]:
        ref = cells([r for r in rows if int(r["seed"]) == SEED])
        return [j for j in reference_jobs(first, earlier_rows(), sets, ref, seed) if models is None or j[1] in models]

    run_pass(p, jobs)


def run_pass(p: Pass, jobs) -> None:
    """Train the runs of ``jobs(rows)`` (recomputed after each run from the pass's rows) that ``p``'s csv
    lacks for ``p.seed``, one at a time, each row appended when its run ends."""
    t0 = time.time()
    while True:
        rows = harness.read_rows(p.csv())
        done = {key(r["set"], r["model"], r["config"], r["kind"], r["rate"]) for r in rows if int(r["seed"]) == p.seed}
        pending = [j for j in jobs(rows) if job_key(j) not in done]
        if not pending:
            break
        row = run_one(pending[0], p)
        harness.append_row(p.csv(), FIELDS, row)
        print(f"[{time.time() - t0:.0f}s] {row['set']} {row['model']} {row['config']} {row['kind']} {row['rate']} "
              f"s{p.seed}: test {row.get('test_accuracy')} val {row.get('validation_accuracy')} epochs "
              f"{row.get('epochs_run')} (best {row.get('best_epoch')}, early {row.get('early_stopped')}, train "
              f"{row.get('train_accuracy_last')}) {row.get('train_seconds')}s {row['status']}", flush=True)
    print(f"done in {time.time() - t0:.0f}s", flush=True)


UNDERFIT = 0.9
"""A run whose training accuracy at its last epoch is below this has not fitted its training data."""


def _fit_counts(rows: list[dict]) -> tuple[int, int, int]:
    """(finished runs, those whose last epoch's training accuracy is below ``UNDERFIT``, those whose kept epoch is 1-3)."""
    ok = [r for r in rows if r["status"] == "ok" and r["train_accuracy_last"] != ""]
    return (len(ok), sum(float(r["train_accuracy_last"]) < UNDERFIT for r in ok),
            sum(int(r["best_epoch"] or 0) <= 3 for r in ok))


def mean_cells(parts: list[dict]) -> dict:
    """Cells (``cells``) of several seeds -> one whose test and validation accuracy are their means, for
    the keys every part has."""
    common = set.intersection(*(set(x) for x in parts)) if parts else set()
    return {k: {f: sum(float(x[k][f]) for x in parts) / len(parts) for f in ("test_accuracy", "validation_accuracy")}
            for k in common}


def _seed_verdict(by_seed: dict, set_key: str, kind: str, cont: str,
                  chosen_on: str = "the first pass's validation") -> dict | None:
    """The goals on one set and kind for ``cont`` (chosen on ``chosen_on``) with the mean over every seed
    that has all the runs they need (seed 0 must), None while seed 0 lacks one."""
    base = by_seed.get(SEED, {})
    if verdict_for(base, set_key, kind, cont, "") is None:
        return None
    seeds = [x for x in sorted(by_seed) if verdict_for(by_seed[x], set_key, kind, cont, "") is not None]
    how = f"{chosen_on}; " + (f"seed {SEED}" if seeds == [SEED] else f"mean of seeds {', '.join(map(str, seeds))}")
    v = verdict_for(mean_cells([by_seed[x] for x in seeds]), set_key, kind, cont, how)
    return {**v, "seeds": tuple(seeds)}


def reference_section() -> list[str]:
    """The reference pass as markdown lines: protocol, status, the goals, fit, and per set each model's
    test accuracy beside the first pass's."""
    p = REFERENCE_PASS
    rows = harness.read_rows(p.csv())
    first_rows = harness.read_rows(FIRST_PASS.csv())
    earlier = earlier_rows()
    first = cells(first_rows)
    by_seed = {seed: cells([r for r in rows if int(r["seed"]) == seed]) for seed in sorted({int(r["seed"]) for r in rows})}
    c = by_seed.get(SEED, {})
    planned = reference_jobs(first, earlier, ref=c)
    extra = sorted(set(by_seed) - {SEED})
    done = {key(r["set"], r["model"], r["config"], r["kind"], r["rate"]) for r in rows if int(r["seed"]) == SEED}
    n_done = sum(job_key(j) in done for j in planned)
    secs = sum(float(r["train_seconds"] or 0) for r in rows)
    n1, under1, early1 = _fit_counts(first_rows)
    stuck = [f"{irregular.SETS[s][0]}'s {irregular.LABELS[m]}" for s in REFERENCE_ORDER for m in BASELINES
             for runs in [[r for r in first_rows if r["set"] == s and r["model"] == m and r["status"] == "ok"]]
             if runs and all(float(r["train_accuracy_last"]) < 0.6 for r in runs)]
    n2, under2, early2 = _fit_counts(rows)
    lines = ["## Second pass: the reference's stopping rule (issue 19)", "",
             "Generated by `python scripts/irregular_protocol.py report` from `docs/irregular/reference.csv`, which "
             "`python scripts/irregular_protocol.py run-reference` fills (resumable; `--sets` splits the sets "
             "between processes). Every number in this section comes from that file and protocol.csv.", "",
             f"Why a second pass: in the first (below), {under1} of its {n1} runs ended with a training accuracy "
             f"below {UNDERFIT:.0%} and {early1} kept the weights of epoch 1-3: on validation splits of 10-70 "
             f"samples the accuracy is flat from the first epochs, so {PATIENCE} epochs without a better one "
             "stopped models that were still learning" + (f" ({', '.join(stuck)} ended every run below 60% "
                                                          "training accuracy)" if stuck else "") + ". "
             "That is not the reference's rule, and it let a model that had not learnt count as a baseline beaten.",
             "",
             "Protocol, now Kidger et al.'s loop (patrick-kidger/NeuralCDE `experiments/common.py`, `_train_loop`): "
             f"the metrics read at epochs 1, 11, 21, ... (every {p.validate_every}th); lr x 0.1 "
             f"after {p.plateau_patience + 1} readings without a better validation accuracy (ReduceLROnPlateau, "
             f"patience {p.plateau_patience}); the run stops at a reading more than {p.patience} epochs after the "
             "last reading with a lower training loss (by 1e-4 relative) or a higher training accuracy (by 1e-3 "
             f"relative), the training split evaluated in eval mode (`--stop-on training`); cap {p.epoch_cap} "
             "epochs; the best validation reading's weights (ties: the lower validation loss, `--tie-break loss`) "
             "scored once on the test split. Everything else as the first pass: the same split, batch sizes, "
             "configurations, clipping and seed. Where it still differs from the reference: ties of the validation "
             "accuracy go to the lower validation loss (the reference keeps the first); the validation split is "
             f"{VALIDATION:.0%} of the official training samples with the official test set kept (the reference "
             "merges and re-splits 70/15/15); batch sizes and each model's configuration are the earlier study's "
             "(the reference: batch 32, its own hyperparameters); gradients are clipped at norm 1.", "",
             "**What was cut**: on the two multichannel sets all four continuous families run with seed 0 (after "
             "every set's runs) and, once they have, the family is chosen per kind on this pass's seed-0 "
             "validation accuracy (mean over 0/30/50/70%), the chosen family's other seeds then added; until then, "
             "and on the univariate sets, the family is the one the first pass chose on validation; the controlled "
             "forms rerun with seed 0 only (their section below says on which sets); seed 0 on every set, seeds 1 "
             "and 2 where the table says (a verdict averages the seeds that have every run it needs); no new "
             "selection but the families and the learning rates on "
             "GunPoint (below); the sets run cheapest first, the Neural CDE last in each.",
             "",
             f"Runs done: **{n_done} of {len(planned)} planned** with seed {SEED}"
             + "".join(f", {sum(int(r['seed']) == x for r in rows)} with seed {x}" for x in extra)
             + (" (partial: stopped at the session's end; `run-reference` continues it, sets not judged are "
                "marked)" if n_done < len(planned) else "") + f"; {secs / 3600:.2f} hours of training.", "",
             f"Fit: {under2} of {n2} finished runs end below {UNDERFIT:.0%} training accuracy (first pass: {under1} "
             f"of {n1}); {early2} keep epoch 1-3 (first pass: {early1}). Early stopping fired before the "
             f"{p.epoch_cap}-epoch cap in {sum(r['early_stopped'] == '1' for r in rows if r['status'] == 'ok')} of "
             f"{sum(r['status'] == 'ok' for r in rows)}.", ""]
    if under2:
        lines += ["Seed-0 runs that end below that training accuracy (they stopped because the training loss and "
                  "accuracy had stopped improving for 50 epochs, not because the budget ran out): " + "; ".join(
                      f"{irregular.SETS[r['set']][0]} {irregular.LABELS[r['model']]} {r['kind']} "
                      f"{float(r['rate']):.0%} ({_pct(r['train_accuracy_last']):.0f}%)"
                      for r in rows if r["status"] == "ok" and r["train_accuracy_last"] != "" and int(r["seed"]) == SEED
                      and float(r["train_accuracy_last"]) < UNDERFIT) + ".",
                  "", "Why a model can stop unfitted under this rule: the schedule counts epochs, and these sets are "
                  "small. Optimiser steps per epoch: " + ", ".join(
                      f"{irregular.SETS[s][0]} {steps_per_epoch(s)}" for s in REFERENCE_ORDER)
                  + f". The lr is cut at the earliest after epoch {2 * p.validate_every + 1} (two readings without "
                  f"a better validation accuracy), so a model has {2 * p.validate_every} epochs, "
                  f"{2 * p.validate_every * min(steps_per_epoch(s) for s in REFERENCE_ORDER)}-"
                  f"{2 * p.validate_every * max(steps_per_epoch(s) for s in REFERENCE_ORDER)} steps, at its chosen lr "
                  "before each cut; one that has not left its initial plateau by then goes on at a tenth of it. "
                  "The reference's CharacterTrajectories runs take about 63 per epoch (2,858 samples, 70% for "
                  "training, batch 32). Counting the schedule in optimiser steps would be the next change; this pass "
                  "keeps the reference's rule and chooses the lr under it on GunPoint (below).", ""]
    lines += ["### The goals under the reference's rule", ""]
    judged_all = []
    for kind, label in KINDS.items():
        sets = [s for s in REFERENCE_ORDER if s in study_sets() and (kind == "steps" or s in MULTICHANNEL)
                and irregular.best_continuous(earlier, s)]
        results = {s: _seed_verdict(by_seed, s, kind, *reference_choice(c, first, earlier, s, kind)) for s in sets}
        judged_all += [(kind, s, v) for s, v in results.items() if v is not None]
        lines += goal_lines(label, sets, results, {s: unfitted_baselines(rows, s, kind, results[s]["seeds"])
                                                   for s in sets if results[s] is not None})
    lost = [(k, s) for k, s, v in judged_all if not v["beats"]]
    if judged_all:
        lines += ["", f"**Plainly:** on {len(judged_all)} judged (set, kind) pairs the seed field loses to a baseline "
                  f"at some rate on {len(lost)}" + (": " + "; ".join(
                      f"{irregular.SETS[s][0]} ({'steps' if k == 'steps' else 'per channel'})" for k, s in lost)
                      if lost else "") + "."]
        hollow = [(k, s) for k, s, v in judged_all if v["beats"] and unfitted_baselines(rows, s, k, v["seeds"])]
        if hollow:
            lines[-1] += (" Where it does not lose, " + "; ".join(
                f"{irregular.SETS[s][0]} ({'steps' if k == 'steps' else 'per channel'})" for k, s in hollow)
                + ", some of the baselines it is compared with did not fit their training data (the caveat above): "
                "that is not a win over trained baselines.")
            if any(s in LR_SETS for _, s in hollow):
                lines[-1] += (" The section on the learning rate below runs "
                              + ", ".join(irregular.SETS[s][0] for s in LR_SETS)
                              + " again with every model's lr chosen under this rule, and says who wins there.")
    lines.append("")
    lines += every_model_section(by_seed, judged_all)
    lines += reference_controlled_section(c, first, earlier)
    lines += lr_section(first, earlier)
    for s in REFERENCE_ORDER:
        if not any(r["set"] == s for r in rows) or not irregular.best_continuous(earlier, s):
            continue
        conds = conditions(s)
        models = list(dict.fromkeys([reference_choice(c, first, earlier, s, k)[0] for k in KINDS
                                     if k == "steps" or s in MULTICHANNEL]
                                    + [m for m in families(earlier, s) if any(k[:2] == (s, m) for k in c)]
                                    + list(BASELINES)))
        lines += [f"### {irregular.SETS[s][0]} (reference rule)", "",
                  f"Test accuracy (%) of the best-validation weights, seed {SEED}" + "".join(f" / seed {x}" for x in extra)
                  + " where run; in brackets the first pass's (seed 0); then the seed-0 run's epochs and its last "
                  "epoch's training accuracy.", "",
                  "| model | " + " | ".join(("0%" if r == 0 else f"{r:.0%} {'steps' if k == 'steps' else 'per channel'}")
                                           for k, r in conds) + " |", "|---" * (1 + len(conds)) + "|"]
        for m in models:
            vals = []
            for k, r in conds:
                x, y = c.get((s, m, k, r)), first.get((s, m, k, r))
                more = "".join(f" / {_pct(by_seed[e][(s, m, k, r)]['test_accuracy']):.1f}" for e in extra
                               if (s, m, k, r) in by_seed[e])
                vals.append("—" if x is None else
                            f"{_pct(x['test_accuracy']):.1f}{more}" + (f" ({_pct(y['test_accuracy']):.1f} first)"
                                                                       if y is not None else "")
                            + f"; {x['epochs_run']} ep, train {_pct(x['train_accuracy_last']):.0f}%")
            lines.append(f"| {irregular.LABELS[m]} | " + " | ".join(vals) + " |")
        lines.append("")
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines += ["Failed runs: " + "; ".join(f"{r['set']} {r['model']} {r['kind']} {r['rate']}: {r['status']}"
                                              for r in failed) + ".", ""]
    if rows:
        lines += ["One run's command (each row of reference.csv holds its own):", "", "```", rows[0]["command"], "```", ""]
    return lines


def model_tests(c: dict, set_key: str, kind: str, models: tuple[str, ...]) -> dict[str, tuple[bool, float]]:
    """The goals' two tests applied to each of ``models`` against the others in cells ``c``: model ->
    (at least as accurate as every other model at every rate, test points lost from 0% to 70%)."""
    rates = (0.0, *RATES)
    acc = {(m, r): _pct(c[(set_key, m, kind, r)]["test_accuracy"]) for m in models for r in rates}
    return {m: (all(acc[(m, r)] >= max(acc[(o, r)] for o in models if o != m) for r in rates),
                acc[(m, 0.0)] - acc[(m, 0.7)]) for m in models}


def every_model_section(by_seed: dict, judged: list[tuple[str, str, dict]]) -> list[str]:
    """The goals' two tests applied to every model of each judged (kind, set, verdict), on the verdict's
    seeds: whether any model, baseline or continuous, passes them where the seed field does not."""
    if not judged:
        return []
    lines = ["### The same two tests applied to every model", "",
             "Each model against the other five on the same runs (the verdict's seeds, mean test accuracy): at "
             "least as accurate as every other model at every rate (yes/no), and the test points it loses from 0% "
             "to 70%. For the seed field this is the goal's test; for a baseline, the same test with the seed field "
             "among the others. It says whether the goal asks for something any model in the study does.", "",
             "| set (kind) | seed field | " + " | ".join(irregular.LABELS[b] for b in BASELINES) + " |",
             "|---" * (2 + len(BASELINES)) + "|"]
    passes = {m: 0 for m in ("seed", *BASELINES)}
    steady = dict(passes)
    floors, gaps = [], []
    for kind, s, v in judged:
        c = mean_cells([by_seed[x] for x in v["seeds"]])
        tests = model_tests(c, s, kind, (v["model"], *BASELINES))
        gap = max(_pct(c[(s, b, kind, r)]["test_accuracy"]) - _pct(c[(s, v["model"], kind, r)]["test_accuracy"])
                  for b in BASELINES for r in (0.0, *RATES))
        for name, m in (("seed", v["model"]), *((b, b) for b in BASELINES)):
            passes[name] += tests[m][0]
            steady[name] += tests[m][1] <= 3
        where = f"{irregular.SETS[s][0]} ({'steps' if kind == 'steps' else 'per channel'})"
        floors.append((where, min(t[1] for t in tests.values())))
        if gap > 0:
            gaps.append(f"{where} {gap:.1f} points ({gap * TEST_SAMPLES[s] / 100:.1f} test samples)")
        lines.append(f"| {where} | {irregular.LABELS[v['model']]}: " + " | ".join(
            f"{'yes' if tests[m][0] else 'no'}, {tests[m][1]:.1f}" for m in (v["model"], *BASELINES)) + " |")
    names = {"seed": "the seed field", **{b: irregular.LABELS[b] for b in BASELINES}}
    lines += ["", f"Of {len(judged)} judged pairs, at least as accurate as every other model at every rate: "
              + ", ".join(f"{names[m]} {passes[m]}" for m in passes) + "; at most 3 points lost from 0% to 70%: "
              + ", ".join(f"{names[m]} {steady[m]}" for m in steady) + ". The smallest loss from 0% to 70% of any "
              "model: " + "; ".join(f"{w} {x:.1f}" for w, x in floors) + "."
              + (" Where the seed field loses, its largest shortfall to a baseline at one rate (a mean over the "
                 "verdict's seeds): " + "; ".join(gaps) + "." if gaps else ""), ""]
    return lines


# ------------------------------------------------------------------- the lr chosen under the reference pass
LR_PASS = dataclasses.replace(REFERENCE_PASS, name="reference-lr")
"""The reference pass with each model's learning rate chosen on validation under it (reference-lr.csv)."""
LR_GRID = (0.001, 0.003, 0.01, 0.03)
LR_SETS = ("GunPoint",)
"""Where the reference pass's baselines ended unfitted in most runs (the lr the earlier study chose on a
12-epoch budget, with 4 optimiser steps per epoch): every model's lr chosen again, at ``SELECT_RATE``."""


def selection_row(rows: list[dict], set_key: str, model: str, options: dict) -> dict | None:
    """The row of ``model`` with ``options`` on ``set_key`` at ``SELECT_RATE`` of the steps dropped, or None."""
    return next((r for r in rows if r["set"] == set_key and r["model"] == model
                 and r["config"] == config_id(model, options) and r["kind"] == "steps"
                 and round(float(r["rate"]), 3) == SELECT_RATE), None)


def choose_on_validation(rows: list[dict], set_key: str, candidates: list[tuple[str, dict]]) -> tuple[str, dict] | None:
    """The (model, options) of ``candidates`` whose run at ``SELECT_RATE`` scored the best validation
    accuracy (a failed run scores 0; ties: the earlier candidate); None until every candidate ran."""
    found = []
    for m, o in candidates:
        row = selection_row(rows, set_key, m, o)
        if row is None:
            return None
        found.append((float(row["validation_accuracy"] or 0) if row["status"] == "ok" else 0.0, m, o))
    best = max(found, key=lambda x: x[0])  # max keeps the first of equal scores
    return best[1], best[2]


def lr_choice(rows: list[dict], set_key: str, model: str, options: dict) -> dict | None:
    """``options`` with the lr of ``LR_GRID`` whose run at ``SELECT_RATE`` steps scored the best validation
    accuracy (ties: the smaller lr); None until every candidate ran."""
    pick = choose_on_validation(rows, set_key, [(model, {**options, "lr": lr}) for lr in sorted(LR_GRID)])
    return None if pick is None else pick[1]


def lr_jobs(rows: list[dict], first: dict, earlier: list[dict]) -> list[tuple]:
    """Per set of ``LR_SETS``: every model's ``LR_GRID`` runs at ``SELECT_RATE`` steps (the continuous family
    of the reference pass and the baselines, the Neural CDE last), then each chosen lr's other rates."""
    jobs, later = [], []
    for s in LR_SETS:
        models = list(dict.fromkeys((chosen_continuous(first, earlier, s, "steps")[0], *BASELINES)))
        for m in models:
            group = later if m == "ncde" else jobs
            group += [(s, m, {**options_for(earlier, s, m), "lr": lr}, "steps", SELECT_RATE) for lr in LR_GRID]
        for m in models:
            pick = lr_choice(rows, s, m, options_for(earlier, s, m))
            if pick is not None:
                later += [(s, m, pick, k, r) for k, r in conditions(s) if k == "steps" and r != SELECT_RATE]
    return jobs + later


def run_lr(models: tuple[str, ...] | None = None) -> None:
    """Train every missing run of ``lr_jobs`` (of ``models`` only, if given), one at a time (reference-lr.csv)."""
    first = cells(harness.read_rows(FIRST_PASS.csv()))
    run_pass(LR_PASS, lambda rows: [j for j in lr_jobs(rows, first, earlier_rows()) if models is None or j[1] in models])


def lr_section(first: dict, earlier: list[dict]) -> list[str]:
    """The lr chosen under the reference pass: selection table, the goals with the chosen runs, fit."""
    rows = harness.read_rows(LR_PASS.csv())
    if not rows:
        return []
    lines = ["### The learning rate chosen under the reference's rule", "",
             f"On {', '.join(irregular.SETS[s][0] for s in LR_SETS)} most baseline runs above ended below "
             f"{UNDERFIT:.0%} training accuracy. Their lr was chosen in the earlier study on a short budget. So "
             f"here every model's lr is chosen again, under this pass's rule, on the validation accuracy at "
             f"{SELECT_RATE:.0%} of the steps dropped, over {', '.join(f'{x:g}' for x in LR_GRID)} (ties: the "
             "smaller). Then the chosen lr runs every rate, seed 0. Generated from `docs/irregular/reference-lr.csv`, "
             "which `python scripts/irregular_protocol.py run-lr` fills (resumable).", ""]
    for s in LR_SETS:
        models = list(dict.fromkeys((chosen_continuous(first, earlier, s, "steps")[0], *BASELINES)))
        lines += [f"{irregular.SETS[s][0]}: validation accuracy (%) at {SELECT_RATE:.0%} steps dropped (test, training "
                  "accuracy at the last epoch in brackets, not used)", "",
                  "| model | " + " | ".join(f"lr {x:g}" for x in LR_GRID) + " | chosen |", "|---" * (2 + len(LR_GRID)) + "|"]
        picks = {m: lr_choice(rows, s, m, options_for(earlier, s, m)) for m in models}
        tried = {m: {lr: selection_row(rows, s, m, {**options_for(earlier, s, m), "lr": lr}) for lr in LR_GRID}
                 for m in models}
        for m in models:
            vals = ["not run" if r is None else r["status"][:30] if r["status"] != "ok" else
                    f"{_pct(r['validation_accuracy']):.1f} ({_pct(r['test_accuracy']):.1f}; "
                    f"{_pct(r['train_accuracy_last']):.0f}%)" for r in tried[m].values()]
            lines.append(f"| {irregular.LABELS[m]} | " + " | ".join(vals)
                         + (f" | {picks[m]['lr']:g} |" if picks[m] else " | — |"))
        chosen = {}
        for m, pick in picks.items():
            if pick is not None:
                chosen.update(cells([r for r in rows if r["set"] == s and r["model"] == m
                                     and r["config"] == config_id(m, pick)]))
        cont = models[0]
        v = verdict_for(chosen, s, "steps", cont, "the first pass's validation; lr on this pass's validation")
        runs = [r for r in rows if r["status"] == "ok" and (r["set"], r["model"], "steps", round(float(r["rate"]), 3))
                in chosen and chosen[(r["set"], r["model"], "steps", round(float(r["rate"]), 3))] is r]
        lines += ["", "| model | " + " | ".join(f"{r:.0%}" for r in (0.0, *RATES)) + " |", "|---" * 5 + "|"]
        for m in models:
            vals = [f"{_pct(chosen[(s, m, 'steps', r)]['test_accuracy']):.1f} "
                    f"({_pct(chosen[(s, m, 'steps', r)]['train_accuracy_last']):.0f}%)"
                    if (s, m, "steps", r) in chosen else "not run" for r in (0.0, *RATES)]
            lines.append(f"| {irregular.LABELS[m]} | " + " | ".join(vals) + " |")
        lines += ["", "Test accuracy (%) with the chosen lr (training accuracy at the last epoch in brackets).", ""]
        lines += goal_lines(KINDS["steps"], [s], {s: v}, {s: unfitted_baselines(runs, s, "steps")})
        gaps = []
        for m, pick in picks.items():
            tests = {lr: r for lr, r in tried[m].items() if r is not None and r["status"] == "ok"}
            if pick is not None and tests:
                gaps.append(max(_pct(r["test_accuracy"]) for r in tests.values())
                            - _pct(tests[pick["lr"]]["test_accuracy"]) if pick["lr"] in tests else 0.0)
        if v is not None:
            lines += ["", "**Plainly:** with every model's lr chosen under this rule the seed field "
                      + ("is at least as accurate as every baseline at every rate here." if v["beats"] else
                         f"loses on {irregular.SETS[s][0]} too ({'; '.join(v['short'])}).")
                      + f" The {_pct(VALIDATION):.0f}% validation split ({round(VALIDATION * TRAIN_SAMPLES[s])} "
                      f"samples) chooses poorly: for {sum(g > 5 for g in gaps)} of {len(gaps)} models the chosen lr's "
                      "test accuracy at the selection rate is more than 5 points below the best candidate's (test "
                      "accuracy not used to choose)."]
        lines.append("")
    return lines


# ------------------------------------------------------------------- the seed fields in controlled form
CONTROLLED_FAMILIES = ("lipschitz-cde", "antisymmetric-gated-cde")
"""The controlled forms tried: the two families the earlier study chose on its sets (Lipschitz on none,
Antisymmetric gated on most; Lipschitz is the other seed paper's field)."""
CONTROLLED_EPS = (0.1, 1.0)
CONTROLLED_LR = 0.003
SELECT_RATE = 0.5
"""The controlled form's configuration is chosen per set on the validation accuracy at 50% of the steps
dropped (the earlier study's selection rate), over ``CONTROLLED_FAMILIES`` x ``CONTROLLED_EPS`` at lr
``CONTROLLED_LR`` (ties: the earlier in that order); the chosen one then runs every condition."""


CONTROLLED_FIRST = dataclasses.replace(FIRST_PASS, table="controlled")
"""The controlled forms under the first pass (docs/irregular/controlled.csv, protocol.csv's columns; its
run directories are the first pass's)."""


def controlled_candidates() -> list[tuple[str, dict]]:
    return [(m, {"lr": CONTROLLED_LR, "eps": e}) for m in CONTROLLED_FAMILIES for e in CONTROLLED_EPS]


def controlled_choice(rows: list[dict], set_key: str) -> tuple[str, dict] | None:
    """(model, options) of the controlled form chosen on validation for ``set_key``; None until every
    candidate's selection run is in ``rows``."""
    return choose_on_validation(rows, set_key, controlled_candidates())


def controlled_jobs(rows: list[dict], sets: tuple[str, ...] | None = None) -> list[tuple]:
    """The controlled study's jobs in order, set by set (``SET_ORDER``; of ``sets`` only, if given): the
    set's selection runs (50% steps), then, once they are done, the chosen configuration's other conditions."""
    jobs = []
    for s in (x for x in study_sets() if sets is None or x in sets):
        jobs += [(s, m, o, "steps", SELECT_RATE) for m, o in controlled_candidates()]
        pick = controlled_choice(rows, s)
        if pick is not None:
            m, o = pick
            jobs += [(s, m, o, kind, rate) for kind, rate in conditions(s) if (kind, rate) != ("steps", SELECT_RATE)]
    return jobs


def run_controlled() -> None:
    """Train every missing controlled-form run of the first pass (selection first), one at a time."""
    run_pass(CONTROLLED_FIRST, controlled_jobs)


CONTROLLED_REFERENCE = dataclasses.replace(REFERENCE_PASS, name="reference-controlled")
"""The controlled forms under the reference pass's loop (reference-controlled.csv): the same candidates
and selection as the first pass's controlled study."""


def run_reference_controlled(sets: tuple[str, ...] = REFERENCE_ORDER) -> None:
    """Train every missing controlled-form run of the reference pass on ``sets`` (selection first), one at a time."""
    run_pass(CONTROLLED_REFERENCE, lambda rows: controlled_jobs(rows, sets))


def first_controlled_section(c: dict, earlier: list[dict]) -> list[str]:
    """The first pass's controlled study (controlled.csv), the form introduced."""
    intro = ["### The seed fields in controlled form (time-aware variant)", "",
             "The seed rows above read the input as a level (held, plus time, intensity and mask channels), so over "
             "a long gap the same sample acts for longer. The controlled form "
             "(`neuralode_rnn.baselines.controlled`, models `lipschitz-cde`, `antisymmetric-gated-cde`, ...) is "
             "the same field as a controlled differential equation dz = f(z) dt + U dX on X = [time, x]: the "
             "field's own dynamics run for the elapsed time and the input enters by its increments (gated: the "
             "gate on both), on the Neural CDE's path and solve (natural cubic spline in time, rk4 at the "
             "smallest gap, z(t_1) linear in X(t_1)). Same protocol, same parameter budget (N as large as the "
             "GRU's count allows). Generated from `docs/irregular/controlled.csv`, which `python "
             "scripts/irregular_protocol.py run-controlled` fills (resumable).", "",
             f"Configuration chosen per set on the validation accuracy at {SELECT_RATE:.0%} of the steps dropped, "
             f"over {' and '.join(CONTROLLED_FAMILIES)} x eps {' and '.join(f'{e:g}' for e in CONTROLLED_EPS)} at "
             f"lr {CONTROLLED_LR:g} (4 runs per set); then every condition with it. What was cut: no learning-rate "
             "search, two of the four families, one seed.", ""]
    return controlled_section(c, earlier, harness.read_rows(CONTROLLED_FIRST.csv()), intro,
                              lambda s, k: chosen_continuous(c, earlier, s, k))


def reference_controlled_section(c: dict, first: dict, earlier: list[dict]) -> list[str]:
    """The controlled forms under the reference pass (reference-controlled.csv) against its seed-0 cells ``c``."""
    rows = harness.read_rows(CONTROLLED_REFERENCE.csv())
    if not rows:
        return []
    n_sets = sum(controlled_choice(rows, s) is not None for s in study_sets())
    intro = ["### The seed fields in controlled form under the reference rule", "",
             "The controlled forms of the first pass (its section below says what they are), rerun under this pass's "
             "loop: the same four candidates per set chosen on the validation accuracy at "
             f"{SELECT_RATE:.0%} of the steps dropped, then every condition with the choice, seed {SEED}, compared "
             "with this pass's seed-0 runs of the seed field and the baselines. Generated from "
             "`docs/irregular/reference-controlled.csv`, which `python scripts/irregular_protocol.py "
             "run-reference-controlled [--sets S,..]` fills (resumable). What was cut: no learning-rate search, two "
             f"of the four families, one seed; sets with a choice made: {n_sets} of {len(study_sets())}.", ""]
    return controlled_section(c, earlier, rows, intro, lambda s, k: reference_choice(c, first, earlier, s, k))


def controlled_section(c: dict, earlier: list[dict], rows: list[dict], intro: list[str], seed_choice) -> list[str]:
    """The controlled forms' ``rows`` beside the seed rows of cells ``c`` (``intro`` first): selection,
    per-set test accuracy, and the goals counted with the controlled form alone and with the form chosen
    on validation; ``seed_choice(set, kind)`` is the seed family compared with and how it was chosen."""
    lines = list(intro)
    lines += ["| set | " + " | ".join(f"{irregular.LABELS[m]} eps {o['eps']:g}" for m, o in controlled_candidates())
              + " | chosen |", "|---" * (2 + len(controlled_candidates())) + "|"]
    for s in study_sets():
        vals = []
        for m, o in controlled_candidates():
            r = selection_row(rows, s, m, o)
            vals.append("not run" if r is None else r["status"][:30] if r["status"] != "ok"
                        else f"{_pct(r['validation_accuracy']):.1f} (test {_pct(r['test_accuracy']):.1f})")
        pick = controlled_choice(rows, s)
        lines.append(f"| {irregular.SETS[s][0]} | " + " | ".join(vals) + " | "
                     + (f"{irregular.LABELS[pick[0]]} eps {pick[1]['eps']:g}" if pick else "—") + " |")
    lines += ["", "Validation accuracy (%) at 50% steps dropped (test accuracy in brackets, not used).", ""]
    # the chosen configuration's cells, keyed like the main study's
    ctl = {}
    for s in study_sets():
        pick = controlled_choice(rows, s)
        if pick is None:
            continue
        m, o = pick
        ctl.update(cells([r for r in rows if r["set"] == s and r["model"] == m and r["config"] == config_id(m, o)]))
    merged = {**c, **ctl}
    counts, tally = [], {"seed": [0, 0], "alone": [0, 0]}
    for kind, label in KINDS.items():
        sets = [s for s in study_sets() if kind == "steps" or s in MULTICHANNEL]
        alone, chosen = {}, {}
        for s in sets:
            pick = controlled_choice(rows, s)
            if pick is None or irregular.best_continuous(earlier, s) is None:
                continue
            alone[s] = verdict_for(merged, s, kind, pick[0], "the controlled form")
            seed_model, seed_how = seed_choice(s, kind)
            seed = verdict_for(merged, s, kind, seed_model, seed_how)
            if alone[s] is not None and seed is not None:
                for what, v in (("seed", seed), ("alone", alone[s])):
                    tally[what][0] += v["beats"]
                    tally[what][1] += 1
            rates = (0.0, *RATES)
            if all((s, m, kind, r) in merged for m in (seed_model, pick[0]) for r in rates):
                score = {m: sum(float(merged[(s, m, kind, r)]["validation_accuracy"]) for r in rates)
                         for m in (seed_model, pick[0])}
                best = max((seed_model, pick[0]), key=lambda m: score[m])  # ties: the seed form
                chosen[s] = verdict_for(merged, s, kind, best, "validation, seed vs controlled form")
        for what, results in (("the controlled form alone", alone),
                              ("the form chosen on validation (seed or controlled; mean validation accuracy over "
                               "the kind's rates)", chosen)):
            judged, beats, steady = goal_counts(results)
            counts.append(f"- **{label}**, {what}: judged on {len(judged)} of {len(sets)} sets; at least as accurate "
                          f"as every baseline at every rate on **{beats}**, loses at most 3 points from 0% to 70% on "
                          f"**{steady}**.")
            for s, v in judged.items():
                counts.append(f"  - {irregular.SETS[s][0]}: {irregular.LABELS[v['model']]}: "
                              f"{'yes' if v['beats'] else 'no'}" + (f" ({'; '.join(v['short'])})" if v["short"] else "")
                              + f"; 0% to 70%: {v['loss']:.1f} points")
    lines += ["The goals again, with the controlled form:", "", *counts, ""]
    if tally["alone"][1]:
        diffs = []
        for s in study_sets():
            pick = controlled_choice(rows, s)
            if pick is None:
                continue
            seed_model = seed_choice(s, "steps")[0]
            d = [(r, _pct(merged[(s, pick[0], "steps", r)]["test_accuracy"])
                  - _pct(merged[(s, seed_model, "steps", r)]["test_accuracy"]))
                 for r in (0.0, *RATES) if (s, pick[0], "steps", r) in merged and (s, seed_model, "steps", r) in merged]
            if d:
                diffs.append(f"{irregular.SETS[s][0]} " + ", ".join(f"{r:.0%} {x:+.1f}" for r, x in d))
        lines += [f"**Plainly:** on the {tally['alone'][1]} (set, kind) pairs judged for both, the controlled form is at "
                  f"least as accurate as every baseline at every rate on **{tally['alone'][0]}**, the seed form chosen "
                  f"on validation on **{tally['seed'][0]}**"
                  + (": the time-aware form does not close the gap to the baselines." if tally["alone"][0] <= tally["seed"][0]
                     else ".")
                  + " Test points of the controlled form minus the seed form (steps dropped): " + "; ".join(diffs) + ".",
                  ""]
    # per set: seed row, controlled row, best baseline
    for s in study_sets():
        pick = controlled_choice(rows, s)
        if pick is None:
            continue
        conds = conditions(s)
        seed_model = families(earlier, s)[0]
        lines += [f"#### {irregular.SETS[s][0]}: test accuracy (%) (validation in brackets)", "",
                  "| model | " + " | ".join(("0%" if r == 0 else f"{r:.0%} {'steps' if k == 'steps' else 'per channel'}")
                                           for k, r in conds) + " |", "|---" * (1 + len(conds)) + "|"]
        for m in (pick[0], *dict.fromkeys([seed_model, *(m for m in families(earlier, s))])):
            vals = []
            for k, r in conds:
                x = merged.get((s, m, k, r))
                vals.append("not run" if x is None else f"{_pct(x['test_accuracy']):.1f} ({_pct(x['validation_accuracy']):.1f})")
            lines.append(f"| {irregular.LABELS[m]} | " + " | ".join(vals) + " |")
        best = []
        for k, r in conds:
            xs = [(float(merged[(s, b, k, r)]["test_accuracy"]), b) for b in BASELINES if (s, b, k, r) in merged]
            best.append(f"{100 * max(xs)[0]:.1f} {irregular.LABELS[max(xs)[1]]}" if xs else "—")
        lines += ["| best baseline | " + " | ".join(best) + " |", ""]
        runs = [r for r in rows if r["set"] == s and r["model"] == pick[0] and r["config"] == config_id(*pick)]
        ok = [r for r in runs if r["status"] == "ok"]
        if ok:
            lines += [f"Controlled runs here: {len(ok)}, early stopping fired in "
                      f"{sum(r['early_stopped'] == '1' for r in ok)}; epochs run {min(int(r['epochs_run']) for r in ok)}-"
                      f"{max(int(r['epochs_run']) for r in ok)}; training accuracy at the kept epoch "
                      f"{min(_pct(r['train_accuracy_best']) for r in ok):.0f}-{max(_pct(r['train_accuracy_best']) for r in ok):.0f}%.",
                      ""]
    if rows:
        lines += ["One controlled run's command:", "", "```", rows[0]["command"], "```", ""]
    return lines


def report() -> str:
    return irregular.report()


def _comma_list(flag: str, allowed) -> Callable[[str], tuple[str, ...]]:
    """An argparse type: a comma-separated, non-empty subset of ``allowed``; anything else is refused naming ``flag``."""
    import argparse

    def parse(text: str) -> tuple[str, ...]:
        items = tuple(x for x in text.split(",") if x)
        if not items or any(x not in allowed for x in items):
            raise argparse.ArgumentTypeError(f"{flag} takes a comma-separated list of {', '.join(allowed)}; got {text!r}")
        return items

    return parse


def _sets_argument(parser, seed: bool = True) -> None:
    from neuralode_rnn.argtypes import at_least

    parser.add_argument("--sets", type=_comma_list("--sets", REFERENCE_ORDER), default=REFERENCE_ORDER,
                        help="the sets to run, comma-separated (default: all, cheapest first)")
    if seed:
        parser.add_argument("--seed", type=at_least(0, "--seed"), default=SEED,
                            help=f"the runs' seed (default {SEED}; the report averages the seeds a set has whole)")


def _models_argument(parser) -> None:
    from neuralode_rnn.zoo import MODELS

    parser.add_argument("--models", type=_comma_list("--models", tuple(MODELS)), default=None,
                        help="only these models, comma-separated (processes on disjoint models may share a pass's file)")


def main(argv: list[str] | None = None) -> None:
    harness.main(argv, __doc__, {
        "run": harness.Command("train every missing run, one at a time", lambda a: run()),
        "report": harness.Command("write docs/IRREGULAR.md (both studies)", lambda a: report()),
        "plan": harness.Command("print the runs in their order", lambda a: plan()),
        "run-controlled": harness.Command("train the seed fields' controlled forms (controlled.csv)",
                                          lambda a: run_controlled()),
        "run-lr": harness.Command("choose every model's lr under the reference pass on LR_SETS (reference-lr.csv)",
                                  lambda a: run_lr(a.models), _models_argument),
        "run-reference-controlled": harness.Command(
            "train the controlled forms under the reference pass (reference-controlled.csv)",
            lambda a: run_reference_controlled(a.sets), lambda p: _sets_argument(p, seed=False)),
        "run-reference": harness.Command("train the pass with the reference's stopping rule (reference.csv)",
                                         lambda a: run_reference(a.sets, a.seed, a.models),
                                         lambda p: (_sets_argument(p), _models_argument(p))),
    })


if __name__ == "__main__":
    main()
