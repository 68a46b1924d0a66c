"""Offline sequence tasks: each loader returns a :class:`SequenceDataset` of train/test :class:`Split` s.

>>> from neuralode_rnn.data import load_task
>>> data = load_task("digits", permute=True, n_train=64, n_test=32)
>>> values, times, targets = next(data.train.batches(32))   # times is None: t_k = k
"""

from .base import KINDS, MNIST_PERMUTATION_SEED, SequenceDataset, Split, mnist_permutation
from .digits import load_digits
from .fashion import load_fashion
from .features import add_time_features
from .irregular import drop_channels, drop_observations
from .mnist1d import load_mnist1d
from .mnist5k import load_mnist5k
from .registry import PREFIXES, TASKS, load_task
from .standardize import channel_statistics, standardize
from .synthetic import copy_baseline, load_adding, load_copy
from .sysid import load_sysid
from .timing import load_timing
from .uea import load_uea, uea_datasets
from .validation import VALIDATION_SEED, validation_split
from .vowels import load_vowels

TaskData = SequenceDataset  # alias: the name used in some design notes

__all__ = [
    "KINDS",
    "MNIST_PERMUTATION_SEED",
    "PREFIXES",
    "TASKS",
    "SequenceDataset",
    "Split",
    "TaskData",
    "VALIDATION_SEED",
    "add_time_features",
    "channel_statistics",
    "copy_baseline",
    "drop_channels",
    "drop_observations",
    "load_adding",
    "load_copy",
    "load_digits",
    "load_fashion",
    "load_mnist1d",
    "load_mnist5k",
    "load_sysid",
    "load_task",
    "load_timing",
    "load_uea",
    "load_vowels",
    "mnist_permutation",
    "standardize",
    "uea_datasets",
    "validation_split",
]
