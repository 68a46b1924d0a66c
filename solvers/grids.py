"""Fixed-step grids.  ``knot_grid`` (this library's): the union of the output times and the jumps inside
their span, each gap split into equal substeps no longer than ``step_size``, so steps never straddle an
output or a jump and every output is a computed state.  ``arange_grid`` (torchdiffeq's ``options={"step_size":
h}``): t0 + k h, outputs inside a step interpolated; it steps over a piecewise input's knots (an O(h) error
whatever the order), which is why ``odeint(step_size=h)`` builds the knot grid instead.  Both count their
steps before building anything, so a grid that would not fit in memory is refused with a message.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .engine import DEFAULT_MAX_STEPS, check_step_count

__all__ = ["arange_grid", "constructed_grid", "knot_grid"]

def _slack(dtype: torch.dtype) -> float:
    """Relative slack when counting substeps, so a gap that is an exact multiple of the step up to rounding
    gets no extra step: 1e-9, or a few eps where gap / step_size itself is that inaccurate (float32)."""
    return max(1e-9, 8 * torch.finfo(dtype).eps)


def knot_grid(t: Tensor, jump_t: Tensor | None = None, step_size: float | None = None,
              max_steps: int = DEFAULT_MAX_STEPS, gap_scale: Tensor | None = None) -> tuple[Tensor, list[int]]:
    """Integration grid through the output times and the jumps, optionally subdivided.

    Args:
        t: (T,) strictly monotone output times (increasing or decreasing).
        jump_t: (J,) points where the vector field may jump (any order, duplicates allowed);
            those outside the open span of ``t`` or equal to an output time are dropped.
        step_size: largest allowed step; each gap is split into equal substeps.  None: the
            steps are exactly the gaps of the union.
        max_steps: refuse (StepLimitError) a grid of more steps, before building it.
        gap_scale: None, or (G,) the real length per unit of each gap of the union (an index clock):
            gap g is split into steps no longer than ``step_size`` in real time.

    Returns:
        ``(grid, out_index)``: grid (N,) in the direction of ``t``, starting at ``t[0]`` and
        ending at ``t[-1]``, containing every ``t[k]`` exactly (values, not rounded copies;
        gradients with respect to ``t`` flow through); ``out_index[k]`` is the position of
        ``t[k]`` in the grid.
    """
    n_out = t.shape[0]
    descending = n_out > 1 and bool(t[0] > t[-1])
    ta = t.flip(0) if descending else t
    pts = ta
    if jump_t is not None and jump_t.numel() > 0:
        j = jump_t.reshape(-1).to(dtype=t.dtype, device=t.device).detach()
        j = j[(j > ta[0].detach()) & (j < ta[-1].detach())]
        pts = torch.cat([ta, j])
    # Stable sort keeps an output time ahead of an equal jump, so duplicates keep the output.
    order = torch.sort(pts.detach(), stable=True).indices
    srt = pts.detach()[order]
    keep = torch.ones_like(srt, dtype=torch.bool)
    if srt.numel() > 1:
        keep[1:] = srt[1:] != srt[:-1]
    order = order[keep]
    grid = pts[order]
    is_out = order < n_out
    pos = torch.nonzero(is_out).reshape(-1)  # ascending positions of ta[0..T-1]

    if step_size is not None and grid.shape[0] > 1:
        gaps = grid[1:] - grid[:-1]
        # Counts in float64 on the CPU (they are needed on the host anyway, and some devices
        # have no float64), then moved back to t's device.
        ratio = gaps.detach().cpu().double() / float(step_size)
        if gap_scale is not None:
            ratio = ratio * gap_scale[: ratio.shape[0]].detach().cpu().double()
        n = torch.ceil(ratio * (1.0 - _slack(t.dtype))).clamp(min=1)
        check_step_count(int(min(float(n.sum()), 2.0 ** 62)), max_steps,
                         f"a fixed-step grid of step_size = {step_size} over [{float(ta[0])}, {float(ta[-1])}]")
        n = n.long().to(t.device)
        total = int(n.sum())
        starts = torch.repeat_interleave(grid[:-1], n)
        widths = torch.repeat_interleave(gaps, n)
        first = torch.cumsum(n, 0) - n  # fine index of each coarse point
        m = torch.arange(total, device=t.device) - torch.repeat_interleave(first, n)
        frac = m.to(t.dtype) / torch.repeat_interleave(n, n).to(t.dtype)
        # m = 0 gives starts + 0 = the coarse point exactly.
        grid = torch.cat([starts + widths * frac, grid[-1:]])
        coarse_pos = torch.cat([first, first.new_tensor([total])])
        pos = coarse_pos[pos]

    n_grid = grid.shape[0]
    if descending:
        grid = grid.flip(0)
        pos = (n_grid - 1) - pos.flip(0)
    return grid, [int(p) for p in pos.tolist()]


def arange_grid(t: Tensor, step_size: float, max_steps: int = DEFAULT_MAX_STEPS) -> Tensor:
    """torchdiffeq's fixed grid for ``options={"step_size": h}``: t0 + k h, last point t[-1] (increasing t)."""
    start, end = float(t[0]), float(t[-1])
    # in t's dtype, as torchdiffeq counts, so the two grids have the same points
    ratio = float(torch.ceil((t[-1].detach() - t[0].detach()) / step_size + 1))
    if not math.isfinite(ratio):
        raise ValueError(f"step_size = {step_size} over [{start}, {end}] gives no finite grid")
    count = int(ratio)
    check_step_count(count - 1, max_steps, f"a fixed-step grid of step_size = {step_size} over [{start}, {end}]")
    grid = torch.arange(0, count, dtype=t.dtype, device=t.device) * step_size + t[0]
    grid[-1] = t[-1]
    return grid


def constructed_grid(constructor: Callable, func: Callable, y0: Any, t: Tensor, sign: float, max_steps: int,
                     name: str = "options['grid_constructor']") -> list[float]:
    """A user's grid_constructor(func, y0, t), called in t's own direction (as torchdiffeq calls it); the
    grid in problem time sign * t, increasing."""
    grid = constructor(func, y0, t)
    if not isinstance(grid, Tensor) or grid.ndim != 1:
        raise TypeError(f"{name} must return a 1-D tensor of times; got "
                        f"{type(grid).__name__}" + (f" of shape {tuple(grid.shape)}" if isinstance(grid, Tensor) else ""))
    points = [sign * float(x) for x in grid.detach().tolist()]
    ends = [sign * float(t[0]), sign * float(t[-1])]
    if not points or points[0] != ends[0] or points[-1] != ends[1]:
        raise ValueError(f"{name} must return a grid from t[0] = {float(t[0])} to t[-1] = {float(t[-1])}; got "
                         f"{[sign * x for x in points[:1] + points[-1:]]}")
    if any(b <= a for a, b in zip(points, points[1:])):
        raise ValueError(f"{name} must return strictly monotone times in t's direction")
    check_step_count(len(points) - 1, max_steps, f"the grid from {name}")
    return points
