"""Fixed-step integration: knot-aligned grids and one stepping loop for every explicit tableau.

Two ideas live here.

**Knot-aligned grids** (``knot_grid``).  The integration grid is the sorted union of the output
times ``t`` and the jump points ``jump_t`` lying strictly inside the span of ``t``.  With a
``step_size``, each gap between consecutive grid points is split into
``n = ceil(gap / step_size)`` *equal* substeps (with a tiny relative slack, so a gap that is an
exact multiple of ``step_size`` up to rounding is not given one extra step).  Steps therefore
never exceed ``step_size`` and never straddle an output time or a jump.  This differs on
purpose from torchdiffeq's fixed grid, which lays ``arange(t0, t1, step_size)`` over the whole
span, shortens the last step, and linearly interpolates outputs that fall inside a step: that
grid steps straight over the knots of a piecewise input (an O(dt) error, whatever the method's
order) and returns interpolated rather than computed states.  Without ``step_size`` the steps
are exactly the grid intervals, which is torchdiffeq's ``step_size=None`` convention.

**Stage times one ulp inside the step** (``integrate_fixed``).  Stage ``i`` of a step
``[t0, t1]`` is evaluated at ``t0 + c_i * dt``, except that a stage on an end of the step is
moved one unit in the last place inside it: ``c_i = 0`` -> ``nextafter(t0, t1)``, ``c_i = 1``
-> ``nextafter(t1, t0)``.  Grid points are exactly where piecewise inputs jump.  A
zero-order-hold input held on ``(t_{k-1}, t_k]`` evaluated *at* ``t_{k-1}`` would return the
previous piece, and one held on ``[t_{k-1}, t_k)`` evaluated at ``t_k`` the next piece, so an
Euler or RK4 step would mix two pieces and lose both its order and the exact equality with a
discrete RNN cell (which reads x_k over the whole step k).  One ulp inside, every stage sees
the value of the step's own piece whichever side the input is closed on; for a smooth
function the shift changes the result by about ``ulp * |df/dt| * dt``, far below the
truncation error.  torchdiffeq does the same for its fixed solvers only with
``options={"perturb": True}``; here it is always on.

Shapes: ``y0`` is any shape ``S``; outputs are ``(len(t), *S)``, time first, as torchdiffeq.
Time has ``t``'s dtype; the state may be real or complex of any floating dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .tableaux import Tableau

__all__ = ["integrate_fixed", "knot_grid"]

Func = Callable[[Tensor, Tensor], Tensor]


def _slack(dtype: torch.dtype) -> float:
    # Relative slack when counting substeps: 1e-9 in float64; in float32 the ratio gap/step_size
    # itself is only accurate to a few eps, so the slack has to be at least that.
    return max(1e-9, 8 * torch.finfo(dtype).eps)


def knot_grid(t: Tensor, jump_t: Tensor | None = None, step_size: float | None = None
              ) -> tuple[Tensor, list[int]]:
    """Integration grid through the output times and the jumps, optionally subdivided.

    Args:
        t: (T,) strictly monotone output times (increasing or decreasing).
        jump_t: (J,) points where the vector field may jump (any order, duplicates allowed);
            those outside the open span of ``t`` or equal to an output time are dropped.
        step_size: largest allowed step; each gap is split into equal substeps.  None: the
            steps are exactly the gaps of the union.

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
        n = torch.ceil(ratio * (1.0 - _slack(t.dtype))).clamp(min=1).long().to(t.device)
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


def _stage_times(tab: Tableau, t0: Tensor, t1: Tensor) -> list[list[Tensor]]:
    """Per stage, the list over steps of its evaluation time (ends moved one ulp inside)."""
    dt = t1 - t0
    t0d, t1d = t0.detach(), t1.detach()
    # value = nextafter, gradient = that of the exact end point: (nextafter(x) - x) is exact.
    inner0 = t0 + (torch.nextafter(t0d, t1d) - t0d)
    inner1 = t1 + (torch.nextafter(t1d, t0d) - t1d)
    cache: dict[float, list[Tensor]] = {}
    out = []
    for ci in tab.c:
        if ci not in cache:
            if ci == 0.0:
                ts = inner0
            elif ci == 1.0:
                ts = inner1
            else:
                ts = t0 + ci * dt
            cache[ci] = list(ts.unbind(0))
        out.append(cache[ci])
    return out


