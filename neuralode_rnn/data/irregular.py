"""Irregularly sampled variants: drop a share of each sample's time points (Kidger et al. 2020), or of each
channel's observations independently."""

from __future__ import annotations

import numbers

import torch

from .base import SequenceDataset, Split, check_seed


def check_rate(rate: object, name: str = "drop") -> float:
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= float(rate) < 1.0:
        what = "each channel's observations" if name == "drop_channels" else "each sample's observations"
        raise ValueError(f"{name} (the share of {what} to remove) must be a number in [0, 1); got {rate!r}")
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
    values, times = split.values, split.resolved_times()
    n, length, d = values.shape
    observed = ~torch.isnan(values)  # (N, T, D)
    n_drop = torch.floor(observed.sum(dim=1).to(torch.float64) * rate).to(torch.int64)  # (N, D)
    # Per sample and channel, a uniformly random ranking of its observed entries; the lowest go.
    keys = torch.rand(n, length, d, generator=generator, dtype=torch.float64)
    keys = keys.masked_fill(~observed, float("inf"))
    ranks = keys.argsort(dim=1).argsort(dim=1)
    keep = observed & (ranks >= n_drop.unsqueeze(1))
    # Steps left with no observed channel are removed: every remaining step is a real observation.
    return _compact(split, values.masked_fill(~keep, float("nan")), times, keep.any(dim=2))


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
    """Remove ``floor(rate * L_id)`` of the ``L_id`` observed values of each channel d of each sample i.

    Each channel is thinned independently (entries chosen at random per sample and channel, from a
    generator seeded ``seed``), so a step keeps some channels and loses others: the mode of
    series whose sensors report at their own times.  Steps left with no observed channel are
    removed and the rest compacted as in :func:`drop_observations` (kept steps at the front in
    their original order with their ORIGINAL times, NaN after them, padding times continuing with
    unit spacing, one padded length for both splits of a SequenceDataset), so every step a model
    reads is a real observation and NaN marks what that step lacks.  With one channel this draws
    the same kind of sample as ``drop_observations``.  Targets are unchanged.
    """
    rate = check_rate(rate, "drop_channels")
    return _apply(data, rate, seed, _drop_channels_split, "each channel's observations (per sample)",
                  {"drop_channels": rate, "drop_channels_seed": seed})
