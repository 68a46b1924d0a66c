"""The training loop: epochs of batches, the NaN guard, and the callbacks around them.

>>> from neuralode_rnn.training import TrainConfig, train
>>> result = train(TrainConfig(task="digits", model="lipschitz", method="midpoint", epochs=2,
...                            task_options={"n_train": 64, "n_test": 32}, hidden_size=8,
...                            run_dir="runs/demo"))                       # doctest: +SKIP

Setting up (config, resume, lock, model, optimiser) is :func:`~.runs.start_run`; what a batch's
loss is, :func:`~.objective.batch_loss`; writing files and printing, :mod:`.callbacks`.

Determinism and resume.  Everything random is drawn from the seed: model initialisation from the
global torch RNG seeded at the start, and the shuffling order of epoch e from a local generator
seeded ``(seed, e)``.  The checkpoint written after every epoch holds the model, optimiser,
schedule, epoch, metrics so far and the python/numpy/torch RNG states, so a run killed at any
point and restarted with ``resume=True`` replays the unfinished epoch from its start and ends
with the same metrics and parameters as a run that was never interrupted.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

import solvers

from ..distributed import DistEnv, all_reduce_sum, init_from_env
from .callbacks import Callback, as_callbacks
from .config import TrainConfig
from .evaluation import evaluate
from .objective import batch_loss, weight_penalty_term
from .optimizers import steps_on_metric
from .recipes import parse_recipe_solvers, recipe_solver, recipe_specs
from .runs import start_run
from .state import RunState

__all__ = ["NonFiniteLossError", "TrainResult", "epoch_seed", "train"]


class NonFiniteLossError(RuntimeError):
    """The training loss (or gradient) became NaN or infinite; the run stopped, the last good
    checkpoint is kept."""


@dataclass
class TrainResult:
    """What ``train`` returns.  ``summary`` (runs with a validation split that ended, else None):
    ``best_epoch``, ``early_stopped``, ``epochs_run``, and ``validation_*``/``test_*`` loss and
    accuracy of the best-validation weights, which ``model`` then holds (see ``_finish``)."""

    config: TrainConfig
    model: nn.Module
    rows: list[dict]
    parameters: int
    status: str
    run_dir: str | None
    summary: dict | None = None


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch``'s shuffling order."""
    return (seed * 1_000_003 + epoch) % (2 ** 63)


def train(config: TrainConfig, callbacks: Iterable[Callback | Callable[[int, dict], None]] | None = None,
          env: DistEnv | None = None) -> TrainResult:
    """Train ``config.model`` on ``config.task``; see the module docstring.

    ``callbacks``: None for :func:`~.callbacks.default_callbacks` (checkpoints, metrics, curves,
    status, progress, per-epoch lines), else exactly the given ones (Callback objects or functions
    ``f(epoch, row)``).  Raises :class:`NonFiniteLossError` when the loss or the gradient norm
    becomes NaN/inf: nothing of that step is applied or saved, and ``last.pt`` still holds the last
    good epoch.
    """
    env = env if env is not None else init_from_env(device=config.device)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    run = start_run(config, env)
    # every process of this run, and every resumption of it, computes tanh with the recorded kernel
    previous_pin = solvers.pin_tanh_kernel(run.config.tanh_kernel)
    forced = os.environ.get("SOLVERS_TANH_KERNEL")
    if forced and forced != run.config.tanh_kernel and env.is_main:
        warnings.warn(f"SOLVERS_TANH_KERNEL={forced} is not used: this run computes tanh with the kernel recorded "
                      f"in its config ({run.config.tanh_kernel!r})", stacklevel=2)
    hooks = as_callbacks(callbacks, run.config)
    error = None
    try:
        for cb in hooks:
            cb.on_start(run)
        _run_epochs(run, hooks)
    except BaseException as exc:
        error = exc
        raise
    finally:
        try:
            for cb in hooks:
                try:
                    cb.on_end(run, error)
                except Exception:  # noqa: BLE001 - never hide the error that ended the run
                    if error is None:
                        raise
        finally:
            solvers.pin_tanh_kernel(previous_pin)
            if run.lock is not None:
                run.lock.release()
    return TrainResult(run.config, run.model, run.rows, run.parameters, run.status, run.config.run_dir, run.summary)


