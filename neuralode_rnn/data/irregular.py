"""Irregularly sampled variants: drop a share of each sample's time points (Kidger et al. 2020), or each
value independently (missing values per channel, Che et al. 2018)."""

from __future__ import annotations

import numbers

import torch

from .base import SequenceDataset, Split, check_seed


def check_rate(rate: object, name: str = "drop") -> float:
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= float(rate) < 1.0:
        what = ("the probability that each value is missing" if name == "drop_channels"
                else "the share of each sample's observations to remove")
        raise ValueError(f"{name} ({what}) must be a number in [0, 1); got {rate!r}")
    return float(rate)


def _pad_to(split: Split, width: int) -> Split:
    """NaN-pad a split with times at the end to ``width`` steps, times continuing with unit spacing."""
    extra = width - split.length
    if extra <= 0:
        return split
    n, _, d = split.values.shape
    values = torch.cat([split.values, split.values.new_full((n, extra, d), float("nan"))], dim=1)
    steps = torch.arange(1, extra + 1, dtype=split.times.dtype, device=split.times.device)
    times = torch.cat([split.times, split.times[:, -1:] + steps], dim=1)
    return Split(values, split.targets, times)


def _compact(split: Split, values: torch.Tensor, times: torch.Tensor, keep: torch.Tensor) -> Split:
    """The steps of ``values`` (N, T, D) where ``keep`` (N, T) holds, moved to the front in their
    original order with their ``times``; NaN after them, times continued with unit spacing."""
    n_kept = keep.sum(dim=1)
    width = max(int(n_kept.max()), 1)
    # Stable sort puts kept steps first, in their original order.
    order = (~keep).to(torch.int8).argsort(dim=1, stable=True)[:, :width]
    pad = torch.arange(width).unsqueeze(0) >= n_kept.unsqueeze(1)  # (N, width)
    new_values = values.gather(1, order.unsqueeze(2).expand(-1, -1, values.shape[2])).clone()
    new_values[pad] = float("nan")
    new_times = times.to(values.device).gather(1, order).clone()
    # Padding times continue with unit spacing after the last kept time, so rows stay increasing.
    last_index = (n_kept - 1).clamp(min=0)
    last = new_times.gather(1, last_index.unsqueeze(1))
    last = torch.where(n_kept.unsqueeze(1) > 0, last, times[:, :1] - 1)
    steps = (torch.arange(width).unsqueeze(0) - n_kept.unsqueeze(1) + 1).to(new_times.dtype)
    new_times = torch.where(pad, last + steps, new_times)
    return Split(new_values, split.targets, new_times)


def _drop_split(split: Split, rate: float, generator: torch.Generator) -> Split:
    values, times = split.values, split.resolved_times()
    n, length, _ = values.shape
    observed = ~torch.isnan(values).all(dim=2)  # (N, T): a step counts if any channel is observed
    n_observed = observed.sum(dim=1)
    n_drop = torch.floor(n_observed.to(torch.float64) * rate).to(torch.int64)
    # A uniformly random ranking of each sample's observed steps; the n_drop lowest ranks go.
    keys = torch.rand(n, length, generator=generator, dtype=torch.float64)
    keys = keys.masked_fill(~observed, float("inf"))
    ranks = keys.argsort(dim=1).argsort(dim=1)
    keep = observed & (ranks >= n_drop.unsqueeze(1))
    return _compact(split, values, times, keep)


def _drop_channels_split(split: Split, rate: float, generator: torch.Generator) -> Split:
    values = split.values
    # one Bernoulli(rate) draw per (sample, step, channel), from the generator's stream in that order
    dropped = torch.rand(values.shape, generator=generator, dtype=torch.float64) < rate
    # nothing is compacted: every step keeps its place and time, so a step may have no observed channel
    return Split(values.masked_fill(dropped.to(values.device), float("nan")), split.targets, split.times)


