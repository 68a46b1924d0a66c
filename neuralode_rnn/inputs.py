"""Time-aware input features: what an irregularly sampled series says besides its values.

A sample ``values`` (B, T, D) (batch-first, time on axis 1, NaN = missing) observed at ``times``
(None: t_k = k; (T,) shared; (B, T) per sample) carries three things a model may not see on its own:

* **time**: the observation time t_k itself, one channel (Kidger et al. 2020 append it to every
  Neural CDE path; it also lets a time-blind RNN read the gaps);
* **intensity**: per channel, the number of observations so far, c_k^d = sum_{j <= k} m_j^d
  (Kidger et al. 2020, "observational intensity"): how densely the channel was sampled;
* **mask**: per channel, m_k^d = 1 if ``values[:, k, d]`` was observed, else 0 (Che et al. 2018),
  the only way to tell a held or interpolated value from a fresh one.

:func:`time_features` appends them to the values.  The appended channels are NaN exactly on the steps
after a sample's last observation (padding at the end of a shorter sample), so
``models.last_observed_index``, and with it every model's readout, still reads each sample at its
last real observation; a fully observed padding step would move the readout onto the padding.
Within a real step they are always observed, so they survive any interpolation's fill rule and
carry what that rule erases (which value was fresh).

The small helpers below (mask, causal forward fill, time since the last observation) are shared
by the baselines (``neuralode_rnn.baselines``): one implementation each.

Scales.  Raw times and counts grow with the series' length (up to ~1,000 on PLAID), so
:class:`TimeFeatures` divides them by ``time_scale`` and ``count_scale``; :meth:`TimeFeatures.fit`
takes them from the TRAINING split (largest observed time, largest number of observations), so
that every split is scaled by the same numbers and no statistic of the test split is used.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .paths import check_times, check_values

__all__ = [
    "FEATURES",
    "TimeFeatures",
    "check_inputs",
    "forward_fill",
    "observation_counts",
    "observed_mask",
    "parse_features",
    "resolve_times",
    "step_gaps",
    "step_observed",
    "time_features",
    "trailing_padding",
    "time_since_observation",
]

FEATURES = ("time", "intensity", "mask")
"""The time-aware features, in the order :func:`time_features` appends them."""


def parse_features(features: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"time,intensity"`` or ``("time", "mask")`` or None -> the canonical tuple (order of FEATURES).

    Raises ValueError naming an unknown or repeated feature.
    """
    if features is None:
        return ()
    if isinstance(features, str):
        names = [f.strip() for f in features.split(",") if f.strip()]
    elif isinstance(features, Sequence) and all(isinstance(f, str) for f in features):
        names = list(features)
    else:
        raise TypeError(f"inputs must be a comma-separated string or a sequence of names from "
                        f"{', '.join(FEATURES)}; got {features!r}")
    unknown = [f for f in names if f not in FEATURES]
    if unknown:
        raise ValueError(f"unknown input feature {unknown[0]!r}; expected some of {', '.join(FEATURES)} "
                         f"(e.g. inputs='time,intensity,mask')")
    repeated = sorted({f for f in names if names.count(f) > 1})
    if repeated:
        raise ValueError(f"input feature {repeated[0]!r} given twice in {features!r}")
    return tuple(f for f in FEATURES if f in names)


def resolve_times(values: torch.Tensor, times: torch.Tensor | None) -> torch.Tensor:
    """(B, T) times of ``values`` (B, T, D): t_k = k (k = 1..T) when None, a (T,) row broadcast.

    Checked as ``interpolate`` checks them (shape, strictly increasing), in float64 (``CLOCK_DTYPE``)
    whatever the values' dtype: difference them before casting, so epoch timestamps keep their gaps.
    """
    t = check_times(times, check_values(values))
    return t.expand(values.shape[0], -1) if t.dim() == 1 else t


def check_inputs(values: torch.Tensor, times: torch.Tensor | None, input_size: int) -> torch.Tensor:
    """Check a model's ``values`` (B, T, D = ``input_size``) and ``times``; return the (B, T) float64 times."""
    t = resolve_times(values, times)
    if values.shape[-1] != input_size:
        raise ValueError(f"values must have {input_size} channels (the model's input_size) on the last axis; "
                         f"got shape {tuple(values.shape)}")
    return t


def observed_mask(values: torch.Tensor) -> torch.Tensor:
    """(B, T, D) bool: True where ``values`` is observed (not NaN)."""
    return ~torch.isnan(values)


