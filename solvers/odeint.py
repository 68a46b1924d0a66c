"""``odeint``: a drop-in superset of ``torchdiffeq.odeint`` and ``odeint_adjoint`` (0.2.5) on this package's engine.

**Same as torchdiffeq.**  The signature ``odeint(func, y0, t, *, rtol=1e-7, atol=1e-9, method=None,
options=None, event_fn=None)`` and ``odeint_adjoint(..., adjoint_rtol=, adjoint_atol=,
adjoint_method=, adjoint_options=, adjoint_params=)``; tuple states (flattened as torchdiffeq
does, tolerances one per state or shared, the default norm the max of the parts' RMS norms);
increasing or decreasing ``t``; ``func(t, y)`` receives ``t`` as a 0-d tensor in y's real dtype;
the output is ``(len(t), *y0.shape)`` in y0's dtype, with no evaluation of ``func`` beyond
torchdiffeq's (fixed methods: the stages; adaptive methods: f(t0) plus the first-step probe).
Every method name means the same method (``"rk4"`` is Kutta's 3/8 rule in both); the explicit
Runge-Kutta methods run on this package's engine (:mod:`solvers.engine`), the multistep and scipy
methods (``explicit_adams``, ``implicit_adams``, ``fixed_adams``, ``scipy_solver``) are handed to
torchdiffeq itself.  The options: fixed methods ``step_size`` (torchdiffeq's arange grid, outputs
inside a step interpolated), ``grid_constructor``, ``perturb``, ``interp`` ("linear", "cubic");
adaptive methods ``first_step``, ``safety``, ``ifactor``, ``dfactor``, ``min_step``, ``max_step``,
``max_num_steps``, ``step_t``, ``jump_t``, ``norm``, ``dtype``.  The step callbacks
(``func.callback_step``, ``callback_accept_step``, ``callback_reject_step`` and their ``_adjoint``
twins) are called with the same arguments in the same sequence; ``event_fn`` (with ``len(t) == 2``)
returns ``(event_t, solution)``, for adaptive methods and for fixed ones with
``options["step_size"]``.  Step for step the adaptive controller is torchdiffeq's, so dopri5,
bosh3 and dopri8 give torchdiffeq's numbers to rounding (tests: 1e-13 in float64).

**Added.**  ``gradient="backprop" | "checkpoint" | "adjoint"`` on ``odeint`` (``adjoint=True`` is
short for the last); ``step_size=`` and ``jump_t=`` arguments for fixed methods (a grid through
every output time and jump, each gap split into equal substeps, so outputs are computed states and
no step straddles a jump: :func:`solvers.grids.knot_grid`); ``max_steps`` (default
``solvers.DEFAULT_MAX_STEPS``); PI step-size control (``options={"pcoeff": ..., "icoeff": ...}``);
``options={"max_time": seconds}`` (``TimeLimitError`` after that much wall-clock time; without it a
solve still running logs its progress and the likely cause every 20 s on the ``solvers`` logger);
per-sample error control (``options={"per_sample": True}``: state (B, ...), each sample its own
steps; ``func`` then receives ``t`` as a (B,) tensor, and ``t`` / ``jump_t`` / ``step_t`` may be
(B, K), one row per sample; :mod:`solvers.per_sample`); the methods ``tsit5``, ``rk4_classic``,
``ralston`` and any :class:`~solvers.tableaux.Tableau`; an event time that carries its implicit
gradient; :func:`odeint_event` (torchdiffeq's, run on this ``odeint``); every bad argument a
``ValueError``/``TypeError`` naming it, and a solve that cannot finish a
:class:`~solvers.errors.SolverError` saying what to change.

**Different, on purpose** (docs/ODEINT.md has the list with the reasons):

* unknown options raise ``ValueError`` (torchdiffeq warns and ignores them), and so do values out
  of range (safety in (0, 1], ifactor >= 1, dfactor in (0, 1), ...); the step limit raises
  ``StepLimitError`` (torchdiffeq: ``AssertionError``), counts the attempted steps of the whole
  solve (torchdiffeq's ``max_num_steps`` counts per output interval) and defaults to 100,000
  (torchdiffeq: 2**31 - 1); a NaN ``y0`` or non-finite ``t`` is refused up front; a fixed-step
  solve whose outputs are not finite raises ``NonFiniteStateError`` instead of returning NaN;
* gradients treat the accepted step sizes as constants (torchdiffeq also differentiates the first
  step's dependence on y0, an O(tolerance) difference); gradients with respect to ``t`` are the
  closed form dL/dt_k = <dL/dy_k, f(t_k, y_k)> (and -<dL/dy0, f(t0, y0)> for t[0]) in every mode;
* ``adaptive_heun`` and ``fehlberg2`` evaluate f at the new state to start the next step, where
  torchdiffeq reuses their last stage, which lies at another state: the same order and about the
  same error, not the same numbers, and one more evaluation per step;
* when t[0] is one of the jump times, the first stage is evaluated one ulp after it (torchdiffeq: at
  t[0]), so the first step reads its own piece of a piecewise f, as every step after a jump does;
* times are float64 Python floats inside the loop (no tensor per step); for float32 states the stage
  times are rounded to float32 once, where torchdiffeq computes them in float32 (differences at
  float32 rounding); ``options["dtype"]`` other than float64 warns;
* dopri8's error estimate on an easy step is at rounding level, where the two libraries' sums round
  differently: its step sizes can then differ by a few per cent and its results by the tolerance.

Inherited from torchdiffeq: outputs between steps come from its quartic dense output, whose midpoint
weights make it second order for bosh3, fehlberg2 and adaptive_heun and which limits dopri8 to a
fifth-order interpolant; ``options={"step_t": t}`` lands the steps on the outputs instead.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torchdiffeq
from torch import Tensor, nn

from .adjoint import adjoint_outputs, solve_adjoint
from .controller import Controller, check_controller_options, check_resolution, rms_norm, sample_rms_norm
from .engine import DEFAULT_MAX_STEPS, Callbacks, check_step_count, hermite, solve_until_event
from .errors import NonFiniteStateError
from .gradients import GRADIENT_MODES, resolve_gradient
from .grids import arange_grid, knot_grid
from .methods import DELEGATED, METHODS
from .per_sample import sample_times
from .problem import AdjointSpec, Problem
from .stepper import Plan, rk_step
from .tableaux import TABLEAUX, Tableau
from .terms import FuncTerm, Term

__all__ = ["ADAPTIVE_OPTIONS", "FIXED_OPTIONS", "odeint", "odeint_adjoint", "odeint_event"]

FIXED_OPTIONS = ("step_size", "grid_constructor", "perturb", "interp", "norm", "max_num_steps")
"""Options of fixed-grid methods: torchdiffeq's (``norm`` accepted and unused, as there), plus
``max_num_steps``."""

ADAPTIVE_OPTIONS = ("first_step", "safety", "ifactor", "dfactor", "min_step", "max_step", "max_num_steps", "step_t",
                    "jump_t", "norm", "dtype", "pcoeff", "icoeff", "per_sample", "max_time")
"""torchdiffeq's options of adaptive methods, plus ``pcoeff``/``icoeff`` (PI control), ``per_sample``
and ``max_time`` (wall-clock seconds; ``TimeLimitError`` after them).  Each is checked against its
range here (``solvers.controller.check_controller_options``: safety in (0, 1], ifactor >= 1,
dfactor in (0, 1], ...), not left to fail later as an unmet tolerance."""

_CALLBACKS = ("callback_step", "callback_accept_step", "callback_reject_step")


# --------------------------------------------------------------------------- validation
def _check_t(t: Any, per_sample: bool) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"t must be a 1-D torch.Tensor of times; got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"t must have a real floating dtype; got t.dtype = {t.dtype}")
    if t.numel() == 0 or not (t.ndim == 1 or (per_sample and t.ndim == 2)):
        expected = "1-D (or (B, T) with options={'per_sample': True})" if per_sample else "1-D"
        raise ValueError(f"t must be {expected} and non-empty, time along its last axis; got shape {tuple(t.shape)}")
    td = t.detach()
    bad = torch.nonzero(~torch.isfinite(td).reshape(-1)).reshape(-1)
    if bad.numel():
        k = int(bad[0])
        raise ValueError(f"t must hold finite times; got t[{k}] = {float(td.reshape(-1)[k])} (integrate to a "
                         f"finite end time, or stop at an event with event_fn)")
    rows = td.reshape(-1, td.shape[-1])
    if rows.shape[1] > 1:
        d = rows[:, 1:] - rows[:, :-1]
        sign = 1.0 if bool(d[0, 0] > 0) else -1.0
        bad = torch.nonzero(~(d * sign > 0))
        if bad.numel():
            r, k = int(bad[0, 0]), int(bad[0, 1]) + 1
            at = f"t[{r}, {{}}]" if t.ndim == 2 else "t[{}]"
            raise ValueError(
                f"t must be strictly increasing or strictly decreasing; got {at.format(k)} = {float(rows[r, k])} "
                f"after {at.format(k - 1)} = {float(rows[r, k - 1])}"
                + (f" (with t[1] - t[0] = {float(d[0, 0])})" if k > 1 or r > 0 else ""))
    return t


def _check_y0(y0: Any, name: str = "y0") -> Tensor:
    if not isinstance(y0, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or a tuple of them; got {type(y0).__name__}")
    if not (y0.is_floating_point() or y0.is_complex()):
        raise TypeError(f"{name} must have a floating or complex dtype; got {name}.dtype = {y0.dtype}")
    bad = torch.nonzero(~torch.isfinite(y0.detach()).reshape(-1)).reshape(-1)
    if bad.numel():
        k = int(bad[0])
        raise ValueError(f"{name} must be finite; got {y0.detach().reshape(-1)[k].item()} at flat index {k} "
                         f"(of shape {tuple(y0.shape)})")
    return y0


def _check_tol(name: str, tol: Any) -> Any:
    if isinstance(tol, Tensor) and tol.requires_grad:
        raise ValueError(f"{name} cannot require gradients")
    try:
        value = torch.as_tensor(tol).detach()
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a number or a tensor; got {type(tol).__name__}") from None
    if value.is_complex() or bool(torch.isnan(value).any()) or bool((value < 0).any()) or \
            not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} must be non-negative and finite; got {name} = {tol}")
    return tol


def _check_number(name: str, value: Any, positive: bool = True, allow_zero: bool = False) -> float:
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a number; got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number; got {type(value).__name__}")
    value = float(value)
    ok = (value > 0 or (allow_zero and value == 0)) if positive else True
    if math.isnan(value) or not ok:
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}; got {name} = {value}")
    return value


def _check_step_size(step_size: Any, name: str = "step_size") -> float | None:
    if step_size is None:
        return None
    if isinstance(step_size, Tensor):
        if step_size.numel() != 1:
            raise ValueError(f"{name} must be a positive number; got a tensor of shape {tuple(step_size.shape)}")
        step_size = step_size.item()
    if isinstance(step_size, bool) or not isinstance(step_size, (int, float)):
        raise TypeError(f"{name} must be a positive number or None; got {type(step_size).__name__}")
    if not (math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"{name} must be a positive finite number or None; got {name} = {step_size}")
    return float(step_size)


def _check_max_steps(max_steps: Any, name: str = "max_steps") -> int:
    if isinstance(max_steps, Tensor) and max_steps.numel() == 1 and not max_steps.is_floating_point():
        max_steps = int(max_steps)
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"{name} must be a positive int; got {max_steps!r}")
    return max_steps


def _times(name: str, values: Any, t: Tensor) -> Tensor | None:
    if values is None:
        return None
    v = torch.as_tensor(values).detach()
    if v.ndim > 1:
        raise ValueError(f"{name} must be a 1-D sequence of times; got shape {tuple(v.shape)}")
    if v.is_complex() or not torch.isfinite(v.to(torch.float64)).all():
        raise ValueError(f"{name} must hold finite real times")
    v = v.reshape(-1).to(dtype=torch.float64, device=t.device)
    return v if v.numel() else None


def _resolve_method(method: Any, name: str = "method") -> tuple[str, Tableau | None]:
    if method is None:
        method = "dopri5"
    if isinstance(method, Tableau):
        return method.name, method
    if not isinstance(method, str):
        raise TypeError(f"{name} must be a str or a Tableau; got {type(method).__name__}")
    if method not in METHODS:
        raise ValueError(f"unknown {name} {method!r}; expected one of {', '.join(sorted(METHODS))}")
    return method, TABLEAUX.get(method)


def _check_options(options: Any, name: str, allowed: Sequence[str], method: str) -> dict:
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise TypeError(f"{name} must be a dict or None; got {type(options).__name__}")
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{name} {unknown} are not options of method {method!r}; its options are "
                         f"{', '.join(allowed)}")
    return dict(options)


# --------------------------------------------------------------------------- tuples and time reversal
class _Flat:
    """A tuple state flattened into one tensor, as torchdiffeq does, and back."""

    def __init__(self, y0: tuple) -> None:
        if not y0:
            raise ValueError("y0 must not be an empty tuple")
        for i, y in enumerate(y0):
            _check_y0(y, f"y0[{i}]")
        self.shapes = [y.shape for y in y0]
        self.dtypes = [y.dtype for y in y0]
        self.sizes = [y.numel() for y in y0]

    def flat(self, ys: Sequence[Tensor]) -> Tensor:
        return torch.cat([y.reshape(-1) for y in ys])

    def split(self, y: Tensor, lead: tuple[int, ...] = ()) -> tuple[Tensor, ...]:
        parts = y.split(self.sizes, dim=-1)
        return tuple(p.view((*lead, *s)) for p, s in zip(parts, self.shapes))

    def tol(self, name: str, tol: Any) -> Any:
        # torchdiffeq's rule: an iterable tolerance (also a 1-D tensor) holds one entry per state
        if isinstance(tol, Tensor) and tol.ndim == 0:
            return tol
        try:
            entries = tuple(tol)
        except TypeError:
            return tol
        if len(entries) != len(self.shapes):
            raise ValueError(f"a tuple {name} needs one entry per state of the tuple y0 ({len(self.shapes)}); "
                             f"got {len(entries)}")
        return torch.cat([torch.as_tensor(x, dtype=torch.float64).expand(n) for x, n in zip(entries, self.sizes)])


class _ReversedTerm(Term):
    """f in negated time s = -t: g(s, y) = -f(-s, y), so a decreasing solve runs on increasing times."""

    def __init__(self, term: Term) -> None:
        self.term = term
        self.time_dtype = term.time_dtype
        self.per_sample = term.per_sample

    def f(self, s: Any, y: Tensor) -> Tensor:
        return -self.term.f(-s, y)

    def nudge(self, s: Any, toward: Any) -> Any:
        return -self.term.nudge(-s, -toward)

    def aux(self) -> Any:
        return self.term.aux()


def _install_first_call_check(term: FuncTerm, y0: Tensor, flat: _Flat | None, user: Callable) -> None:
    """Check what ``func`` returns on its first call (a tensor of y0's shape), then hand the term the
    plain function: no extra evaluation and no cost per step after the first."""
    inner = term.func

    def checked(t: Tensor, y: Tensor) -> Tensor:
        if flat is not None:
            out = user(t, flat.split(y))
            if not isinstance(out, (tuple, list)) or len(out) != len(flat.shapes):
                raise TypeError(f"func must return a tuple of {len(flat.shapes)} tensors for a tuple y0; got "
                                f"{type(out).__name__}" + (f" of length {len(out)}" if isinstance(out, (tuple, list))
                                                          else ""))
            for i, (o, s) in enumerate(zip(out, flat.shapes)):
                if not isinstance(o, Tensor):
                    raise TypeError(f"func must return tensors; got {type(o).__name__} at position {i}")
                if o.shape != s:
                    raise ValueError(f"func returned shape {tuple(o.shape)} at position {i} whilst y0[{i}] has shape "
                                     f"{tuple(s)}")
            result = torch.cat([o.reshape(-1) for o in out])
        else:
            result = inner(t, y)
            if not isinstance(result, Tensor):
                raise TypeError(f"func must return a torch.Tensor; got {type(result).__name__}")
            if result.shape != y.shape:
                raise ValueError(f"func returned shape {tuple(result.shape)} whilst y0 has shape {tuple(y.shape)}")
        term.func = inner
        return result

    term.func = checked


def _callbacks(func: Any, flat: _Flat | None, sign: float, time_dtype: torch.dtype, suffix: str = "") -> Callbacks | None:
    """torchdiffeq's step callbacks found on ``func``, called as torchdiffeq calls them: ``(t0, y0, dt)`` with
    t0 in the caller's time (negated back for a decreasing solve), y0 as the caller's state, dt > 0."""
    found = {}
    for name in _CALLBACKS:
        cb = getattr(func, name + suffix, None)
        if cb is None or not callable(cb):
            continue

        def wrapped(t0, y0, dt, _cb=cb):
            y = flat.split(y0) if flat is not None else y0
            return _cb(torch.tensor(sign * t0, dtype=time_dtype), y, torch.tensor(dt, dtype=time_dtype))

        found[name] = wrapped
    if not found:
        return None
    return Callbacks(step=found.get("callback_step"), accept=found.get("callback_accept_step"),
                     reject=found.get("callback_reject_step"))


# --------------------------------------------------------------------------- time gradients
def _inner(grad: Tensor, f: Tensor) -> Tensor:
    return (grad * f.conj()).real if grad.is_complex() else grad * f


class _TimeGradient(torch.autograd.Function):
    """Identity on the outputs ys (T, ...); gives t the closed-form gradient <dL/dy_k, f(t_k, y_k)> for
    k >= 1, f evaluated only when the backward pass asks for it."""

    @staticmethod
    def forward(ctx, t: Tensor, ys: Tensor, slopes: Callable[[Tensor], Tensor], cancel_first: bool) -> Tensor:
        ctx.slopes, ctx.cancel_first, ctx.t_shape, ctx.t_dtype = slopes, cancel_first, t.shape, t.dtype
        ctx.save_for_backward(ys)
        return ys.view_as(ys)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (ys,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, grad, None, None
        with torch.no_grad():
            fs = ctx.slopes(ys.detach())
            prod = _inner(grad, fs)
            n = grad.shape[0]
            if len(ctx.t_shape) == 2:  # (B, T) per-sample times
                gt = prod.reshape(n, ctx.t_shape[0], -1).sum(2).transpose(0, 1).contiguous()
                if not ctx.cancel_first:
                    gt[:, 0] = 0.0
            else:
                gt = prod.reshape(n, -1).sum(1)
                if not ctx.cancel_first:
                    gt[0] = 0.0
        # cancel_first: output 0 came through the start-time node too, whose -<g0, f0> this cancels
        return gt.to(ctx.t_dtype), grad, None, None


class _StartTime(torch.autograd.Function):
    """Identity on y0; gives t0 the gradient -<dL/dy0, f(t0, y0)> (the flow started later)."""

    @staticmethod
    def forward(ctx, t0: Tensor, y0: Tensor, slope: Callable[[Tensor], Tensor], per_row: bool) -> Tensor:
        ctx.slope, ctx.per_row, ctx.t_dtype = slope, per_row, t0.dtype
        ctx.save_for_backward(y0)
        return y0.view_as(y0)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (y0,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, grad, None, None
        with torch.no_grad():
            prod = _inner(grad, ctx.slope(y0.detach()))
            g = prod.reshape(prod.shape[0], -1).sum(1) if ctx.per_row else prod.sum()
        return -g.to(ctx.t_dtype), grad, None, None


# --------------------------------------------------------------------------- events
class _EventTime(torch.autograd.Function):
    """The event time T, with the implicit gradient of c(T, y(T)) = 0 sent into the state y(T):
    dT = -(dc/dy . dy(T)) / (dc/dt + dc/dy . f(T, y(T)))  (torchdiffeq's ``odeint_event`` rule)."""

    @staticmethod
    def forward(ctx, state: Tensor, t_event: Tensor, event: Callable, field: Callable) -> Tensor:
        ctx.event, ctx.field = event, field
        ctx.save_for_backward(state, t_event)
        return t_event.detach().clone()

    @staticmethod
    def backward(ctx, grad_t: Tensor):
        state, t_event = ctx.saved_tensors
        with torch.enable_grad():
            tt = t_event.detach().clone().requires_grad_(True)
            yy = state.detach().clone().requires_grad_(True)
            c = ctx.event(tt, yy)
            dcdt, dcdy = torch.autograd.grad(c, (tt, yy), allow_unused=True)
        with torch.no_grad():
            f = ctx.field(t_event.detach(), state.detach())
            dcdt = torch.zeros((), dtype=state.real.dtype, device=state.device) if dcdt is None else dcdt
            dcdy = torch.zeros_like(state) if dcdy is None else dcdy
            total = dcdt + _inner(dcdy, f).sum()
            if float(total) == 0.0:
                raise NonFiniteStateError("the event function is stationary along the solution at the event "
                                          "(dc/dt + dc/dy . f = 0): the event time has no derivative there")
            grad_state = -(grad_t / total) * dcdy
        return grad_state, None, None, None


def _event_caller(event_fn: Callable, flat: _Flat | None, sign: float, t_dtype: torch.dtype, device: torch.device):
    """The user's event function on (problem time, flat state), as a tensor."""
    def call(s: Any, y: Tensor) -> Tensor:
        tt = s if isinstance(s, Tensor) else torch.tensor(s, dtype=t_dtype, device=device)
        out = event_fn(sign * tt, flat.split(y) if flat is not None else y)
        if not isinstance(out, Tensor):
            raise TypeError(f"event_fn must return a tensor; got {type(out).__name__}")
        return out

    return call


# --------------------------------------------------------------------------- the entry point
def odeint(
    func: Callable,
    y0: Tensor | tuple[Tensor, ...],
    t: Tensor,
    *,
    rtol: float | Tensor | Sequence = 1e-7,
    atol: float | Tensor | Sequence = 1e-9,
    method: str | Tableau | None = None,
    options: dict | None = None,
    event_fn: Callable | None = None,
    step_size: float | None = None,
    jump_t: Tensor | Sequence[float] | None = None,
    gradient: str | None = None,
    adjoint: bool = False,
    max_steps: int = DEFAULT_MAX_STEPS,
    adjoint_rtol: float | Tensor | None = None,
    adjoint_atol: float | Tensor | None = None,
    adjoint_method: str | None = None,
    adjoint_options: dict | None = None,
    adjoint_params: Sequence[Tensor] | None = None,
) -> Tensor | tuple:
    """Solve dy/dt = func(t, y), y(t[0]) = y0, and return y at every time in ``t``.

    torchdiffeq's conventions: ``func(t, y)`` with ``t`` a 0-d tensor in y's real dtype; output
    time first, ``(len(t), *y0.shape)`` in ``y0``'s dtype (a tuple of such for a tuple ``y0``).

    Args:
        func: the vector field, returning a tensor of ``y0``'s shape (a tuple for a tuple ``y0``).
        y0: (*S) initial state, real or complex, any shape; or a tuple of tensors.
        t: (T,) strictly increasing or decreasing times; ``t[0]`` is the initial time.  With
            ``options={"per_sample": True}`` also (B, T): row b holds sample b's times.
        rtol, atol: adaptive methods' tolerances (torchdiffeq's defaults 1e-7, 1e-9); tensors
            broadcasting against y0 or, for tuple states, one entry per state.
        method: a name of ``solvers.METHODS`` or a ``Tableau``; default "dopri5".
        options: the method's options (see the module docstring); unknown ones are an error.
        event_fn: ``event_fn(t, y) -> Tensor``: stop where it changes sign (the first component to
            cross, as torchdiffeq); returns ``(event_t, solution)`` with ``solution`` the states at
            ``t[0]`` and at the event.  Needs ``len(t) == 2`` (``t[1]`` only gives the direction).
            ``event_t`` carries the implicit gradient dT/d(y0, params, t0); the state at the event
            is differentiated at the fixed event time (as torchdiffeq); :func:`odeint_event` gives the
            total derivative.
        step_size: fixed methods: split every gap of the grid t + jump_t into equal substeps no
            longer than this (outputs stay computed states; torchdiffeq's ``options["step_size"]``
            lays an arange grid and interpolates instead).
        jump_t: times where func may jump (e.g. the samples of a held input): fixed grids put
            points there and evaluate one ulp inside the steps; adaptive steps end on them and
            evaluate f afresh after them (torchdiffeq's ``options["jump_t"]``).
        gradient: "backprop" (default), "checkpoint" or "adjoint"; ``adjoint=True`` is shorthand.
        max_steps: stop with ``StepLimitError`` after this many attempted steps; fixed grids of more
            steps are refused before being built (``options["max_num_steps"]`` sets it too).
        adjoint_rtol, adjoint_atol, adjoint_method, adjoint_options, adjoint_params: the adjoint
            mode's backward solve (torchdiffeq's defaults: the forward's tolerances, method and
            options without its norm) and the tensors it differentiates (default: func's parameters).

    Raises:
        TypeError / ValueError: malformed arguments, naming the argument, what came and what was
            expected.  ``solvers.SolverError`` subclasses when a valid solve cannot finish.
    """
    mode = resolve_gradient(gradient, adjoint)
    name, tab = _resolve_method(method)
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"options must be a dict or None; got {type(options).__name__}")
    user_options = dict(options or {})
    per_sample = bool(user_options.get("per_sample", False))
    t = _check_t(t, per_sample)
    if name in DELEGATED:
        if isinstance(y0, tuple):
            _Flat(y0)
        else:
            _check_y0(y0)
        return _delegate(func, y0, t, name, rtol, atol, user_options, event_fn, step_size, jump_t, mode,
                         adjoint_rtol, adjoint_atol, adjoint_method, adjoint_options, adjoint_params)

    user_func = func
    flat = _Flat(y0) if isinstance(y0, tuple) else None
    if flat is not None:
        y0 = flat.flat(y0)
        rtol, atol = flat.tol("rtol", rtol), flat.tol("atol", atol)
    y0 = _check_y0(y0)
    rtol, atol = _check_tol("rtol", rtol), _check_tol("atol", atol)
    if bool((torch.as_tensor(rtol) == 0).all()) and bool((torch.as_tensor(atol) == 0).all()):
        raise ValueError("rtol and atol must not both be 0: no step could meet a zero tolerance; e.g. rtol=1e-7, "
                         "atol=1e-9 (torchdiffeq's defaults)")
    step_size = _check_step_size(step_size)
    max_steps = _check_max_steps(max_steps)
    if per_sample and not tab.adaptive:
        raise ValueError(f"options['per_sample'] is error control per sample; method {name!r} has fixed steps")
    allowed = ADAPTIVE_OPTIONS if tab.adaptive else FIXED_OPTIONS
    options = _check_options(user_options, "options", allowed, name)
    if "max_num_steps" in options:
        max_steps = _check_max_steps(options.pop("max_num_steps"), "options['max_num_steps']")
    options.pop("per_sample", None)

    descending = bool(t.reshape(-1, t.shape[-1])[0, 0] > t.reshape(-1, t.shape[-1])[0, -1]) if t.shape[-1] > 1 \
        else False
    sign = -1.0 if descending else 1.0
    real = y0.real.dtype if y0.is_complex() else y0.dtype
    if flat is not None:
        def func(tt: Tensor, y: Tensor) -> Tensor:  # the flattened field of a tuple state, as torchdiffeq's
            return torch.cat([v.reshape(-1) for v in user_func(tt, flat.split(y))])
    base = FuncTerm(func, time_dtype=real, device=y0.device, per_sample=per_sample)
    _install_first_call_check(base, y0, flat, user_func)
    term: Term = _ReversedTerm(base) if descending else base
    plan = Plan.of(tab)
    callbacks = _callbacks(user_func, flat, sign, torch.float64 if tab.adaptive else t.dtype)
    if per_sample:
        _check_per_sample(tab, name, y0, flat, mode, event_fn, callbacks)
        callbacks = None
        t_out: Any = (t.detach().to(torch.float64) * sign)
    else:
        t_out = [sign * float(x) for x in t.detach().tolist()]
    problem = Problem(term=term, y0=y0, t_out=t_out, plan=plan, max_steps=max_steps, callbacks=callbacks,
                      per_sample=per_sample)
    jumps = _jump_times("jump_t", jump_t, t, per_sample, y0)
    grid_from_options = None

    if tab.adaptive:
        if step_size is not None:
            raise ValueError(f"step_size applies to fixed-step methods; method {name!r} is adaptive, its steps "
                             f"are set by rtol/atol (got step_size = {step_size}); use options={{'first_step': ...}}")
        if "jump_t" in options and jumps is not None:
            raise ValueError("pass jump times once: either jump_t= or options['jump_t']")
        if jumps is None:
            jumps = _jump_times("options['jump_t']", options.pop("jump_t", None), t, per_sample, y0)
        options.pop("jump_t", None)
        steps_t = _jump_times("options['step_t']", options.pop("step_t", None), t, per_sample, y0)
        check_resolution(rtol, atol, y0)
        controller, first = _controller(options, tab, rtol, atol, y0, flat, per_sample, "options")
        problem.controller = controller
        problem.first_step = first
        problem.jump_t = _signed(jumps, sign, per_sample)
        problem.step_t = _signed(steps_t, sign, per_sample)
        if not per_sample and set(problem.jump_t) & set(problem.step_t):
            raise ValueError("options['step_t'] and jump_t must not share a time (torchdiffeq's rule)")
    else:
        if callbacks is not None and (callbacks.accept or callbacks.reject):
            unsupported = sorted(n for n in ("callback_accept_step", "callback_reject_step")
                                 if getattr(user_func, n, None) is not None)
            warnings.warn(f"Solver {name!r} does not support callbacks {unsupported}: fixed grids call only "
                          f"callback_step", stacklevel=2)
            callbacks.accept = callbacks.reject = None
        options.pop("norm", None)
        problem.perturb = bool(options.pop("perturb", jumps is not None))
        problem.interp = options.pop("interp", "linear")
        if problem.interp not in ("linear", "cubic"):
            raise ValueError(f"options['interp'] must be 'linear' or 'cubic'; got {problem.interp!r}")
        opt_step = _check_step_size(options.pop("step_size", None), "options['step_size']")
        constructor = options.pop("grid_constructor", None)
        if sum(x is not None for x in (step_size, opt_step, constructor)) > 1:
            raise ValueError("pass one of step_size=, options['step_size'] and options['grid_constructor'] "
                             "(torchdiffeq: step_size and grid_constructor are mutually exclusive)")
        if constructor is not None and not callable(constructor):
            raise TypeError(f"options['grid_constructor'] must be callable; got {type(constructor).__name__}")
        if (opt_step is not None or constructor is not None) and jumps is not None:
            raise ValueError("jump_t builds a knot-aligned grid itself; use step_size= (not "
                             "options['step_size'] or a grid_constructor) with it")
        if event_fn is None:
            if opt_step is not None:
                problem.grid = arange_grid(t.detach() * sign, opt_step, max_steps).tolist()
                grid_from_options = ("step_size", opt_step)
            elif constructor is not None:
                problem.grid = _constructed_grid(constructor, user_func, y0 if flat is None else flat.split(y0), t,
                                                 sign, t_out, max_steps)
                grid_from_options = ("grid_constructor", constructor)
            else:
                grid, _ = knot_grid(t.detach(), jumps, step_size, max_steps)
                if step_size is None:  # one step per gap: the outputs (and jumps) set the count
                    check_step_count(grid.shape[0] - 1, max_steps, f"method {name!r} without a step size steps once "
                                     f"per gap of t{' and jump_t' if jumps is not None else ''}: "
                                     f"{t.shape[-1]} output times", "pass fewer output times")
                problem.grid = [sign * x for x in grid.tolist()]
        else:
            event_step = opt_step if opt_step is not None else step_size
            if event_step is None:
                raise ValueError(f"event_fn with the fixed-step method {name!r} needs a step size: "
                                 f"options={{'step_size': h}} (as torchdiffeq) or step_size=h")
            problem.grid = [t_out[0]]
            problem.extra["event_step"] = event_step

    if mode == "adjoint":
        problem.params = _adjoint_params(user_func, adjoint_params)
        problem.adjoint = _adjoint_spec(problem, name, tab, user_options, method, adjoint_method, adjoint_rtol,
                                        adjoint_atol, adjoint_options, rtol, atol, flat, y0, user_func, sign, t,
                                        grid_from_options, jumps)

    if event_fn is not None:
        return _solve_event(problem, base, event_fn, t, mode, flat, sign, y0, atol)

    y_start = problem.y0
    t_grad = t.requires_grad and t.shape[-1] > 1
    if t_grad:
        problem = problem.with_(y0=_StartTime.apply(t[..., 0], y_start, _slope_at(base, t_out, sign, 0, per_sample),
                                                    per_sample and t.ndim == 2))
    stacked_adjoint = mode == "adjoint" and GRADIENT_MODES["adjoint"] is solve_adjoint and \
        getattr(term, "solve_adjoint", None) is None
    if stacked_adjoint:
        # the adjoint's autograd node is the output's grad_fn itself (torchdiffeq's layout)
        ys = adjoint_outputs(problem)
    else:
        outs = GRADIENT_MODES[mode](problem)
        outs[0] = y_start  # y(t[0]) is y0 whatever t[0] is: no time gradient through it
        ys = torch.stack(outs)
    if problem.grid is not None:
        _check_finite_outputs(ys, t, name)
    if t_grad:
        ys = _TimeGradient.apply(t, ys, _slopes(base, t_out, sign, per_sample), stacked_adjoint)
    ys = ys.to(y0.dtype)
    if flat is not None:
        return tuple(part.to(dt) for part, dt in zip(flat.split(ys, (ys.shape[0],)), flat.dtypes))
    return ys


def odeint_adjoint(func: Callable, y0: Tensor | tuple[Tensor, ...], t: Tensor, **kwargs: Any) -> Tensor | tuple:
    """``odeint(..., gradient="adjoint")``: torchdiffeq's ``odeint_adjoint`` under its own name."""
    if kwargs.get("gradient", "adjoint") != "adjoint":
        raise ValueError(f"odeint_adjoint computes gradients by the adjoint; got gradient={kwargs['gradient']!r}")
    if kwargs.pop("adjoint", True) is not True:
        raise ValueError("odeint_adjoint computes gradients by the adjoint; got adjoint=False")
    kwargs["gradient"] = "adjoint"
    return odeint(func, y0, t, **kwargs)


def odeint_event(func: Callable, y0: Tensor | tuple[Tensor, ...], t0: Tensor, *, event_fn: Callable,
                 reverse_time: bool = False, odeint_interface: Callable = odeint, **kwargs: Any) -> tuple:
    """torchdiffeq's ``odeint_event`` on this ``odeint``: solve until ``event_fn`` crosses zero and return
    ``(event_t, solution)`` whose gradients are total derivatives through the event time (the state at
    the event included).  ``kwargs`` go to ``odeint`` (method, tolerances, gradient, ...)."""
    return torchdiffeq.odeint_event(func, y0, t0, event_fn=event_fn, reverse_time=reverse_time,
                                    odeint_interface=odeint_interface, **kwargs)


# --------------------------------------------------------------------------- helpers of the entry point
def _jump_times(name: str, values: Any, t: Tensor, per_sample: bool, y0: Tensor) -> Tensor | None:
    if values is None:
        return None
    if per_sample and torch.as_tensor(values).ndim == 2:
        v = sample_times(name, values, y0.shape[0], y0.device)
        return v if v.shape[1] else None
    return _times(name, values, t)


def _signed(times: Tensor | None, sign: float, per_sample: bool) -> Any:
    if times is None:
        return []
    if per_sample:
        return times * sign
    return sorted({sign * float(x) for x in times.tolist()})


def _check_per_sample(tab: Tableau, name: str, y0: Tensor, flat: _Flat | None, mode: str, event_fn: Any,
                      callbacks: Any) -> None:
    if not tab.adaptive:
        raise ValueError(f"options['per_sample'] is error control per sample; method {name!r} has fixed steps")
    if flat is not None:
        raise ValueError("options['per_sample'] needs a tensor state with the batch on axis 0; got a tuple y0")
    if y0.dim() == 0:
        raise ValueError("options['per_sample'] needs a state with the batch on axis 0; got a 0-d y0")
    if mode != "backprop":
        raise ValueError(f"options['per_sample'] supports gradient='backprop' (autograd through the per-sample "
                         f"steps); got gradient={mode!r}")
    if event_fn is not None:
        raise ValueError("event_fn is not supported with options['per_sample']")
    if callbacks is not None:
        warnings.warn("options['per_sample']: func's step callbacks are not called (the samples take different "
                      "steps)", stacklevel=3)


def _tol_tensor(tol: Any, y0: Tensor) -> Any:
    if isinstance(tol, Tensor):
        real = y0.real.dtype if y0.is_complex() else y0.dtype
        return tol.to(device=y0.device, dtype=real)
    return float(tol)


def _mixed_norm(flat: _Flat) -> Callable[[Tensor], Tensor]:
    def norm(x: Tensor) -> Tensor:
        parts = flat.split(x)
        return torch.stack([rms_norm(p).to(torch.float64) for p in parts if p.numel()]).max()

    return norm


def _state_norm(user_norm: Any, flat: _Flat | None, per_sample: bool) -> Callable[[Tensor], Any]:
    """The forward error norm on the flat state: the user's (on the tuple for tuple states) or the default."""
    if user_norm is None:
        return sample_rms_norm if per_sample else (_mixed_norm(flat) if flat is not None else rms_norm)
    if not callable(user_norm):
        raise TypeError(f"options['norm'] must be callable; got {type(user_norm).__name__}")
    if flat is None:
        return user_norm

    def norm(x: Tensor) -> Any:
        return user_norm(flat.split(x))

    return norm


def _controller(options: dict, tab: Tableau, rtol: Any, atol: Any, y0: Tensor, flat: _Flat | None,
                per_sample: bool, where: str) -> tuple[Controller, float | None]:
    """The controller from torchdiffeq's adaptive options (popped from ``options``) and the first step."""
    norm = _state_norm(options.pop("norm", None), flat, per_sample)
    dtype = options.pop("dtype", None)
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"{where}['dtype'] must be a floating torch.dtype such as torch.float64 (the times' "
                        f"precision); got {dtype!r}")
    if dtype is not None and dtype != torch.float64:
        warnings.warn(f"{where}['dtype'] = {dtype}: times are float64 here whatever this option says", stacklevel=4)
    first = options.pop("first_step", None)
    first = None if first is None else _check_number(f"{where}['first_step']", first)
    if first is not None and not math.isfinite(first):
        raise ValueError(f"{where}['first_step'] must be a positive finite step size; got {first}")
    values = {k: options.pop(k) for k in ("safety", "ifactor", "dfactor", "pcoeff", "icoeff", "min_step", "max_step",
                                          "max_time") if k in options}
    check_controller_options(where, **values)
    values = {k: float(v) if isinstance(v, Tensor) else v for k, v in values.items()}
    min_step, max_step = values.get("min_step", 0.0), values.get("max_step", math.inf)
    if min_step > max_step:
        raise ValueError(f"{where}['min_step'] = {min_step} must not exceed {where}['max_step'] = {max_step}")
    controller = Controller(rtol=_tol_tensor(rtol, y0), atol=_tol_tensor(atol, y0), order=tab.order, norm=norm,
                            **values)
    return controller, first


