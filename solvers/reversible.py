"""Algebraically reversible Runge-Kutta solves (McCallum and Foster 2024, arXiv 2410.11648).

Any explicit tableau, wrapped as a :class:`~solvers.tableaux.ReversibleTableau`, steps a pair (y, z)
(both y0 at the start) with the base method's increment Psi_h(t, y) = y_{n+1} - y_n:

    y_{n+1} = lambda y_n + (1 - lambda) z_n + Psi_h(t_n, z_n)
    z_{n+1} = z_n - Psi_{-h}(t_{n+1}, y_{n+1})

and :func:`unstep` inverts a step exactly (to rounding), so a backward pass can rebuild every
state from the last one (:mod:`solvers.reversible_gradient`, the ``"reversible"`` gradient mode:
the gradient of the computed forward in memory flat in the number of steps).

Fixed grids step over the problem's grid (outputs on grid points).  Adaptive solves choose their
steps with the controller from the base pair's error estimate of Psi_h(t_n, z_n), landing on every
output, jump and step time; the accepted steps are recorded and a backward pass replays them.
Stages on a step's ends are evaluated one ulp inside it (``perturb``), forward and backward alike,
so both read the step's own piece of a piecewise input.

Why a separate loop rather than the engine's: the state is a pair and every step runs the base
stepper (:func:`solvers.stepper.rk_step`, the one stage loop) twice, forward then backward in time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .controller import Controller, initial_step
from .engine import check_step_count, state_error, underflow_error
from .stepper import Plan, Step, combine, rk_step
from .tableaux import ReversibleTableau
from .terms import Term

__all__ = ["ReversibleRun", "is_reversible", "reversible_solve", "step", "unstep"]


def is_reversible(plan_or_tab: Any) -> bool:
    """True for a :class:`ReversibleTableau` (or a plan of one)."""
    tab = plan_or_tab.tab if isinstance(plan_or_tab, Plan) else plan_or_tab
    return isinstance(tab, ReversibleTableau)


def increment(term: Term, plan: Plan, t0: float, t1: float, y: Tensor, perturb: bool = True, keep: bool = False
              ) -> tuple[Tensor, Tensor | None, Step]:
    """Psi(t0 -> t1, y): the base method's increment over one step (t1 < t0 steps backward), its
    error estimate (None for a fixed method) and the step's record (with the term's aux if ``keep``)."""
    s = rk_step(term, plan, t0, t1, y, perturb_start=perturb, perturb_end=perturb, keep_aux=keep)
    return combine(None, t1 - t0, plan.b, s.ks), s.err, s


def step(term: Term, plan: Plan, t0: float, t1: float, y: Tensor, z: Tensor, perturb: bool = True,
         record: list | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
    """One reversible step from (y_n, z_n) at t0 to t1: (y_{n+1}, z_{n+1}, error estimate of Psi_h(t0, z_n)).
    ``record``: a list that gets the two base steps' records (Psi_h(t0, z_n), Psi_{-h}(t1, y_{n+1})), the
    term's aux kept, for a hand-written backward pass (the structured kernel's)."""
    lam = plan.tab.coupling
    keep = record is not None
    dy, err, s1 = increment(term, plan, t0, t1, z, perturb, keep)
    y1 = y + dy if lam == 1.0 else lam * y + (1.0 - lam) * z + dy
    dz, _, s2 = increment(term, plan, t1, t0, y1, perturb, keep)
    if keep:
        record.append((s1, s2))
    return y1, z - dz, err


def unstep(term: Term, plan: Plan, t0: float, t1: float, y1: Tensor, z1: Tensor, perturb: bool = True,
           record: list | None = None) -> tuple[Tensor, Tensor]:
    """The inverse of :func:`step`: (y_n, z_n) from (y_{n+1}, z_{n+1}).  It evaluates the same two
    increments as the step (at z_n and y_{n+1}); ``record`` gets their records as :func:`step` gives them."""
    lam = plan.tab.coupling
    keep = record is not None
    dz, _, s2 = increment(term, plan, t1, t0, y1, perturb, keep)
    z0 = z1 + dz
    dy, _, s1 = increment(term, plan, t0, t1, z0, perturb, keep)
    y0 = y1 - dy if lam == 1.0 else (y1 - (1.0 - lam) * z0 - dy) / lam
    if keep:
        record.append((s1, s2))
    return y0, z0


@dataclass
class ReversibleRun:
    """A reversible solve: ``outputs`` (y at every output time, ``[0]`` = y0), the accepted ``steps``
    (t0, t1), ``ends[k]`` the number of steps taken when output k was reached, the final pair, and
    ``anchors``: the pair (y_n, z_n) after every ``anchor_every``-th step n (n -> pair; 0 -> (y0, y0)
    always), where a backward reconstruction restarts from the forward's own states."""

    outputs: list[Tensor]
    steps: list[tuple[float, float]] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    y: Tensor | None = None
    z: Tensor | None = None
    anchors: dict[int, tuple[Tensor, Tensor]] = field(default_factory=dict)

    def anchor(self, n: int, y: Tensor, z: Tensor, every: int | None) -> None:
        """Keep the pair after step n when ``every`` divides n (``every`` None: only n = 0)."""
        if n == 0 or (every is not None and n % every == 0):
            self.anchors[n] = (y, z)


