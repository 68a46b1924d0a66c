"""torchcde's natural cubic spline with missing values, vectorised over samples and channels.

``torchcde.natural_cubic_coeffs(x, t)`` (torchcde 0.2.5, the rule of the Neural CDE reference) on
data with NaN treats each (sample, channel) series alone, in a Python loop over samples, channels
and time steps: about a minute per epoch on JapaneseVowels with missing values per channel, where
the reference computes its coefficients once before training.  The Neural CDE here builds them per
batch (the batch's grid is the union of its samples' times), so the same rule is computed here for
the whole batch at once:

1. each series is filled before its first observation with that observation and after its last
   with the last one (torchcde's ``_version=1``); a series never observed is zero;
2. the natural cubic spline through the series' observed points (knot derivatives from the
   tridiagonal system of ``_natural_cubic_spline_coeffs_without_missing_values``, solved by one
   Thomas sweep over the padded knots, padded rows decoupled);
3. on every interval of the grid, the piece of that spline containing it, re-expanded about the
   interval's start (torchcde's loop, as one gather).

The output is torchcde's coefficient layout, (B, G - 1, 4 C) = [a, b, 2c, 3d], for
``torchcde.CubicSpline``; the tests check it equals ``torchcde.natural_cubic_coeffs`` on data with
missing values.
"""

from __future__ import annotations

import torch

__all__ = ["natural_cubic_coeffs"]


def _thomas(lower: torch.Tensor, diag: torch.Tensor, upper: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Solve the tridiagonal systems (S, K): row k is lower[k] m[k-1] + diag[k] m[k] + upper[k] m[k+1] = rhs[k]."""
    K = diag.shape[1]
    cp, dp = [], []
    for k in range(K):
        denom = diag[:, k] if k == 0 else diag[:, k] - lower[:, k] * cp[k - 1]
        cp.append(upper[:, k] / denom)
        dp.append((rhs[:, k] if k == 0 else rhs[:, k] - lower[:, k] * dp[k - 1]) / denom)
    m = [dp[-1]]
    for k in range(K - 2, -1, -1):
        m.append(dp[k] - cp[k] * m[-1])
    return torch.stack(m[::-1], 1)


def natural_cubic_coeffs(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Coefficients (B, G - 1, 4 C) of torchcde's natural cubic spline of ``x`` (B, G, C) on the times
    ``t`` (G,) (strictly increasing, G >= 2), NaN marking missing values (module docstring)."""
    B, G, C = x.shape
    xs = x.transpose(1, 2).reshape(B * C, G)  # one row per (sample, channel) series
    t = t.to(x.dtype)
    observed = ~torch.isnan(xs)
    idx = torch.arange(G, device=x.device).expand_as(xs)
    first = torch.where(observed, idx, torch.full_like(idx, G)).min(1, keepdim=True).values
    last = torch.where(observed, idx, torch.full_like(idx, -1)).max(1, keepdim=True).values
    never = first >= G
    safe = torch.nan_to_num(xs, nan=0.0)
    first_value = safe.gather(1, first.clamp(max=G - 1))
    last_value = safe.gather(1, last.clamp(min=0))
    # 1. the ends filled with the first / last observation; they become knots
    xs = torch.where(idx < first, first_value, torch.where(idx > last, last_value, xs))
    xs = xs.masked_fill(never, 0.0)
    knot = observed | (idx < first) | (idx > last)
    # 2. the spline through the knots, compacted to the front of each row (in order), padding after them
    n = knot.sum(1, keepdim=True)  # >= 2: both ends are knots
    order = (~knot).to(torch.int8).argsort(dim=1, stable=True)
    kt = t[order]
    kx = torch.nan_to_num(xs.gather(1, order), nan=0.0)
    piece = idx[:, :-1] < n - 1  # the real pieces between consecutive knots
    dt = kt[:, 1:] - kt[:, :-1]
    r = torch.where(piece, 1.0 / torch.where(piece, dt, torch.ones_like(dt)), torch.zeros_like(dt))
    dx = torch.where(piece, kx[:, 1:] - kx[:, :-1], torch.zeros_like(dt))
    s = 3 * dx * r * r
    zero = torch.zeros_like(r[:, :1])
    r_left, r_right = torch.cat([zero, r], 1), torch.cat([r, zero], 1)
    diag = 2 * (r_left + r_right)
    diag = torch.where(idx < n, diag, torch.ones_like(diag))  # padded knots: m = 0, decoupled
    rhs = torch.cat([zero, s], 1) + torch.cat([s, zero], 1)
    m = _thomas(r_left, diag, r_right, rhs)
    a = kx[:, :-1]
    b = m[:, :-1]
    two_c = (6 * dx * r - 4 * m[:, :-1] - 2 * m[:, 1:]) * r
    three_d = (-6 * dx * r + 3 * (m[:, :-1] + m[:, 1:])) * r * r
    # 3. each grid interval's piece (the last knot at or before its start), re-expanded about its start
    p = (knot.cumsum(1)[:, :-1] - 1).clamp(min=0)
    p = torch.minimum(p, (n - 2).clamp(min=0))
    a, b, two_c, three_d = (c.gather(1, p) for c in (a, b, two_c, three_d))
    offset = kt.gather(1, p) - t[:-1]  # <= 0, as torchcde's prev_time - time
    a_inner = (0.5 * two_c - three_d * offset / 3) * offset
    a = a + (a_inner - b) * offset
    b = b + (three_d * offset - two_c) * offset
    two_c = two_c - 2 * three_d * offset
    coeffs = [c.reshape(B, C, G - 1).transpose(1, 2) for c in (a, b, two_c, three_d)]
    return torch.cat(coeffs, dim=-1)
