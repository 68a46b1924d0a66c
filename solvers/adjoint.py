"""The continuous adjoint (Chen et al. 2018) on this package's engine, for every tableau.

Forward: the solve runs without a graph and keeps only its outputs.  Backward: from the last output to the
first, the augmented system dy/dt = f, da/dt = -a^T df/dy, dg/dt = -a^T df/dtheta is solved backward from
t_k to t_{k-1} (a from dL/dy(t_k), g from 0), the output gradients added at every output time, as
torchdiffeq's ``odeint_adjoint``.  Memory is flat in the steps; the gradients are exact up to the backward
solve's error (its settings: :class:`~solvers.problem.AdjointSpec`), which the solve measures
(:mod:`solvers.reconstruction`).  The backward error norm, on torchdiffeq's tuple ``(t, y, adj_y,
*adj_params)`` (``t`` a zero: the time gradient is closed form, :mod:`solvers.time_gradients`), covers the
parameter gradients unless ``seminorm`` (Kidger, Chen and Lyons 2021: usually far fewer steps); it is exposed
as ``grad_fn.adjoint_options["norm"]``, as torchdiffeq's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .controller import rms_norm
from .engine import Callbacks, solve_adaptive, solve_fixed
from .problem import AdjointSpec, Problem, forward
from .reconstruction import ReconstructionCheck
from .terms import Term

__all__ = ["AugmentedTerm", "adjoint_outputs", "default_adjoint_norm", "solve_adjoint"]


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
        self.shapes = [y_like.shape, y_like.shape] + [p.shape for p in self.params]
        self.sizes = [math.prod(s) for s in self.shapes]

    def split(self, z: Tensor) -> list[Tensor]:
        parts = z.split(self.sizes)
        return [p.view(s) for p, s in zip(parts, self.shapes)]

    def join(self, parts: Sequence[Tensor]) -> Tensor:
        return torch.cat([p.reshape(-1) for p in parts])

    def parts(self, z: Tensor) -> tuple[Tensor, ...]:
        """(t, y, adj_y, *adj_params) as torchdiffeq lays out its augmented state (t: a 0-d zero, the
        time gradient being closed form here)."""
        return (z.new_zeros(()).real, *self.split(z))

    def f(self, s: Any, z: Tensor) -> Tensor:
        y, a = self.split(z)[:2]
        t = -s
        fy, gy, gp = autograd_vjp(self.term, t, y, a, self.params)
        return self.join([-fy, gy, *[g.to(z.dtype) for g in gp]])

    def nudge(self, s: Any, toward: Any) -> Any:
        return -self.term.nudge(-s, -toward)


def default_adjoint_norm(state_norm: Callable[[Tensor], Any], seminorm: bool = False) -> Callable[[tuple], Tensor]:
    """torchdiffeq's default norm of the backward solve on ``(t, y, adj_y, *adj_params)``:
    max(|t|, state_norm(y), state_norm(adj_y), rms of each parameter gradient), the parameters left
    out with ``seminorm``."""
    def norm(parts: tuple) -> Tensor:
        t, y, a, *ps = parts
        values = [t.abs(), torch.as_tensor(state_norm(y)), torch.as_tensor(state_norm(a))]
        if not seminorm:
            values += [rms_norm(g) for g in ps if g.numel()]
        return torch.stack([v.to(torch.float64).reshape(()) for v in values]).max()

    return norm


def _aug_tol(tol: Any, aug: AugmentedTerm, largest: bool) -> Any:
    """A tolerance for the flat augmented state: elementwise ones repeat over y and a; the parameter
    gradients get the loosest (rtol) / tightest (atol) value."""
    if not isinstance(tol, Tensor) or tol.numel() == 1:
        return tol
    y_shape = aug.shapes[0]
    per_y = tol.expand(y_shape).reshape(-1)
    one = tol.max() if largest else tol.min()
    rest = [one.expand(n) for n in aug.sizes[2:]]
    return torch.cat([per_y, per_y, *rest])


def _backward_callbacks(spec: AdjointSpec, aug: AugmentedTerm) -> Callbacks | None:
    cbs = spec.callbacks
    if cbs is None:
        return None

    def wrap(cb):
        if cb is None:
            return None
        return lambda s, z, dt: cb(-s, aug.parts(z), dt)

    return Callbacks(step=wrap(cbs.step), accept=wrap(cbs.accept), reject=wrap(cbs.reject))


class _Adjoint(torch.autograd.Function):
    """Outputs (T, ...) of the problem; backward: the continuous adjoint.  ``ctx.adjoint_options["norm"]``
    (on ``(t, y, adj_y, *adj_params)``) is the backward solve's error norm, read when the backward pass
    runs, as torchdiffeq's adjoint node exposes it."""

    @staticmethod
    def forward(ctx, p: Problem, y0: Tensor, *params: Tensor) -> Tensor:
        with torch.no_grad():
            ys = torch.stack(forward(p))
        ctx.problem = p
        spec = p.adjoint
        ctx.adjoint_options = {"norm": spec.norm if spec.norm is not None else
                               default_adjoint_norm(spec.state_norm, spec.seminorm)}
        ctx.save_for_backward(ys, *params)
        return ys

    @staticmethod
    def backward(ctx, grad_ys: Tensor):
        p: Problem = ctx.problem
        ys, *sources = ctx.saved_tensors
        params = p.params  # the tensors the term reads (the saved ones may be their sources)
        spec = p.adjoint
        aug = AugmentedTerm(p.term, params, ys[0])
        a = grad_ys[-1]
        gs = [torch.zeros_like(q) for q in params]
        back, plan = spec.spec, spec.plan
        callbacks = _backward_callbacks(spec, aug)
        controller = None
        if plan.err is not None:
            norm_fn = ctx.adjoint_options["norm"]
            controller = back.controller(lambda x: norm_fn(aug.parts(x)), rtol=_aug_tol(back.rtol, aug, True),
                                         atol=_aug_tol(back.atol, aug, False))
            jumps = sorted(-x for x in (spec.jump_t if spec.jump_t is not None else p.jump_t))
            steps = sorted(-x for x in spec.step_t)
        check = ReconstructionCheck(p, ys)
        with torch.no_grad():
            for i in range(len(p.t_out) - 1, 0, -1):
                z = aug.join([ys[i], a, *gs])
                t_hi, t_lo = p.t_out[i], p.t_out[i - 1]
                s0, s1 = -t_hi, -t_lo
                if controller is None:
                    if spec.backward_grid is not None:
                        grid = spec.backward_grid(t_hi, t_lo)
                    else:
                        inner = [] if p.grid is None else [x for x in p.grid if t_lo < x < t_hi]
                        grid = [s0] + [-x for x in reversed(inner)] + [s1]
                    out = solve_fixed(aug, plan, z, grid, [s0, s1], perturb=spec.perturb, callbacks=callbacks,
                                      max_steps=back.max_steps)
                else:
                    out = solve_adaptive(aug, plan, z, [s0, s1], controller, first_step=back.first_step,
                                         jump_t=jumps, step_t=steps, callbacks=callbacks, max_steps=back.max_steps)
                y_back, a, *gs = aug.split(out[-1])
                check.add(y_back, ys[i - 1])
                a = a + grad_ys[i - 1]
        check.done()
        # a real parameter's gradient rode in a complex augmented state (a complex y) with zero
        # imaginary part: hand autograd the real tensor it expects
        gs = [g.real if g.is_complex() and not q.is_complex() else g for g, q in zip(gs, sources)]
        return (None, a, *gs)


def adjoint_outputs(p: Problem) -> Tensor:
    """Outputs (T, ...) of ``p`` whose backward pass is the continuous adjoint (see the module docstring);
    the returned tensor's ``grad_fn`` is the adjoint's node when a gradient is needed."""
    if p.adjoint is None:
        raise ValueError("gradient='adjoint' needs the problem's adjoint settings (Problem.adjoint)")
    sources = p.param_sources if p.param_sources is not None else p.params
    keep = [i for i, q in enumerate(sources) if q.requires_grad]
    if not torch.is_grad_enabled() or not (p.y0.requires_grad or keep):
        return torch.stack(forward(p))
    p = p.with_(params=tuple(p.params[i] for i in keep))
    return _Adjoint.apply(p, p.y0, *(sources[i] for i in keep))


def solve_adjoint(p: Problem) -> list[Tensor]:
    """Outputs of ``p`` whose backward pass is the continuous adjoint (see the module docstring)."""
    hook = getattr(p.term, "solve_adjoint", None)
    if hook is not None:
        return hook(p)
    return list(adjoint_outputs(p).unbind(0))