def _constructed_grid(constructor: Callable, func: Callable, y0: Any, t: Tensor, sign: float, t_out: list[float],
                      max_steps: int) -> list[float]:
    """A user's grid_constructor(func, y0, t), called in t's own direction (as torchdiffeq calls it)."""
    grid = constructor(func, y0, t)
    if not isinstance(grid, Tensor) or grid.ndim != 1:
        raise TypeError(f"options['grid_constructor'] must return a 1-D tensor of times; got "
                        f"{type(grid).__name__}" + (f" of shape {tuple(grid.shape)}" if isinstance(grid, Tensor) else ""))
    points = [sign * float(x) for x in grid.detach().tolist()]
    if len(points) < 1 or points[0] != t_out[0] or points[-1] != t_out[-1]:
        raise ValueError(f"options['grid_constructor'] must return a grid from t[0] = {sign * t_out[0]} to t[-1] = "
                         f"{sign * t_out[-1]}; got [{sign * points[0]}, {sign * points[-1]}]")
    if any(b <= a for a, b in zip(points, points[1:])):
        raise ValueError("options['grid_constructor'] must return strictly monotone times in t's direction")
    check_step_count(len(points) - 1, max_steps, "the grid from options['grid_constructor']")
    return points


def _slope_at(base: FuncTerm, t_out: Any, sign: float, k: int, per_sample: bool) -> Callable[[Tensor], Tensor]:
    def slope(y: Tensor) -> Tensor:
        if per_sample:
            tk = t_out[..., k] * sign
            if tk.ndim == 0:
                tk = tk.expand(y.shape[0])
            return base.f(tk, y)
        return base.f(sign * t_out[k], y)

    return slope


