"""``odeint``: a drop-in superset of ``torchdiffeq.odeint`` and ``odeint_adjoint`` on this package's engine.

Same arguments and meaning as torchdiffeq 0.2.5: ``odeint(func, y0, t, rtol=, atol=, method=,
options=, event_fn=)``, tuple states, decreasing times, torchdiffeq's method names (``"rk4"`` is
the 3/8 rule in both), its options (fixed: ``step_size``, ``grid_constructor``, ``perturb``,
``interp``; adaptive: ``first_step``, ``safety``, ``ifactor``, ``dfactor``, ``min_step``,
``max_step``, ``max_num_steps``, ``step_t``, ``jump_t``, ``norm``), the step callbacks read from
``func`` (``callback_step``, ``callback_accept_step``, ``callback_reject_step`` and their
``_adjoint`` twins), and ``odeint_adjoint``'s ``adjoint_rtol``/``adjoint_atol``/``adjoint_method``/
``adjoint_options`` (``{"norm": "seminorm"}``)/``adjoint_params``.  The output has ``y0``'s dtype.

What this adds: ``gradient="backprop" | "checkpoint" | "adjoint"`` (``adjoint=True`` is short for
the last), ``step_size=`` (knot-aligned substeps, see :mod:`solvers.grids`), ``jump_t=`` for fixed
methods too, ``max_steps``, PI step-size control (``options={"pcoeff": ..., "icoeff": ...}``),
per-sample error control (``options={"per_sample": True}``), ``tsit5``, ``rk4_classic``,
``ralston``, and every error as a clear ``ValueError``/``TypeError`` naming the argument.

What differs from torchdiffeq, on purpose (each also in the README):

* unknown options are an error, not a warning;
* gradients of adaptive solves treat the accepted step sizes as constants (torchdiffeq's
  backprop also differentiates the controller), and gradients with respect to ``t`` are the
  closed form dL/dt_k = <dL/dy_k, f(t_k, y_k)> (and -<dL/dy0, f(t_0, y_0)> at the start) in every
  mode: the derivative of the exact flow, not of the discrete grid;
* embedded pairs without first-same-as-last (``adaptive_heun``, ``fehlberg2``) evaluate f at the
  new state for the next step; torchdiffeq reuses their last stage, which lies elsewhere;
* an event is located as torchdiffeq does, then the state at the event is recomputed by a solve
  that ends there, under the requested gradient mode.

The multistep and wrapped methods (``explicit_adams``, ``implicit_adams``, ``fixed_adams``,
``scipy_solver``) are run by torchdiffeq itself.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torchdiffeq
from torch import Tensor, nn

from .controller import Controller, rms_norm, sample_rms_norm
from .engine import DEFAULT_MAX_STEPS, Callbacks, solve_until_event
from .gradients import GRADIENT_MODES, resolve_gradient
from .grids import arange_grid, knot_grid
from .methods import DELEGATED, METHODS
from .problem import AdjointSpec, Problem
from .stepper import Plan
from .tableaux import TABLEAUX, Tableau
from .terms import FuncTerm, Term

__all__ = ["ADAPTIVE_OPTIONS", "FIXED_OPTIONS", "odeint", "odeint_adjoint"]

FIXED_OPTIONS = ("step_size", "grid_constructor", "perturb", "interp")
"""torchdiffeq's options of fixed-grid methods."""

ADAPTIVE_OPTIONS = ("first_step", "safety", "ifactor", "dfactor", "min_step", "max_step", "max_num_steps", "step_t",
                    "jump_t", "norm", "dtype", "pcoeff", "icoeff", "per_sample")
"""torchdiffeq's options of adaptive methods, plus ``pcoeff``/``icoeff`` (PI control) and ``per_sample``."""

_CALLBACKS = ("callback_step", "callback_accept_step", "callback_reject_step")


