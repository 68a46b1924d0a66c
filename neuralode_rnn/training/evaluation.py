"""Scoring a model on a split: mean loss, accuracy and function evaluations (:func:`evaluate`)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..data import Split
from ..distributed import DistEnv, all_reduce_sum
from .objective import batch_loss, network

__all__ = ["evaluate"]


def evaluate(model: nn.Module, split: Split, kind: str, eps: float | None = None, batch_size: int = 512,
             env: DistEnv | None = None, device: str | torch.device | None = None,
             dtype: torch.dtype = torch.float32, progress: Callable[[int, int], None] | None = None) -> dict:
    """Mean loss, accuracy (None for regression) and mean NFE per batch of ``model`` on ``split``.

    The model is put in eval mode for the pass (a StochasticRNN is then its ODE) and restored.
    Under DDP each rank evaluates its slice of each batch and the sums are all-reduced.
    ``progress(done, total)`` is called after each batch (a command's progress line).
    """
    env = env or DistEnv()
    if device is not None and str(device) != env.device:
        env = DistEnv(env.rank, env.world_size, env.local_rank, str(device), env.active)
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
    net = network(model, kind)
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64)
    nfe, batches = 0, 0
    total = -(-len(split) // batch_size)
    try:
        with torch.no_grad():
            for batch in split.batches(batch_size):
                b = batch_loss(net, model, batch, kind, eps, env, dtype)
                sums += torch.tensor([b.loss_sum.item(), float(b.correct), float(b.count)], dtype=torch.float64)
                nfe += b.nfe
                batches += 1
                if progress is not None:
                    progress(batches, total)
    finally:
        model.train(was_training)
    all_reduce_sum(sums, env)
    loss, correct, count = sums.tolist()
    if count == 0:
        raise ValueError("evaluate got an empty split: no samples to score")
    return {"loss": loss / count, "accuracy": None if kind == "regression" else correct / count,
            "nfe": nfe / max(batches, 1)}