def _slopes(base: FuncTerm, t_out: Any, sign: float, per_sample: bool) -> Callable[[Tensor], Tensor]:
    def slopes(ys: Tensor) -> Tensor:
        return torch.stack([_slope_at(base, t_out, sign, k, per_sample)(ys[k]) for k in range(ys.shape[0])])

    return slopes


def _check_finite_outputs(ys: Tensor, t: Tensor, name: str) -> None:
    finite = torch.isfinite(ys.detach()).reshape(ys.shape[0], -1).all(1)
    if not bool(finite.all()):
        k = int(torch.nonzero(~finite)[0])
        raise NonFiniteStateError(
            f"the solution of the fixed-step method {name!r} is not finite at t[{k}] = {float(t.reshape(-1)[k])} "
            f"(NaN or inf): a step beyond the method's stability limit (see solvers.max_stable_step), an overflow "
            f"of the vector field or a NaN it returned; take smaller steps or check func")


def _adjoint_params(func: Any, adjoint_params: Sequence[Tensor] | None) -> tuple[Tensor, ...]:
    if adjoint_params is None:
        if not isinstance(func, nn.Module):
            raise ValueError(
                f"gradient='adjoint' needs func to be an nn.Module (its parameters get gradients) or "
                f"adjoint_params to list the tensors needing gradients (adjoint_params=() for none); got func of "
                f"type {type(func).__name__} and adjoint_params=None")
        return tuple(p for p in func.parameters() if p.requires_grad)
    params = tuple(adjoint_params)
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"adjoint_params must hold tensors; got {type(p).__name__} at position {i}")
    return tuple(p for p in params if p.requires_grad)