def step_observed(values: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: True where the step has at least one observed channel (False on padding)."""
    return observed_mask(values).any(-1)


def trailing_padding(values: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: True on the steps after each sample's last step with an observed channel (the
    padding of a shorter sample).  A step with no observed channel BEFORE that is a real step with
    every value missing (missing values per channel), not padding."""
    seen = step_observed(values)
    return seen.flip(1).to(torch.int8).cummax(dim=1).values.flip(1) == 0


def forward_fill(values: torch.Tensor, initial: float | torch.Tensor = 0.0) -> torch.Tensor:
    """``values`` (B, T, D) with each NaN replaced by the channel's last earlier observation (causal).

    Before a channel's first observation the value is ``initial`` (a number or a (D,) tensor; 0,
    the training mean of standardised data, by default).  Unlike the "hold" path's fill, nothing
    is taken from the future, which a step-by-step RNN must not see.
    """
    observed = observed_mask(values)
    T = values.shape[1]
    steps = torch.arange(T, device=values.device).view(1, T, 1)
    last = torch.where(observed, steps, torch.full_like(steps, -1)).cummax(dim=1).values  # (B, T, D)
    held = torch.gather(torch.nan_to_num(values, nan=0.0), 1, last.clamp(min=0))
    start = torch.as_tensor(initial, dtype=values.dtype, device=values.device).expand_as(values)
    return torch.where(last >= 0, held, start)


def observation_counts(values: torch.Tensor) -> torch.Tensor:
    """(B, T, D) float: observations of each channel up to and including step k, sum_{j <= k} m_j^d."""
    return observed_mask(values).to(values.dtype).cumsum(dim=1)


def step_gaps(values: torch.Tensor, times: torch.Tensor | None) -> torch.Tensor:
    """(B, T) time since the previous step, t_k - t_{k-1}, and 0 at the first step (GRU-dt's input)."""
    t = resolve_times(values, times)
    return torch.cat([torch.zeros_like(t[:, :1]), t[:, 1:] - t[:, :-1]], dim=1).to(values.dtype)


def time_since_observation(values: torch.Tensor, times: torch.Tensor | None) -> torch.Tensor:
    """(B, T, D) GRU-D's delta (Che et al. 2018, eq. 2): time since the channel's previous observation.

    delta_1^d = 0;  delta_k^d = t_k - t_{k-1} + delta_{k-1}^d if m_{k-1}^d = 0, else t_k - t_{k-1}.
    Unrolled: delta_k^d = t_k - t_j with j < k the channel's last observation before step k (t_1 if
    it has none), which is what is computed, in one pass.
    """
    t = resolve_times(values, times)
    observed = observed_mask(values)
    B, T, D = values.shape
    steps = torch.arange(T, device=values.device).view(1, T, 1)
    last = torch.where(observed, steps, torch.full_like(steps, -1)).cummax(dim=1).values  # at or before k
    before = torch.cat([torch.full_like(last[:, :1], -1), last[:, :-1]], dim=1).clamp(min=0)  # strictly before
    t3 = t.unsqueeze(-1).expand(B, T, D)
    return (t3 - torch.gather(t3, 1, before)).to(values.dtype)


def time_features(values: torch.Tensor, times: torch.Tensor | None, features: str | Sequence[str],
                  time_scale: float = 1.0, count_scale: float = 1.0) -> torch.Tensor:
    """``values`` (B, T, D) with the time-aware ``features`` appended on the channel axis.

    Output (B, T, D + n): the values unchanged (NaN kept), then, in the order of FEATURES,
    ``time`` t_k / time_scale (1 channel), ``intensity`` c_k^d / count_scale (D channels) and
    ``mask`` m_k^d (D channels).  Appended channels are NaN on steps with no observed channel
    (see the module docstring: the readout must stay on the last real observation); a step
    before that with every value missing gets its time, the counts so far and a zero mask.
    """
    names = parse_features(features)
    for name, scale in (("time_scale", time_scale), ("count_scale", count_scale)):
        if not (isinstance(scale, (int, float)) and scale > 0):
            raise ValueError(f"{name} must be a positive number; got {scale!r}")
    t = resolve_times(values, times)
    parts: list[torch.Tensor] = [values]
    if "time" in names:
        parts.append((t / time_scale).unsqueeze(-1).to(values.dtype))
    if "intensity" in names:
        parts.append(observation_counts(values) / count_scale)
    if "mask" in names:
        parts.append(observed_mask(values).to(values.dtype))
    if len(parts) == 1:
        return values
    padding = trailing_padding(values)
    extra = torch.cat(parts[1:], dim=-1).masked_fill(padding.unsqueeze(-1), float("nan"))
    return torch.cat([values, extra], dim=-1)


class TimeFeatures(nn.Module):
    """``time_features`` as a module: ``(values, times) -> (B, T, D + extra_channels(D))``.

    No parameters; ``time_scale`` and ``count_scale`` are buffers (saved with a model that holds
    this module), best set by :meth:`fit` on the training split.

    >>> feats = TimeFeatures.fit("time,mask", train_values, train_times)   # doctest: +SKIP
    >>> model(feats(values, times), times)                                 # doctest: +SKIP
    """

    def __init__(self, features: str | Sequence[str], time_scale: float = 1.0, count_scale: float = 1.0):
        super().__init__()
        self.features = parse_features(features)
        self.register_buffer("time_scale", torch.tensor(float(time_scale)))
        self.register_buffer("count_scale", torch.tensor(float(count_scale)))

    @classmethod
    def fit(cls, features: str | Sequence[str], values: torch.Tensor,
            times: torch.Tensor | None = None) -> TimeFeatures:
        """Scales from (training) samples: the largest |observed time| and the largest number of
        observations of any channel in any sample (1 where they are 0)."""
        t = resolve_times(values, times)
        observed = step_observed(values)
        t_max = float(t.abs().masked_fill(~observed, 0.0).max()) if observed.any() else 1.0
        c_max = float(observation_counts(values)[:, -1].max()) if values.numel() else 1.0
        return cls(features, time_scale=t_max or 1.0, count_scale=c_max or 1.0)

    def extra_channels(self, input_size: int) -> int:
        """Channels appended to ``input_size`` value channels."""
        return ("time" in self.features) + input_size * (("intensity" in self.features) + ("mask" in self.features))

    def forward(self, values: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        return time_features(values, times, self.features, float(self.time_scale), float(self.count_scale))

    def extra_repr(self) -> str:
        return (f"features={','.join(self.features)}, time_scale={float(self.time_scale):g}, "
                f"count_scale={float(self.count_scale):g}")
