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

from torch import Tensor

from .engine import DEFAULT_MAX_STEPS
from .gradients import GRADIENT_MODES, resolve_gradient
from .problem import Problem
from .spec import SolveSpec
from .tableaux import Tableau
from .terms import Term

__all__ = ["make_problem", "solve"]


def make_problem(term: Term, y0: Tensor, t_out: Tensor, method: str | Tableau, *, step_size: float | None = None,
                 gap_scale: Tensor | None = None, jump_t: Tensor | None = None, rtol: float = 1e-7, atol: float = 1e-9,
                 max_steps: int = DEFAULT_MAX_STEPS, params: Sequence[Tensor] = (),
                 param_sources: Sequence[Tensor] | None = None, adjoint_seminorm: bool = True,
                 per_sample: bool = False) -> Problem:
    """``SolveSpec(...).problem(...)`` in one call (see :class:`~solvers.spec.SolveSpec`);
    ``per_sample=True`` is ``error_control="sample"``."""
    name = method.name if isinstance(method, Tableau) else method
    spec = SolveSpec(method=name, step_size=step_size, rtol=rtol, atol=atol, max_steps=max_steps,
                     error_control="sample" if per_sample else "batch", adjoint_seminorm=adjoint_seminorm)
    return spec.problem(term, y0, t_out, jump_t=jump_t, gap_scale=gap_scale, params=params,
                        param_sources=param_sources)


def solve(term: Term, y0: Tensor, t_out: Tensor, method: str | Tableau, *, gradient: str = "backprop",
          **kwargs) -> list[Tensor]:
    """States at ``t_out`` (a list, ``[0]`` is ``y0``) by ``method`` under ``gradient``; see :func:`make_problem`."""
    mode = resolve_gradient(gradient)
    return GRADIENT_MODES[mode](make_problem(term, y0, t_out, method, **kwargs))