def _adjoint_spec(problem: Problem, name: str, tab: Tableau, user_options: dict, method: Any, adjoint_method: Any,
                  adjoint_rtol: Any, adjoint_atol: Any, adjoint_options: dict | None, rtol: Any, atol: Any,
                  flat: _Flat | None, y0: Tensor, user: Any, sign: float, t: Tensor,
                  grid_from_options: tuple | None, jumps: Tensor | None) -> AdjointSpec:
    """The backward solve, with torchdiffeq's defaults: the forward's method, tolerances and options (its
    norm excepted)."""
    if adjoint_method is not None and adjoint_method != method and user_options and adjoint_options is None:
        raise ValueError("adjoint_method differs from method and options were given: the backward solve cannot "
                         "infer its options from them, so pass adjoint_options too (torchdiffeq's rule)")
    a_name, a_tab = _resolve_method(adjoint_method if adjoint_method is not None else method, "adjoint_method")
    if a_tab is None:
        raise ValueError(f"adjoint_method {a_name!r} is run by torchdiffeq; the adjoint here solves backward on this "
                         f"package's engine: use a Runge-Kutta method ({', '.join(sorted(TABLEAUX))})")
    if adjoint_options is not None and not isinstance(adjoint_options, dict):
        raise TypeError(f"adjoint_options must be a dict or None; got {type(adjoint_options).__name__}")
    raw = dict(adjoint_options) if adjoint_options is not None else \
        {k: v for k, v in user_options.items() if k not in ("norm", "per_sample")}
    allowed = ADAPTIVE_OPTIONS if a_tab.adaptive else FIXED_OPTIONS
    opts = _check_options(raw, "adjoint_options", allowed, a_name)
    norm = opts.pop("norm", None)
    seminorm = norm == "seminorm"
    custom = None
    if norm is not None and not seminorm:
        if not callable(norm):
            raise TypeError(f"adjoint_options['norm'] must be 'seminorm' or callable; got {norm!r}")
        custom = norm if flat is None else _tuple_adjoint_norm(norm, flat)
    a_rtol = rtol if adjoint_rtol is None else _check_tol("adjoint_rtol", flat.tol("adjoint_rtol", adjoint_rtol)
                                                          if flat is not None else adjoint_rtol)
    a_atol = atol if adjoint_atol is None else _check_tol("adjoint_atol", flat.tol("adjoint_atol", adjoint_atol)
                                                          if flat is not None else adjoint_atol)
    max_steps = _check_max_steps(opts.pop("max_num_steps"), "adjoint_options['max_num_steps']") \
        if "max_num_steps" in opts else problem.max_steps
    cbs = _adjoint_callbacks(user, sign, torch.float64 if a_tab.adaptive else t.dtype)
    spec = dict(plan=Plan.of(a_tab), seminorm=seminorm, norm=custom, callbacks=cbs, max_steps=max_steps)
    if a_tab.adaptive:
        opts.pop("dtype", None)
        a_jumps = _times("adjoint_options['jump_t']", opts.pop("jump_t", None), t)
        if jumps is not None:
            a_jumps = jumps if a_jumps is None else torch.cat([a_jumps, jumps])
        a_steps = _times("adjoint_options['step_t']", opts.pop("step_t", None), t)
        state_norm = problem.controller.norm if problem.controller is not None else _state_norm(None, flat, False)
        opts["norm"] = None
        controller, first = _controller(opts, a_tab, a_rtol, a_atol, y0, flat, False, "adjoint_options")
        controller.norm = state_norm
        spec.update(controller=controller, first_step=first,
                    jump_t=_signed(a_jumps, sign, False) if a_jumps is not None else [],
                    step_t=_signed(a_steps, sign, False))
    else:
        opts.pop("interp", None)
        perturb = bool(opts.pop("perturb", problem.perturb if problem.grid is not None else False))
        a_step = _check_step_size(opts.pop("step_size", None), "adjoint_options['step_size']")
        a_constructor = opts.pop("grid_constructor", None)
        if a_step is not None and a_constructor is not None:
            raise ValueError("adjoint_options: step_size and grid_constructor are mutually exclusive")
        spec.update(controller=None, perturb=perturb,
                    backward_grid=_backward_grid(a_step, a_constructor, user, y0, flat, sign, t.dtype, t.device,
                                                 max_steps))
    return AdjointSpec(**spec)


