"""Per-channel standardisation with statistics of the training split only.

Every channel d of both splits becomes (x - mean_d) / std_d, with mean_d and std_d the mean and
standard deviation of the OBSERVED (non-NaN) entries of channel d in the training samples.  The
test (or validation) split never informs the preprocessing: it is scaled by the training numbers.
A constant training channel is only centred (scale 1), so nothing is divided by zero.
"""

from __future__ import annotations

import torch

from .base import SequenceDataset, Split

__all__ = ["channel_statistics", "standardize"]


def channel_statistics(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(D,) mean and standard deviation of the observed (non-NaN) entries of ``values`` (N, T, D),
    computed in float64; a zero deviation becomes 1."""
    flat = values.reshape(-1, values.shape[-1]).to(torch.float64)
    mean = torch.nanmean(flat, dim=0)
    std = torch.sqrt(torch.nanmean((flat - mean) ** 2, dim=0))
    std = torch.where(std > 0, std, torch.ones_like(std))
    return mean, std


def standardize(data: SequenceDataset) -> SequenceDataset:
    """``data`` with every channel of both splits standardised by the training split's statistics.

    NaN (missing, padding) stays NaN; times and targets are unchanged.  The statistics are kept in
    ``info`` ("mean", "std": lists of D numbers) and ``info["standardize"]`` is True.
    """
    mean, std = channel_statistics(data.train.values)

    def apply(split: Split) -> Split:
        return Split(((split.values.double() - mean) / std).to(split.values.dtype), split.targets, split.times)

    return data.map_splits(apply, info={**data.info, "standardize": True, "mean": mean.tolist(), "std": std.tolist()})
