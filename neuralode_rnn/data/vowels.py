"""Japanese Vowels (UCI; UEA archive): the ``vowels`` task, a named alias of ``uea:JapaneseVowels``."""

from __future__ import annotations

import os

from .base import SequenceDataset
from .uea import load_uea

ENV_VAR = "NEURALODE_RNN_VOWELS_DIR"
N_CHANNELS = 12


def load_vowels(
    seed: int = 0,
    n_train: int | None = None,
    n_test: int | None = None,
    standardize: bool = True,
    path: str | os.PathLike | None = None,
) -> SequenceDataset:
    """Japanese Vowels: 12 LPC-cepstrum channels, 7..29 steps, 9 speakers; official 270/370 split.

    The same data as ``load_task("uea:JapaneseVowels")`` (see :func:`neuralode_rnn.data.uea.load_uea`
    for padding and standardisation), named ``vowels``.  Variable length: each sample occupies
    steps ``0..T_i-1`` and is NaN-padded at the END to 29, the longest sample of both splits.
    Labels 1..9 become classes 0..8.  Files: ``path``, else ``$NEURALODE_RNN_VOWELS_DIR``, else
    the places ``load_uea`` searches (sktime's bundled copy).

    Returns values (N, 29, 12) float32 with NaN padding, times None, targets (N,) int64.
    """
    if path is None and os.environ.get(ENV_VAR):
        path = os.environ[ENV_VAR]
    data = load_uea("JapaneseVowels", seed=seed, n_train=n_train, n_test=n_test, standardize=standardize,
                    path=path, task_name="vowels")
    if data.input_size != N_CHANNELS:
        raise ValueError(f"expected {N_CHANNELS} channels in the JapaneseVowels files; got {data.input_size}")
    return data.replace(description="Japanese Vowels: " + data.description + " 9 speakers.")
