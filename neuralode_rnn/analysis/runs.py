"""Runs for the analysis: a thin adapter over the training stack's run directories.

A run directory is what ``neuralode-rnn train --run-dir DIR`` writes (``neuralode_rnn.runs``):
config.json (a :class:`~neuralode_rnn.train.TrainConfig`), best.pt and last.pt.  :func:`load_run`
rebuilds the model with :func:`neuralode_rnn.train.load_run` (so through ``zoo.build_model``;
``noise_sigma > 0`` gives the noise-trained :class:`~neuralode_rnn.noise.StochasticRNN`) and
:meth:`Run.batch` feeds it the task's samples at the times training used
(:func:`neuralode_rnn.train.model_times`: eps * t).  :func:`random_run` builds an untrained model
the same way, for ``compare-solvers --random``.

The analysis integrates the trained field with other solvers, so it takes continuous models
only (a ContinuousRNN or StochasticRNN; not discrete cells or LSTM/GRU).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from ..data import SequenceDataset
from ..runs import RunDir
from ..train import TrainConfig, build_run, model_times
from ..train import load_run as _train_load_run
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

    def batch(self, split: str = "test", n: int | None = None) -> tuple[Tensor, Tensor | None, Tensor]:
        """(values, times, targets): the first ``n`` samples of ``split`` ("train" or "test"), with
        the times the model was trained on."""
        part = getattr(self.data, split)
        n = len(part) if n is None else min(n, len(part))
        values = part.values[:n].to(getattr(torch, self.config.dtype))
        times = None if part.times is None else part.times[:n]
        return values, model_times(self.model, values, times, self.config.eps), part.targets[:n]


def _check_continuous(config: TrainConfig, where: str) -> None:
    kind = model_spec(config.model).kind
    if kind != "continuous":
        raise ValueError(f"{where}: the analysis integrates a continuous model with other solvers; "
                         f"model {config.model!r} is {kind}")


def load_run(run_dir: str | Path, which: str = "best") -> Run:
    """The run in ``run_dir`` (written by ``neuralode-rnn train``) with the weights of ``which``
    checkpoint ("best", falling back to "last" when there is no best.pt; or "last")."""
    rd = RunDir(run_dir)
    if which == "best" and not rd.best.exists():
        which = "last"
    config, model, data = _train_load_run(str(run_dir), which)
    _check_continuous(config, str(run_dir))
    state = rd.load_checkpoint(which)
    rows = state.get("rows") or [{}]
    return Run(model=model.eval(), config=config, data=data, path=Path(run_dir),
               checkpoint=(rd.best if which == "best" else rd.last).name, metrics=dict(rows[-1]))


def random_run(model: str = "lipschitz", task: str = "digits", hidden_size: int = 32, seed: int = 0,
               eps: float | None = 0.1) -> Run:
    """An untrained ``model`` for ``task`` (initialised from ``seed``), for ``compare-solvers --random``."""
    config = TrainConfig(task=task, model=model, hidden_size=hidden_size, eps=eps, seed=seed)
    _check_continuous(config, "--random")
    torch.manual_seed(seed)
    config, net, data = build_run(config)
    assert is_continuous(net)
    return Run(model=net.eval(), config=config, data=data)