def _adjoint_callbacks(func: Any, sign: float, time_dtype: torch.dtype) -> Callbacks | None:
    """func's ``*_adjoint`` callbacks, called as ``cb(t, (t_grad, y, adj_y, *adj_params), dt)`` (torchdiffeq's
    augmented state) from the backward solve's ``(t, parts, dt)``."""
    found = {}
    for name in _CALLBACKS:
        cb = getattr(func, name + "_adjoint", None)
        if cb is not None and callable(cb):
            found[name] = lambda t0, parts, dt, _cb=cb: _cb(torch.tensor(sign * t0, dtype=time_dtype), parts,
                                                           torch.tensor(dt, dtype=time_dtype))
    if not found:
        return None
    return Callbacks(step=found.get("callback_step"), accept=found.get("callback_accept_step"),
                     reject=found.get("callback_reject_step"))


def _backward_grid(step: float | None, constructor: Callable | None, user: Any, y0: Tensor, flat: _Flat | None,
                   sign: float, t_dtype: torch.dtype, device: torch.device, max_steps: int):
    """torchdiffeq's backward grids: per output interval, from t_hi down to t_lo, by its step_size
    (arange) or its grid_constructor; returned in negated problem time s = -t, increasing."""
    if step is None and constructor is None:
        return None

    def grid(t_hi: float, t_lo: float) -> list[float]:
        if step is not None:
            return arange_grid(torch.tensor([-t_hi, -t_lo], dtype=t_dtype, device=device), step, max_steps).tolist()
        tt = torch.tensor([sign * t_hi, sign * t_lo], dtype=t_dtype, device=device)
        points = constructor(user, y0 if flat is None else flat.split(y0), tt)
        points = [-sign * float(x) for x in torch.as_tensor(points).detach().reshape(-1).tolist()]
        if points[0] != -t_hi or points[-1] != -t_lo:
            raise ValueError(f"adjoint grid_constructor must return a grid from {sign * t_hi} to {sign * t_lo}")
        return points

    return grid


