"""The task registry: ``TASKS`` maps a name to its loader; ``load_task`` validates and calls it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .base import SequenceDataset
from .digits import load_digits
from .fashion import load_fashion
from .irregular import check_rate, drop_observations
from .mnist1d import load_mnist1d
from .mnist5k import load_mnist5k
from .synthetic import load_adding, load_copy
from .vowels import load_vowels

TASKS: dict[str, Callable[..., SequenceDataset]] = {
    "digits": load_digits,
    "mnist1d": load_mnist1d,
    "mnist5k": load_mnist5k,
    "fashion": load_fashion,
    "vowels": load_vowels,
    "adding": load_adding,
    "copy": load_copy,
}


def load_task(name: str, *, drop: float = 0.0, drop_seed: int = 0, **kwargs: Any) -> SequenceDataset:
    """Load task ``name`` with its loader's keyword arguments (``seed``, ``permute``, ``n_train``...).

    ``drop`` in [0, 1) makes an irregularly sampled variant (``drop_observations``, seeded
    ``drop_seed``) of a classification or regression task; 0 leaves the task as loaded.
    """
    try:
        loader = TASKS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(sorted(TASKS))}") from None
    rate = check_rate(drop)
    accepted = inspect.signature(loader).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(
            f"task {name!r} does not take {', '.join(unknown)}; its options are "
            f"{', '.join(accepted)}, plus drop and drop_seed"
        )
    data = loader(**kwargs)
    if rate > 0.0:
        data = drop_observations(data, rate, drop_seed)
    return data