def _run_epochs(run: RunState, hooks) -> None:
    c, env, data = run.config, run.env, run.data
    dtype = getattr(torch, c.dtype)
    ran = 0
    run.status = "finished"
    # recipes (``recipes``): the solver of batch k depends only on (seed, k), so a resumed run
    # continues the schedule of an uninterrupted one
    choices = parse_recipe_solvers(c.recipe_solvers) if c.recipe in ("cycle", "random") else ()
    # one specification per entry, passed to the forward call: the model's own is never changed,
    # so it is evaluated with its as-trained solver whatever batch a run stops in
    specs = recipe_specs(run.model, choices, c.step_size, c.eps) if choices else {}
    penalty_step = (c.step_size or c.eps) if c.recipe == "penalty" else None
    early = False
    for epoch in range(run.epoch + 1, c.epochs + 1):
        # checked first, so a run killed after its stopping epoch's checkpoint stops at once when resumed
        why = _stop_reason(run)
        if why is not None:
            early = True
            run.status = f"stopped early after epoch {run.epoch}: {why} (best epoch {run.best_epoch})"
            break
        if c.stop_after is not None and ran >= c.stop_after:
            run.status = f"stopped after epoch {epoch - 1} (stop_after={c.stop_after}); continue with resume"
            break
        t0 = time.perf_counter()
        run.model.train()
        sums = torch.zeros(3, dtype=torch.float64)
        nfe, n_batches = 0, 0
        n_total = math.ceil(data.train.n_samples / c.batch_size)
        for i, batch in enumerate(data.train.batches(c.batch_size, shuffle=True, seed=epoch_seed(c.seed, epoch))):
            spec = specs[recipe_solver(c.recipe, choices, c.seed, (epoch - 1) * n_total + i)] if choices else None
            try:
                b = batch_loss(run.net, run.model, batch, data.kind, c.eps, env, dtype,
                               penalty=c.penalty if c.recipe == "penalty" else 0.0, penalty_step=penalty_step,
                               spec=spec)
            except solvers.NonFiniteStateError as exc:  # the model stopped on a NaN state: a NaN loss
                raise NonFiniteLossError(f"{_nan_message(run, epoch, i + 1, math.nan, math.nan)} ({exc})") from exc
            # sum / global count * world: DDP's gradient average then equals one process's mean
            loss = b.loss_sum * (env.world_size / b.total)
            if c.weight_penalty:  # the same on every rank: DDP's average keeps it
                loss = loss + c.weight_penalty * weight_penalty_term(run.model)
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), c.clip if c.clip else math.inf)
            batch_sums = torch.tensor([b.loss_sum.item(), float(b.correct), float(b.count)], dtype=torch.float64)
            all_reduce_sum(batch_sums, env)
            if not (math.isfinite(batch_sums[0].item()) and math.isfinite(float(grad_norm))):
                raise NonFiniteLossError(_nan_message(run, epoch, i + 1, batch_sums[0].item(), float(grad_norm)))
            run.optimizer.step()
            sums += batch_sums
            nfe += b.nfe
            n_batches += 1
            info = {"epoch": epoch, "batch": i + 1, "batches": n_total, "nfe": b.nfe,
                    "spec": spec if spec is not None else getattr(run.model, "spec", None),
                    "loss": batch_sums[0].item() / batch_sums[2].item(),
                    "accuracy": None if data.kind == "regression" else batch_sums[1].item() / batch_sums[2].item()}
            for cb in hooks:
                cb.on_batch(run, info)
        lr = run.optimizer.param_groups[0]["lr"]
        if not steps_on_metric(c.schedule):
            run.schedule.step()
        test = evaluate(run.model, data.test, data.kind, c.eps, c.eval_batch_size, env, env.device, dtype)
        seconds = time.perf_counter() - t0
        row = {
            "epoch": epoch, "task": c.task, "model": c.model, "lr": lr,
            "train_loss": sums[0].item() / sums[2].item(),
            "train_accuracy": None if data.kind == "regression" else sums[1].item() / sums[2].item(),
            "test_loss": test["loss"], "test_accuracy": test["accuracy"],
            "nfe": nfe / max(n_batches, 1),
            "epoch_seconds": seconds,
            "wall_seconds": (run.rows[-1]["wall_seconds"] if run.rows else 0.0) + seconds,
            "evaluated_on": "validation" if c.validation else "test",
        }
        run.rows.append(row)
        run.epoch = epoch
        ran += 1
        if not _reading(c, epoch):
            # the protocol reads the validation metric of epochs 1, 1 + n, ... and the last only (the
            # reference: every 10th), so the kept weights, early stopping and the plateau schedule ignore this one
            run.improved = False
            for cb in hooks:
                cb.on_epoch(run, row)
            continue
        metric = -test["loss"] if test["accuracy"] is None else test["accuracy"]
        # tie_break "loss": of the epochs with the best accuracy the one with the lowest loss is kept (on
        # a small validation split the accuracy saturates while the fit still improves); early stopping
        # and the plateau schedule still read the accuracy alone
        gain = metric > run.best
        tie = c.tie_break == "loss" and test["accuracy"] is not None and metric == run.best
        run.improved = gain or (tie and test["loss"] < run.best_loss)
        if gain:
            run.gain_epoch = epoch
        if run.improved:
            run.best, run.best_loss = metric, test["loss"]
            run.best_epoch = epoch
            if c.validation:
                run.best_model = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
        if c.stop_on == "training":  # the reference's rule reads the training split in eval mode (``stopping``)
            fit = evaluate(run.model, data.train, data.kind, c.eps, c.eval_batch_size, env, env.device, dtype)
            run.plateau.update(epoch, fit["loss"], fit["accuracy"])
        if steps_on_metric(c.schedule):
            run.schedule.step(metric)  # the validation metric (plateau needs a validation split: config)
        for cb in hooks:
            cb.on_epoch(run, row)
    if c.validation and not run.status.startswith("stopped after"):
        _finish(run, early, dtype)