def _tuple_adjoint_norm(norm: Callable, flat: _Flat) -> Callable:
    """A user's adjoint norm for a tuple state gets (t, *y, *adj_y, *adj_params) (torchdiffeq's layout)."""
    def wrapped(parts: tuple) -> Any:
        t, y, a, *ps = parts
        return norm((t, *flat.split(y), *flat.split(a), *ps))

    return wrapped


def _solve_event(problem: Problem, base: FuncTerm, event_fn: Callable, t: Tensor, mode: str, flat: _Flat | None,
                 sign: float, y0: Tensor, atol: Any):
    if t.numel() != 2:
        raise ValueError(f"event_fn needs t = [t0, t1] (len(t) == 2, as torchdiffeq; t1 only sets the direction); "
                         f"got len(t) = {t.numel()}")
    t0 = problem.t_out[0]
    y_first = problem.y0
    y_start = problem.y0.detach()
    if t.requires_grad:
        problem = problem.with_(y0=_StartTime.apply(t[0], y_first, _slope_at(base, [t0], sign, 0, False), False))
    call = _event_caller(event_fn, flat, sign, torch.float64, y0.device)
    with torch.no_grad():
        initial = torch.sign(call(t0, y_start))

    def combined(s: Any, y: Tensor) -> Tensor:
        return torch.min(call(s, y) * initial)

    tol = float(torch.as_tensor(atol).max())
    with torch.no_grad():
        if problem.grid is None:
            t_event, _ = solve_until_event(problem.term, problem.plan, y_start, t0, problem.controller, combined, tol,
                                           first_step=problem.first_step, jump_t=problem.jump_t,
                                           step_t=problem.step_t, max_steps=problem.max_steps)
            grid = None
        else:
            t_event, grid = _fixed_until_event(problem, combined, tol, y_start)
    if t_event == t0:
        ys = torch.stack([y_first, y_first])
    else:
        solved = problem.with_(t_out=[t0, t_event])
        if grid is not None:
            solved.grid = grid
        if mode == "adjoint" and GRADIENT_MODES["adjoint"] is solve_adjoint:
            ys = adjoint_outputs(solved)
        else:
            outs = GRADIENT_MODES[mode](solved)
            outs[0] = y_first
            ys = torch.stack(outs)
    event_t = torch.tensor(sign * t_event, dtype=torch.float64, device=t.device)
    state = ys[-1]
    if state.requires_grad:
        def event_user(tt: Tensor, y: Tensor) -> Tensor:
            return combined(sign * tt, y)

        def field(tt: Tensor, y: Tensor) -> Tensor:
            return base.f(tt, y)

        event_t = _EventTime.apply(state, event_t, event_user, field)
    event_t = event_t.to(t.dtype)
    ys = ys.to(problem.y0.dtype)
    if flat is not None:
        return event_t, tuple(p.to(d) for p, d in zip(flat.split(ys, (2,)), flat.dtypes))
    return event_t, ys


