"""Reversible methods on the structured kernel (:mod:`solvers.linear_activation`): the ``"backprop"``
and ``"reversible"`` gradient modes of a ``reversible_<tableau>`` solve with the kernel's
hand-written backward pass.

The forward is the reversible loop of :mod:`solvers.reversible` with the kernel's stages (both
increments, Psi_h(t_n, z_n) and Psi_{-h}(t_{n+1}, y_{n+1}), through
:meth:`~solvers.linear_activation.LinearActivationTerm.f`), each increment recorded (stage states and
activations) when a backward pass will read it.  One step's adjoint, from the adjoints (ay, az) of
(y_{n+1}, z_{n+1}):

    a   = ay - J_{Psi_{-h}}(y_{n+1})^T az          (the adjoint of y_{n+1}, all uses)
    ay' = lambda a
    az' = az + (1 - lambda) a + J_{Psi_h}(z_n)^T a

each vector-Jacobian product being the discrete adjoint of one base step without its identity
part (:meth:`solvers.sweep.Sweep.step_back`), with the weights' gradient rows kept and turned into
the gradients of W, A, U, b and the input by one matmul per chunk of steps
(:meth:`solvers.sweep.Sweep.accumulate`).

``"backprop"`` records every step in the forward (memory O(steps)) and runs that adjoint from the
last step down.  ``"reversible"`` keeps only the run's anchors and last pair, and runs the segment
machinery of :mod:`solvers.reversible_gradient` with :class:`StructuredSteps`: a step is rebuilt by
:func:`~solvers.reversible.unstep`, which evaluates the same two increments as the step (at z_n
and y_{n+1}), so its records serve that step's adjoint directly: the backward pass costs one
inverse step and one adjoint per step, nothing recomputed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .driven import DrivenTerm
from .problem import Problem, forward_reversible
from .reversible import step, unstep
from .reversible_gradient import backward_pass, forward_spacing, reversible_perturb, spec_key
from .stepper import Step
from .sweep import CHUNK, Sweep

__all__ = ["StructuredReversible", "StructuredSteps"]


class StructuredSteps:
    """Reversible steps taken back by the structured kernel's adjoint (the methods
    :class:`solvers.reversible_gradient.Backward` calls: ``unstep``, ``back``, ``save``, ``restore``).

    Args:
        term: the :class:`~solvers.linear_activation.LinearActivationTerm`.
        p: the problem (its reversible plan).
        need, tensors: which of (y0, W, A, U, b, *coeffs, first, last) need gradients, and those
            tensors but y0 (as the kernel's other Functions take them).
    """

    def __init__(self, term: Any, p: Problem, need: tuple, tensors: list) -> None:
        self.term, self.plan = term, p.plan
        self.perturb = reversible_perturb(p)
        self.lam = p.plan.tab.coupling
        self.sweep = Sweep(term, p.plan, need, tensors)
        self.s = self.sweep.s
        # the weight-gradient rows and stage states of up to CHUNK increments, and their stages
        self.rows: Tensor | None = None
        self.states: Tensor | None = None
        self.stages: list = []
        self.count = 0
        self.last: tuple[Tensor, Tensor, Any] | None = None  # the last unstep's pair and records

    # ---------------------------------------------------------------- the segment machinery's interface
    def unstep(self, t0: float, t1: float, y1: Tensor, z1: Tensor) -> tuple[Tensor, Tensor]:
        record: list = []
        with torch.no_grad():
            y0, z0 = unstep(self.term, self.plan, t0, t1, y1, z1, self.perturb, record)
        self.last = (y0, z0, record[0])
        return y0, z0

    def back(self, t0: float, t1: float, y0: Tensor, z0: Tensor, ay: Tensor, az: Tensor) -> tuple[Tensor, Tensor]:
        """The adjoints before the step from (ay, az) after it: from the records of the unstep that
        rebuilt (y0, z0), or of the step taken again from them (an anchor's pair)."""
        last, self.last = self.last, None
        if last is not None and last[0] is y0 and last[1] is z0:
            record = last[2]
        else:
            records: list = []
            with torch.no_grad():
                step(self.term, self.plan, t0, t1, y0, z0, self.perturb, records)
            record = records[0]
        return self.back_record(t0, t1, record, ay, az)

    def save(self) -> list[Tensor | None]:
        self.flush()
        return [None if g is None else g.clone() for g in self.sweep.results()]

    def restore(self, saved: list[Tensor | None]) -> None:
        self.count, self.stages = 0, []
        for g, s in zip(self.sweep.results(), saved):
            if g is not None:
                g.copy_(s)

    # ---------------------------------------------------------------- the adjoint of one step
    def back_record(self, t0: float, t1: float, record: tuple[Step, Step], ay: Tensor, az: Tensor
                    ) -> tuple[Tensor, Tensor]:
        """One step's adjoint (the module docstring's equations) from the records of its two increments."""
        first, second = record
        sweep = self.sweep
        # Psi_{-h}(y_{n+1}) enters z_{n+1} with a minus sign: its seed is -az
        g = self._increment_back(torch.neg(az), second, sweep.step_size(t1, t0))
        a = ay if g is None else ay + g
        g = self._increment_back(a, first, sweep.step_size(t0, t1))
        lam = self.lam
        if lam == 1.0:
            return a, az if g is None else az + g
        az0 = torch.add(az, a, alpha=1.0 - lam)
        if g is not None:
            az0.add_(g)
        return a * lam, az0

    def _increment_back(self, seed: Tensor, rec: Step, h: Any) -> Tensor | None:
        """J^T seed of the increment ``rec`` (one base step of size h, identity part left out); its
        weight-gradient rows kept for :meth:`flush`."""
        s, term = self.s, self.term
        aux = rec.aux[:s]
        if self.rows is None:
            B = seed.shape[0]
            self.rows = torch.empty(CHUNK * s, B, term.NA + term.P, dtype=seed.dtype, device=seed.device)
            self.states = torch.empty(CHUNK * s, B, term.N, dtype=seed.dtype, device=seed.device)
        q = self.count * s
        KZ = self.rows[q:q + s]
        torch.stack(rec.ys[:s], out=self.states[q:q + s])
        kbs = KZ[..., :term.NA].unbind(0) if term.NA else [None] * s
        D = self.sweep.derivative(torch.stack([x[0] for x in aux]))
        total = self.sweep.step_back(seed, h, KZ.unbind(0), kbs, KZ[..., term.NA:].unbind(0), D.unbind(0), None)
        self.stages.extend((x[1], x[2]) for x in aux)
        self.count += 1
        if self.count == CHUNK:
            self.flush()
        return total

    def flush(self) -> None:
        """The kept rows into the weight and input gradients: one matmul each."""
        if self.count:
            m = self.count * self.s
            self.sweep.accumulate(self.rows[:m], self.states[:m], self.stages)
            self.count, self.stages = 0, []

    def results(self) -> list[Tensor | None]:
        self.flush()
        return self.sweep.results()


class StructuredReversible(torch.autograd.Function):
    """A reversible solve on the structured kernel.  Forward: the reversible loop without autograd,
    recording every step (``mode="backprop"``) or keeping the anchors the specification learned
    (``"reversible"``).  Backward: the hand-written adjoint of the recorded steps, or the segment
    machinery of :mod:`solvers.reversible_gradient` with :class:`StructuredSteps`; under create_graph,
    the same steps replayed through the structure's own equations with autograd."""

    @staticmethod
    def forward(ctx, p: Problem, mode: str, y0: Tensor, *tensors: Tensor | None) -> Tensor:
        ctx.set_materialize_grads(False)
        ctx.problem, ctx.mode = p, mode
        ctx.record = [] if mode == "backprop" else None
        every, ctx.fine = (None, None) if mode == "backprop" else forward_spacing(spec_key(p))
        with torch.no_grad():
            ctx.run = forward_reversible(p, anchor_every=every, record=ctx.record)
        ctx.save_for_backward(y0, *tensors)
        return torch.stack(ctx.run.outputs)

    @staticmethod
    def backward(ctx, grad_ys: Tensor | None):
        if grad_ys is None:
            return (None,) * (len(ctx.saved_tensors) + 2)
        if torch.is_grad_enabled():
            return StructuredReversible._replayed_backward(ctx, grad_ys)
        return StructuredReversible._adjoint_backward(ctx, grad_ys)

    @staticmethod
    @once_differentiable
    def _adjoint_backward(ctx, grad_ys: Tensor):
        p: Problem = ctx.problem
        y0, *tensors = ctx.saved_tensors
        need = ctx.needs_input_grad[2:]
        steps = StructuredSteps(p.term, p, need, tensors)
        run = ctx.run
        if ctx.mode == "reversible":
            g_y0 = backward_pass(p, run, grad_ys, steps, ctx.fine)
        else:
            at: dict[int, list[int]] = {}
            for k, n in enumerate(run.ends):
                at.setdefault(n, []).append(k)
            record = ctx.record
            ay, az = torch.zeros_like(run.y), torch.zeros_like(run.z)
            for n in range(len(run.steps), -1, -1):
                if n < len(run.steps):
                    t0, t1 = run.steps[n]
                    ay, az = steps.back_record(t0, t1, record[n], ay, az)
                for k in at.get(n, []):
                    ay = ay + grad_ys[k]
            g_y0 = ay + az
        return (None, None, g_y0 if need[0] else None, *steps.results())

    @staticmethod
    def _replayed_backward(ctx, grad_ys: Tensor):
        """create_graph=True: the same steps (the accepted ones, replayed as a fixed grid) through the
        structure's own equations with autograd ops, differentiated keeping the graph."""
        p: Problem = ctx.problem
        y0, *tensors = ctx.saved_tensors
        term = p.term
        W, A, U, b = tensors[:4]
        n_coef = len(term.inputs.coeffs)
        structure = dataclasses.replace(term.structure, W=W, A=A, U=U, b=b)
        inputs = term.inputs.replace(coeffs=tensors[4:4 + n_coef], first=tensors[4 + n_coef],
                                     last=tensors[5 + n_coef])
        plain = DrivenTerm(structure.rhs, inputs, project=structure.project, time_dtype=term.time_dtype)
        steps = ctx.run.steps
        grid = [steps[0][0]] + [t1 for _, t1 in steps] if steps else [p.t_out[0]]
        replay = p.with_(term=plain, y0=y0, grid=grid, controller=None, perturb=reversible_perturb(p), stats=None)
        out = torch.stack(forward_reversible(replay).outputs)
        inputs_ = (y0, *tensors)
        wrt = [i for i, x in enumerate(inputs_) if x is not None and ctx.needs_input_grad[i + 2]]
        grads = torch.autograd.grad(out, [inputs_[i] for i in wrt], grad_ys, create_graph=True, allow_unused=True)
        result: list[Tensor | None] = [None] * (len(inputs_) + 2)
        for i, g in zip(wrt, grads):
            result[i + 2] = g
        return tuple(result)
