"""Driven fixed-step integration: y' = F(y, u(t)) with the input known at every stage in advance.

``solvers.odeint`` treats the vector field as a black box ``func(t, y)``: every stage is a Python
call that finds its input by a search over the knots, and every step adds a dozen autograd nodes.
When the field is *driven* (it depends on time only through an input path u(t)), the stage times
of a fixed-step method are known before the solve, so the caller can evaluate the input at all of
them in one batched call and hand the result over.  ``integrate_driven`` then steps

    k_i = F(y + dt sum_j a_ij k_j, u(t_n + c_i dt)),    y_{n+1} = y + dt sum_i b_i k_i

with no time arithmetic, no search and Python-float step sizes.  Two paths:

* ``F`` a :class:`~solvers.linear_activation.LinearActivation` (y A^T + sigma(y W^T + x U^T + b)):
  the custom autograd Function of :mod:`solvers.linear_activation` (discrete adjoint, batched
  weight gradients; the inputs may be raw and projected inside, chunk by chunk);
* ``F`` any callable ``F(y, u)``: an autograd loop over the steps, a few nodes per stage.

Grid conventions are the caller's: step n runs over [t_n, t_n + dt_n]; ``inputs[n, m]`` is the
input at node m of step n, the nodes being the distinct stage fractions c of the tableau
(:func:`stage_nodes`).  A caller whose input is constant over every step (a zero-order hold on a
knot-aligned grid) passes one node for all stages (``held=True``).  Per-sample step sizes (n, B)
serve the "index clock", where each sample of a batch covers its own time per step.

Gradient modes: "backprop" and "checkpoint" (segments of ceil(sqrt(n)) steps recomputed in the
backward pass; same gradients).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .linear_activation import LinearActivation, solve_linear_activation
from .gradients import checkpoint_segment
from .tableaux import Tableau, tableau

__all__ = ["DRIVEN_GRADIENTS", "integrate_driven", "stage_nodes"]

DRIVEN_GRADIENTS = ("backprop", "checkpoint")


def stage_nodes(method: str | Tableau, held: bool = False) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """The input nodes of a tableau: (distinct stage fractions c, sorted; node index of each stage).

    ``held=True``: the input is constant over each step, so every stage reads one node (c = 0).
    Example: rk4 (c = 0, 1/2, 1/2, 1) -> ((0.0, 0.5, 1.0), (0, 1, 1, 2)).
    """
    tab = tableau(method)
    if held:
        return (0.0,), (0,) * tab.stages
    nodes = tuple(sorted(set(tab.c)))
    return nodes, tuple(nodes.index(c) for c in tab.c)


def _loop(rhs: Callable[[Tensor, Tensor], Tensor], tab: Tableau, y: Tensor, us: Sequence[Sequence[Tensor]],
          dts: Sequence, node_of_stage: Sequence[int], n0: int, n1: int, wanted: set[int]
          ) -> tuple[Tensor, list[Tensor]]:
    a_rows = [[(j, w) for j, w in enumerate(row) if w != 0.0] for row in tab.a]
    b_w = [(j, w) for j, w in enumerate(tab.b) if w != 0.0]
    outs = []
    for n in range(n0, n1):
        dt, un = dts[n], us[n]
        ks: list[Tensor] = []
        for i in range(tab.stages):
            yi = y
            for j, w in a_rows[i]:
                yi = torch.add(yi, ks[j], alpha=dt * w) if isinstance(dt, float) else yi + (dt * w) * ks[j]
            ks.append(rhs(yi, un[node_of_stage[i]]))
        for j, w in b_w:
            y = torch.add(y, ks[j], alpha=dt * w) if isinstance(dt, float) else y + (dt * w) * ks[j]
        if n + 1 in wanted:
            outs.append(y)
    return y, outs


def integrate_driven(field: LinearActivation | Callable[[Tensor, Tensor], Tensor], y0: Tensor, inputs: Tensor,
                     dt: Tensor, method: str | Tableau, node_of_stage: Sequence[int] | None = None,
                     outputs: Sequence[int] | None = None, gradient: str = "backprop",
                     project: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """Integrate a driven field on a fixed grid whose stage inputs are given.

    Args:
        field: a ``LinearActivation`` (structured fast path; ``inputs`` are raw x projected by its
            U, b, or already projected when U is None) or a callable ``F(y, u) -> dy/dt``.
        y0: (B, N) initial state (real or complex for a callable field).
        inputs: (n, m, B, D) inputs at the m nodes of each of the n steps.
        dt: (n,) step sizes shared by the batch, or (n, B) per sample.  Must not need gradients.
        method: an explicit tableau (name or Tableau).
        node_of_stage: node read by each stage (default: ``stage_nodes(method)[1]``, or all 0
            when m = 1).
        outputs: grid indices (0..n, 0 being y0) of the states to return; default all.
        gradient: "backprop" or "checkpoint".
        project: callable fields only: ``inputs`` are raw and ``project(inputs[a:b])`` gives what
            F reads (e.g. an nn.Linear).  Applied to all steps at once in backprop, per segment in
            checkpoint mode, so the projected inputs are never held for all steps at once there.

    Returns:
        (len(outputs), B, N) states, time first.
    """
    tab = tableau(method)
    if gradient not in DRIVEN_GRADIENTS:
        raise ValueError(f"unknown gradient {gradient!r} for integrate_driven; expected one of "
                         f"{', '.join(map(repr, DRIVEN_GRADIENTS))} (the adjoint lives in solvers.odeint)")
    if not isinstance(dt, Tensor) or dt.dim() not in (1, 2):
        raise ValueError(f"dt must be a (n,) or (n, B) tensor of step sizes; got "
                         f"{tuple(dt.shape) if isinstance(dt, Tensor) else type(dt).__name__}")
    n = dt.shape[0]
    if inputs.dim() != 4 or inputs.shape[0] != n or inputs.shape[2] != y0.shape[0]:
        raise ValueError(f"inputs must have shape (n, m, B, D) = ({n}, m, {y0.shape[0]}, D), one row per "
                         f"step and node; got {tuple(inputs.shape)}")
    if node_of_stage is None:
        node_of_stage = (0,) * tab.stages if inputs.shape[1] == 1 else stage_nodes(tab)[1]
    node_of_stage = tuple(int(i) for i in node_of_stage)
    outputs = list(range(n + 1)) if outputs is None else [int(i) for i in outputs]
    if isinstance(field, LinearActivation):
        return solve_linear_activation(field, y0, inputs, dt, tab, node_of_stage, outputs, gradient)
    if dt.requires_grad:
        raise ValueError("dt must not require gradients in integrate_driven; use solvers.odeint")
    per_sample = dt.dim() == 2
    dts = list(dt.to(y0.real.dtype).unsqueeze(-1).unbind(0)) if per_sample else [float(h) for h in dt.tolist()]
    wanted = set(outputs)
    states = {0: y0}
    if gradient == "backprop" or not torch.is_grad_enabled():
        u = inputs if project is None else project(inputs)
        us = [v.unbind(0) for v in u.unbind(0)]  # unbind, never u[n]: indexing makes backward O(n^2)
        _, outs = _loop(field, tab, y0, us, dts, node_of_stage, 0, n, wanted)
        states.update(zip(sorted(i for i in wanted if i > 0), outs))
    else:
        from torch.utils.checkpoint import checkpoint

        seg = checkpoint_segment(n)
        y = y0
        for k, x_seg in enumerate(inputs.split(seg)):  # split: one backward node, not one slice each
            n0 = k * seg
            n1 = min(n, n0 + seg)
            seg_wanted = {i for i in wanted if n0 < i <= n1}

            def segment(y_start: Tensor, x_seg: Tensor, n0: int = n0, n1: int = n1, seg_wanted: set = seg_wanted):
                u = x_seg if project is None else project(x_seg)
                us = [None] * n0 + [v.unbind(0) for v in u.unbind(0)]
                end, outs = _loop(field, tab, y_start, us, dts, node_of_stage, n0, n1, seg_wanted)
                return (end, *outs)

            res = checkpoint(segment, y, x_seg, use_reentrant=False)
            y = res[0]
            states.update(zip(sorted(seg_wanted), res[1:]))
    return torch.stack([states[i] for i in outputs])
