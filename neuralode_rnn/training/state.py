"""The state of a training run as the loop and its callbacks see it (:class:`RunState`), and the
checkpoint format: what is saved after an epoch and restored on resume, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..data import SequenceDataset
from ..distributed import DistEnv
from .config import TrainConfig
from .rundir import Lock, RunDir, rng_state, set_rng_state
from .stopping import TrainingPlateau

__all__ = ["CHECKPOINT_FORMAT", "RunState"]

CHECKPOINT_FORMAT = 2
"""Version of the checkpoint dict (1: before ``format`` was recorded; the same keys)."""


@dataclass
class RunState:
    """One run in progress.

    Attributes:
        config: the resolved config (for a resume: the stored one with this invocation's controls).
        model, net: the model, and what the loop calls (the model, per-step readout, DDP wrapper).
        optimizer, schedule: as built by ``optimizers``; restored from the checkpoint on resume.
        data: the task's splits (``test`` is the validation split when ``config.validation``).
        env: this process's place in a DDP job (``env.is_main`` writes files).
        run_dir: the run directory, or None when nothing is written.
        rows: one metrics dict per finished epoch (``rundir.METRIC_FIELDS``).
        epoch: the last finished epoch (0 before the first).
        start_epoch: the last finished epoch when this invocation started.
        best: the best per-epoch metric so far (accuracy, or -loss for regression) of the evaluated
            split: the validation split when ``config.validation``, else the test split.
        improved: whether the last finished epoch set a new best (best.pt is written only when
            that split is the validation split: ``callbacks.Checkpoints``).
        best_epoch: the epoch that set ``best`` (0 before the first).
        best_loss: the evaluated loss of ``best_epoch`` (ties of ``best`` broken on it with
            ``TrainConfig.tie_break="loss"``).
        gain_epoch: the last epoch that raised ``best`` itself (early stopping counts from it; it is
            ``best_epoch`` unless a tie moved the kept epoch).
        plateau: the best training loss and accuracy at the readings and the epochs that set them
            (``TrainConfig.stop_on="training"``: the reference's stopping rule, ``stopping``).
        best_model: with a validation split, a copy of the weights of ``best_epoch`` (restored and
            scored on the test split when the run ends; kept in the checkpoint).
        summary: after a run with a validation split ends (not stop_after): the best epoch, whether
            early stopping fired, and the validation and test metrics of the restored weights.
        parameters: trainable real parameters (a complex entry counts twice).
        status: "running", then "finished", "stopped after ..." or "failed: ...".
        lock: the writer lock held on ``run_dir`` (main process only).
    """

    config: TrainConfig
    model: nn.Module
    net: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Any
    data: SequenceDataset
    env: DistEnv
    run_dir: RunDir | None = None
    rows: list[dict] = field(default_factory=list)
    epoch: int = 0
    start_epoch: int = 0
    best: float = float("-inf")
    best_loss: float = float("inf")
    gain_epoch: int = 0
    plateau: TrainingPlateau = field(default_factory=TrainingPlateau)
    improved: bool = False
    best_epoch: int = 0
    best_model: dict | None = None
    summary: dict | None = None
    parameters: int = 0
    status: str = "running"
    lock: Lock | None = None

    @property
    def writes(self) -> bool:
        """Whether this process writes the run directory (the main process, when there is one)."""
        return self.env.is_main and self.run_dir is not None

    def checkpoint(self) -> dict:
        """Everything a resumed run needs to continue exactly: weights, optimiser, schedule, epoch,
        metrics so far, best metric and every RNG state."""
        return {"format": CHECKPOINT_FORMAT, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(), "epoch": self.epoch, "rows": self.rows, "best": self.best,
                "rng": rng_state(), "config": self.config.to_dict(), "parameters": self.parameters,
                "best_epoch": self.best_epoch, "best_model": self.best_model, "best_loss": self.best_loss,
                "gain_epoch": self.gain_epoch, "training_plateau": self.plateau.state_dict()}

    def restore(self, state: dict) -> None:
        """Continue from a :meth:`checkpoint` dict (the RNG states included)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.rows, self.epoch, self.best = list(state["rows"]), int(state["epoch"]), float(state["best"])
        self.best_epoch, self.best_model = int(state.get("best_epoch", 0)), state.get("best_model")
        self.best_loss = float(state.get("best_loss", float("inf")))
        self.gain_epoch = int(state.get("gain_epoch", self.best_epoch))
        self.plateau = TrainingPlateau.from_state(state.get("training_plateau"))
        self.start_epoch = self.epoch
        set_rng_state(state["rng"])