def _combine(weights: list[tuple[int, float]], ks: list[Tensor]) -> Tensor:
    acc = None
    for j, w in weights:
        term = ks[j] if w == 1.0 else w * ks[j]
        acc = term if acc is None else acc + term
    return acc


def _run_steps(func: Func, tab: Tableau, y: Tensor, stage_t: list[list[Tensor]], dts: list[Tensor],
               n0: int, n1: int, wanted: set[int]) -> tuple[Tensor, list[Tensor]]:
    """Steps n0..n1-1 from y; returns the end state and the states at grid indices in ``wanted``."""
    a_rows = [[(j, w) for j, w in enumerate(row) if w != 0.0] for row in tab.a]
    b_w = [(j, w) for j, w in enumerate(tab.b) if w != 0.0]
    outs = []
    for n in range(n0, n1):
        dt = dts[n]
        ks: list[Tensor] = []
        for i in range(tab.stages):
            yi = y if not a_rows[i] else y + dt * _combine(a_rows[i], ks)
            ks.append(func(stage_t[i][n], yi))
        y = y + dt * _combine(b_w, ks)
        if n + 1 in wanted:
            outs.append(y)
    return y, outs


def integrate_fixed(func: Func, y0: Tensor, grid: Tensor, out_index: list[int], tab: Tableau,
                    checkpoint_segment: int | None = None) -> Tensor:
    """Step ``tab`` over ``grid`` and return the states at ``grid[out_index]``.

    Args:
        func: vector field, ``func(t, y) -> dy/dt`` with ``t`` a 0-d tensor and output of
            ``y``'s shape.
        y0: state at ``grid[0]``, any shape ``S``, real or complex.
        grid: (N,) monotone step end points (see ``knot_grid``).
        out_index: increasing grid positions to return; ``out_index[0]`` must be 0.
        tab: explicit Butcher tableau.
        checkpoint_segment: None to keep every step's autograd graph (backprop).  A number of
            steps L: the steps run in segments of L under ``torch.utils.checkpoint`` (non-
            reentrant), so only the segments' start states are kept and each segment is
            recomputed during backward; same values and gradients, memory O(N / L + L) steps.

    Returns:
        (len(out_index), *S): states at the requested grid points, time first.  Built from a
        list and ``torch.stack`` once, so the backward pass is linear in the number of steps.
    """
    n_steps = grid.shape[0] - 1
    outputs = [y0]
    if n_steps <= 0:
        return torch.stack(outputs)
    t0, t1 = grid[:-1], grid[1:]
    stage_t = _stage_times(tab, t0, t1)
    dts = list((t1 - t0).unbind(0))
    wanted = set(out_index[1:])
    if checkpoint_segment is None or not torch.is_grad_enabled():
        _, outs = _run_steps(func, tab, y0, stage_t, dts, 0, n_steps, wanted)
        return torch.stack(outputs + outs)
    from torch.utils.checkpoint import checkpoint

    y = y0
    for n0 in range(0, n_steps, checkpoint_segment):
        n1 = min(n_steps, n0 + checkpoint_segment)
        seg_wanted = {i for i in wanted if n0 < i <= n1}

        def segment(y_start: Tensor, n0: int = n0, n1: int = n1, seg_wanted: set = seg_wanted):
            end, outs = _run_steps(func, tab, y_start, stage_t, dts, n0, n1, seg_wanted)
            return (end, *outs)

        res = checkpoint(segment, y, use_reentrant=False)
        y = res[0]
        outputs.extend(res[1:])
    return torch.stack(outputs)
