"""The ``"reversible"`` gradient mode: the exact gradient of a reversible solve in memory flat in
the number of steps.

Forward: the reversible solve (:mod:`solvers.reversible`) runs without a graph, keeping its
outputs, its accepted step times and its final pair (y_N, z_N).  Backward: from the last step to
the first, the pair before the step is rebuilt by :func:`solvers.reversible.unstep` (exact to
rounding), the step is recomputed from it with a graph and backpropagated (one step's graph at a
time), and the output gradients are added where outputs were taken.  So the gradient is backprop's
through the same solve, to rounding, with memory O(one step) plus the outputs, for fixed grids and
adaptive steps alike (the accepted step sizes are replayed, as constants: backprop's convention).

The tensors differentiated besides y0 are the problem's ``params`` (with ``param_sources``, as the
continuous adjoint's: :func:`solvers.adjoint.adjoint_outputs`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .adjoint import ReconstructionCheck, ReversibleAccuracyWarning
from .problem import Problem, forward, forward_reversible
from .reversible import is_reversible, step, unstep

__all__ = ["solve_reversible"]


class _ReversibleSolve(torch.autograd.Function):
    @staticmethod
    def forward(ctx, p: Problem, y0: Tensor, *sources: Tensor) -> Tensor:
        with torch.no_grad():
            run = forward_reversible(p)
        ctx.problem, ctx.run = p, run
        return torch.stack(run.outputs)

    @staticmethod
    def backward(ctx, grad_ys: Tensor):
        p: Problem = ctx.problem
        run = ctx.run
        params = p.params
        perturb = p.perturb if p.grid is not None else True
        at: dict[int, list[int]] = {}
        for k, n in enumerate(run.ends):
            at.setdefault(n, []).append(k)
        y, z = run.y, run.z
        n = len(run.steps)
        ay = sum(grad_ys[k] for k in at.get(n, []))
        ay = torch.zeros_like(y) if isinstance(ay, int) else ay
        az = torch.zeros_like(z)
        gs = [torch.zeros_like(q) for q in params]
        for n in range(len(run.steps) - 1, -1, -1):
            t0, t1 = run.steps[n]
            with torch.no_grad():
                y0, z0 = unstep(p.term, p.plan, t0, t1, y, z, perturb)
            with torch.enable_grad():
                yl, zl = y0.detach().requires_grad_(True), z0.detach().requires_grad_(True)
                y1, z1, _ = step(p.term, p.plan, t0, t1, yl, zl, perturb)
                # retain_graph: the term may read tensors computed once outside (an input's projection)
                grads = torch.autograd.grad((y1, z1), (yl, zl, *params), (ay, az), allow_unused=True,
                                            retain_graph=True)
            ay = torch.zeros_like(y0) if grads[0] is None else grads[0]
            az = torch.zeros_like(z0) if grads[1] is None else grads[1]
            for i, g in enumerate(grads[2:]):
                if g is not None:
                    gs[i] = gs[i] + g
            for k in at.get(n, []):
                ay = ay + grad_ys[k]
            y, z = y0, z0
        _check_reconstruction(p, y, z, run.y)
        return (None, ay + az, *gs)  # z_0 = y_0: y0's gradient is the sum of both


def _check_reconstruction(p: Problem, y: Tensor, z: Tensor, last: Tensor) -> None:
    """Both rebuilt states must come back to y0: their RMS distance from it, relative to the size of
    y0 or of the last state (whichever is larger), goes to the solve's Stats, and above sqrt(eps) of
    the state's dtype (1.5e-8 in float64, 3.5e-4 in float32; a sound reconstruction is a few hundred
    eps, and by sqrt(eps) the gradient was measured off by far more: scripts/reversible_drift.py) a
    ``ReversibleAccuracyWarning`` says so once per specification (checked without a host read here,
    at the next solve: :func:`solvers.adjoint.flush_accuracy_checks`)."""
    check = ReconstructionCheck(p, torch.stack([p.y0.detach(), last]))
    check.add(y, p.y0)
    check.add(z, p.y0)
    name = p.plan.tab.name

    def message(error: float, tolerance: float) -> str:
        return (f"gradient='reversible' with method {name!r}: rebuilding the steps backward came back to the initial "
                f"state with a relative error of {error:.3g} (> {tolerance:.2g}): rounding errors grew through the "
                f"backward reconstruction (a field that contracts strongly over the solve, e.g. h' = -h + ... over "
                f"a long time, expands them backward), so the gradient is not that of the forward. Use "
                f"gradient='backprop' or gradient='checkpoint' with the base method "
                f"{name.removeprefix('reversible_')!r}. See docs/GRADIENTS.md.")

    check.done(torch.finfo(p.y0.real.dtype).eps ** 0.5, message, ReversibleAccuracyWarning)


def solve_reversible(p: Problem) -> list[Tensor]:
    """Outputs of ``p`` (a reversible method) whose backward pass rebuilds each step from the last
    state (see the module docstring)."""
    if not is_reversible(p.plan):
        raise ValueError(f"gradient='reversible' needs a reversible method (reversible_<tableau>, e.g. "
                         f"'reversible_{p.plan.tab.name}'); got method {p.plan.tab.name!r}")
    sources = p.param_sources if p.param_sources is not None else p.params
    keep = [i for i, q in enumerate(sources) if q.requires_grad]
    if not torch.is_grad_enabled() or not (p.y0.requires_grad or keep):
        return forward(p)
    p = p.with_(params=tuple(p.params[i] for i in keep))
    return list(_ReversibleSolve.apply(p, p.y0, *(sources[i] for i in keep)).unbind(0))