def _apply(data: Split | SequenceDataset, rate: float, seed: int, per_split, what: str, info: dict
           ) -> Split | SequenceDataset:
    generator = torch.Generator().manual_seed(check_seed(seed))
    if isinstance(data, Split):
        return per_split(data, rate, generator)
    if isinstance(data, SequenceDataset):
        if data.kind == "sequence":
            raise ValueError(
                f"drop applies to classification and regression tasks; {data.name!r} has per-step "
                "targets (kind='sequence') that dropping steps would misalign"
            )
        train = per_split(data.train, rate, generator)
        test = per_split(data.test, rate, generator)
        # the task's test split behind a validation split: drawn after the others, so they are unchanged
        final = None if data.final_test is None else per_split(data.final_test, rate, generator)
        width = max(s.length for s in (train, test, final) if s is not None)  # one padded length for all splits
        train, test = _pad_to(train, width), _pad_to(test, width)
        return data.replace(
            train=train,
            test=test,
            final_test=None if final is None else _pad_to(final, width),
            description=data.description + f" Irregular: {rate:.0%} of {what} dropped "
            f"(seed {seed}); times hold the original observation times.",
            info={**data.info, **info},
        )
    raise TypeError(f"data must be a Split or a SequenceDataset; got {type(data).__name__}")


def drop_observations(data: Split | SequenceDataset, rate: float, seed: int = 0) -> Split | SequenceDataset:
    """Remove ``floor(rate * L_i)`` of the ``L_i`` observed steps of each sample, chosen at random.

    The protocol of Kidger et al. 2020 (Neural CDEs): the same share per sample, the dropped
    steps chosen independently per sample, from a generator seeded ``seed``. A step is observed
    when any of its channels is not NaN; all its channels go together.

    Returns a Split (or a SequenceDataset with both splits dropped, train first, from one
    generator) whose ``values`` (N, T', D) hold the kept steps compacted to the front in their
    original order and NaN after them, ``T' = max_i (L_i - floor(rate L_i))`` (over both splits
    of a SequenceDataset), and whose
    ``times`` (N, T') hold the ORIGINAL times of the kept steps (``1..T`` when the input's
    times were None), continued after the last kept step with unit spacing, so every row is
    strictly increasing. Targets are unchanged.
    """
    rate = check_rate(rate)
    return _apply(data, rate, seed, _drop_split, "each sample's observations",
                  {"drop": rate, "drop_seed": seed})


def drop_channels(data: Split | SequenceDataset, rate: float, seed: int = 0) -> Split | SequenceDataset:
    """Mark each value missing (NaN) independently with probability ``rate``: missing values per channel.

    One Bernoulli(``rate``) draw per (sample, time step, channel), from a generator seeded ``seed``
    (train, then test, then a held-back test split, each in (sample, step, channel) order), so the
    same seed gives the same mask and a step may keep some channels and lose others: the mode of
    series whose sensors report at their own times, what GRU-D's mask and decays and the
    intensity and mask input channels are about.  Nothing moves: every step keeps its place and
    its original time, and a step may end with no observed channel, which each model handles as
    its reference does (GRU-D and GRU-dt step through it, GRU-D with mask 0 and growing delta; the
    ODE-RNN only evolves its state there, Rubanova et al.'s masked update; the Neural CDE keeps it
    as a knot of its time channel; the time-aware inputs give it its time, the counts so far and a
    zero mask).  Such steps after a sample's last observation cannot be told from padding: the
    sample then ends at its last observation.  Values already NaN stay NaN.  Targets are unchanged.

    Composes with :func:`drop_observations` (``load_task`` applies that first): whole steps go,
    then single values of the steps left.
    """
    rate = check_rate(rate, "drop_channels")
    return _apply(data, rate, seed, _drop_channels_split, "each value (per sample, step and channel)",
                  {"drop_channels": rate, "drop_channels_seed": seed})