# --------------------------------------------------------------------------- validation
def _check_t(t: Any) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"t must be a 1-D torch.Tensor of times; got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"t must have a real floating dtype; got t.dtype = {t.dtype}")
    if t.ndim != 1 or t.numel() == 0:
        raise ValueError(f"t must be 1-D and non-empty, time along its only axis; got shape {tuple(t.shape)}")
    bad = torch.nonzero(~torch.isfinite(t.detach())).reshape(-1)
    if bad.numel():
        k = int(bad[0])
        raise ValueError(f"t must hold finite times; got t[{k}] = {float(t[k])}")
    if t.numel() > 1:
        d = (t[1:] - t[:-1]).detach()
        sign = 1.0 if bool(d[0] > 0) else -1.0
        bad = torch.nonzero(~(d * sign > 0)).reshape(-1)
        if bad.numel():
            k = int(bad[0]) + 1
            raise ValueError(
                f"t must be strictly increasing or strictly decreasing; got t[{k}] = {float(t[k])} "
                f"after t[{k - 1}] = {float(t[k - 1])}"
                + (f" (with t[1] - t[0] = {float(d[0])})" if k > 1 else ""))
    return t


def _check_y0(y0: Any) -> Tensor:
    if not isinstance(y0, Tensor):
        raise TypeError(f"y0 must be a torch.Tensor or a tuple of them; got {type(y0).__name__}")
    if not (y0.is_floating_point() or y0.is_complex()):
        raise TypeError(f"y0 must have a floating or complex dtype; got y0.dtype = {y0.dtype}")
    bad = torch.nonzero(~torch.isfinite(y0.detach()).reshape(-1)).reshape(-1)
    if bad.numel():
        k = int(bad[0])
        raise ValueError(f"y0 must be finite; got {float(y0.detach().reshape(-1)[k])} at flat index {k} "
                         f"(of shape {tuple(y0.shape)})")
    return y0


def _check_tol(name: str, tol: Any) -> Any:
    if isinstance(tol, Tensor) and tol.requires_grad:
        raise ValueError(f"{name} cannot require gradients")
    value = torch.as_tensor(tol).detach()
    if value.is_complex() or bool(torch.isnan(value).any()) or bool((value < 0).any()):
        raise ValueError(f"{name} must be non-negative; got {name} = {tol}")
    return tol


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


def _check_max_steps(max_steps: Any) -> int:
    if isinstance(max_steps, Tensor):
        max_steps = int(max_steps)
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive int; got {max_steps!r}")
    return max_steps


def _times(name: str, values: Any, t: Tensor) -> Tensor | None:
    if values is None:
        return None
    v = torch.as_tensor(values).detach()
    if v.ndim > 1:
        raise ValueError(f"{name} must be a 1-D sequence of times; got shape {tuple(v.shape)}")
    if v.is_complex() or not torch.isfinite(v.to(torch.float64)).all():
        raise ValueError(f"{name} must hold finite real times")
    v = v.reshape(-1).to(dtype=t.dtype, device=t.device)
    return v if v.numel() else None


def _resolve_method(method: Any) -> tuple[str, Tableau | None]:
    if method is None:
        method = "dopri5"
    if isinstance(method, Tableau):
        return method.name, method
    if not isinstance(method, str):
        raise TypeError(f"method must be a str or a Tableau; got {type(method).__name__}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(sorted(METHODS))}")
    return method, TABLEAUX.get(method)


# --------------------------------------------------------------------------- tuples and time reversal
class _Flat:
    """A tuple state flattened into one tensor, as torchdiffeq does, and back."""

    def __init__(self, y0: tuple) -> None:
        if not y0:
            raise ValueError("y0 must not be an empty tuple")
        for i, y in enumerate(y0):
            if not isinstance(y, Tensor):
                raise TypeError(f"y0[{i}] must be a torch.Tensor; got {type(y).__name__}")
        self.shapes = [y.shape for y in y0]
        self.dtypes = [y.dtype for y in y0]
        self.sizes = [y.numel() for y in y0]

    def flat(self, ys: Sequence[Tensor]) -> Tensor:
        return torch.cat([y.reshape(-1) for y in ys])

    def split(self, y: Tensor, lead: tuple[int, ...] = ()) -> tuple[Tensor, ...]:
        parts = y.split(self.sizes, dim=-1)
        return tuple(p.reshape(*lead, *s) for p, s in zip(parts, self.shapes))

    def tol(self, tol: Any) -> Any:
        if isinstance(tol, (list, tuple)):
            if len(tol) != len(self.shapes):
                raise ValueError(f"a tuple tolerance needs one entry per state ({len(self.shapes)}); got {len(tol)}")
            return torch.cat([torch.as_tensor(x).expand(n) for x, n in zip(tol, self.sizes)])
        return tol


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


