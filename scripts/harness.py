"""The harness every study script shares (``irregular.py``, ``continuous.py``, ``results.py``).

A study is its grid (data in the script), a ``run_one(job) -> row`` that trains one run, and a
``report() -> str`` that writes its page from the rows.  What they share lives here, once:

* rows: :func:`read_rows` and :func:`append_row` keep a study's results in a CSV, one row per
  finished run, appended (and synced) as each run ends, so a killed study continues where it
  stopped;
* :func:`train_command`: the ``neuralode-rnn train`` command that repeats a run, stored with it;
* :func:`run_jobs`: runs in a pool of spawned worker processes (or in this process), each finished
  run handed back in completion order;
* :func:`main`: the script's command line, ``plan`` / ``run`` / ``report`` sub-commands.

``scripts`` is a package so tests import a study as ``from scripts import irregular`` (the repo
root on ``sys.path``: pytest's ``pythonpath``); ``python scripts/NAME.py`` keeps working, each
script putting the repo root on ``sys.path`` first.
"""

from __future__ import annotations

import argparse
import csv
import functools
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["ROOT", "Command", "append_row", "main", "read_rows", "run_jobs", "train_command", "workers_argument"]


# --------------------------------------------------------------------------------------- rows
def read_rows(path: Path) -> list[dict]:
    """The rows of the CSV at ``path`` (values as strings), [] when it does not exist yet."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_row(path: Path, fields: Sequence[str], row: dict) -> None:
    """Append ``row`` to the CSV at ``path`` (its directory and header made when new): the columns
    ``fields`` in that order, a missing one empty; flushed and synced, so a killed study keeps it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields), lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in fields})
        f.flush()
        os.fsync(f.fileno())


# ------------------------------------------------------------------------------------ command
# TrainConfig field -> flag, in the order flags appear in a command.  Solver flags are written
# only for models that have a solver, the recipe ones only for continuous models (the kinds that
# read them); the rest whenever they differ from TrainConfig's default.
_TASK_OPTIONS = (("permute", "--permute"), ("n_train", "--n-train"), ("n_test", "--n-test"), ("T", "--seq-len"))
_SOLVER = ("method", "eps", "step_size", "rtol", "atol", "gradient", "interpolation", "beta", "gamma",
           "noise_sigma", "noise", "stable_margin", "init_std")
_RECIPE = ("recipe", "recipe_solvers", "penalty")
_FLAGS = ("drop", "drop_channels", "model", "inputs", "method", "recipe", "recipe_solvers", "penalty", "eps",
          "interpolation", "step_size", "rtol", "atol", "gradient", "beta", "gamma", "noise_sigma", "noise",
          "stable_margin", "init_std", "optimizer", "lr", "weight_decay", "schedule", "validation",
          # issue 19: the references' protocol and the MLP field's size
          "patience", "plateau_factor", "plateau_patience", "validate_every", "tie_break", "stop_on", "weight_penalty",
          "field_width", "field_depth")
# the tail: hidden size, epochs, batch size and seed always, clip, threads and dtype when set
_ALWAYS = ("hidden_size", "epochs", "batch_size", "clip", "seed", "threads", "dtype")
# where and how a run is kept or watched; tanh_kernel is this machine's choice, recorded with the run
_RUN_CONTROLS = ("run_dir", "resume", "fresh", "stop_after", "quiet", "device",
                 "memory_limit", "tanh_kernel",
                 "sources")  # where each value came from (flag, preset, default): a record, not a setting


def _model_penalty(model: str) -> float:
    """The weight penalty ``TrainConfig`` gives ``model`` when it is left at None."""
    from neuralode_rnn.training import TrainConfig

    return TrainConfig(model=model).resolved().weight_penalty


# settings whose None means "the model's default" (ncde's preset: the reference's protocol) and what
# None is for the other models: written when they differ from the latter or from the model's own
_PLAIN = {"validation": 0.0, "schedule": "step", "plateau_patience": 10, "validate_every": 1, "stop_on": "validation"}


@functools.lru_cache(maxsize=None)
def _model_default(task: str, model: str, name: str, validation: float | None) -> Any:
    """What ``TrainConfig`` gives ``model`` on ``task`` for the setting ``name`` left at None, with the
    validation split ``validation`` (a preset's protocol comes only with the preset's own split)."""
    from neuralode_rnn.training import TrainConfig

    return getattr(TrainConfig(task=task, model=model, validation=validation).resolved(), name)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    short = format(value, "g")
    return short if float(short) == value else repr(value)  # 15/85 keeps every digit


