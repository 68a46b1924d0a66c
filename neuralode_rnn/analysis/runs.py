"""Runs for the analysis: a thin adapter over the training stack's run directories.

A run directory is what ``neuralode-rnn train --run-dir DIR`` writes (``neuralode_rnn.training``):
config.json (a :class:`~neuralode_rnn.training.TrainConfig`) and its checkpoints.  :func:`load_run`
rebuilds the model with :func:`neuralode_rnn.training.load_run` (so through ``zoo``;
``noise_sigma > 0`` gives the noise-trained :class:`~neuralode_rnn.noise.StochasticRNN`) and
:meth:`Run.batch` feeds it the task's samples at the times training used
(:func:`neuralode_rnn.training.model_times`: eps * t).  :func:`random_run` builds an untrained
model the same way, for ``compare-solvers --random``.

Every run type ``train`` writes loads: any task kind (classification, per-step sequence such as
copy memory, regression such as adding), irregular samples (``drop``), complex (unitary) and
noise-trained models, discrete cells and LSTM/GRU.  What an analysis needs is checked where it is
needed: :meth:`Run.require_continuous` for the parts that integrate the field with other solvers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from ..data import SequenceDataset
from ..training import RunDir, TrainConfig, build_run, checkpoint_choice, model_times, open_run
from ..zoo import is_continuous, model_spec

__all__ = ["Run", "load_run", "random_run"]


@dataclass
class Run:
    """A loaded run: the model (eval mode), its resolved config and data, directory, checkpoint
    file and the metrics row of the checkpoint's epoch."""

    model: nn.Module
    config: TrainConfig
    data: SequenceDataset
    path: Path | None = None
    checkpoint: str | None = None
    metrics: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name if self.path is not None else f"random-{self.config.model}"

    @property
    def kind(self) -> str:
        """The task kind: "classification", "sequence" (per-step targets) or "regression"."""
        return self.data.kind

    @property
    def continuous(self) -> bool:
        """A field integrated by a solver (ContinuousRNN, or StochasticRNN evaluated as its ODE)."""
        return is_continuous(self.model)

    def require_continuous(self, what: str) -> None:
        """Raise ValueError saying why ``what`` needs a continuous model, for any other run."""
        if not self.continuous:
            raise ValueError(f"{what} integrates the trained field with other solvers, so it needs a continuous "
                             f"model; {self.name} is {self.config.model!r} ({model_spec(self.config.model).kind})")

    def batch(self, split: str = "test", n: int | None = None) -> tuple[Tensor, Tensor | None, Tensor]:
        """(values, times, targets): the first ``n`` samples of ``split`` ("train" or "test"), with
        the times the model was trained on (per-sample times (n, T) for an irregular task)."""
        part = getattr(self.data, split)
        n = len(part) if n is None else min(n, len(part))
        if n < 1:
            raise ValueError(f"{self.name}: the {split} split has no samples to analyse")
        values = part.values[:n].to(getattr(torch, self.config.dtype))
        times = None if part.times is None else part.times[:n]
        return values, model_times(self.model, values, times, self.config.eps), part.targets[:n]


def load_run(run_dir: str | Path, which: str | None = None) -> Run:
    """The run in ``run_dir`` (written by ``neuralode-rnn train``) with the weights of ``which``
    checkpoint: None (default) for best.pt when the run chose it on a validation split, else
    last.pt (``training.checkpoint_choice``: never an epoch chosen on the test split); "best"
    (only for a run with a validation split; falling back to "last" with a warning when there is
    no best.pt); "last", falling back to previous.pt when last.pt is damaged; or "previous"."""
    rd = RunDir(run_dir)
    config = TrainConfig.from_dict(rd.read_config())  # a clear error when run_dir is not a run directory
    which = checkpoint_choice(config, rd, which)
    if which == "best" and not rd.best.exists():
        warnings.warn(f"{rd.best} is missing; analysing last.pt instead", RuntimeWarning, stacklevel=2)
        which = "last"
    config, model, data, state, checkpoint = open_run(str(run_dir), which)
    rows = state.get("rows") or [{}]
    return Run(model=model.eval(), config=config, data=data, path=Path(run_dir), checkpoint=checkpoint,
               metrics=dict(rows[-1]))


def random_run(model: str = "lipschitz", task: str = "digits", hidden_size: int = 32, seed: int = 0,
               eps: float | None = 0.1) -> Run:
    """An untrained continuous ``model`` for ``task`` (initialised from ``seed``), for ``compare-solvers --random``."""
    if model_spec(model).kind != "continuous":
        raise ValueError(f"--random: the solver comparison integrates a continuous model; model {model!r} is "
                         f"{model_spec(model).kind}")
    # untrained: no recipe applies; "fixed" keeps the model's solver the one-step Euler of the docs' comparisons
    config = TrainConfig(task=task, model=model, hidden_size=hidden_size, eps=eps, seed=seed, recipe="fixed")
    torch.manual_seed(seed)
    config, net, data = build_run(config)
    return Run(model=net.eval(), config=config, data=data)