def _callbacks(func: Any, flat: _Flat | None, sign: float, suffix: str = "") -> Callbacks | None:
    found = {}
    for name in _CALLBACKS:
        cb = getattr(func, name + suffix, None)
        if cb is None:
            continue

        def wrapped(t0, y0, dt, _cb=cb):
            y = flat.split(y0) if flat is not None else y0
            return _cb(torch.tensor(sign * t0, dtype=torch.float64), y, torch.tensor(dt, dtype=torch.float64))

        found[name] = wrapped
    if not found:
        return None
    return Callbacks(step=found.get("callback_step"), accept=found.get("callback_accept_step"),
                     reject=found.get("callback_reject_step"))


# --------------------------------------------------------------------------- time gradients
class _TimeGradient(torch.autograd.Function):
    """Identity on the outputs; gives t the closed-form gradient <dL/dy_k, f(t_k, y_k)> for k >= 1."""

    @staticmethod
    def forward(ctx, t: Tensor, ys: Tensor, fs: Tensor) -> Tensor:
        ctx.save_for_backward(fs)
        return ys.view_as(ys)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (fs,) = ctx.saved_tensors
        gt = (grad * fs.conj()).real.reshape(grad.shape[0], -1).sum(1) if grad.is_complex() else \
            (grad * fs).reshape(grad.shape[0], -1).sum(1)
        gt[0] = 0.0
        return gt, grad, None