def _fixed_until_event(problem: Problem, event: Callable, tol: float, y0: Tensor) -> tuple[float, list[float]]:
    """torchdiffeq's fixed-grid event search: steps of options['step_size'] from t0 until ``event``
    changes sign, then bisection to ``tol`` on the step's interpolant ("linear" or "cubic")."""
    h = problem.extra["event_step"]
    term, plan = problem.term, problem.plan
    t0 = problem.t_out[0]
    y = y0
    sign0 = torch.sign(event(t0, y))
    grid = [t0]
    for _ in range(problem.max_steps):
        t1 = t0 + h
        step = rk_step(term, plan, t0, t1, y, perturb_start=problem.perturb, perturb_end=problem.perturb)
        y1 = step.y1
        grid.append(t1)
        if bool(torch.sign(event(t1, y1)) != sign0):
            if problem.interp == "cubic":
                f1 = term.f(t1, y1)

                def interp(s, a=t0, b=t1, ya=y, yb=y1, fa=step.ks[0], fb=f1):
                    return hermite(ya, fa, yb, fb, b - a, (s - a) / (b - a))
            else:
                def interp(s, a=t0, b=t1, ya=y, yb=y1):
                    return ya + ((s - a) / (b - a)) * (yb - ya)
            lo, hi = t0, t1
            n = max(0, math.ceil(math.log((hi - lo) / tol) / math.log(2.0))) if tol > 0 else 64
            for _ in range(n):
                mid = (lo + hi) / 2.0
                if bool(torch.sign(event(mid, interp(mid))) == sign0):
                    lo = mid
                else:
                    hi = mid
            return (lo + hi) / 2.0, grid
        t0, y = t1, y1
    check_step_count(problem.max_steps + 1, problem.max_steps,
                     f"this fixed-step event search (step {h} from t = {problem.t_out[0]}, no event by t = {t0})")
    raise AssertionError("unreachable")  # pragma: no cover