def _reading(c, epoch: int) -> bool:
    """Whether the metrics of ``epoch`` are read (the kept weights, early stopping, the plateau
    schedule): epochs 1, 1 + n, 1 + 2n, ... with ``validate_every`` n (the reference: every 10th), and the last."""
    return (epoch - 1) % c.validate_every == 0 or epoch == c.epochs


def _stop_reason(run: RunState) -> str | None:
    """Why early stopping ends the run after its last finished epoch, or None (checked before each
    epoch, so a run killed after its stopping epoch's checkpoint stops at once when resumed)."""
    c = run.config
    if c.patience is None or run.epoch == 0:
        return None
    if c.stop_on == "validation":
        if run.epoch - run.gain_epoch >= c.patience:
            return f"no validation improvement in {c.patience} epochs"
        return None
    if not _reading(c, run.epoch):
        return None
    stale = run.plateau.stale(run.epoch, c.patience)
    return None if stale is None else f"no improvement in {stale} for more than {c.patience} epochs"


def _finish(run: RunState, early: bool, dtype: torch.dtype) -> None:
    """The end of a run with a validation split (the references' protocol): the weights of the best
    validation epoch restored into ``run.model`` and scored on the validation split and, once, on
    the task's test split (``data.final_test``, never read before); ``run.summary`` says so."""
    c, env, data = run.config, run.env, run.data
    if run.best_model is None:  # no epoch finished
        return
    run.model.load_state_dict(run.best_model)
    val = evaluate(run.model, data.test, data.kind, c.eps, c.eval_batch_size, env, env.device, dtype)
    test = evaluate(run.model, data.final_test, data.kind, c.eps, c.eval_batch_size, env, env.device, dtype) \
        if data.final_test is not None else {"loss": None, "accuracy": None}
    run.summary = {"task": c.task, "model": c.model, "best_epoch": run.best_epoch, "early_stopped": early,
                   "epochs_run": run.epoch, "epochs_cap": c.epochs, "patience": c.patience, "stop_on": c.stop_on,
                   "validation_loss": val["loss"], "validation_accuracy": val["accuracy"],
                   "test_loss": test["loss"], "test_accuracy": test["accuracy"],
                   "weights": f"best validation epoch ({run.best_epoch})"}


def _nan_message(run: RunState, epoch: int, batch: int, loss: float, grad_norm: float) -> str:
    c, rd = run.config, run.run_dir
    what, value = ("loss", loss) if not math.isfinite(loss) else ("gradient norm", grad_norm)
    kept = (f"The last good checkpoint ({rd.last}, epoch {run.epoch}) is kept. " if rd is not None and rd.last.exists()
            else "No checkpoint was written yet. ")
    return (f"the training {what} became {value} at epoch {epoch}, batch {batch} of {c.label}; the run stopped "
            f"without applying that step. {kept}Try a smaller --lr (now {c.lr}), --clip, or a smaller "
            f"--eps/--step-size.")