def train_command(config, run_dir: str = "runs/X") -> str:
    """The ``neuralode-rnn train`` command that repeats the run of ``config`` (a ``TrainConfig``),
    with ``--run-dir run_dir``.

    Flags in one fixed order: the task and its loader options, the model and every setting that
    differs from ``TrainConfig``'s default (solver settings only for a model with a solver, the
    recipe's only for a continuous model), then hidden size, epochs, batch size, clip, seed,
    threads.  A setting the command line cannot express raises ``ValueError`` naming it, so a
    stored command never silently trains something else."""
    from neuralode_rnn.training import TrainConfig
    from neuralode_rnn.zoo import model_spec

    default = TrainConfig()
    kind = model_spec(config.model).kind
    parts = ["neuralode-rnn train", f"--task {config.task}"]
    options = dict(config.task_options)
    for key, flag in _TASK_OPTIONS:
        if key in options:
            value = options.pop(key)
            if key == "permute":
                if value:
                    parts.append(flag)
            else:
                parts.append(f"{flag} {value}")
    if options:
        raise ValueError(f"task_options {sorted(options)} have no train flag; the command would not repeat the run")
    for name in _FLAGS:
        value = getattr(config, name)
        if name == "model":
            parts.append(f"--model {value}")
        elif value is None or value == getattr(default, name):
            continue
        elif name in _PLAIN and value == _PLAIN[name] and value == _model_default(
                config.task, config.model, name, None if name == "validation" else config.validation):
            continue
        elif name == "weight_penalty" and value == _model_penalty(config.model):
            continue  # the model's default, what None resolves to
        elif name in _SOLVER and kind == "torch" or name in _RECIPE and kind != "continuous":
            continue
        elif name == "recipe_solvers" and config.recipe not in ("cycle", "random"):
            continue
        else:
            parts.append(f"{_flag(name)} {_text(value)}")
    for name in _ALWAYS:
        value = getattr(config, name)
        if value is not None and (name not in ("clip", "threads", "dtype") or value != getattr(default, name)):
            parts.append(f"{_flag(name)} {_text(value)}")
    written = {"task", "task_options", *_FLAGS, *_ALWAYS, *_RUN_CONTROLS}
    for name in sorted(vars(default)):
        if name not in written and getattr(config, name) != getattr(default, name):
            raise ValueError(f"{name}={getattr(config, name)!r} has no train flag; the command would not repeat the run")
    parts.append(f"--run-dir {run_dir}")
    return " ".join(parts)


# ---------------------------------------------------------------------------------------- run
def run_jobs(work: Callable[[Any], Any], pending: list, workers: int,
             finished: Callable[[Any, Any], None], *, in_process: bool = False,
             max_tasks_per_child: int | None = None) -> None:
    """``work(job)`` for every job of ``pending``, at most ``workers`` at a time in spawned worker
    processes (``in_process``: one after another in this process), started in the order of
    ``pending``.  ``finished(job, result)`` runs here as each one ends, in completion order; it may
    add jobs to ``pending`` (the same list: at the front to run next, at the end to run last).  A
    worker is replaced after ``max_tasks_per_child`` jobs (None: never), which bounds what a long
    study's workers accumulate (Python 3.11 and later)."""
    if in_process:
        while pending:
            job = pending.pop(0)
            finished(job, work(job))
        return
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    recycle = {} if max_tasks_per_child is None or sys.version_info < (3, 11) else \
        {"max_tasks_per_child": max_tasks_per_child}  # Python 3.10's pool keeps its workers
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), **recycle) as pool:
        running: dict = {}
        while pending or running:
            while pending and len(running) < workers:
                job = pending.pop(0)
                running[pool.submit(work, job)] = job
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                finished(job, future.result())


# --------------------------------------------------------------------------------------- main
@dataclass(frozen=True)
class Command:
    """A sub-command of a study script: ``handler(args)`` does it and returns text to print (the
    report) or None; ``arguments(parser)`` declares its flags."""

    help: str
    handler: Callable[[argparse.Namespace], str | None]
    arguments: Callable[[argparse.ArgumentParser], None] | None = None


def workers_argument(parser: argparse.ArgumentParser, default: int, help: str) -> None:
    """``--workers N``: parallel trainings, a positive int (refused with a one-line usage error otherwise)."""
    from neuralode_rnn.argtypes import positive

    parser.add_argument("--workers", type=positive(int, "--workers"), default=default, help=help)


def main(argv: Iterable[str] | None, doc: str | None, commands: dict[str, Command]) -> None:
    """The command line of a study script: ``doc`` (its module docstring) as the description,
    one sub-command per entry of ``commands``; the chosen handler's text, if any, printed."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in commands.items():
        p = sub.add_parser(name, help=command.help)
        if command.arguments is not None:
            command.arguments(p)
    args = parser.parse_args(None if argv is None else list(argv))
    text = commands[args.command].handler(args)
    if text is not None:
        print(text)
