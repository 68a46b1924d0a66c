"""Input paths: continuous-time interpolation of sampled sequences.

A recurrent vector field reads its input as a function of time x(t).  This module turns
samples ``values[:, k]`` observed at ``times[k]`` (or per sample ``times[b, k]``) into such a
function, piecewise polynomial between the sample times ("knots"):

* ``"hold"``    zero-order hold, right-continuous in the sense of a discrete RNN: on the piece
                (t_{k-1}, t_k] the path equals x_k, so a step from t_{k-1} to t_k reads the
                sample observed at t_k, exactly as step k of a discrete RNN reads x_k.
* ``"linear"``  piecewise linear through the samples (torchcde's ``linear_interpolation_coeffs``).
* ``"cubic"``   Hermite cubic with backward differences: on [t_k, t_{k+1}] the derivative at t_k
                is the slope of the previous piece and at t_{k+1} the slope of the piece itself
                (torchcde's ``hermite_cubic_coefficients_with_backward_differences``).  It is C^1
                and, unlike the natural spline, causal: x(t) on a piece needs no later sample.
* ``"natural"`` natural cubic spline (second derivative zero at both ends; torchcde's
                ``natural_cubic_coeffs`` when nothing is missing).

Outside [t_1, t_T] every path is constant: x_1 before the first knot, x_T after the last one.
(torchcde extrapolates the end pieces instead; a constant is what an RNN started before its
first sample should read.)

Missing observations are NaN in ``values``; they are filled per sample and per channel before
the coefficients are built, so no NaN ever reaches a field:

* ``"hold"``: the last observation is carried forward; leading gaps take the first observation.
* the other methods: linear interpolation in time between the neighbouring observations of that
  channel, constant before the first and after the last observation (torchcde's rule).
* a channel never observed in a sample is filled with zeros.

Every method is linear in the values and reproduces constants, so for an affine input map
``u = W x + b`` the path of the projected samples equals the projection of the path exactly.
:meth:`Path.affine` uses this: a field projects the coefficients once instead of applying its
input map at every evaluation.

Evaluation at any time is a binary search over the knots (O(log T)), batched over samples,
differentiable with respect to the values and runs on the values' device.  Solves read a path
through :meth:`Path.input`: the solvers' :class:`solvers.PiecewiseInput` over the same coefficient
tensors, with a cursor (O(1) per step) on the clock of :func:`solve_clock`.  It is the one reader the
models, ``Field.driven_by``, the stochastic model and the analysis share.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

import solvers

__all__ = ["CLOCK_DTYPE", "INTERPOLATIONS", "Path", "as_times", "check_times", "check_values", "fill_missing",
           "index_rates", "interpolate", "solve_clock", "start_time"]

INTERPOLATIONS = ("hold", "linear", "cubic", "natural")

CLOCK_DTYPE = torch.float64
"""The dtype of every clock: sample times are checked, stored (``Path.knots``) and differenced in it
whatever the values' dtype, so absolute timestamps (epoch seconds ~1.7e9, epoch hours) keep their
gaps; only differences of times (gaps, local times on a piece) are cast to the values' dtype."""


