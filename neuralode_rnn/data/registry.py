"""The task registry: ``TASKS`` maps a name to its loader; ``load_task`` validates and calls it."""

from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from . import irregular
from .base import SequenceDataset
from .digits import load_digits
from .fashion import load_fashion
from .features import add_time_features
from .irregular import check_rate, drop_observations
from .mnist1d import load_mnist1d
from .mnist5k import load_mnist5k
from .standardize import standardize
from .synthetic import load_adding, load_copy
from .timing import load_timing
from .uea import load_uea
from .validation import VALIDATION_SEED, validation_split
from .vowels import load_vowels

TASKS: dict[str, Callable[..., SequenceDataset]] = {
    "digits": load_digits,
    "mnist1d": load_mnist1d,
    "mnist5k": load_mnist5k,
    "fashion": load_fashion,
    "vowels": load_vowels,
    "adding": load_adding,
    "copy": load_copy,
    "timing": load_timing,
}

PREFIXES: dict[str, Callable[..., SequenceDataset]] = {"uea": load_uea}
"""``PREFIX:NAME`` tasks: ``load_task("uea:BasicMotions")`` calls ``load_uea("BasicMotions", ...)``.
The names ``uea:`` reads offline are ``neuralode_rnn.data.uea.uea_datasets()``."""


def load_task(name: str, *, drop: float = 0.0, drop_seed: int = 0, drop_channels: float = 0.0,
              inputs: str | Sequence[str] | None = None, validation: float = 0.0,
              validation_seed: int = VALIDATION_SEED, **kwargs: Any) -> SequenceDataset:
    """Load task ``name`` with its loader's keyword arguments (``seed``, ``permute``, ``n_train``...).

    ``name`` is a key of ``TASKS`` or ``PREFIX:NAME`` with a prefix of ``PREFIXES`` (``"uea:BasicMotions"``:
    a UEA/UCR classification archive by name).  Then, in this order:

    * ``validation`` in [0, 1): hold out that share of the training samples (``validation_split``,
      seeded ``validation_seed``) as the returned ``test`` split, for model selection; a loader that
      standardises its data (``standardize=True``, the UEA sets) is then standardised with the
      statistics of the samples kept for training only, so the held-out samples inform nothing;
    * ``drop`` in [0, 1): remove that share of each sample's time points (``drop_observations``,
      seeded ``drop_seed``), the Neural CDE protocol;
    * ``drop_channels`` in [0, 1): mark each value missing independently with that probability
      (``drop_channels``, seeded ``drop_seed + 1``, a random stream of its own; after ``drop``);
    * ``inputs`` ("time,intensity,mask" or a subset; None: none): append time-aware channels with
      scales from the training split (``add_time_features``).

    Every statistic (standardisation, feature scales) comes from the returned training split.
    0 / None leave the task as loaded.
    """
    prefix, sep, rest = name.partition(":") if isinstance(name, str) else ("", "", "")
    if sep and prefix in PREFIXES and rest:
        loader: Callable[..., SequenceDataset] = functools.partial(PREFIXES[prefix], rest)
        accepted = [p for p in inspect.signature(PREFIXES[prefix]).parameters if p not in ("name", "task_name")]
    else:
        try:
            loader = TASKS[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown task {name!r}; expected one of {', '.join(sorted(TASKS))}, or "
                             f"{', '.join(p + ':NAME' for p in PREFIXES)}") from None
        accepted = list(inspect.signature(loader).parameters)
    rate = check_rate(drop)
    channel_rate = check_rate(drop_channels, "drop_channels")
    if isinstance(validation, bool) or not (isinstance(validation, numbers.Real) and 0.0 <= validation < 1.0):
        raise ValueError(f"validation (the share of the training samples to hold out) must be a number in [0, 1); "
                         f"got {validation!r}")
    held_out = float(validation)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(
            f"task {name!r} does not take {', '.join(unknown)}; its options are "
            f"{', '.join(accepted)}, plus drop, drop_seed, drop_channels, inputs, validation and validation_seed"
        )
    restandardize = False
    if held_out > 0.0 and "standardize" in accepted and kwargs.get("standardize", True) is True:
        # standardised below on the samples kept for training, not on the held-out ones
        kwargs, restandardize = {**kwargs, "standardize": False}, True
    data = loader(**kwargs)
    if held_out > 0.0:
        data = validation_split(data, held_out, validation_seed)
        if restandardize:
            data = standardize(data)
    if rate > 0.0:
        data = drop_observations(data, rate, drop_seed)
    if channel_rate > 0.0:
        data = irregular.drop_channels(data, channel_rate, drop_seed + 1)  # the argument shadows the name
    if inputs:
        data = add_time_features(data, inputs)
    return data
