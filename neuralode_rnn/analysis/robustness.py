"""Accuracy under perturbations of growing size: of the inputs and of the parameters.

The Lipschitz RNN paper (Erichson et al., ICLR 2021, Sec. 6) reads a flat minimum as robustness
and tests it by perturbing inputs and weights.  Here:

* input noise: values + s * std(values) * xi, xi ~ N(0, 1) iid per entry (missing entries stay
  missing); s is relative to the data's own spread so levels mean the same on every task;
* parameter noise: every parameter tensor p becomes p + s * rms(p) * xi, a relative
  perturbation per tensor (so a readout bias and a 64 x 64 matrix are shaken alike); the
  parameters are restored afterwards.

Each level is repeated ``repeats`` times with seeded draws; the model is evaluated in eval mode
(a StochasticRNN then uses its deterministic ODE).  What is measured depends on the task kind
(``neuralode_rnn.data.KINDS``): the accuracy for classification, the per-step accuracy for
sequence tasks (copy memory), the mean squared error for regression (:func:`score`; a curve says
which in ``metric``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ..training import network, objective

__all__ = ["METRICS", "RobustnessCurve", "accuracy", "input_noise_curve", "parameter_noise_curve", "score"]

METRICS = {"classification": "accuracy", "sequence": "accuracy", "regression": "mse"}
"""What :func:`score` measures for each task kind."""


@torch.no_grad()
def accuracy(model: nn.Module, values: Tensor, times: Tensor | None, targets: Tensor, batch_size: int = 512
             ) -> float:
    """Fraction of ``targets`` (N,) that ``model``'s argmax predicts, in eval mode, by batches."""
    was = model.training
    model.eval()
    correct = 0
    try:
        for s in range(0, values.shape[0], batch_size):
            t = times if times is None or times.dim() == 1 else times[s:s + batch_size]
            pred = model(values[s:s + batch_size], t).argmax(-1)
            correct += int((pred == targets[s:s + batch_size]).sum())
    finally:
        model.train(was)
    return correct / values.shape[0]


@torch.no_grad()
def score(model: nn.Module, values: Tensor, times: Tensor | None, targets: Tensor, kind: str = "classification",
          batch_size: int = 512) -> float:
    """The task's measure of ``model`` on a batch, in eval mode: accuracy ("classification", and
    per step for "sequence") or mean squared error ("regression"); see ``METRICS``."""
    if kind not in METRICS:
        raise ValueError(f"unknown task kind {kind!r}; expected one of {', '.join(METRICS)}")
    if values.shape[0] == 0:
        raise ValueError("score needs at least one sample; got an empty batch")
    net = network(model, kind)
    was = model.training
    model.eval()
    loss, correct, count = 0.0, 0, 0
    try:
        for s in range(0, values.shape[0], batch_size):
            t = times if times is None or times.dim() == 1 else times[s:s + batch_size]
            out = net(values[s:s + batch_size], t)
            b_loss, b_correct, b_count = objective(out, targets[s:s + batch_size], kind)
            loss, correct, count = loss + float(b_loss), correct + int(b_correct), count + b_count
    finally:
        model.train(was)
    return loss / count if METRICS[kind] == "mse" else correct / count


@dataclass(frozen=True)
class RobustnessCurve:
    """The task's measure (``metric``: "accuracy" or "mse"; mean and std over repeats) at each
    noise level; ``kind`` is "input" or "parameter"."""

    kind: str
    levels: list
    mean: list
    std: list
    metric: str = "accuracy"

    def as_dict(self) -> dict:
        return asdict(self)


def _check_levels(levels: Sequence[float]) -> list[float]:
    out = [float(s) for s in levels]
    if not out or any(not np.isfinite(s) or s < 0 for s in out):
        raise ValueError(f"levels must be a non-empty sequence of non-negative numbers; got {list(levels)}")
    return out


def _check_repeats(repeats: int) -> int:
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int; got {repeats!r}")
    return repeats


def input_noise_curve(model: nn.Module, values: Tensor, times: Tensor | None, targets: Tensor,
                      levels: Sequence[float] = (0.0, 0.1, 0.2, 0.4, 0.8), repeats: int = 3, seed: int = 0,
                      kind: str = "classification") -> RobustnessCurve:
    """The task's measure (:func:`score`) with Gaussian input noise of std ``level * std(values)``
    (see the module docstring)."""
    levels = _check_levels(levels)
    repeats = _check_repeats(repeats)
    scale = float(values[~torch.isnan(values)].std())
    g = torch.Generator().manual_seed(seed)
    mean, std = [], []
    for s in levels:
        accs = []
        for _ in range(repeats if s > 0 else 1):
            noise = torch.randn(values.shape, generator=g, dtype=values.dtype)
            accs.append(score(model, values + s * scale * noise, times, targets, kind))
        mean.append(float(np.mean(accs)))
        std.append(float(np.std(accs)))
    return RobustnessCurve("input", levels, mean, std, METRICS[kind])


def parameter_noise_curve(model: nn.Module, values: Tensor, times: Tensor | None, targets: Tensor,
                          levels: Sequence[float] = (0.0, 0.05, 0.1, 0.2, 0.4), repeats: int = 3, seed: int = 0,
                          kind: str = "classification") -> RobustnessCurve:
    """The task's measure (:func:`score`) with every parameter p -> p + level * rms(p) * xi
    (restored afterwards); a complex parameter gets complex noise of the same rms."""
    levels = _check_levels(levels)
    repeats = _check_repeats(repeats)
    params = [p for p in model.parameters() if p.numel() > 0]
    saved = [p.detach().clone() for p in params]
    g = torch.Generator().manual_seed(seed)
    mean, std = [], []
    try:
        for s in levels:
            accs = []
            for _ in range(repeats if s > 0 else 1):
                with torch.no_grad():
                    for p, p0 in zip(params, saved):
                        rms = p0.abs().pow(2).mean().sqrt()
                        xi = torch.randn(p.shape, generator=g, dtype=p0.real.dtype)
                        if p.is_complex():
                            xi = torch.complex(xi, torch.randn(p.shape, generator=g, dtype=p0.real.dtype)) / 2 ** 0.5
                        p.copy_(p0 + s * rms * xi)
                accs.append(score(model, values, times, targets, kind))
            mean.append(float(np.mean(accs)))
            std.append(float(np.std(accs)))
    finally:
        with torch.no_grad():
            for p, p0 in zip(params, saved):
                p.copy_(p0)
    return RobustnessCurve("parameter", levels, mean, std, METRICS[kind])
