"""A validation split: a fixed seeded share of the training samples held out for model selection."""

from __future__ import annotations

import torch

from .base import SequenceDataset

__all__ = ["VALIDATION_SEED", "validation_split"]

VALIDATION_SEED = 0
"""Seeds the choice of held-out samples: one validation set per task, whatever the run's seed."""


def validation_split(data: SequenceDataset, fraction: float, seed: int = VALIDATION_SEED) -> SequenceDataset:
    """``data`` with ``train`` = the training samples minus a held-out share ``fraction`` and
    ``test`` = those held-out samples (the last ``fraction`` of a permutation drawn from ``seed``).

    The test split of ``data`` is not used, so hyper-parameters chosen on the result never saw it.
    ``info`` records ``validation`` (the share) and ``validation_seed``; the task's test split is
    kept as ``final_test`` (scored once at the end of training, never for selection).
    """
    if isinstance(fraction, bool) or not (isinstance(fraction, (int, float)) and 0.0 < fraction < 1.0):
        raise ValueError(f"validation must be a share in (0, 1) of the training samples; got {fraction!r}")
    n = data.train.n_samples
    n_val = round(fraction * n)
    if not 0 < n_val < n:
        raise ValueError(f"a validation share of {fraction} of {n} training samples leaves an empty split")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    keep, held = order[: n - n_val].sort().values, order[n - n_val:].sort().values
    info = dict(data.info, validation=fraction, validation_seed=seed)
    if data.final_test is not None:
        raise ValueError("validation_split got a dataset that already holds a validation split (final_test is set)")
    return data.replace(train=data.train.subset(keep), test=data.train.subset(held), info=info, final_test=data.test)
