"""From a config to a run: data, model, and the life of a run directory.

* :func:`load_data` (the task of a config, with its validation split), :func:`build_run` (an
  untrained model), :func:`load_run` (a trained one from its run directory);
* :func:`start_run`: everything before the first epoch of :func:`~neuralode_rnn.training.train`:
  the stored config of a resumed run, the writer lock, the checks that keep runs from being mixed
  up or lost, the model, optimiser and schedule, and the checkpoint to continue from.

Rules of a run directory (module docstring of :mod:`.rundir` for its files):

* a new run refuses a directory that already holds a run, unless ``fresh`` (start again there);
  ``resume`` with ``fresh`` is refused before anything is read or written (continue or replace:
  not both);
* ``resume`` continues from last.pt, else from previous.pt with a warning naming the damaged or
  missing file; when neither is usable but epochs had finished (metrics.csv has rows, best.pt
  exists) it is an error, since starting again would overwrite them (a new run with ``fresh`` does that
  on purpose); a run killed before its first epoch ended starts at epoch 1;
* ``resume`` with ``epochs`` extends (or shortens) the run; its lr schedule stays the one it was
  planned with (``TrainConfig.schedule_epochs``);
* only the main process writes, under the directory's exclusive lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import sys
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

import solvers

from ..data import VALIDATION_SEED, SequenceDataset, load_task, validation_split
from ..distributed import DistEnv, all_reduce_sum, wrap
from ..zoo import build_from_config, count_parameters
from .budget import MemoryBudgetError, check_memory, check_step_count
from .config import TrainConfig
from .objective import network
from .optimizers import make_optimizer, make_schedule
from .rundir import CheckpointError, RunDir, RunDirBusyError
from .state import RunState

__all__ = ["VALIDATION_SEED", "build_model_for", "build_run", "checkpoint_choice", "load_data", "load_run", "open_run", "seed_everything", "start_run",
           "validation_split"]

def load_data(config: TrainConfig) -> SequenceDataset:
    """The task of a resolved config: its ``test`` split is the validation split when ``validation``
    (``data.validation_split``, one fixed choice per task: ``VALIDATION_SEED``), and every statistic
    of the preprocessing (standardisation, time-feature scales) comes from the samples the run
    trains on (see ``data.load_task``).  An unresolved config (``validation`` None: the model's default,
    ncde's a split of its own) is resolved first."""
    if config.validation is None:
        config = config.resolved()
    return load_task(config.task, drop=config.drop, drop_channels=config.drop_channels, inputs=config.inputs,
                     validation=config.validation, validation_seed=VALIDATION_SEED, **config.task_options)


def build_model_for(config: TrainConfig, data: SequenceDataset) -> nn.Module:
    """The untrained model of a resolved ``config`` for ``data`` (``zoo.build_from_config``, fitted
    to the training values where the model keeps statistics of them: GRU-D's empirical mean)."""
    return build_from_config(config, data.input_size, data.output_size, train_values=data.train.values)


def build_run(config: TrainConfig) -> tuple[TrainConfig, nn.Module, SequenceDataset]:
    """The resolved config, an untrained model (initialised from torch's global RNG) and the data
    of ``config``: what :func:`load_run` fills with a checkpoint's weights."""
    c = config.resolved()
    data = load_data(c)
    return c, build_model_for(c, data), data


def load_run(run_dir: str, which: str | None = "last", **overrides: Any
             ) -> tuple[TrainConfig, nn.Module, SequenceDataset]:
    """The config, the trained model (weights of ``which`` checkpoint) and the data of a run.

    ``which`` is "last" (falling back to previous.pt with a warning when last.pt is damaged or
    missing), "previous", "best" (only for a run chosen on a validation split: see
    :func:`checkpoint_choice`) or None (:func:`checkpoint_choice`'s default).  ``overrides``
    replace config entries before the model is built (e.g. ``method="rk4"`` to evaluate a trained
    continuous model with another solver).
    """
    config, model, data, _, _ = open_run(run_dir, which, **overrides)
    return config, model, data


def checkpoint_choice(config: TrainConfig, rd: RunDir, which: str | None) -> str:
    """The checkpoint to load from ``rd``: ``which``, or for None "best" when the run was chosen on
    a validation split (``config.validation > 0``) and has a best.pt, else "last".

    "best" of a run without a validation split is refused (ValueError): its per-epoch metric was
    measured on the test split, so its best epoch (a best.pt written before best.pt required a
    validation split) is selection on the test set."""
    validated = isinstance(config.validation, (int, float)) and config.validation > 0
    if which is None:
        return "best" if validated and rd.best.exists() else "last"
    if which == "best" and not validated:
        raise ValueError(f"--checkpoint best (which='best') needs a run whose epochs were chosen on a validation "
                         f"split; {rd.path} was trained with validation={config.validation!r}, so its epochs were "
                         f"measured on the test split (choosing the best one would select on the test set): use "
                         f"--checkpoint last, or train with --validation SHARE")
    return which


def open_run(run_dir: str, which: str | None = "last", **overrides: Any
             ) -> tuple[TrainConfig, nn.Module, SequenceDataset, dict, str]:
    """:func:`load_run`, and the checkpoint's state dict and file name (e.g. "previous.pt" after a
    fallback)."""
    rd = RunDir(run_dir)
    config = TrainConfig.from_dict(rd.read_config())
    state, path = rd.open_checkpoint(checkpoint_choice(config, rd, which))
    config, model, data = build_run(dataclasses.replace(config, **overrides))
    model.load_state_dict(state["model"])
    return config, model, data, state, path.name


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global RNGs (model initialisation draws from torch's)."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def _agree(failure: BaseException | None, env: DistEnv) -> None:
    """Raise ``failure`` on every rank if any rank has one (a DDP job must not half start)."""
    if env.active:
        flag = torch.tensor([0.0 if failure is None else 1.0], dtype=torch.float64)
        all_reduce_sum(flag, env)
        if flag.item() > 0 and failure is None:
            failure = RuntimeError("another rank of this job could not start the run (see its message)")
    if failure is not None:
        raise failure


def _resolve(config: TrainConfig) -> TrainConfig:
    if config.resume and config.fresh:
        # checked before the stored config is read or anything is locked or removed
        raise ValueError("resume=True continues the run in run_dir, fresh=True replaces it: set one of them")
    if not config.resume:
        return config.resolved()
    if config.run_dir is None:
        raise ValueError("resume=True needs run_dir (the directory of the run to continue)")
    stored = TrainConfig.from_dict(RunDir(config.run_dir).read_config())
    return config.continued(stored).resolved()


def _check_directory(c: TrainConfig, rd: RunDir) -> None:
    """Refuse to start a new run over an existing one."""
    if c.resume or c.fresh or not rd.holds_run():
        return
    what = "a run"
    try:
        what = f"a run of {TrainConfig.from_dict(rd.read_config()).resolved().label}"
    except Exception:  # noqa: BLE001 - only for the message
        pass
    done = rd.finished_epochs()
    raise FileExistsError(f"{rd.path} already holds {what} ({done} epoch{'s' * (done != 1)} finished); continue it "
                          f"with --resume {rd.path} (resume=True), start it again with --fresh (fresh=True, "
                          f"replaces it), or choose another run directory")


def _continue_from(c: TrainConfig, rd: RunDir, run: RunState, env: DistEnv) -> None:
    """Restore ``run`` from the run directory's checkpoint (see the module docstring's rules)."""
    with warnings.catch_warnings():
        if not env.is_main:
            warnings.simplefilter("ignore")
        try:
            state = rd.load_checkpoint("last", map_location=env.device)
        except CheckpointError as exc:
            done = rd.finished_epochs()
            if done or rd.best.exists():
                raise CheckpointError(
                    f"{exc}. The run has finished epochs ({done} in {rd.metrics_path.name}"
                    f"{', and a best.pt' if rd.best.exists() else ''}): resuming from epoch 1 would overwrite "
                    f"them. Restore a checkpoint, or start the run again with --run-dir {rd.path} --fresh (fresh=True, "
                    f"without resume) and its settings") from None
            if env.is_main and not c.quiet:
                print(f"{rd.path}: no epoch had finished yet; starting {c.label} at epoch 1", file=sys.stderr)
            return
    run.restore(state)
    if c.epochs < run.epoch:
        raise ValueError(f"{rd.path} has finished {run.epoch} epochs; epochs={c.epochs} cannot shorten it below "
                         f"that (pass epochs > {run.epoch} to extend it)")


def _build_model(c: TrainConfig, data: SequenceDataset, device: str) -> nn.Module:
    """:func:`build_model_for` on ``device``; a failed allocation (a hidden size too large for the
    machine) is a MemoryError saying so, not an allocator traceback."""
    try:
        return build_model_for(c, data).to(device)
    except RuntimeError as exc:  # torch.OutOfMemoryError is one; the CPU allocator raises a plain one
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not (isinstance(exc, torch.OutOfMemoryError) or "alloc" in text.lower()):
            raise
        raise MemoryError(f"building {c.label} with hidden_size {c.hidden_size} on {device} ran out of memory "
                          f"({text}); use a smaller --hidden-size") from None


def _release(lock, rd: RunDir | None, created: tuple[bool, bool]) -> None:
    """Release the writer lock of a run that did not start, and remove what taking it created (the
    run directory, if it was made here and is still empty; writer.lock, if it was made here), so a
    refused directory is left as it was."""
    if lock is None:
        return
    lock.release()
    made_dir, made_lock = created
    with contextlib.suppress(OSError):
        if made_lock:
            rd.lock_path.unlink()
        if made_dir:
            rd.path.rmdir()  # only when empty


def start_run(config: TrainConfig, env: DistEnv) -> RunState:
    """Everything before the first epoch (see the module docstring); the caller must release
    ``run.lock`` when the run ends (``train`` does, however it ends).

    What can be refused without writing is refused before the directory is locked or created: a
    directory that already holds another run, a run whose estimated memory exceeds what is
    available (``budget.check_memory``, once from the config, again with the data's sizes before the
    model exists), a fixed-step grid beyond the solver's step limit (``budget.check_step_count``).
    A run that fails before its first epoch leaves a directory it created or locked as it was."""
    c = _resolve(config)
    c.device = env.device  # config.json records the device the run used
    if c.tanh_kernel is None:  # recorded in config.json, so a resumed run computes the same bits (train pins it)
        c = dataclasses.replace(c, tanh_kernel=solvers.tanh_kernel(getattr(torch, c.dtype), env.device))
    rd = RunDir(c.run_dir) if c.run_dir is not None else None
    failure, lock = None, None
    created = (rd is not None and not rd.path.exists(), rd is not None and not rd.lock_path.exists())
    try:
        if rd is not None:
            _check_directory(c, rd)  # before the lock: a refused directory is not touched
        check_memory(c, c.task_options.get("T"))
        if rd is not None and env.is_main:
            lock = rd.lock()
        if rd is not None:
            _check_directory(c, rd)  # again under the lock: another run may have started meanwhile
    except (RunDirBusyError, FileExistsError, ValueError, MemoryBudgetError) as exc:
        failure = exc
    try:
        _agree(failure, env)
    except BaseException:
        _release(lock, rd, created)
        raise
    try:
        seed_everything(c.seed)
        data = load_data(c)
        length = data.train.values.shape[1]
        check_step_count(c, length, data.train.times)
        check_memory(c, length, data.input_size, data.output_size, data.train.times)
        model = _build_model(c, data, env.device)
        optimizer = make_optimizer(c.optimizer, model, c.lr, c.weight_decay)
        schedule = make_schedule(c.schedule, optimizer, c.schedule_epochs or c.epochs, c.plateau_factor,
                                 c.plateau_patience)
        run = RunState(config=c, model=model, net=wrap(network(model, data.kind), env), optimizer=optimizer,
                       schedule=schedule, data=data, env=env, run_dir=rd, parameters=count_parameters(model),
                       lock=lock)
        if rd is not None and env.is_main and c.fresh:
            rd.clear()  # only now: a fresh start that cannot start keeps the old run
        if rd is not None and c.resume:
            _continue_from(c, rd, run, env)
        if run.writes:
            rd.write_config(c.stored())
        return run
    except BaseException:
        _release(lock, rd, created if rd is not None and not rd.holds_run() else (False, False))
        raise
