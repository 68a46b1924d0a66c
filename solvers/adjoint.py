"""The continuous adjoint (Chen et al. 2018) on this package's engine, for every tableau.

Forward: the solve runs without a graph and keeps only its outputs.  Backward: from the last
output to the first, the augmented system

    dy/dt = f(t, y),   da/dt = -a^T df/dy,   dg/dt = -a^T df/dtheta

is solved backward in time from t_k to t_{k-1} (a starts at dL/dy(t_k); g, the parameters'
gradient, at 0), and the output gradients are added at every output time, as torchdiffeq's
``odeint_adjoint`` does.  Memory is flat in the number of steps; the gradients are exact up to the
backward solve's error (its method and tolerances are the forward's unless the ``adjoint_*``
arguments say otherwise).  Fixed grids are run backward over the same grid points.

The vector-Jacobian products come from the term: ``term.vjp(t, y, a, params) -> (f, a^T df/dy,
(a^T df/dtheta_i)_i)`` when it has one (a closed form: the structured kernel), else from autograd.
The error norm of an adaptive backward solve covers (y, a, g) as torchdiffeq's default does, or
only (y, a) with ``seminorm`` (Kidger, Chen and Lyons 2021: usually far fewer steps).

The time derivative of the outputs is handled outside (``solvers.odeint``), as the same closed
form for every gradient mode.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .controller import Controller, rms_norm
from .engine import solve_adaptive, solve_fixed
from .problem import Problem, forward
from .terms import Term

__all__ = ["AugmentedTerm", "solve_adjoint"]


def autograd_vjp(term: Term, t: Any, y: Tensor, a: Tensor, params: Sequence[Tensor]
                 ) -> tuple[Tensor, Tensor, list[Tensor]]:
    """(f, a^T df/dy, [a^T df/dp for p in params]) by one autograd pass through ``term.f``."""
    with torch.enable_grad():
        y_ = y.detach().requires_grad_(True)
        fy = term.f(t, y_)
        wrt = (y_, *params)
        # retain_graph: f may read tensors computed once outside (an input's coefficients, views of
        # one base), whose graph later evaluations traverse again (torchdiffeq does the same)
        grads = torch.autograd.grad(fy, wrt, a, allow_unused=True, retain_graph=True) if fy.requires_grad \
            else (None,) * len(wrt)
    gy = torch.zeros_like(y) if grads[0] is None else grads[0]
    gp = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads[1:])]
    return fy.detach(), gy, gp


class AugmentedTerm(Term):
    """The augmented system in reversed time s = -t, flattened into one state [y, a, g_1, ..., g_n].

    ds = -dt, so dz/ds = [-f, +a^T df/dy, +a^T df/dtheta].
    """

    def __init__(self, term: Term, params: Sequence[Tensor], y_like: Tensor) -> None:
        self.term = term
        self.params = tuple(params)
        self.time_dtype = term.time_dtype
        self.per_sample = False
        self.shapes = [y_like.shape, y_like.shape] + [p.shape for p in self.params]
        self.sizes = [math.prod(s) for s in self.shapes]
        self.nfe = 0

    def split(self, z: Tensor) -> list[Tensor]:
        parts = z.split(self.sizes)
        return [p.view(s) for p, s in zip(parts, self.shapes)]

    def join(self, parts: Sequence[Tensor]) -> Tensor:
        return torch.cat([p.reshape(-1) for p in parts])

    def f(self, s: Any, z: Tensor) -> Tensor:
        self.nfe += 1
        y, a = self.split(z)[:2]
        t = -s
        vjp = getattr(self.term, "vjp", None)
        fy, gy, gp = vjp(t, y, a, self.params) if vjp is not None else autograd_vjp(self.term, t, y, a, self.params)
        return self.join([-fy, gy, *[g.to(z.dtype) for g in gp]])

    def nudge(self, s: Any, toward: Any) -> Any:
        return -self.term.nudge(-s, -toward)


def _adjoint_norm(aug: AugmentedTerm, state_norm: Any, seminorm: bool):
    def norm(x: Tensor) -> Tensor:
        parts = aug.split(x)
        values = [torch.as_tensor(state_norm(parts[0])), torch.as_tensor(state_norm(parts[1]))]
        if not seminorm:
            values += [rms_norm(g) for g in parts[2:] if g.numel()]
        return torch.stack([v.to(torch.float64).reshape(()) for v in values]).max()

    return norm


class _Adjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, p: Problem, y0: Tensor, *params: Tensor) -> Tensor:
        with torch.no_grad():
            ys = torch.stack(forward(p))
        ctx.problem = p
        ctx.save_for_backward(ys, *params)
        return ys

    @staticmethod
    def backward(ctx, grad_ys: Tensor):
        p: Problem = ctx.problem
        ys, *_ = ctx.saved_tensors
        params = p.params  # the tensors the term reads (the saved ones may be their sources)
        spec = p.adjoint
        aug = AugmentedTerm(p.term, params, ys[0])
        a = grad_ys[-1]
        gs = [torch.zeros_like(q) for q in params]
        controller = None
        if spec.controller is not None:
            c = spec.controller
            controller = Controller(rtol=c.rtol, atol=c.atol, order=c.order, safety=c.safety, ifactor=c.ifactor,
                                    dfactor=c.dfactor, pcoeff=c.pcoeff, icoeff=c.icoeff, min_step=c.min_step,
                                    max_step=c.max_step,
                                    norm=spec.norm if spec.norm is not None else _adjoint_norm(aug, c.norm,
                                                                                               spec.seminorm))
        with torch.no_grad():
            for i in range(len(p.t_out) - 1, 0, -1):
                z = aug.join([ys[i], a, *gs])
                s0, s1 = -p.t_out[i], -p.t_out[i - 1]
                if p.grid is not None:
                    inner = [x for x in p.grid if p.t_out[i - 1] < x < p.t_out[i]]
                    grid = [s0] + [-x for x in reversed(inner)] + [s1]
                    out = solve_fixed(aug, spec.plan, z, grid, [s0, s1], perturb=spec.perturb,
                                      callbacks=spec.callbacks, max_steps=p.max_steps)
                else:
                    jumps = sorted(-x for x in p.jump_t)
                    out = solve_adaptive(aug, spec.plan, z, [s0, s1], controller, jump_t=jumps,
                                         callbacks=spec.callbacks, max_steps=p.max_steps)
                _, a, *gs = aug.split(out[-1])
                a = a + grad_ys[i - 1]
        return (None, a, *gs)


def solve_adjoint(p: Problem) -> list[Tensor]:
    """Outputs of ``p`` whose backward pass is the continuous adjoint (see the module docstring)."""
    hook = getattr(p.term, "solve_adjoint", None)
    if hook is not None:
        return hook(p)
    if p.adjoint is None:
        raise ValueError("gradient='adjoint' needs the problem's adjoint settings (Problem.adjoint)")
    sources = p.param_sources if p.param_sources is not None else p.params
    keep = [i for i, q in enumerate(sources) if q.requires_grad]
    if not torch.is_grad_enabled() or not (p.y0.requires_grad or keep):
        return forward(p)
    p = p.with_(params=tuple(p.params[i] for i in keep))
    return list(_Adjoint.apply(p, p.y0, *(sources[i] for i in keep)).unbind(0))
