"""Gradient modes: how gradients flow through a solve.  One registry for every user of the engine.

* ``"backprop"``: differentiate the computed steps (autograd through the engine's operations, or
  a term's own backward pass when it has one: the structured kernel's discrete adjoint).  Step
  sizes chosen by the controller are constants: the gradient is that of the steps taken, as in
  diffrax (torchdiffeq's backprop also differentiates the step-size choice, an O(tolerance)
  difference).  Memory O(steps).
* ``"checkpoint"``: the same gradients as backprop, memory O(sqrt(steps)): the solve runs once
  without a graph, recording its steps; then segments of ceil(sqrt(steps)) steps are replayed
  under ``torch.utils.checkpoint`` (adaptive solves replay their accepted steps exactly).
* ``"adjoint"``: the continuous adjoint (Chen et al. 2018) on the same engine
  (:mod:`solvers.adjoint`): memory flat in the number of steps, gradients those of the exact ODE
  solution, not of the computed forward (it measures how far its backward solve strays and warns:
  ``solvers.AdjointAccuracyWarning``).
* ``"reversible"``: a reversible method's (``reversible_<tableau>``) exact gradient, memory flat in
  the number of steps: each step's state is rebuilt backward from the last one and that one step
  backpropagated (:mod:`solvers.reversible_gradient`).

A mode is a function ``solve(problem) -> list of output states``; :func:`register_gradient_mode`
adds one, and every caller (``solvers.odeint``, ``ContinuousRNN``, the command line) reads this
registry.  A term can take over a mode by defining a method ``solve_<mode>(problem)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .adjoint import adjoint_outputs, solve_adjoint
from .engine import Tape, adaptive_steps, next_k0, solve_fixed, start_time
from .problem import Problem, forward
from .reversible_gradient import solve_reversible

__all__ = ["GRADIENT_MODES", "checkpoint_segment", "register_gradient_mode", "resolve_gradient", "stacked_outputs"]


def checkpoint_segment(n_steps: int) -> int:
    """Steps per checkpoint segment: ceil(sqrt(n)), which minimises stored states + one segment's
    graph (n / L + L), so memory grows as sqrt(n) for one extra forward pass of work."""
    return max(1, math.ceil(math.sqrt(max(n_steps, 1))))


def _term_hook(p: Problem, mode: str):
    return getattr(p.term, f"solve_{mode}", None)


def solve_backprop(p: Problem) -> list[Tensor]:
    hook = _term_hook(p, "backprop")
    return hook(p) if hook is not None else forward(p)


def solve_checkpoint(p: Problem) -> list[Tensor]:
    hook = _term_hook(p, "checkpoint")
    if hook is not None:
        return hook(p)
    if not torch.is_grad_enabled():
        return forward(p)
    from torch.utils.checkpoint import checkpoint

    tape = Tape(states=False)
    with torch.no_grad():
        forward(p, tape)
    n = len(tape)
    seg = checkpoint_segment(n)
    ends = tape.ends  # ends[k]: steps taken when output k + 1 was reached
    outputs = [p.y0]
    y = p.y0
    k0 = None if p.grid is not None else p.term.f(start_time(p.term, p.t_out[0], p.jump_t), p.y0)
    j = 0
    for n0 in range(0, n, seg):
        n1 = min(n, n0 + seg)
        wanted = []
        while j < len(ends) and ends[j] <= n1:
            wanted.append(p.t_out[j + 1])
            j += 1
        if p.grid is not None:
            def segment(y_start: Tensor, n0: int = n0, n1: int = n1, wanted: list = wanted):
                grid = p.grid[n0:n1 + 1]
                t_out = [grid[0]] + [w for w in wanted if w != grid[0]] + ([grid[-1]] if grid[-1] not in wanted
                                                                            else [])
                outs = solve_fixed(p.term, p.plan, y_start, grid, t_out, perturb=p.perturb, interp=p.interp,
                                   callbacks=p.callbacks, max_steps=p.max_steps)
                by_time = dict(zip(t_out, outs))
                return (by_time[grid[-1]], *[by_time[w] for w in wanted])

            res = checkpoint(segment, y, use_reentrant=False)
            y = res[0]
            outputs.extend(res[1:])
            continue

        def segment(y_start: Tensor, k_start: Tensor, n0: int = n0, n1: int = n1, wanted: list = wanted):
            outs = []
            i = 0
            acc = None
            for acc in adaptive_steps(p.term, p.plan, y_start, tape.t0[n0], tape.t1[n1 - 1], None,
                                      schedule=tape.schedule[n0:n1], k0=k_start):
                while i < len(wanted) and wanted[i] <= acc.t1:
                    outs.append(acc.at(wanted[i]))
                    i += 1
            k_next, _ = next_k0(acc, False)
            return (acc.y1, k_next, *outs)

        res = checkpoint(segment, y, k0, use_reentrant=False)
        y, k0 = res[0], res[1]
        outputs.extend(res[2:])
    return outputs


GRADIENT_MODES: dict[str, Callable[[Problem], list[Tensor]]] = {
    "backprop": solve_backprop,
    "checkpoint": solve_checkpoint,
    "adjoint": solve_adjoint,
    "reversible": solve_reversible,
}
"""Gradient mode name -> solver taking a validated :class:`~solvers.problem.Problem`."""


def register_gradient_mode(name: str, solve: Callable[[Problem], list[Tensor]], *, replace: bool = False) -> None:
    """Add (or with ``replace=True`` swap in) a gradient mode; every user of the registry sees it."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a gradient mode needs a non-empty str name; got {name!r}")
    if name in GRADIENT_MODES and not replace:
        raise ValueError(f"gradient mode {name!r} already exists; pass replace=True to swap it")
    GRADIENT_MODES[name] = solve


def stacked_outputs(p: Problem, mode: str, y_first: Tensor) -> tuple[Tensor, bool]:
    """The outputs of ``p`` under ``mode`` as one (T, ...) tensor with ``y_first`` at index 0 (no time gradient
    through it), and whether that tensor's grad_fn is the continuous adjoint's own node (torchdiffeq's
    layout, the built-in adjoint on a term without its own: index 0 then came through the solve)."""
    if mode == "adjoint" and GRADIENT_MODES["adjoint"] is solve_adjoint and getattr(p.term, "solve_adjoint", None) is None:
        return adjoint_outputs(p), True
    outs = GRADIENT_MODES[mode](p)
    outs[0] = y_first
    return torch.stack(outs), False


def resolve_gradient(gradient: str | None, adjoint: bool = False) -> str:
    """The gradient mode from ``gradient`` and the ``adjoint=True`` shorthand (the mode itself is checked
    against the registry by the ``SolveSpec`` it goes into)."""
    if gradient is None:
        return "adjoint" if adjoint else "backprop"
    if adjoint and gradient != "adjoint":
        raise ValueError(f"adjoint=True is shorthand for gradient='adjoint' but gradient={gradient!r} "
                         f"was also given; pass only one")
    return gradient