def _finite(x: Tensor) -> bool:
    return bool(torch.isfinite(x).all())


def reversible_solve(term: Term, plan: Plan, y0: Tensor, t_out: Sequence[float], *, grid: Sequence[float] | None,
                     controller: Controller | None = None, first_step: float | None = None,
                     jump_t: Sequence[float] = (), step_t: Sequence[float] = (), perturb: bool = True,
                     max_steps: int, stats: Any = None, anchor_every: int | None = None,
                     record: list | None = None) -> ReversibleRun:
    """Solve from (t_out[0], y0) through ``t_out`` with the reversible method of ``plan``: over ``grid``
    (fixed; every output must be a grid point), or with ``controller`` (adaptive; steps land on every
    output, jump and step time).  The pair after every ``anchor_every``-th step is kept in
    ``run.anchors`` (and always y0's); ``record``: a list that gets each accepted step's records
    (:func:`step`)."""
    run = ReversibleRun(outputs=[y0], ends=[0])
    y = z = y0
    run.anchor(0, y, z, anchor_every)
    if grid is not None:
        check_step_count(len(grid) - 1, max_steps, f"this fixed-step solve over [{grid[0]}, {grid[-1]}]")
        on_grid = set(grid)
        off = [t for t in t_out if t not in on_grid]
        if off:
            raise ValueError(f"a reversible method ({plan.tab.name!r}) returns states at its step ends only: output "
                             f"time {off[0]} is not a grid point (pass output times that are, or use a step size "
                             f"that divides their gaps)")
        j = 1
        for n in range(len(grid) - 1):
            if j >= len(t_out):
                break
            t0, t1 = grid[n], grid[n + 1]
            y, z, _ = step(term, plan, t0, t1, y, z, perturb, record)
            run.steps.append((t0, t1))
            run.anchor(n + 1, y, z, anchor_every)
            if stats is not None:
                stats.accepted += 1
            while j < len(t_out) and t_out[j] == t1:
                run.outputs.append(y)
                run.ends.append(n + 1)
                j += 1
        run.y, run.z = y, z
        return run
    if controller is None:
        raise ValueError(f"an adaptive reversible method ({plan.tab.name!r}) needs a controller")
    t, t_end = t_out[0], t_out[-1]
    stops = sorted({x for x in (*t_out[1:], *jump_t, *step_t) if t < x <= t_end})
    if first_step is None:
        f0 = term.f(term.nudge(t, t_end), y0)
        dt = float(initial_step(f0, y0, lambda h, yy: term.f(t + h, yy), plan.tab.order, controller.rtol,
                                controller.atol, controller.norm))
    else:
        dt = float(first_step)
    i_stop, j, attempts, prev_ratio = 0, 1, 0, None
    while t < t_end:
        attempts += 1
        if attempts > max_steps:
            check_step_count(attempts, max_steps, f"this reversible adaptive solve (at t = {t}, ending at {t_end})")
        if not math.isfinite(dt):
            dt = controller.min_step
        dt = controller.clamp(dt)
        while stops[i_stop] <= t:
            i_stop += 1
        t1 = min(t + dt, stops[i_stop])
        if not t1 > t:
            raise underflow_error(t, dt, controller)
        h = t1 - t
        tried: list | None = None if record is None else []
        y1, z1, err = step(term, plan, t, t1, y, z, perturb, tried)
        ratio = float(controller.ratio(err, z, y1))
        accept, finite = controller.accepts(ratio, h)
        if accept and not (_finite(y1) and _finite(z1)):
            accept, finite = False, False
        if not finite:
            if not _finite(y) or not _finite(z):
                raise state_error(t)
            ratio = math.inf
        if stats is not None:
            stats.accepted += bool(accept)
            stats.rejected += not accept
        if accept:
            if record is not None:
                record.extend(tried)
            run.steps.append((t, t1))
            t, y, z = t1, y1, z1
            run.anchor(len(run.steps), y, z, anchor_every)
            while j < len(t_out) and t_out[j] == t:
                run.outputs.append(y)
                run.ends.append(len(run.steps))
                j += 1
        dt = controller.propose(h, ratio, prev_ratio, accept)
        if accept:
            prev_ratio = ratio
    run.y, run.z = y, z
    return run
