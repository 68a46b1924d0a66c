"""Where a batch meets a model and becomes a loss: :func:`batch_loss`.

Time.  Sample k of a regular task sits at t_k = k; a continuous model is fed times eps * t_k, so a
fixed-step solver with one step per gap steps by eps (the papers' discretisation).  Irregular
tasks (``drop`` > 0) carry per-sample times; continuous models integrate over them (scaled by
eps), discrete models and LSTM/GRU step once per *observed* sample and do not see the times
(:func:`model_times`).

Targets by task kind (``neuralode_rnn.data.KINDS``): "classification" (B,) classes, cross-entropy
of the readout of the last observed state; "sequence" (B, T) classes, the readout applied to
every state of the trajectory (:class:`PerStepReadout`) and the cross-entropy averaged over all
steps; "regression" (B, ...) numbers, squared error of the readout (no accuracy).

Recipe "penalty" (``recipes``): the loss adds ``penalty`` x the Heun-Euler local-error estimate of
the training step along the solve (:func:`~.recipes.local_error_penalty`), computed from the
states at the sample times (``trajectory``), so the forward is solved once.

Losses are returned as sums with their number of terms, so a loop can average over a whole
epoch, or over a global batch split across DDP ranks, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..distributed import DistEnv, shard
from ..paths import CLOCK_DTYPE
from ..zoo import evaluations_per_sequence, is_continuous, step_features, uses_times
from .recipes import local_error_penalty

__all__ = ["BatchLoss", "PerStepReadout", "batch_loss", "evaluations", "loss_terms", "model_times", "network", "weight_penalty_term",
           "objective"]


class PerStepReadout(nn.Module):
    """Wraps a sequence model so that ``forward`` reads out every step: (B, T, output_size).

    Uses only the public ``trajectory`` and ``readout`` of the models, so the models need no
    per-step mode; as an ``nn.Module`` it can itself be wrapped by DDP.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.features = step_features(model)

    def forward(self, values: torch.Tensor, times: torch.Tensor | None = None, **solve) -> torch.Tensor:
        """(B, T, output_size); ``solve``: passed to ``trajectory`` (``spec=`` of a continuous model)."""
        return self.model.readout(self.features(self.model.trajectory(values, times, **solve)))


def network(model: nn.Module, kind: str) -> nn.Module:
    """The module whose output the objective of task ``kind`` reads: the model, or for "sequence"
    tasks the model read out at every step."""
    return PerStepReadout(model) if kind == "sequence" else model


def model_times(model: nn.Module, values: torch.Tensor, times: torch.Tensor | None,
                eps: float | None) -> torch.Tensor | None:
    """The times to feed ``model``: eps * t for models that read times (continuous models and the
    irregular-series baselines, ``zoo.uses_times``; t_k = k when ``times`` is None), None for
    discrete ones (they step once per sample)."""
    if not uses_times(model):
        return None
    # the clock stays float64 (CLOCK_DTYPE) whatever the model's dtype: models difference times
    # before any cast, so timestamps such as epoch hours keep their gaps
    if times is None:
        return eps * torch.arange(1, values.shape[1] + 1, dtype=CLOCK_DTYPE, device=values.device)
    return eps * times.to(CLOCK_DTYPE)


