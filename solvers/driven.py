"""A driven term: y' = F(y, u(t)) for any callable F, with the input read through a cursor.

When a vector field depends on time only through an input path, the engine need not call a
black box that searches the knots at every stage: :class:`DrivenTerm` keeps a
:class:`~solvers.inputs.PiecewiseInput` whose cursor finds the piece in O(1) per step and whose
coefficients are projected through the input map chunk by chunk, then calls ``F(y, u)`` (any
callable, complex states included) with plain autograd ops.  Fields with the
linear-plus-activation form have a faster term of their own
(:class:`~solvers.linear_activation.LinearActivationTerm`).

``project``: a callable applied to the raw input at every evaluation instead of the chunk
projection (what the continuous adjoint needs, so that its vector-Jacobian products see the
projection's parameters, and what keeps its memory flat in the number of samples).
On an index clock (``inputs.rates``) the field is multiplied by the rate of the current piece.
``euler``: the field's own fused Euler step ``euler(y, u, dt)``, used for one-stage methods on
fixed grids (a decaying field's ``lerp``).  ``euler_loop``: the field's own loop of those steps,
``euler_loop(y0, us, dts, ends)`` -> the states after ``ends`` steps, handed every step's input and
step at once (a field can then differentiate the whole loop by hand).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .engine import check_step_count
from .inputs import PiecewiseInput
from .problem import Problem, forward
from .reversible import is_reversible
from .terms import Term

__all__ = ["DrivenTerm"]


class DrivenTerm(Term):
    """``F(y, u(t))`` (times the clock rate) on the engine.

    Args:
        rhs: ``F(y, u) -> dy/dt`` for y (B, N) and u (B, P).
        inputs: the input; its ``weight``/``bias`` (if any) give u = x weight^T + bias.
        project: None, or a callable u = project(x) applied per evaluation to the raw input.
        time_dtype: the precision stage times are nudged in (the knots' dtype).
        euler: None, or the field's fused Euler step ``euler(y, u, dt)``.
        euler_loop: None, or the field's loop of them ``euler_loop(y0, us, dts, ends)`` (with ``euler``).
    """

    def __init__(self, rhs: Callable[[Tensor, Tensor], Tensor], inputs: PiecewiseInput,
                 project: Callable[[Tensor], Tensor] | None = None, time_dtype: torch.dtype = torch.float64,
                 euler: Callable[[Tensor, Tensor, float], Tensor] | None = None,
                 euler_loop: Callable[[Tensor, list, list, list[int]], list[Tensor]] | None = None) -> None:
        self.rhs = rhs
        self.inputs = inputs
        self.project = project
        self.time_dtype = time_dtype
        self.euler = euler
        self.euler_loop = euler_loop
        if euler is None:
            self.euler_step = None  # the engine takes plain Euler steps through f

    def _input(self, t: Any) -> tuple[Any, Tensor]:
        if isinstance(t, Tensor):  # per-sample clocks: each sample on its own piece
            j = self.inputs.pieces(t)
            return j, self.inputs.project_raw(self.inputs.raw_at(j, t), self.project)
        j = self.inputs.piece(t)
        u = self.project(self.inputs.raw(j, t)) if self.project is not None else self.inputs.projected(j, t)
        return j, u

    def input_at(self, t: Any) -> Tensor:
        """u(t) (B, P): the (projected) input the field reads at clock time t (a float; a (B,) tensor
        of per-sample times on per-sample clocks)."""
        return self._input(t)[1]

    def rate_at(self, t: float) -> Tensor | None:
        """(B, 1) dt/ds of the piece holding clock time t on an index clock; None on a real-time clock."""
        return self.inputs.rate(self.inputs.piece(t))

    def euler_step(self, t: Any, y: Tensor, dt: float) -> tuple[Tensor, Any]:
        """One Euler step by the field's own fused update ``euler(y, u, dt)`` (dt times the clock rate)."""
        j, u = self._input(t)
        r = self.inputs.rate(j)
        return self.euler(y, u, dt if r is None else r.to(y.real.dtype) * dt), None

    def solve_backprop(self, p: Problem) -> list[Tensor]:
        """The ``backprop`` gradient mode: fused Euler steps over a fixed grid holding the outputs
        (the uRNN cell's case) by the field's ``euler_loop`` if it has one (handed the steps' inputs
        and sizes), else in a plain loop of :meth:`euler_step` calls that autograd records, exactly
        the engine's steps; anything else by the engine (:func:`solvers.problem.forward`).

        Why: at small batch the engine's per-step records (a step and a grid-step object, the
        counting wrapper, the output bookkeeping) cost a few percent of a step of the uRNN."""
        grid, t_out = p.grid, p.t_out
        if (self.euler is None or grid is None or p.callbacks is not None or is_reversible(p.plan)
                or p.plan.tab.stages != 1 or not all(grid[0] < t for t in t_out[1:]) or not set(t_out) <= set(grid)):
            return forward(p)
        check_step_count(len(grid) - 1, p.max_steps, f"this fixed-step solve over [{grid[0]}, {grid[-1]}]")
        if len(t_out) < 2:
            return [p.y0]
        index = {t: n for n, t in enumerate(grid)}
        ends = [index[t] for t in t_out[1:]]
        nudge, perturb = self.nudge, p.perturb
        stop = max(ends)
        if self.euler_loop is not None:  # the field's own loop, handed every step's input and step
            us, dts = [], []
            for m in range(stop):
                t0, t1 = grid[m], grid[m + 1]
                j, u = self._input(nudge(t0, t1) if perturb else t0)
                r = self.inputs.rate(j)
                us.append(u)
                dts.append(t1 - t0 if r is None else r.to(p.y0.real.dtype) * (t1 - t0))
            ys = self.euler_loop(p.y0, us, dts, ends)
        else:
            wanted = set(ends)
            states: dict[int, Tensor] = {}
            step = self.euler_step
            y = p.y0
            for m in range(stop):
                t0, t1 = grid[m], grid[m + 1]
                y, _ = step(nudge(t0, t1) if perturb else t0, y, t1 - t0)
                if m + 1 in wanted:
                    states[m + 1] = y
            ys = [states[n] for n in ends]
        if p.stats is not None:
            p.stats.nfe += stop
            p.stats.accepted += stop
        return [p.y0] + ys

    def f(self, t: Any, y: Tensor) -> Tensor:
        j, u = self._input(t)
        k = self.rhs(y, u)
        r = self.inputs.rate(j)
        return k if r is None else k * r.to(k.real.dtype)