class Path:
    """A batch of piecewise-polynomial paths x: R -> R^D sharing the same piece structure.

    Attributes:
        method: the interpolation scheme that built it.
        knots: (T,) shared or (B, T) per-sample sample times, strictly increasing, in ``CLOCK_DTYPE``
            (float64) whatever the values' dtype.
        coeffs: tuple of tensors (B, T-1, D): the polynomial coefficients of each piece in the
            local time tau = t - t_{k-1}; ``coeffs[i]`` multiplies tau^i.
        first, last: (B, D) the values held before the first and after the last knot.
    """

    def __init__(self, method: str, knots: torch.Tensor, coeffs: Sequence[torch.Tensor],
                 first: torch.Tensor, last: torch.Tensor):
        self.method = method
        self.knots = knots
        self.coeffs = tuple(coeffs)
        self.first = first
        self.last = last

    # ------------------------------------------------------------------ shape facts
    @property
    def batch_size(self) -> int:
        return self.first.shape[0]

    @property
    def channels(self) -> int:
        return self.first.shape[-1]

    @property
    def length(self) -> int:
        return self.knots.shape[-1]

    @property
    def per_sample(self) -> bool:
        """True when each sample has its own knots ((B, T) times)."""
        return self.knots.dim() == 2

    @property
    def dtype(self) -> torch.dtype:
        return self.first.dtype

    @property
    def device(self) -> torch.device:
        return self.first.device

    def interval(self) -> torch.Tensor:
        """(2,) or (B, 2): first and last knot."""
        return torch.stack([self.knots[..., 0], self.knots[..., -1]], dim=-1)

    def gaps(self) -> torch.Tensor:
        """(T-1,) or (B, T-1): lengths of the pieces, in the knots' dtype (float64)."""
        return self.knots[..., 1:] - self.knots[..., :-1]

    def relative(self) -> Path:
        """The same path on a clock that starts at its first knot: knots - knots[..., :1] (each sample
        its own first knot with (B, T) knots), computed in float64, where subtracting a nearby time is
        exact.  Evaluating it at t - t_1 gives what this path gives at t; solvers step on it so that
        timestamps such as epoch seconds give the same states as the same series shifted to start
        near 0."""
        return Path(self.method, self.knots - self.knots[..., :1], self.coeffs, self.first, self.last)

    def input(self, clock: str = "time", knots: torch.Tensor | None = None, **projection) -> solvers.PiecewiseInput:
        """This path as the solvers' input type, :class:`solvers.PiecewiseInput` (an O(1) cursor over the
        same coefficient tensors, not a copy): what every solve of a field driven by a path reads.

        clock="time": the pieces end at ``knots`` (T,) or per sample (B, T) (a solve clock from
        :func:`solve_clock`), or at the path's own knots when None; local time is clock time minus the
        piece's start.  clock="index": knot k at s = k (0-based), local time (s - j) times each sample's
        gap on piece j, and the rates (:func:`index_rates`) by which a term multiplies its field, so
        samples with different (B, T) times share one solver clock.
        ``projection``: PiecewiseInput's ``weight``, ``bias``, ``scale_output``, ``complex_halves`` (the
        input map u = x weight^T + b, applied to the coefficients chunk by chunk)."""
        if clock == "index":
            rates = index_rates(self)  # (B, T): rates[:, j + 1] is piece j's length, its local-time scale
            return solvers.PiecewiseInput(torch.arange(self.length, dtype=CLOCK_DTYPE), self.coeffs, self.first,
                                          self.last, scale=rates[:, 1:], rates=rates, **projection)
        if clock != "time":
            raise ValueError(f"unknown clock {clock!r}; expected 'time' or 'index'")
        knots = self.knots if knots is None else knots.to(CLOCK_DTYPE)
        return solvers.PiecewiseInput(knots, self.coeffs, self.first, self.last, **projection)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """Every tensor the path's values depend on (for adjoint gradient bookkeeping)."""
        return self.coeffs + (self.first, self.last)

    # ------------------------------------------------------------------ transforms
    def affine(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> Path:
        """The path of ``x -> x @ weight.T + bias``: exact because interpolation is linear.

        weight: (P, D); bias: (P,) or None.  Returns a path with P channels.
        """
        if weight.shape[-1] != self.channels:
            raise ValueError(
                f"weight must have {self.channels} columns to map this path's channels; got shape "
                f"{tuple(weight.shape)}")

        def lin(c: torch.Tensor) -> torch.Tensor:
            return torch.matmul(c, weight.transpose(0, 1).to(c.dtype))

        def aff(c: torch.Tensor) -> torch.Tensor:
            out = lin(c)
            return out if bias is None else out + bias.to(c.dtype)

        coeffs = tuple(aff(c) if i == 0 else lin(c) for i, c in enumerate(self.coeffs))
        return Path(self.method, self.knots, coeffs, aff(self.first), aff(self.last))

    # ------------------------------------------------------------------ evaluation
    def _as_times(self, t) -> tuple[torch.Tensor, bool]:
        t = torch.as_tensor(t, dtype=self.knots.dtype, device=self.device)
        scalar = t.dim() == 0
        if scalar:
            t = t.reshape(1)
        if bool(torch.isnan(t).any()):
            # a NaN falls through every comparison of the knot search and would read the last sample
            where = "" if scalar else f" at index {tuple(torch.nonzero(torch.isnan(t))[0].tolist())}"
            raise ValueError(f"t must be a time, not NaN; got NaN{where}")
        if t.dim() > 2 or (t.dim() == 2 and t.shape[0] != self.batch_size):
            raise ValueError(
                f"t must be a scalar, (S,) shared times or (B, S) per-sample times with B = "
                f"{self.batch_size}; got shape {tuple(t.shape)}")
        return t, scalar

    def _locate(self, t: torch.Tensor):
        """Piece index j (B, S) in [0, T-2], local time tau, and before/after masks.

        A time equal to a knot t_k (k > 1) lies on the piece that ends there, (t_{k-1}, t_k]; the
        first knot t_1 is flagged ``before`` (the path's value there is x_1, the held value)."""
        B, T = self.batch_size, self.length
        knots = self.knots
        if knots.dim() == 1:
            idx = torch.searchsorted(knots, t.contiguous(), right=False)  # first knot >= t
            idx = idx.expand(B, -1) if idx.dim() == 1 else idx
            if t.dim() == 1:
                t = t.expand(B, -1)
            knots = knots.expand(B, -1)
        else:
            if t.dim() == 1:
                t = t.expand(B, -1)
            idx = torch.searchsorted(knots, t.contiguous(), right=False)
        j = (idx - 1).clamp(0, max(T - 2, 0))
        tau = t - torch.gather(knots, 1, j)
        return j, tau, idx == 0, idx == T

    def _gather(self, c: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        return torch.gather(c, 1, j.unsqueeze(-1).expand(-1, -1, c.shape[-1]))

    def evaluate(self, t) -> torch.Tensor:
        """x(t).  t: scalar -> (B, D); (S,) shared or (B, S) per-sample times -> (B, S, D)."""
        t, scalar = self._as_times(t)
        if self.length == 1:
            out = self.first.unsqueeze(1).expand(-1, t.shape[-1], -1)
        else:
            j, tau, before, after = self._locate(t)
            tau = tau.unsqueeze(-1).to(self.dtype)
            out = self._gather(self.coeffs[-1], j)
            for c in reversed(self.coeffs[:-1]):
                out = out * tau + self._gather(c, j)
            out = torch.where(before.unsqueeze(-1), self.first.unsqueeze(1), out)
            out = torch.where(after.unsqueeze(-1), self.last.unsqueeze(1), out)
        return out[:, 0] if scalar else out

    def derivative(self, t) -> torch.Tensor:
        """dx/dt(t), same shapes as :meth:`evaluate`; zero outside [t_1, t_T] and for "hold".

        At a knot the derivative is taken on the piece of that knot: at t_k (k > 1) the piece
        ending there, (t_{k-1}, t_k], and at the first knot t_1 the first piece (the one-sided
        derivative from inside the interval, as torchcde gives it), not the constant before it.
        """
        t, scalar = self._as_times(t)
        if self.length == 1 or len(self.coeffs) == 1:
            out = torch.zeros_like(self.first).unsqueeze(1).expand(-1, t.shape[-1], -1)
        else:
            j, tau, before, after = self._locate(t)
            t_b = t if t.dim() == 2 else t.expand(self.batch_size, -1)
            before = before & (t_b < self.knots[..., :1].to(t.dtype))  # t_1 itself: the first piece
            tau = tau.unsqueeze(-1).to(self.dtype)
            n = len(self.coeffs) - 1
            out = n * self._gather(self.coeffs[n], j)
            for i in range(n - 1, 0, -1):
                out = out * tau + i * self._gather(self.coeffs[i], j)
            out = out.masked_fill((before | after).unsqueeze(-1), 0.0)
        return out[:, 0] if scalar else out

    def __repr__(self) -> str:
        return (f"Path(method={self.method!r}, batch={self.batch_size}, length={self.length}, "
                f"channels={self.channels}, per_sample={self.per_sample}, dtype={self.dtype})")


# ---------------------------------------------------------------------- validation
def check_values(values) -> torch.Tensor:
    """``values`` unchanged if it is a (B, T, D) floating tensor with T >= 1 and no inf (NaN marks a
    missing observation); a TypeError/ValueError naming what is wrong otherwise.  B may be 0."""
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"values must be a torch.Tensor of shape (batch, time, channels); got "
                        f"{type(values).__name__}")
    if values.dim() != 3:
        raise ValueError(f"values must be 3-D (batch, time, channels); got shape {tuple(values.shape)}")
    if not values.is_floating_point():
        raise TypeError(f"values must have a floating dtype (float32 or float64); got {values.dtype}; "
                        f"convert with values.float()")
    if values.shape[1] == 0:
        raise ValueError(f"values must hold at least one time step; got shape {tuple(values.shape)}")
    if torch.isinf(values).any():
        b, k, d = torch.nonzero(torch.isinf(values))[0].tolist()
        raise ValueError(f"values must be finite or NaN (missing); got values[{b}, {k}, {d}] = "
                         f"{values[b, k, d].item()}")
    return values


def check_times(times, values: torch.Tensor) -> torch.Tensor:
    """The sample times of ``values`` (B, T, D) in ``CLOCK_DTYPE`` (float64): t_k = k when ``times``
    is None, else ``times`` (T,) or (B, T) checked to be finite and strictly increasing along the last
    axis.  They are checked and returned in float64 whatever the values' dtype: casting epoch seconds
    to float32 first would merge distinct times (1.7e9 + 0.1 rounds to 1.7e9) and shrink gaps."""
    B, T, _ = values.shape
    if times is None:
        return torch.arange(1, T + 1, dtype=CLOCK_DTYPE, device=values.device)
    times = as_times(times, values.device)
    if times.is_complex() or times.dtype == torch.bool:
        raise TypeError(f"times must be real; got dtype {times.dtype}")
    times = times.to(CLOCK_DTYPE).contiguous()  # the knot search wants contiguous rows (an expand is not)
    if times.dim() not in (1, 2):
        raise ValueError(f"times must have shape (T,) or (B, T) = ({B}, {T}); got shape {tuple(times.shape)}")
    if times.shape[-1] != T:
        raise ValueError(f"times and values must have the same length: values has T = {T} steps, "
                         f"times has {times.shape[-1]} (shape {tuple(times.shape)})")
    if times.dim() == 2 and times.shape[0] != B:
        raise ValueError(f"per-sample times must have shape (B, T) = ({B}, {T}); got {tuple(times.shape)}")
    if not torch.isfinite(times).all():
        pos = tuple(torch.nonzero(~torch.isfinite(times))[0].tolist())
        raise ValueError(f"times must be finite; got times[{', '.join(map(str, pos))}] = {times[pos].item()}")
    diffs = times[..., 1:] - times[..., :-1]
    bad = diffs <= 0
    if bad.any():
        pos = torch.nonzero(bad)[0].tolist()
        if times.dim() == 1:
            k = pos[0]
            raise ValueError(f"times must be strictly increasing along the last axis; got times[{k + 1}] = "
                             f"{times[k + 1].item()} <= times[{k}] = {times[k].item()}")
        b, k = pos
        raise ValueError(f"times must be strictly increasing along the last axis; got times[{b}, {k + 1}] = "
                         f"{times[b, k + 1].item()} <= times[{b}, {k}] = {times[b, k].item()}")
    return times


def as_times(times, device=None) -> torch.Tensor:
    """``times`` (a tensor, array, nested list, or a list of equal-length tensors) as one tensor.

    A list of tensors of different lengths (one series per sample) is refused with what it got:
    a batch shares T, shorter series are padded (NaN values at the end, any increasing times)."""
    if isinstance(times, (list, tuple)) and any(isinstance(x, torch.Tensor) for x in times):
        shapes = [tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__ for x in times]
        if len(set(shapes)) > 1:
            raise ValueError(f"times must be one tensor of shape (T,) or (B, T); got a list of {len(times)} "
                             f"tensors of different shapes {shapes[:5]}{' ...' if len(shapes) > 5 else ''} (pad "
                             f"the shorter series to the longest: NaN values, any increasing times)")
        return torch.stack([torch.as_tensor(x) for x in times]).to(device)
    try:
        return torch.as_tensor(times, device=device)
    except (ValueError, TypeError, RuntimeError) as e:
        raise TypeError(f"times must be a tensor of shape (T,) or (B, T) (or a rectangular nested list); got "
                        f"{type(times).__name__} that torch cannot read as one ({e})") from None


def start_time(knots: torch.Tensor, first_gap: float | None = None) -> torch.Tensor:
    """(1,) or (B, 1): the clock's start, one first gap before the first knot of ``knots`` (T,) or
    (B, T): t0 = 2 t_1 - t_2, t_1 - ``first_gap`` when given, t_1 - 1 for a single sample."""
    if first_gap is not None:
        return knots[..., :1] - first_gap
    if knots.shape[-1] > 1:
        return 2 * knots[..., :1] - knots[..., 1:2]
    return knots[..., :1] - 1


def index_rates(path: Path) -> torch.Tensor:
    """(B, T) dt/ds of each sample on the index clock, in the path's dtype: rates[:, j + 1] is the
    length of piece j and rates[:, 0] that of the piece before the first knot (as long as the first
    one, so the start is t0 = 2 t_1 - t_2 as on the real-time clock)."""
    gaps = path.gaps().to(path.dtype)
    if gaps.dim() == 1:
        gaps = gaps.unsqueeze(0).expand(path.batch_size, -1)
    first = gaps[:, :1] if gaps.shape[1] else torch.ones(path.batch_size, 1, dtype=path.dtype, device=path.device)
    return torch.cat([first, gaps], 1)


def solve_clock(path: Path, at: Sequence[int], clock: str = "time", knots: torch.Tensor | None = None,
                first_gap: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The clock a model solves ``path`` on: (knots, output times), both float64.

    clock="time": real time relative to the first knot (``Path.relative``; ``knots`` (T,) overrides
    the path's, e.g. a discrete model's eps * k), knots (T,) or per sample (B, T), output times
    [t0, knots[at]] with t0 from :func:`start_time`.  clock="index" (per-sample times on one
    solver clock): knot k at s = k (0-based), the start at s = -1; the field is scaled by
    :func:`index_rates`.  The one place the models' clock rules live."""
    if clock == "index":
        s = torch.arange(-1, path.length, dtype=CLOCK_DTYPE)
        return s[1:], torch.cat([s[:1], s[1:][list(at)]])
    if clock != "time":
        raise ValueError(f"unknown clock {clock!r}; expected 'time' or 'index'")
    knots = path.knots if knots is None else knots.to(CLOCK_DTYPE)
    knots = knots - knots[..., :1]
    return knots, torch.cat([start_time(knots, first_gap), knots[..., list(at)]], -1)


# ---------------------------------------------------------------------- missing values
def _neighbours(observed: torch.Tensor):
    """For (B, T, D) masks: index of the last observation at or before k, and the first at or after."""
    T = observed.shape[1]
    ar = torch.arange(T, device=observed.device).view(1, T, 1)
    prev = torch.where(observed, ar, torch.full_like(ar, -1)).cummax(dim=1).values
    nxt = torch.where(observed, ar, torch.full_like(ar, T)).flip(1).cummin(dim=1).values.flip(1)
    return prev, nxt


def fill_missing(values: torch.Tensor, times: torch.Tensor, method: str) -> torch.Tensor:
    """``values`` (B, T, D) with every NaN replaced by the rule of ``method`` (module docstring):
    carried forward for "hold", linear in ``times`` (T,) or (B, T) otherwise; 0 where a channel
    is never observed in a sample."""
    if method not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation method {method!r}; expected one of "
                         f"{', '.join(repr(m) for m in INTERPOLATIONS)}")
    observed = ~torch.isnan(values)
    if bool(observed.all()):
        return values
    B, T, D = values.shape
    prev, nxt = _neighbours(observed)
    none_before = prev < 0
    none_after = nxt >= T
    safe = torch.where(observed, values, torch.zeros_like(values))
    prev_c = prev.clamp(min=0)
    nxt_c = nxt.clamp(max=T - 1)
    x_prev = torch.gather(safe, 1, prev_c)
    x_next = torch.gather(safe, 1, nxt_c)
    if method == "hold":
        filled = torch.where(none_before, x_next, x_prev)
    else:
        t = times.expand(B, T) if times.dim() == 1 else times
        t = t.unsqueeze(-1).expand(B, T, D)
        t_prev = torch.gather(t, 1, prev_c)
        t_next = torch.gather(t, 1, nxt_c)
        span = torch.where(nxt > prev, t_next - t_prev, torch.ones_like(t))
        w = ((t - t_prev) / span).clamp(0, 1).to(values.dtype)  # differences of times first, in their float64
        filled = x_prev + w * (x_next - x_prev)
        filled = torch.where(none_before, x_next, torch.where(none_after, x_prev, filled))
    never = none_before & none_after  # channel never observed in that sample
    filled = filled.masked_fill(never, 0.0)
    return torch.where(observed, values, filled)


# ---------------------------------------------------------------------- coefficients
def _tdiff(times: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B or 1, T-1, 1) piece lengths, differenced in the times' float64, then in ``dtype``."""
    d = (times[..., 1:] - times[..., :-1]).to(dtype)
    return d.unsqueeze(-1) if d.dim() == 2 else d.view(1, -1, 1)


def _hermite(x: torch.Tensor, h: torch.Tensor, m0: torch.Tensor, m1: torch.Tensor):
    """Cubic coefficients on each piece from end values and end derivatives."""
    dx = x[:, 1:] - x[:, :-1]
    slope = dx / h
    a = x[:, :-1]
    b = m0
    c = (3 * slope - 2 * m0 - m1) / h
    d = (m0 + m1 - 2 * slope) / (h * h)
    return a, b, c, d


def _natural_derivatives(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Knot derivatives m (B, T, D) of the natural cubic spline: a tridiagonal solve (Thomas).

    Equations (continuity of the second derivative, zero at both ends), with r_k = 1/h_k,
    s_k = 3 (x_{k+1} - x_k) / h_k^2:
        2 r_0 m_0 + r_0 m_1                               = s_0
        r_{k-1} m_{k-1} + 2 (r_{k-1} + r_k) m_k + r_k m_{k+1} = s_{k-1} + s_k
        r_{T-2} m_{T-2} + 2 r_{T-2} m_{T-1}                 = s_{T-2}
    Looping over T is fine: the spline is built once per forward pass, not per solver step.
    """
    B, T, _ = x.shape
    r = (1.0 / h).expand(B, T - 1, 1)
    s = 3 * (x[:, 1:] - x[:, :-1]) * r * r
    zero_r = torch.zeros_like(r[:, :1])
    r_left = torch.cat([zero_r, r], 1)          # coefficient of m_{k-1}
    r_right = torch.cat([r, zero_r], 1)         # coefficient of m_{k+1}
    diag = 2 * (r_left + r_right)
    zero_s = torch.zeros_like(s[:, :1])
    rhs = torch.cat([zero_s, s], 1) + torch.cat([s, zero_s], 1)
    lower, upper = r_left.unbind(1), r_right.unbind(1)
    diag, rhs = diag.unbind(1), rhs.unbind(1)
    cp, dp = [], []
    for k in range(T):
        if k == 0:
            denom = diag[0]
            cp.append(upper[0] / denom)
            dp.append(rhs[0] / denom)
        else:
            denom = diag[k] - lower[k] * cp[k - 1]
            cp.append(upper[k] / denom)
            dp.append((rhs[k] - lower[k] * dp[k - 1]) / denom)
    m = [dp[-1]]
    for k in range(T - 2, -1, -1):
        m.append(dp[k] - cp[k] * m[-1])
    return torch.stack(m[::-1], 1)


def _coefficients(x: torch.Tensor, times: torch.Tensor, method: str) -> tuple[torch.Tensor, ...]:
    B, T, _ = x.shape
    if method == "hold":
        return (x[:, 1:],)
    h = _tdiff(times, x.dtype)
    if method == "linear":
        return (x[:, :-1], (x[:, 1:] - x[:, :-1]) / h)
    if method == "cubic":
        slope = (x[:, 1:] - x[:, :-1]) / h
        m0 = torch.cat([slope[:, :1], slope[:, :-1]], 1)   # backward difference at the left knot
        return _hermite(x, h, m0, slope)
    if method == "natural":
        if T == 2:
            return (x[:, :-1], (x[:, 1:] - x[:, :-1]) / h)
        m = _natural_derivatives(x, h)
        return _hermite(x, h, m[:, :-1], m[:, 1:])
    raise AssertionError(method)  # unreachable: checked in interpolate


def interpolate(values: torch.Tensor, times: torch.Tensor | None = None, method: str = "hold") -> Path:
    """Interpolate samples into a continuous input path.

    Args:
        values: (B, T, D) floating tensor, batch-first, time on axis 1.  NaN marks a missing
            observation (filled as documented in this module); inf is an error.
        times: None (t_k = k for k = 1..T), (T,) shared or (B, T) per-sample times, strictly
            increasing along the last axis.  Checked and kept in float64 (``CLOCK_DTYPE``): only
            their differences are cast to the values' dtype, so epoch timestamps keep their gaps.
        method: "hold" | "linear" | "cubic" | "natural".

    Returns:
        A :class:`Path` with ``evaluate(t)``, ``derivative(t)`` and ``knots``.
    """
    values = check_values(values)
    if method not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation method {method!r}; expected one of "
                         f"{', '.join(repr(m) for m in INTERPOLATIONS)}")
    times = check_times(times, values)
    x = fill_missing(values, times, method)
    coeffs = _coefficients(x, times, method) if x.shape[1] > 1 else (x[:, :0],)
    return Path(method, times, coeffs, x[:, 0], x[:, -1])