class _StartTime(torch.autograd.Function):
    """Identity on y0; gives t0 the gradient -<dL/dy0, f(t0, y0)> (the flow started later)."""

    @staticmethod
    def forward(ctx, t0: Tensor, y0: Tensor, f0: Tensor) -> Tensor:
        ctx.save_for_backward(f0)
        return y0.view_as(y0)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (f0,) = ctx.saved_tensors
        g = (grad * f0.conj()).real.sum() if grad.is_complex() else (grad * f0).sum()
        return -g, grad, None


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
        t: (T,) strictly increasing or decreasing times; ``t[0]`` is the initial time.
        rtol, atol: adaptive methods' tolerances (torchdiffeq's defaults 1e-7, 1e-9); tensors or,
            for tuple states, one per state.
        method: a name of ``solvers.METHODS`` or a ``Tableau``; default "dopri5".
        options: torchdiffeq's options of the method (see the module docstring).
        event_fn: ``event_fn(t, y) -> Tensor``: stop where it changes sign; returns
            ``(event_t, solution)`` with ``solution`` the states at ``t[0]`` and at the event.
        step_size: fixed methods: split every gap of the grid t + jump_t into equal substeps no
            longer than this (outputs stay computed states; torchdiffeq's ``options["step_size"]``
            lays an arange grid and interpolates instead).
        jump_t: times where func may jump (e.g. the samples of a held input): fixed grids put
            points there and evaluate one ulp inside the steps; adaptive steps end on them
            (torchdiffeq's ``options["jump_t"]``).
        gradient: "backprop" (default), "checkpoint" or "adjoint"; ``adjoint=True`` is shorthand.
        max_steps: stop with ``StepLimitError`` after this many steps (torchdiffeq's
            ``options["max_num_steps"]`` too).
        adjoint_rtol, adjoint_atol, adjoint_method, adjoint_options, adjoint_params: the adjoint
            mode's backward solve and the tensors it differentiates (default: func's parameters).

    Raises:
        TypeError / ValueError: malformed arguments, naming the argument, what came and what was
            expected.  ``solvers.SolverError`` subclasses when a valid solve cannot finish.
    """
    mode = resolve_gradient(gradient, adjoint)
    name, tab = _resolve_method(method)
    options = dict(options or {})
    t = _check_t(t)
    if name in DELEGATED:
        return _delegate(func, y0, t, name, rtol, atol, options, event_fn, step_size, jump_t, mode, adjoint_rtol,
                         adjoint_atol, adjoint_method, adjoint_options, adjoint_params)

    flat = _Flat(y0) if isinstance(y0, tuple) else None
    if flat is not None:
        y0 = flat.flat(y0)
        rtol, atol = flat.tol(rtol), flat.tol(atol)
        user_func = func

        def func(tt, y, _f=user_func):  # noqa: F811 - the flattened function
            return torch.cat([v.reshape(-1) for v in _f(tt, flat.split(y))])
    y0 = _check_y0(y0)
    rtol, atol = _check_tol("rtol", rtol), _check_tol("atol", atol)
    step_size = _check_step_size(step_size)
    max_steps = _check_max_steps(options.pop("max_num_steps", max_steps))
    jumps = _times("jump_t", jump_t, t)
    allowed = ADAPTIVE_OPTIONS if tab.adaptive else FIXED_OPTIONS
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"options {unknown} are not options of method {name!r}; its options are "
                         f"{', '.join(allowed)}")

    descending = t.numel() > 1 and bool(t[0] > t[-1])
    sign = -1.0 if descending else 1.0
    real = y0.real.dtype if y0.is_complex() else y0.dtype
    per_sample = bool(options.pop("per_sample", False))
    base = FuncTerm(func, time_dtype=real, device=y0.device, per_sample=per_sample)
    term: Term = _ReversedTerm(base) if descending else base
    t_out = [sign * float(x) for x in t.detach().tolist()]
    plan = Plan.of(tab)
    callbacks = _callbacks(func if flat is None else user_func, flat, sign)
    problem = Problem(term=term, y0=y0, t_out=t_out, plan=plan, max_steps=max_steps, callbacks=callbacks)

    if tab.adaptive:
        if step_size is not None:
            raise ValueError(f"step_size applies to fixed-step methods; method {name!r} is adaptive, its steps "
                             f"are set by rtol/atol (got step_size = {step_size}); use options={{'first_step': ...}}")
        if "jump_t" in options and jumps is not None:
            raise ValueError("pass jump times once: either jump_t= or options['jump_t']")
        opt_jumps = _times("options['jump_t']", options.pop("jump_t", None), t)
        jumps = jumps if jumps is not None else opt_jumps
        steps_t = _times("options['step_t']", options.pop("step_t", None), t)
        norm = options.pop("norm", None)
        if norm is None:
            norm = sample_rms_norm if per_sample else (_mixed_norm(flat) if flat is not None else rms_norm)
        elif flat is not None:
            user_norm = norm

            def norm(x, _n=user_norm):
                return _n(flat.split(x))
        options.pop("dtype", None)
        first = options.pop("first_step", None)
        controller = Controller(
            rtol=_tol_tensor(rtol, y0), atol=_tol_tensor(atol, y0), order=tab.order, norm=norm,
            safety=float(options.pop("safety", 0.9)), ifactor=float(options.pop("ifactor", 10.0)),
            dfactor=float(options.pop("dfactor", 0.2)), pcoeff=float(options.pop("pcoeff", 0.0)),
            icoeff=float(options.pop("icoeff", 1.0)), min_step=float(options.pop("min_step", 0.0)),
            max_step=float(options.pop("max_step", math.inf)))
        problem.controller = controller
        problem.first_step = None if first is None else abs(float(first))
        problem.jump_t = [] if jumps is None else sorted({sign * float(x) for x in jumps.tolist()})
        problem.step_t = [] if steps_t is None else sorted({sign * float(x) for x in steps_t.tolist()})
        if set(problem.jump_t) & set(problem.step_t):
            raise ValueError("step_t and jump_t must not share a time")
    else:
        if callbacks is not None and (callbacks.accept or callbacks.reject):
            warnings.warn(f"Solver {name!r} does not support callbacks "
                          f"{sorted(n for n in ('callback_accept_step', 'callback_reject_step'))}; fixed grids "
                          f"call only callback_step", stacklevel=2)
        problem.perturb = bool(options.pop("perturb", jumps is not None))
        problem.interp = options.pop("interp", "linear")
        if problem.interp not in ("linear", "cubic"):
            raise ValueError(f"options['interp'] must be 'linear' or 'cubic'; got {problem.interp!r}")
        opt_step = _check_step_size(options.pop("step_size", None), "options['step_size']")
        constructor = options.pop("grid_constructor", None)
        if sum(x is not None for x in (step_size, opt_step, constructor)) > 1:
            raise ValueError("pass one of step_size=, options['step_size'] and options['grid_constructor']")
        if opt_step is not None or constructor is not None:
            if jumps is not None:
                raise ValueError("jump_t builds a knot-aligned grid itself; use step_size= (not "
                                 "options['step_size'] or a grid_constructor) with it")
            ta = t.detach() * sign
            if constructor is not None:
                grid = constructor(func, y0, t)  # in t's own direction, as torchdiffeq calls it
                grid = torch.as_tensor(grid).detach().reshape(-1).to(torch.float64) * sign
                if float(grid[0]) != t_out[0] or float(grid[-1]) != t_out[-1]:
                    raise ValueError(f"grid_constructor must return a grid from t[0] to t[-1]; got "
                                     f"[{sign * float(grid[0])}, {sign * float(grid[-1])}]")
            else:
                grid = arange_grid(ta, opt_step, max_steps)
            problem.grid = grid.tolist()
        else:
            grid, _ = knot_grid(t.detach(), jumps, step_size, max_steps)
            problem.grid = [sign * x for x in grid.tolist()]

    if mode == "adjoint":
        problem.params = _adjoint_params(func if flat is None else user_func, adjoint_params)
        problem.adjoint = _adjoint_spec(problem, name, tab, options_given=bool(options), method=adjoint_method,
                                        rtol=adjoint_rtol, atol=adjoint_atol, options=adjoint_options,
                                        flat=flat, real=real, y0=y0, user=func if flat is None else user_func,
                                        sign=sign, rtol_fwd=rtol, atol_fwd=atol)

    if event_fn is not None:
        return _solve_event(problem, event_fn, t, mode, flat, sign)

    y_start = problem.y0
    if t.requires_grad and t.numel() > 1:
        f0 = term.f(t_out[0], y_start.detach()).detach() * sign
        problem = problem.with_(y0=_StartTime.apply(t[0], y_start, f0))
    outs = GRADIENT_MODES[mode](problem)
    outs[0] = y_start  # y(t[0]) is y0 whatever t[0] is: no time gradient through it
    ys = torch.stack(outs)
    if t.requires_grad and t.numel() > 1:
        with torch.no_grad():
            fs = torch.stack([base.f(sign * tk, yk) for tk, yk in zip(t_out, ys.detach())])
        ys = _TimeGradient.apply(t, ys, fs)
    ys = ys.to(y0.dtype)
    if flat is not None:
        return tuple(part.to(dt) for part, dt in zip(flat.split(ys, (ys.shape[0],)), flat.dtypes))
    return ys


def odeint_adjoint(func: Callable, y0: Tensor | tuple[Tensor, ...], t: Tensor, **kwargs: Any) -> Tensor | tuple:
    """``odeint(..., gradient="adjoint")``: torchdiffeq's ``odeint_adjoint`` under its own name."""
    if kwargs.get("gradient", "adjoint") != "adjoint":
        raise ValueError(f"odeint_adjoint computes gradients by the adjoint; got gradient={kwargs['gradient']!r}")
    kwargs["gradient"] = "adjoint"
    return odeint(func, y0, t, **kwargs)


