"""A task whose label lives only in the timing: the frequency of an oscillation seen at random times.

Sample i has class y_i in 0..K-1 and frequency f = ``frequencies[y_i]``.  Its observations are
x_k = sin(theta_k) at phases theta_k = phi + sum_{j <= k} u_j, with a random start phi ~ U[0, 2 pi)
and random phase steps u_j ~ U[``step_low``, ``step_high``] (radians), the first u_1 = 0.  The
oscillation is x(t) = sin(f * mean_step * t), mean_step = (step_low + step_high) / 2, so the
observations sit at

    t_k = theta_k / (f * mean_step):

time is measured so that class f = 1 is observed once per unit time on average (like t_k = k of
the regular tasks; its period is 2 pi / mean_step, about 10 units), and class f f times as often.

The values depend on (phi, u) only, never on y: a time-blind model reads the same distribution of
sequences in every class and can do no better than chance, 1/K.  (Exactly so: with the same
``seed`` the values and labels do not change when the ``frequencies`` do; only the times do,
which the tests check.)  The frequency is the rate of phase per unit time, so a model that sees
the times (a continuous-time model integrating over them, or an RNN given the gaps or a time
channel) can read the class.

Defaults, and why: K = 4 classes with frequencies 1, 1.5, 2.25, 3.375 (a ratio 1.5 between
neighbours: each sample's gaps vary by a factor up to 3, so one gap does not tell the class, the
average of ~30 does); 32 observations (about three periods); phase steps of 0.3..0.9 rad (7 to 21
samples a period, well above Nyquist, so the oscillation is seen as one); 2,000 / 1,000 samples.
"""

from __future__ import annotations

import math

import torch

from .base import SequenceDataset, Split, check_seed

DEFAULT_FREQUENCIES = (1.0, 1.5, 2.25, 3.375)


def _check_positive_int(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")
    return value


def _sample(n: int, length: int, frequencies: tuple[float, ...], step_low: float, step_high: float,
            noise: float, generator: torch.Generator) -> Split:
    labels = torch.randint(len(frequencies), (n,), generator=generator)
    start = 2 * math.pi * torch.rand(n, 1, generator=generator, dtype=torch.float64)
    steps = step_low + (step_high - step_low) * torch.rand(n, length, generator=generator, dtype=torch.float64)
    steps[:, 0] = 0.0  # the first observation sits at the start phase
    phases = start + steps.cumsum(dim=1)  # (n, T), strictly increasing
    values = torch.sin(phases)
    if noise > 0:
        values = values + noise * torch.randn(n, length, generator=generator, dtype=torch.float64)
    f = torch.tensor(frequencies, dtype=torch.float64)[labels]
    times = phases / (f.unsqueeze(1) * (step_low + step_high) / 2)
    return Split(values.unsqueeze(-1).float(), labels, times.float())


def load_timing(
    seed: int = 0,
    n_train: int = 2000,
    n_test: int = 1000,
    length: int = 32,
    frequencies: tuple[float, ...] = DEFAULT_FREQUENCIES,
    step_low: float = 0.3,
    step_high: float = 0.9,
    noise: float = 0.0,
) -> SequenceDataset:
    """The timing task (module docstring): K = len(frequencies) classes, label = the frequency.

    Args:
        seed: draws both splits (train first) from one generator.
        n_train, n_test: samples per split.
        length: observations per sample (all observed, no padding).
        frequencies: one per class, distinct positive numbers (in units of the slowest default).
        step_low, step_high: the range of the phase advance between observations, radians,
            0 < step_low <= step_high.
        noise: standard deviation of Gaussian noise added to the values (0: none).

    Returns values (N, length, 1) float32, per-sample times (N, length) float32, targets (N,) int64.
    """
    seed = check_seed(seed)
    n_train = _check_positive_int(n_train, "n_train")
    n_test = _check_positive_int(n_test, "n_test")
    length = _check_positive_int(length, "length", 2)
    try:
        frequencies = tuple(float(f) for f in frequencies)
    except (TypeError, ValueError):
        raise ValueError(f"frequencies must be a sequence of positive numbers; got {frequencies!r}") from None
    if len(frequencies) < 2 or min(frequencies) <= 0 or len(set(frequencies)) != len(frequencies):
        raise ValueError(f"frequencies must hold at least two distinct positive numbers; got {frequencies!r}")
    if not (isinstance(step_low, (int, float)) and isinstance(step_high, (int, float)) and 0 < step_low <= step_high):
        raise ValueError(f"phase steps must satisfy 0 < step_low <= step_high; got step_low={step_low!r}, "
                         f"step_high={step_high!r}")
    if not (isinstance(noise, (int, float)) and noise >= 0):
        raise ValueError(f"noise must be a number >= 0; got {noise!r}")
    generator = torch.Generator().manual_seed(seed)
    args = (length, frequencies, float(step_low), float(step_high), float(noise), generator)
    train = _sample(n_train, *args)
    test = _sample(n_test, *args)
    return SequenceDataset(
        name="timing",
        kind="classification",
        train=train,
        test=test,
        n_classes=len(frequencies),
        description=(
            f"Timing: sin(theta_k) observed at {length} random phases (steps {step_low:g}..{step_high:g} rad); "
            f"the class is the frequency ({', '.join(f'{f:g}' for f in frequencies)}), visible only in the "
            f"per-sample times t_k = theta_k / (f * mean step); {n_train}/{n_test} samples (seed {seed}); "
            "a time-blind model is at chance."
        ),
        info={"seed": seed, "frequencies": frequencies, "step_low": step_low, "step_high": step_high,
              "noise": noise},
    )