def _delegate(func, y0, t, name, rtol, atol, options, event_fn, step_size, jump_t, mode, adjoint_rtol, adjoint_atol,
              adjoint_method, adjoint_options, adjoint_params):
    if step_size is not None or jump_t is not None:
        raise ValueError(f"method {name!r} is run by torchdiffeq, which takes its grid from options; "
                         f"step_size= and jump_t= apply to the Runge-Kutta methods")
    if mode == "checkpoint":
        raise ValueError(f"gradient='checkpoint' replays this package's Runge-Kutta steps; method {name!r} is run "
                         f"by torchdiffeq: use gradient='backprop' or 'adjoint'")
    if options.get("per_sample"):
        raise ValueError(f"options['per_sample'] is error control per sample on this package's engine; method "
                         f"{name!r} is run by torchdiffeq")
    kw = dict(rtol=rtol, atol=atol, method=name, options=options or None, event_fn=event_fn)
    if mode == "adjoint":
        return torchdiffeq.odeint_adjoint(func, y0, t, adjoint_rtol=adjoint_rtol, adjoint_atol=adjoint_atol,
                                          adjoint_method=adjoint_method, adjoint_options=adjoint_options,
                                          adjoint_params=adjoint_params, **kw)
    return torchdiffeq.odeint(func, y0, t, **kw)