# --------------------------------------------------------------------------- helpers of the entry point
def _tol_tensor(tol: Any, y0: Tensor) -> Any:
    if isinstance(tol, Tensor):
        real = y0.real.dtype if y0.is_complex() else y0.dtype
        return tol.to(device=y0.device, dtype=real)
    return float(tol)


def _mixed_norm(flat: _Flat):
    def norm(x: Tensor) -> Tensor:
        parts = flat.split(x)
        return torch.stack([rms_norm(p).to(torch.float64) for p in parts if p.numel()]).max()

    return norm


def _adjoint_params(func: Any, adjoint_params: Sequence[Tensor] | None) -> tuple[Tensor, ...]:
    if adjoint_params is None:
        if not isinstance(func, nn.Module):
            raise ValueError(
                f"gradient='adjoint' needs func to be an nn.Module (its parameters get gradients) or "
                f"adjoint_params to list the tensors needing gradients (adjoint_params=() for none); got func of "
                f"type {type(func).__name__} and adjoint_params=None")
        return tuple(p for p in func.parameters() if p.requires_grad)
    return tuple(p for p in adjoint_params if isinstance(p, Tensor) and p.requires_grad)


def _adjoint_spec(problem: Problem, name: str, tab: Tableau, options_given: bool, method: str | None, rtol: Any,
                  atol: Any, options: dict | None, flat: _Flat | None, real: torch.dtype, y0: Tensor, user: Any,
                  sign: float, rtol_fwd: Any, atol_fwd: Any) -> AdjointSpec:
    a_name, a_tab = _resolve_method(method if method is not None else name)
    opts = dict(options or {})
    norm = opts.pop("norm", None)
    seminorm = norm == "seminorm"
    if seminorm:
        norm = None
    cbs = _callbacks(user, flat, sign, suffix="_adjoint")
    controller = None
    if a_tab.adaptive:
        base = problem.controller
        controller = Controller(
            rtol=_tol_tensor(rtol if rtol is not None else rtol_fwd, y0),
            atol=_tol_tensor(atol if atol is not None else atol_fwd, y0), order=a_tab.order,
            norm=base.norm if base is not None else rms_norm,
            safety=float(opts.pop("safety", 0.9)), ifactor=float(opts.pop("ifactor", 10.0)),
            dfactor=float(opts.pop("dfactor", 0.2)), min_step=float(opts.pop("min_step", 0.0)),
            max_step=float(opts.pop("max_step", math.inf)))
        if isinstance(controller.rtol, Tensor) and controller.rtol.numel() > 1:
            controller.rtol = float(controller.rtol.max())
        if isinstance(controller.atol, Tensor) and controller.atol.numel() > 1:
            controller.atol = float(controller.atol.min())
    custom = None
    if norm is not None and callable(norm):
        custom = norm
    return AdjointSpec(plan=Plan.of(a_tab), controller=controller, seminorm=seminorm, norm=custom,
                       perturb=bool(opts.pop("perturb", problem.perturb)), callbacks=cbs)


