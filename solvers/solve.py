"""``solve``: the engine for a term built by the caller (a driven field, the structured kernel).

``solvers.odeint`` wraps a user function ``func(t, y)`` into a term and adds torchdiffeq's
conventions; a model that builds its own term (an RNN driven by its input path) calls
:func:`solve` directly with the clock's output times and the input's knots as jump times:

    outputs = solve(term, y0, t_out, "dopri5", jump_t=knots, rtol=1e-3, atol=1e-5, gradient="backprop")

Fixed methods step on the knot-aligned grid through ``t_out`` and ``jump_t``
(:func:`~solvers.grids.knot_grid`; ``step_size`` splits each gap into equal substeps, with
``gap_scale`` giving each gap's real length in clock units when the clock is not real time);
adaptive methods land on ``t_out`` and never straddle a jump.  The outputs are computed states.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .controller import Controller, check_resolution, rms_norm, sample_rms_norm
from .engine import DEFAULT_MAX_STEPS, check_step_count
from .gradients import GRADIENT_MODES, resolve_gradient
from .grids import knot_grid
from .problem import AdjointSpec, Problem
from .stepper import Plan
from .tableaux import Tableau, tableau
from .terms import Term

__all__ = ["make_problem", "solve"]


def make_problem(term: Term, y0: Tensor, t_out: Tensor, method: str | Tableau, *, step_size: float | None = None,
                 gap_scale: Tensor | None = None, jump_t: Tensor | None = None, rtol: float = 1e-7, atol: float = 1e-9,
                 max_steps: int = DEFAULT_MAX_STEPS, params: Sequence[Tensor] = (),
                 param_sources: Sequence[Tensor] | None = None, adjoint_seminorm: bool = True,
                 per_sample: bool = False) -> Problem:
    """A :class:`~solvers.problem.Problem` for ``term`` from (T,) increasing clock times ``t_out``.

    Args:
        term: the vector field on the clock of ``t_out``.
        y0: the state at ``t_out[0]``.
        t_out: (T,) increasing output times (a tensor: its values are the grid points exactly).
        method: a tableau name or Tableau (fixed or embedded).
        step_size: fixed methods: the largest step, in real time.
        gap_scale: fixed methods with ``step_size``: (G,) the real length of each clock gap of the
            grid t_out + jump_t (the longest sample's on an index clock); None: the clock is real time.
        jump_t: times where the term's input jumps (knots).
        rtol, atol: adaptive methods' tolerances.
        max_steps: the step limit (fixed grids are refused beyond it before being built).
        params: tensors the adjoint mode differentiates (besides y0).
        param_sources: see :class:`~solvers.problem.Problem`.
        adjoint_seminorm: adjoint mode: keep the parameters' gradients out of the backward error norm.
        per_sample: adaptive methods: every sample (axis 0 of y0) gets its own steps
            (:mod:`solvers.per_sample`); ``t_out`` and ``jump_t`` may then be (B, T) and (B, J), each
            row one sample's times, and the term is called with (B,) tensors of times.
    """
    tab = tableau(method)
    plan = Plan.of(tab)
    if tab.adaptive:
        # a driven state (an RNN's) is of order one even when it starts at 0
        check_resolution(rtol, atol, y0, scale=1.0)
    if per_sample:
        if not tab.adaptive:
            raise ValueError(f"per-sample error control needs an adaptive method (an embedded pair such as dopri5); "
                             f"got {tab.name!r}, whose steps are fixed")
        p = Problem(term=term, y0=y0, t_out=t_out.detach().to(torch.float64), plan=plan, max_steps=max_steps,
                    params=tuple(params), per_sample=True, exact_outputs=True,
                    controller=Controller(rtol=rtol, atol=atol, order=tab.order, norm=sample_rms_norm))
        p.jump_t = () if jump_t is None else jump_t.detach().to(torch.float64)
        return p
    outs = [float(x) for x in t_out.detach().tolist()]
    jumps = [] if jump_t is None else sorted({float(x) for x in jump_t.detach().reshape(-1).tolist()})
    p = Problem(term=term, y0=y0, t_out=outs, plan=plan, max_steps=max_steps, params=tuple(params),
                param_sources=None if param_sources is None else tuple(param_sources))
    if tab.adaptive:
        p.controller = Controller(rtol=rtol, atol=atol, order=tab.order, norm=rms_norm)
        p.jump_t = jumps
        p.exact_outputs = True
    else:
        size = step_size
        if step_size is not None and gap_scale is not None:
            size = None
        grid, _ = knot_grid(t_out.detach(), None if jump_t is None else jump_t.detach(), size, max_steps)
        if step_size is not None and gap_scale is not None:
            grid = _scaled_grid(grid, gap_scale, step_size, max_steps)
        p.grid = grid.tolist()
        p.perturb = True
    p.adjoint = AdjointSpec(plan=plan, controller=p.controller, seminorm=adjoint_seminorm, perturb=True)
    return p


def _scaled_grid(grid: Tensor, gap_scale: Tensor, step_size: float, max_steps: int) -> Tensor:
    """Split gap g of ``grid`` into ceil(gap_scale[g] * gap / step_size) equal clock steps."""
    gaps = (grid[1:] - grid[:-1]).detach().double()
    real = gaps * gap_scale[: gaps.shape[0]].detach().double().cpu()
    counts = torch.clamp(torch.ceil(real / step_size - 1e-9), min=1).long()
    total = int(counts.sum())
    check_step_count(total, max_steps, f"a fixed-step grid of step_size = {step_size}")
    points = [float(grid[0])]
    for g, n in enumerate(counts.tolist()):
        a, b = float(grid[g]), float(grid[g + 1])
        points.extend(a + (b - a) * i / n for i in range(1, n))
        points.append(b)
    return torch.tensor(points, dtype=torch.float64)


def solve(term: Term, y0: Tensor, t_out: Tensor, method: str | Tableau, *, gradient: str = "backprop",
          **kwargs) -> list[Tensor]:
    """States at ``t_out`` (a list, ``[0]`` is ``y0``) by ``method`` under ``gradient``; see :func:`make_problem`."""
    mode = resolve_gradient(gradient)
    return GRADIENT_MODES[mode](make_problem(term, y0, t_out, method, **kwargs))

