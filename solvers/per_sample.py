"""Per-sample error control: every sample of a batch gets its own adaptive steps, taken in lockstep.

With a shared clock (``solvers.engine``) one error norm over the whole batch picks one step size,
so the hardest sample sets every sample's steps and a sample's result depends on the rest of the
batch.  Here the state is (B, ...) with the batch on axis 0, and each iteration takes one
vectorised :func:`~solvers.stepper.rk_step` with a (B,) tensor of start times ``t0`` and end times
``t1``: every sample has its own time, step size, error ratio (``controller.norm`` returns one
ratio per sample, e.g. :func:`~solvers.controller.sample_rms_norm`), next step size
(``Controller.propose`` on tensors), jump and step times and output times.  A sample whose attempt
is rejected keeps its state, time and first stage; a sample that has finished takes steps of size
0 (t1 == t0) until the slowest one is done.  Every operation acts on each sample's rows alone, so
a sample's steps and results are those it gets when solved alone (up to the rounding of batched
kernels in the vector field; the tests find them equal to 1e-12 in float64 with the same number
of accepted steps).

Why it is written here rather than taken from a library: torchode has per-sample control but its
own stepper, tableaux and autograd path; this loop has to run this package's tableaux, terms
(including the structured kernel's) and tape.

What the vector field sees: ``term.f(t, y)`` with ``t`` a (B,) float64 tensor of each sample's
stage time (:class:`~solvers.terms.FuncTerm` casts it to y's real dtype, so a user's
``func(t, y)`` under ``odeint(..., options={"per_sample": True})`` receives a (B,) tensor).

Outputs.  ``t_out`` is (T,) (shared) or (B, T) (each sample its own increasing times).  Outputs
inside a step come from the step's quartic dense output (as the shared-clock solve's), or with
``exact_outputs=True`` the output times are step times, so every output is a computed state.

Gradients.  Backprop through the loop by autograd gives each sample the gradient of its own
steps: a rejected or finished sample's row is carried over by ``torch.where``, whose backward
sends nothing to the discarded attempt.  (A rejected attempt whose stages overflow to inf can
still turn that zero into NaN inside the field's backward; a shared-clock solve has no such
attempts in its graph.)

Tape format (``tape=Tape()``; what a hand-written backward pass consumes).  One record per
iteration in which at least one sample accepted its step:

* ``tape.t0[n]``, ``tape.t1[n]``: (B,) float64 tensors; a sample whose attempt was rejected, or
  that had finished, has ``t1 == t0``: its step has size 0 and is the identity (y1 = y0), so a
  backward pass that replays the recorded steps treats it as such.
* ``tape.jumps[n]``: (B,) bool, the step ended on a jump time (f is evaluated afresh after it).
* ``tape.ys[n]``: the states of the solution stages (``Plan.solution_stages``), each (B, ...);
  ``ys[n][0]`` is the state at t0.  Rows of samples with a size-0 step hold their state at t0 in
  every stage.
* ``tape.aux[n]``: ``term.aux()`` of each stage (the aux of a carried-over first stage is merged
  row by row, so ``aux`` must be None, a tensor with the batch on axis 0, or tuples/lists of such).
* ``tape.ends[k]``: (B,) int64, the number of records when each sample reached output k + 1.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .controller import Controller, initial_step
from .engine import DEFAULT_MAX_STEPS, SolveClock, Tape, evaluate_poly, quartic, state_error, underflow_error
from .errors import StepLimitError
from .stepper import Plan, Step, combine, rk_step
from .terms import Term

__all__ = ["PerSampleStats", "sample_times", "solve_adaptive_per_sample"]


@dataclass
class PerSampleStats:
    """What a per-sample solve did: ``accepted``/``rejected`` (B,) step counts per sample,
    ``iterations`` (vectorised steps taken) and ``evaluations`` (batched calls of the field)."""

    accepted: Tensor | None = None
    rejected: Tensor | None = None
    iterations: int = 0
    evaluations: int = 0


def sample_times(name: str, values: Any, batch: int, device: torch.device, allow_empty: bool = True) -> Tensor:
    """``values`` ((K,) shared or (B, K) per sample) as a sorted (B, K) float64 tensor on ``device``.

    Raises:
        ValueError: for more than two axes, a first axis that is not the batch, or non-finite values.
    """
    v = torch.as_tensor(values).detach()
    if v.is_complex():
        raise ValueError(f"{name} must hold real times; got dtype {v.dtype}")
    v = v.to(device=device, dtype=torch.float64)
    if v.ndim == 0:
        v = v.reshape(1)
    if v.ndim == 1:
        v = v.unsqueeze(0).expand(batch, -1)
    elif v.ndim != 2 or v.shape[0] != batch:
        raise ValueError(f"{name} must be (K,) shared or (B, K) = ({batch}, K) per sample; got shape {tuple(v.shape)}")
    if not allow_empty and v.shape[1] == 0:
        raise ValueError(f"{name} must not be empty")
    if v.numel() and not bool(torch.isfinite(v).all()):
        raise ValueError(f"{name} must hold finite times")
    return torch.sort(v, dim=1).values.contiguous()


def _rows(mask: Tensor, like: Tensor) -> Tensor:
    """(B,) mask viewed to broadcast against a (B, ...) tensor."""
    return mask.view(-1, *([1] * (like.dim() - 1)))


def _merge(mask: Tensor, new: Any, old: Any) -> Any:
    """Row-wise ``new if mask else old`` for tensors (batch on axis 0), None and tuples/lists of them."""
    if new is None or old is None:
        return new if old is None else old
    if isinstance(new, Tensor):
        return torch.where(_rows(mask, new), new, old)
    if isinstance(new, (tuple, list)):
        return type(new)(_merge(mask, a, b) for a, b in zip(new, old))
    raise TypeError(f"per-sample solves merge term.aux() row by row; it must be None, a tensor or tuples/lists of "
                    f"them, got {type(new).__name__}")


def _next_after(padded: Tensor, t: Tensor) -> Tensor:
    """The first time of each row of ``padded`` (sorted, ending with inf) strictly after t[b]."""
    pointer = torch.searchsorted(padded, t.unsqueeze(1), right=True)
    return padded.gather(1, pointer).squeeze(1)


def _pad(times: Tensor) -> Tensor:
    return torch.cat([times, times.new_full((times.shape[0], 1), math.inf)], 1)


def solve_adaptive_per_sample(term: Term, plan: Plan, y0: Tensor, t_out: Any, controller: Controller, *,
                              first_step: float | None = None, jump_t: Any = None, step_t: Any = None,
                              exact_outputs: bool = False, tape: Tape | None = None,
                              max_steps: int = DEFAULT_MAX_STEPS, stats: PerSampleStats | None = None
                              ) -> list[Tensor]:
    """y at every output time of every sample, each sample under its own error control.

    Args:
        term: the vector field; called with (B,) float64 tensors of times.
        plan: an embedded pair's plan.
        y0: (B, ...) initial states, batch on axis 0.
        t_out: (T,) shared or (B, T) per-sample increasing output times; column 0 is each sample's
            start.
        controller: tolerances, factors, step bounds; ``controller.norm`` must return (B,) ratios
            (e.g. ``sample_rms_norm``).
        first_step: the first step of every sample (None: Hairer-Norsett-Wanner's rule per sample).
        jump_t: None, (J,) shared or (B, J) per-sample times where f may jump: a sample's step never
            straddles one of its jumps, and f is evaluated afresh one ulp after it.
        step_t: None, (S,) or (B, S): times a sample's steps land on.
        exact_outputs: land steps on the output times (every output a computed state).
        tape: records the iterations (format in the module docstring).
        max_steps: limit on iterations (each sample's attempts are at most that many).
        stats: filled with per-sample step counts.

    Returns:
        T tensors of shape (B, ...): output k holds sample b's state at t_out[b, k].

    Raises:
        ValueError: malformed times or a norm that does not return one ratio per sample.
        StepLimitError, StepSizeUnderflowError, NonFiniteStateError: as the shared-clock solve,
            naming the sample.
    """
    if plan.err is None:
        raise ValueError(f"method {plan.tab.name!r} has no error estimate; per-sample error control needs an "
                         f"embedded pair such as dopri5")
    if y0.dim() == 0:
        raise ValueError("per-sample error control needs a state with the batch on axis 0; got a 0-d y0")
    B = y0.shape[0]
    dev = y0.device
    times = sample_times("t_out", t_out, B, dev, allow_empty=False)
    n_out = times.shape[1]
    if n_out > 1 and not bool((times[:, 1:] > times[:, :-1]).all()):
        raise ValueError("t_out must be strictly increasing along its last axis for every sample")
    outputs: list[Any] = [y0] + [None] * (n_out - 1)
    if n_out < 2:
        return outputs
    jumps = sample_times("jump_t", (), B, dev) if jump_t is None else sample_times("jump_t", jump_t, B, dev)
    steps = sample_times("step_t", (), B, dev) if step_t is None else sample_times("step_t", step_t, B, dev)
    if exact_outputs:
        steps = torch.sort(torch.cat([steps, times[:, 1:]], 1), dim=1).values
    steps_pad, jumps_pad = _pad(steps), _pad(jumps)
    keep = tape is not None and tape.states
    t = times[:, 0].clone()
    t_end = times[:, -1]
    y = y0
    nfe = 0

    def f(tt: Tensor, yy: Tensor) -> Tensor:
        nonlocal nfe
        nfe += 1
        return term.f(tt, yy)

    # f may jump at a sample's start (t0 among its jump times): its first stage reads the piece after it
    at_jump = (jumps == t.unsqueeze(1)).any(1) if jumps.shape[1] else torch.zeros_like(t, dtype=torch.bool)
    k0 = f(torch.where(at_jump, term.nudge(t, math.inf), t) if bool(at_jump.any()) else t, y)
    aux0 = term.aux() if keep else None
    if first_step is None:
        dt = initial_step(k0, y, lambda h, yy: f(t + h, yy), plan.tab.order, controller.rtol, controller.atol,
                          controller.norm)
        if not isinstance(dt, Tensor) or dt.shape != (B,):
            raise ValueError(f"per-sample error control needs controller.norm to return one ratio per sample, shape "
                             f"({B},); use solvers.controller.sample_rms_norm")
        dt = dt.to(device=dev, dtype=torch.float64)
    else:
        dt = torch.full((B,), float(first_step), dtype=torch.float64, device=dev)
    j = torch.ones(B, dtype=torch.long, device=dev)  # next output of each sample
    prev_ratio = torch.zeros(B, dtype=torch.float64, device=dev)
    accepted_n = torch.zeros(B, dtype=torch.long, device=dev)
    rejected_n = torch.zeros(B, dtype=torch.long, device=dev)
    ends = torch.zeros(B, n_out - 1, dtype=torch.long, device=dev) if tape is not None else None
    zero = torch.zeros((), dtype=torch.float64, device=dev)
    iterations = 0
    active = t < t_end
    clock = SolveClock(controller.max_time, 0.0, 0.0, max_steps, "per-sample adaptive solve")
    while bool(active.any()):
        iterations += 1
        if time.monotonic() >= clock.deadline:  # the furthest-behind sample says where the solve is
            b = int(torch.argmax(torch.where(active, (t_end - t) / dt.clamp_min(1e-300), zero)))
            clock.t0, clock.t_end = float(times[b, 0]), float(t_end[b])
            clock.check(float(t[b]), float(dt[b]), iterations - 1, int(rejected_n[b]), f"sample {b} ")
        if iterations > max_steps:
            worst = int(torch.argmax(torch.where(active, t_end - t, zero)))
            raise StepLimitError(
                f"this per-sample adaptive solve needs more than max_steps = {max_steps} steps (sample {worst} is at "
                f"t = {float(t[worst])}, ending at {float(t_end[worst])}); loosen rtol/atol, or raise max_steps if "
                f"that many steps are really meant")
        dt = torch.where(torch.isfinite(dt), dt, torch.full_like(dt, controller.min_step))
        dt = controller.clamp(dt)
        dt = torch.where(active, dt, zero)
        t1 = t + dt
        stuck = active & ~(t1 > t)
        if bool(stuck.any()):
            b = int(torch.nonzero(stuck)[0])
            raise underflow_error(float(t[b]), float(dt[b]), controller, f"sample {b}: ")
        next_step = _next_after(steps_pad, t)
        on_step = active & (next_step < t1)
        t1 = torch.where(on_step, next_step, t1)
        next_jump = _next_after(jumps_pad, t)
        on_jump = active & (next_jump <= t1)
        t1 = torch.where(on_jump, next_jump, t1)
        step = rk_step(term, plan, t, t1, y, k0, perturb_end=True, keep_aux=keep, aux0=aux0)
        nfe += plan.tab.stages - 1
        dtv = t1 - t
        ratio = controller.ratio(step.err, y, step.y1).to(torch.float64)
        if ratio.shape != (B,):
            raise ValueError(f"per-sample error control needs controller.norm to return one ratio per sample, shape "
                             f"({B},); got shape {tuple(ratio.shape)}; use solvers.controller.sample_rms_norm")
        accept, finite = controller.accepts(ratio, dtv)
        y1_finite = torch.isfinite(step.y1.detach()).reshape(B, -1).all(1)
        accept = accept & y1_finite & active
        bad = active & ~finite
        if bool(bad.any()):
            state_ok = torch.isfinite(y.detach()).reshape(B, -1).all(1) & torch.isfinite(k0.detach()).reshape(B, -1).all(1)
            broken = bad & ~state_ok
            if bool(broken.any()):
                b = int(torch.nonzero(broken)[0])
                raise state_error(float(t[b]), f"sample {b}: ")
        if bool(accept.any()):
            y, k0, aux0, t_new, f_end = _commit(term, plan, step, t, t1, y, k0, aux0, accept, on_jump, keep, tape, f)
            # outputs reached by this step, read from its dense output (or its end)
            coeffs = None
            while True:
                tj = times.gather(1, j.clamp(max=n_out - 1).unsqueeze(1)).squeeze(1)
                need = accept & (j < n_out) & (tj <= t1)
                if not bool(need.any()):
                    break
                at_end = tj == t1
                if bool((need & ~at_end).any()):
                    if coeffs is None:
                        coeffs = _dense(plan, step, t, t1, f_end)
                    x = torch.where(need & ~at_end, (tj - t) / torch.where(need, t1 - t, torch.ones_like(t)), zero)
                    value = evaluate_poly(coeffs, _rows(x, y).to(y.real.dtype))
                    value = torch.where(_rows(at_end, y), step.y1, value)
                else:
                    value = step.y1
                for jv in torch.unique(j[need]).tolist():
                    sel = _rows(need & (j == jv), y)
                    outputs[jv] = torch.where(sel, value, outputs[jv] if outputs[jv] is not None else torch.zeros_like(y))
                if ends is not None:
                    idx = torch.nonzero(need).squeeze(1)
                    ends[idx, j[idx] - 1] = len(tape)
                j = j + need.long()
            t = t_new
        accepted_n += accept.long()
        rejected_n += (active & ~accept).long()
        # next step sizes: a non-finite attempt (an infinite ratio) shrinks by dfactor, as the shared-clock solve
        safe_ratio = torch.where(finite, ratio, torch.full_like(ratio, math.inf))
        proposed = controller.propose(dtv, safe_ratio, prev_ratio, accept)
        prev_ratio = torch.where(accept, safe_ratio, prev_ratio)
        dt = torch.where(active, controller.clamp(proposed), dt)
        active = t < t_end
    if tape is not None:
        tape.ends.extend(ends.unbind(1))
    if stats is not None:
        stats.accepted, stats.rejected = accepted_n, rejected_n
        stats.iterations, stats.evaluations = iterations, nfe
    return outputs


def _dense(plan: Plan, step: Step, t0: Tensor, t1: Tensor, f1: Tensor) -> list[Tensor]:
    """The quartic dense output of every row's step (torchdiffeq's, as the shared-clock solve's)."""
    y_prev = step.ys[0]
    dt = _rows(t1 - t0, y_prev).to(y_prev.real.dtype)
    y_mid = combine(y_prev, dt, plan.mid, step.ks)
    return quartic(y_prev, step.y1, y_mid, step.ks[0], f1, dt)


def _commit(term: Term, plan: Plan, step: Step, t: Tensor, t1: Tensor, y: Tensor, k0: Tensor, aux0: Any,
            accept: Tensor, on_jump: Tensor, keep: bool, tape: Tape | None, f
            ) -> tuple[Tensor, Tensor, Any, Tensor, Tensor]:
    """Take the accepted rows of ``step``: new states, first stages (FSAL, or f at the new state, or
    afresh one ulp after a jump), times; record the iteration on the tape.  Also returns f at the
    step's end (the FSAL stage or f(t1, y1)), the dense output's end slope."""
    rows = _rows(accept, y)
    y_new = torch.where(rows, step.y1, y)
    if plan.fsal:
        k_next = step.ks[-1]
        aux_next = step.aux[-1] if keep else None
    else:
        # f at (t1, y1) for every row (also the dense output's end slope); kept where accepted
        k_next = f(t1, step.y1)
        aux_next = term.aux() if keep else None
    f_end = k_next
    landed = accept & on_jump
    if bool(landed.any()):
        fresh = f(term.nudge(t1, math.inf), step.y1)
        fresh_aux = term.aux() if keep else None
        k_next = torch.where(_rows(landed, y), fresh, k_next)
        aux_next = _merge(landed, fresh_aux, aux_next) if keep else None
    k_new = torch.where(rows, k_next, k0)
    aux_new = _merge(accept, aux_next, aux0) if keep else None
    t_new = torch.where(accept, t1, t)
    if tape is not None:
        tape.t0.append(t)
        tape.t1.append(t_new)
        tape.jumps.append(landed)
        if tape.states:
            n = plan.solution_stages
            tape.ys.append([torch.where(rows, s, y) for s in step.ys[:n]])
            tape.aux.append(step.aux[:n] if step.aux is not None else [None] * n)
    return y_new, k_new, aux_new, t_new, f_end