def _solve_event(problem: Problem, event_fn: Callable, t: Tensor, mode: str, flat: _Flat | None, sign: float):
    if problem.controller is None:
        raise ValueError("event_fn needs an adaptive method (e.g. dopri5) here")
    if t.numel() != 2:
        raise ValueError(f"event_fn needs t = [t0, t_max] (len(t) == 2, as torchdiffeq); got len(t) = {t.numel()}")
    t0 = problem.t_out[0]
    y_start = problem.y0.detach()
    with torch.no_grad():
        initial = torch.sign(_event(event_fn, flat, sign, t0, y_start))

    def combined(s: float, y: Tensor) -> Tensor:
        return torch.min(_event(event_fn, flat, sign, s, y) * initial)

    with torch.no_grad():
        t_event, _ = solve_until_event(problem.term, problem.plan, y_start, t0, problem.controller, combined,
                                       float(torch.as_tensor(problem.controller.atol).max()),
                                       first_step=problem.first_step, jump_t=problem.jump_t, step_t=problem.step_t,
                                       max_steps=problem.max_steps)
    solved = problem.with_(t_out=[t0, t_event], exact_outputs=True)
    ys = torch.stack(GRADIENT_MODES[mode](solved)).to(problem.y0.dtype)
    event_t = torch.as_tensor(sign * t_event, dtype=t.dtype, device=t.device)
    if flat is not None:
        return event_t, tuple(p.to(d) for p, d in zip(flat.split(ys, (2,)), flat.dtypes))
    return event_t, ys


def _event(event_fn: Callable, flat: _Flat | None, sign: float, s: float, y: Tensor) -> Tensor:
    tt = torch.as_tensor(sign * s, dtype=torch.float64)
    return torch.as_tensor(event_fn(tt, flat.split(y) if flat is not None else y))


def _delegate(func, y0, t, name, rtol, atol, options, event_fn, step_size, jump_t, mode, adjoint_rtol, adjoint_atol,
              adjoint_method, adjoint_options, adjoint_params):
    if step_size is not None or jump_t is not None:
        raise ValueError(f"method {name!r} is run by torchdiffeq, which takes its grid from options; "
                         f"step_size= and jump_t= apply to the Runge-Kutta methods")
    if mode == "checkpoint":
        raise ValueError(f"gradient='checkpoint' replays this package's Runge-Kutta steps; method {name!r} is run "
                         f"by torchdiffeq: use gradient='backprop' or 'adjoint'")
    kw = dict(rtol=rtol, atol=atol, method=name, options=options or None, event_fn=event_fn)
    if mode == "adjoint":
        return torchdiffeq.odeint_adjoint(func, y0, t, adjoint_rtol=adjoint_rtol, adjoint_atol=adjoint_atol,
                                          adjoint_method=adjoint_method, adjoint_options=adjoint_options,
                                          adjoint_params=adjoint_params, **kw)
    return torchdiffeq.odeint(func, y0, t, **kw)