def objective(out: torch.Tensor, targets: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(sum of losses, number of correct predictions (0 for regression), number of loss terms)."""
    if kind == "classification":
        loss = F.cross_entropy(out, targets, reduction="sum")
        return loss, (out.argmax(-1) == targets).sum(), targets.numel()
    if kind == "sequence":
        logits = out.reshape(-1, out.shape[-1])
        flat = targets.reshape(-1)
        return F.cross_entropy(logits, flat, reduction="sum"), (logits.argmax(-1) == flat).sum(), flat.numel()
    if kind == "regression":
        target = targets.reshape(targets.shape[0], -1).to(out.dtype)
        return (F.mse_loss(out.reshape_as(target), target, reduction="sum"), torch.zeros((), dtype=torch.long),
                target.numel())
    raise ValueError(f"unknown task kind {kind!r}; expected classification, sequence or regression")


def loss_terms(targets: torch.Tensor) -> int:
    """Number of loss terms of a whole (global) batch of ``targets``: one per class target or per
    regressed number, as :func:`objective` counts them."""
    return targets.numel()


def evaluations(model: nn.Module, length: int) -> int:
    """Function evaluations of the model's last solve (continuous models, and baselines that count
    them: ode-rnn) or per sequence of ``length`` steps (discrete: stages x steps; 1 per step for
    the GRU-like ones)."""
    if is_continuous(model) or isinstance(getattr(model, "nfe", None), int):
        return model.nfe
    return evaluations_per_sequence(model, length)


@dataclass
class BatchLoss:
    """One (rank's slice of a) batch: ``loss_sum`` (differentiable) of ``count`` terms, ``correct``
    predictions among them, ``total`` terms in the whole global batch, ``nfe`` of the forward."""

    loss_sum: torch.Tensor
    correct: torch.Tensor
    count: int
    total: int
    nfe: int


def batch_loss(net: nn.Module, model: nn.Module, batch: tuple, kind: str, eps: float | None,
               env: DistEnv | None = None, dtype: torch.dtype = torch.float32, penalty: float = 0.0,
               penalty_step: float | None = None, spec=None) -> BatchLoss:
    """The loss of ``net`` (``network(model, kind)``, possibly DDP-wrapped) on this rank's slice of
    ``batch`` = (values, times or None, targets), moved to the rank's device and ``dtype``.

    ``penalty`` > 0 (recipe "penalty"; classification, one process, fully observed samples): add
    ``penalty`` x the per-sample local-error estimate of a step of ``penalty_step`` to the loss sum
    (so the batch mean gets ``penalty`` x its mean); the forward then runs through ``model.trajectory``.
    ``spec``: the ``solvers.SolveSpec`` of this batch (a recipe's solver), passed to the forward
    call; None: the model's own.
    """
    solve = {} if spec is None else {"spec": spec}
    env = env or DistEnv()
    values, times, targets = shard(batch, env)
    total = loss_terms(batch[2])
    values = values.to(device=env.device, dtype=dtype)
    times = None if times is None else times.to(device=env.device, dtype=CLOCK_DTYPE)  # not the model's dtype
    if penalty:
        if kind != "classification" or env.active:
            raise ValueError(f"recipe 'penalty' supports classification tasks in one process; got a {kind!r} task"
                             f"{' in a DDP job' if env.active else ''}")
        states = model.trajectory(values, model_times(model, values, times, eps), **solve)
        out = model.readout(model.field.features(states[:, -1]))
        loss_sum, correct, count = objective(out, targets.to(env.device), kind)
        loss_sum = loss_sum + penalty * local_error_penalty(model, values, states, penalty_step).sum()
        return BatchLoss(loss_sum, correct, count, total, evaluations(model, values.shape[1]))
    out = net(values, model_times(model, values, times, eps), **solve)
    loss_sum, correct, count = objective(out, targets.to(env.device), kind)
    return BatchLoss(loss_sum, correct, count, total, evaluations(model, values.shape[1]))


def weight_penalty_term(model: nn.Module) -> torch.Tensor:
    """Sum of the L2 (Frobenius) norms of the model's penalised parameters: the term Kidger et al.'s
    ``experiments/common.py`` (``_add_weight_regularisation``) adds to the loss, times its weight
    (``TrainConfig.weight_penalty``; 0.03 there).  The parameters are ``model.penalized_parameters()``
    where the model defines it (the Neural CDE: its vector field's, as the reference), else all of
    them (as the reference does for its other baselines)."""
    chosen = model.penalized_parameters() if hasattr(model, "penalized_parameters") else model.parameters()
    norms = [p.norm() for p in chosen if p.requires_grad]
    if not norms:
        return torch.zeros(())
    return torch.stack([n.real if n.is_complex() else n for n in norms]).sum()
