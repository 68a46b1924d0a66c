"""Time-aware input channels on a whole task: :func:`neuralode_rnn.inputs.time_features` with scales
fitted on the training split."""

from __future__ import annotations

from collections.abc import Sequence

from ..inputs import TimeFeatures, parse_features
from .base import SequenceDataset, Split


def add_time_features(data: SequenceDataset, features: str | Sequence[str]) -> SequenceDataset:
    """``data`` with the time-aware ``features`` ("time", "intensity", "mask") appended to every sample.

    The scales (largest observed time, largest observation count) come from the TRAINING split
    only and are applied to both splits; they are kept in ``info`` ("time_scale", "count_scale").
    Times, targets and the NaN padding are unchanged: appended channels are NaN on padding steps,
    so each sample is still read out at its last observation.  An empty ``features`` returns
    ``data`` as it is.

    Returns a SequenceDataset whose values have D + extra channels (see ``TimeFeatures.extra_channels``).
    """
    names = parse_features(features)
    if not names:
        return data
    if data.kind == "sequence":
        raise ValueError(f"time-aware inputs apply to classification and regression tasks; {data.name!r} "
                         "has per-step targets (kind='sequence')")
    feats = TimeFeatures.fit(names, data.train.values, data.train.times)

    def apply(split: Split) -> Split:
        return Split(feats(split.values, split.times), split.targets, split.times)

    return data.map_splits(
        apply,
        description=data.description + f" Inputs: values plus {', '.join(names)} (scales from the training "
        f"split: time / {float(feats.time_scale):g}, counts / {float(feats.count_scale):g}).",
        info={**data.info, "inputs": ",".join(names), "time_scale": float(feats.time_scale),
              "count_scale": float(feats.count_scale)},
    )
