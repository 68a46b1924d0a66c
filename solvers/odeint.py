"""``odeint``: one entry point for our tableaux and every torchdiffeq method.

Dispatch is two lookups, so new behaviour is a registry entry rather than a rewrite:

* the *method* (``solvers.METHODS``): our explicit tableaux run in ``solvers.fixed``; every
  other name is delegated to torchdiffeq;
* the *gradient mode* (``GRADIENT_MODES``): ``"backprop"`` differentiates through the
  solver's operations, ``"adjoint"`` uses torchdiffeq's ``odeint_adjoint``, ``"checkpoint"``
  recomputes segments of ~sqrt(steps) steps of our loop in backward.  A further mode is added with
  ``register_gradient_mode(name, solve)``, where ``solve(problem: Problem) -> Tensor``
  receives the already validated arguments.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torchdiffeq
from torch import Tensor, nn
from torchdiffeq._impl.odeint import SOLVERS as _TORCHDIFFEQ_SOLVERS
from torchdiffeq._impl.rk_common import RKAdaptiveStepsizeODESolver

from .fixed import integrate_fixed, knot_grid
from .methods import METHODS, TORCHDIFFEQ_METHODS
from .tableaux import TABLEAUX, Tableau

__all__ = ["ADJOINT_EQUIVALENTS", "GRADIENT_MODES", "Problem", "checkpoint_segment", "odeint",
           "register_gradient_mode"]

Func = Callable[[Tensor, Tensor], Tensor]

ADJOINT_EQUIVALENTS: dict[str, str] = {
    "euler": "euler",
    "midpoint": "midpoint",
    "heun": "heun2",  # torchdiffeq fixed_grid.Heun2: c2 = 1, a21 = 1, b = (1/2, 1/2)
    "rk38": "rk4",  # torchdiffeq's "rk4" is rk_common.rk4_alt_step_func, Kutta's 3/8 rule
}
"""Our tableau -> the torchdiffeq fixed method computing the identical step, used under
``gradient="adjoint"`` (torchdiffeq's adjoint needs one of its own solvers)."""


@dataclass(frozen=True)
class Problem:
    """Validated arguments of one ``odeint`` call, as handed to a gradient mode's solver.

    ``tab`` is the Tableau for our own methods and None for torchdiffeq ones (whose name is
    ``method``); ``jump_t`` is None or a 1-D tensor in ``t``'s dtype and device.
    """

    func: Func
    y0: Tensor
    t: Tensor
    method: str
    tab: Tableau | None
    step_size: float | None
    rtol: Any
    atol: Any
    jump_t: Tensor | None
    options: dict = field(default_factory=dict)
    adjoint_params: Sequence[Tensor] | None = None


def _grid_constructor(jump_t: Tensor | None, step_size: float | None) -> Callable:
    # torchdiffeq calls grid_constructor(func, y0, t) with the t of each (sub)solve, including
    # the reversed per-interval solves of the adjoint pass, so the grid is rebuilt from that t.
    def construct(func: Any, y0: Tensor, t: Tensor) -> Tensor:
        return knot_grid(t, jump_t, step_size)[0]

    return construct


def _torchdiffeq_options(p: Problem) -> dict:
    """Translate step_size / jump_t into torchdiffeq's options for method ``p.method``."""
    options = dict(p.options)
    info = TORCHDIFFEQ_METHODS[p.method]
    if info.kind == "fixed":
        if p.jump_t is not None:
            clash = sorted({"step_size", "grid_constructor"} & options.keys())
            if clash:
                raise ValueError(f"jump_t builds the grid of {p.method!r} itself; do not also pass "
                                 f"options {clash}")
            # Knot-aligned grid (see solvers.fixed); torchdiffeq's own step_size grid would step
            # over the jumps.
            options["grid_constructor"] = _grid_constructor(p.jump_t, p.step_size)
        elif p.step_size is not None:
            options["step_size"] = p.step_size
        return options
    if p.step_size is not None:
        raise ValueError(
            f"step_size applies to fixed-step methods; method {p.method!r} is adaptive, its steps are "
            f"set by rtol/atol (got step_size = {p.step_size}); use options={{'first_step': ...}} "
            f"to set its first step"
        )
    if p.jump_t is not None:
        cls = _TORCHDIFFEQ_SOLVERS[p.method]
        if not (isinstance(cls, type) and issubclass(cls, RKAdaptiveStepsizeODESolver)):
            raise ValueError(f"jump_t is not supported by method {p.method!r}; it is supported by the "
                             f"fixed methods and by the adaptive Runge-Kutta methods "
                             f"({', '.join(_jump_adaptive())})")
        # torchdiffeq refuses repeated jump points.  Jumps at or beyond t[-1] are kept: an
        # adaptive step may overshoot t[-1] (the output is then interpolated), and must not
        # straddle a jump there either.
        options["jump_t"] = torch.unique(p.jump_t)
    return options


class _InsideStart(nn.Module):
    """Evaluates ``func`` one ulp after ``t0`` instead of at ``t0``.

    torchdiffeq's adaptive solvers evaluate their first stage (and the initial step-size
    probe) exactly at ``t[0]``.  When ``jump_t`` says func is piecewise, ``t[0]`` is typically a
    knot, and a zero-order hold closed on the right returns the piece *before* the start
    there, which costs an O(dt) error in the first step that the error estimate does not see.
    Moving that one evaluation inside the interval matches our fixed loop's convention.
    An nn.Module, so func's parameters stay visible to the adjoint.
    """

    def __init__(self, func: Func, t0: Tensor, t1: Tensor) -> None:
        super().__init__()
        self.func = func
        self.t0 = t0.detach()
        self.inside = torch.nextafter(self.t0, t1.detach())

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        if bool(t == self.t0):
            t = t + (self.inside - self.t0)
        return self.func(t, y)


def _torchdiffeq_func(p: Problem) -> Func:
    if p.jump_t is not None and p.t.numel() > 1 and TORCHDIFFEQ_METHODS[p.method].kind == "adaptive":
        return _InsideStart(p.func, p.t[0], p.t[1])
    return p.func


def _jump_adaptive() -> list[str]:
    return sorted(n for n, c in _TORCHDIFFEQ_SOLVERS.items()
                  if isinstance(c, type) and issubclass(c, RKAdaptiveStepsizeODESolver))


def _solve_backprop(p: Problem) -> Tensor:
    if p.tab is not None:
        grid, out_index = knot_grid(p.t, p.jump_t, p.step_size)
        return integrate_fixed(p.func, p.y0, grid, out_index, p.tab)
    return torchdiffeq.odeint(_torchdiffeq_func(p), p.y0, p.t, rtol=p.rtol, atol=p.atol, method=p.method,
                              options=_torchdiffeq_options(p))


def _adjoint_equivalent(tab: Tableau) -> str | None:
    for ours, theirs in ADJOINT_EQUIVALENTS.items():
        ref = TABLEAUX[ours]
        if (tab.a, tab.b, tab.c) == (ref.a, ref.b, ref.c):
            return theirs
    return None


def _solve_adjoint(p: Problem) -> Tensor:
    if p.adjoint_params is None and not isinstance(p.func, nn.Module):
        raise ValueError(
            f"gradient='adjoint' needs func to be an nn.Module (its parameters get gradients) or "
            f"adjoint_params to list the tensors needing gradients; got func of type "
            f"{type(p.func).__name__} and adjoint_params=None"
        )
    method, options, func = p.method, None, p.func
    if p.tab is not None:
        equivalent = _adjoint_equivalent(p.tab)
        if equivalent is None:
            raise ValueError(
                f"gradient='adjoint' with method {p.tab.name!r} is not available: the adjoint runs on "
                f"torchdiffeq, which has no identical method; tableau methods that work: "
                f"{', '.join(sorted(ADJOINT_EQUIVALENTS))} (or use gradient='backprop')"
            )
        method = equivalent
        # perturb=True makes torchdiffeq evaluate stages on the step ends one ulp inside, as
        # our loop does; the grid is our knot-aligned grid.
        options = {"grid_constructor": _grid_constructor(p.jump_t, p.step_size), "perturb": True}
    else:
        options = _torchdiffeq_options(p)
        func = _torchdiffeq_func(p)
    return torchdiffeq.odeint_adjoint(func, p.y0, p.t, rtol=p.rtol, atol=p.atol, method=method,
                                      options=options, adjoint_params=p.adjoint_params)


def checkpoint_segment(n_steps: int) -> int:
    """Steps per checkpoint segment: ceil(sqrt(n)), which minimises stored states + one segment's
    graph (n / L + L), so memory grows as sqrt(n) for one extra forward pass of work."""
    return max(1, math.ceil(math.sqrt(max(n_steps, 1))))


def _solve_checkpoint(p: Problem) -> Tensor:
    if p.tab is None:
        raise ValueError(
            f"gradient='checkpoint' recomputes segments of our fixed-step loop and needs one of our "
            f"tableaux; got method {p.method!r}; use one of {', '.join(sorted(TABLEAUX))}, or "
            f"gradient='adjoint' for memory flat in the number of steps"
        )
    grid, out_index = knot_grid(p.t, p.jump_t, p.step_size)
    return integrate_fixed(p.func, p.y0, grid, out_index, p.tab,
                           checkpoint_segment=checkpoint_segment(grid.shape[0] - 1))


GRADIENT_MODES: dict[str, Callable[[Problem], Tensor]] = {
    "backprop": _solve_backprop,
    "adjoint": _solve_adjoint,
    "checkpoint": _solve_checkpoint,
}
"""Gradient mode name -> solver taking a validated ``Problem``."""


def register_gradient_mode(name: str, solve: Callable[[Problem], Tensor], *, replace: bool = False) -> None:
    """Add (or with ``replace=True`` swap in) a gradient mode, e.g. ``"checkpoint"``."""
    if name in GRADIENT_MODES and not replace:
        raise ValueError(f"gradient mode {name!r} already exists; pass replace=True to swap it")
    GRADIENT_MODES[name] = solve


# --------------------------------------------------------------------------- validation


def _check_t(t: Any) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"t must be a 1-D torch.Tensor of times; got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"t must have a real floating dtype; got t.dtype = {t.dtype}")
    if t.ndim != 1 or t.numel() == 0:
        raise ValueError(f"t must be 1-D and non-empty, time along its only axis; got shape {tuple(t.shape)}")
    if t.numel() > 1:
        d = (t[1:] - t[:-1]).detach()
        sign = 1.0 if bool(d[0] > 0) else -1.0
        bad = torch.nonzero(~(d * sign > 0)).reshape(-1)
        if bad.numel():
            k = int(bad[0]) + 1
            raise ValueError(
                f"t must be strictly increasing or strictly decreasing; got t[{k}] = {float(t[k])} "
                f"after t[{k - 1}] = {float(t[k - 1])}"
                + (f" (with t[1] - t[0] = {float(d[0])})" if k > 1 else "")
            )
    return t


def _check_y0(y0: Any, t: Tensor) -> Tensor:
    if not isinstance(y0, Tensor):
        raise TypeError(f"y0 must be a torch.Tensor; got {type(y0).__name__}")
    if not (y0.is_floating_point() or y0.is_complex()):
        raise TypeError(f"y0 must have a floating or complex dtype; got y0.dtype = {y0.dtype}")
    if y0.device != t.device:
        raise ValueError(f"y0 and t must be on the same device; got y0 on {y0.device}, t on {t.device}")
    return y0


def _check_step_size(step_size: Any) -> float | None:
    if step_size is None:
        return None
    if isinstance(step_size, Tensor):
        if step_size.numel() != 1:
            raise ValueError(f"step_size must be a positive number; got a tensor of shape {tuple(step_size.shape)}")
        step_size = step_size.item()
    if isinstance(step_size, bool) or not isinstance(step_size, (int, float)):
        raise TypeError(f"step_size must be a positive number or None; got {type(step_size).__name__}")
    if not (math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be a positive finite number or None; got step_size = {step_size}")
    return float(step_size)


def _check_tol(name: str, tol: Any) -> Any:
    value = torch.as_tensor(tol).detach()
    if value.is_complex() or bool(torch.isnan(value).any()) or bool((value < 0).any()):
        raise ValueError(f"{name} must be non-negative; got {name} = {tol}")
    return tol


def _check_jump_t(jump_t: Any, t: Tensor) -> Tensor | None:
    if jump_t is None:
        return None
    j = torch.as_tensor(jump_t).detach()
    if j.ndim > 1:
        raise ValueError(f"jump_t must be a 1-D sequence of times; got shape {tuple(j.shape)}")
    if j.is_complex() or not torch.isfinite(j.to(torch.float64)).all():
        raise ValueError("jump_t must hold finite real times")
    j = j.reshape(-1).to(dtype=t.dtype, device=t.device)
    return j if j.numel() else None


def _resolve_gradient(gradient: str | None, adjoint: bool) -> str:
    if gradient is None:
        return "adjoint" if adjoint else "backprop"
    if gradient not in GRADIENT_MODES:
        raise ValueError(f"unknown gradient {gradient!r}; expected one of {', '.join(sorted(GRADIENT_MODES))}")
    if adjoint and gradient != "adjoint":
        raise ValueError(f"adjoint=True is shorthand for gradient='adjoint' but gradient={gradient!r} "
                         f"was also given; pass only one")
    return gradient


def _resolve_method(method: Any) -> tuple[str, Tableau | None]:
    if isinstance(method, Tableau):
        return method.name, method
    if not isinstance(method, str):
        raise TypeError(f"method must be a str or a Tableau; got {type(method).__name__}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(sorted(METHODS))}")
    return method, TABLEAUX.get(method)


def _check_func(func: Func, y0: Tensor, t: Tensor) -> None:
    if not callable(func):
        raise TypeError(f"func must be callable as func(t, y); got {type(func).__name__}")
    with torch.no_grad():
        f0 = func(t[0].detach(), y0.detach())
    if not isinstance(f0, Tensor):
        raise TypeError(f"func must return a torch.Tensor; got {type(f0).__name__}")
    if f0.shape != y0.shape:
        raise ValueError(f"func returned shape {tuple(f0.shape)} whilst y0 has shape {tuple(y0.shape)}; "
                         f"func(t, y) must return dy/dt with y's shape")


# --------------------------------------------------------------------------- entry point


def odeint(
    func: Func,
    y0: Tensor,
    t: Tensor,
    method: str | Tableau = "dopri5",
    step_size: float | None = None,
    rtol: float | Tensor = 1e-7,
    atol: float | Tensor = 1e-9,
    adjoint: bool = False,
    gradient: str | None = None,
    jump_t: Tensor | Sequence[float] | None = None,
    options: dict | None = None,
    adjoint_params: Sequence[Tensor] | None = None,
) -> Tensor:
    """Solve dy/dt = func(t, y), y(t[0]) = y0, and return y at every time in ``t``.

    torchdiffeq's conventions: ``func(t, y)`` with ``t`` a 0-d tensor; output time first.

    Args:
        func: vector field returning a tensor of ``y0``'s shape.  It is called once with
            ``(t[0], y0)`` under ``torch.no_grad()`` before solving, to check that shape.
        y0: (*S) initial state, real floating or complex, any shape.
        t: (T,) strictly increasing or decreasing times; ``t[0]`` is the initial time.  Time
            arithmetic is done in ``t``'s dtype.
        method: one of ``solvers.METHODS`` or a ``Tableau``.  Our tableaux (euler, midpoint,
            heun, ralston, rk4 = classical RK4, rk38) step in ``solvers.fixed`` on a
            knot-aligned grid; other names go to torchdiffeq (whose "rk4" is our "rk38").
            Default "dopri5", torchdiffeq's default: accurate, adaptive, cheap at moderate
            tolerances.
        step_size: fixed methods only.  For ours (and torchdiffeq fixed methods when
            ``jump_t`` is given), every gap of the grid t + jump_t is split into equal
            substeps no longer than ``step_size``; for torchdiffeq fixed methods without
            ``jump_t`` it is passed as torchdiffeq's ``options["step_size"]``.  None: one step
            per grid gap.
        rtol, atol: adaptive methods' error tolerances, torchdiffeq's defaults (1e-7, 1e-9),
            tight enough that solver error rarely dominates training noise.
        adjoint: shorthand for ``gradient="adjoint"``.
        gradient: "backprop" (default), "adjoint" (torchdiffeq.odeint_adjoint: memory
            independent of the number of steps; func must be an nn.Module, or pass
            ``adjoint_params``; gradients exact only up to the adjoint solve's error),
            "checkpoint" (our tableaux only: segments of ceil(sqrt(steps)) steps are recomputed
            in backward; gradients equal backprop's, memory ~sqrt(steps)), or any mode added
            with ``register_gradient_mode``.
        jump_t: times where func may be discontinuous (e.g. sample times of a held input).
            Fixed methods put grid points there; adaptive Runge-Kutta methods get it as
            torchdiffeq's ``options["jump_t"]`` and restart their step there.
        options: extra torchdiffeq options for torchdiffeq methods (none for our tableaux).
        adjoint_params: tensors to differentiate in adjoint mode (default: func's parameters).

    Returns:
        (T, *S) tensor: ``out[k]`` is y at ``t[k]``; ``out[0]`` equals ``y0``.

    Raises:
        TypeError / ValueError: for malformed arguments, naming the argument, what came and what
            was expected.
    """
    name, tab = _resolve_method(method)
    t = _check_t(t)
    y0 = _check_y0(y0, t)
    step_size = _check_step_size(step_size)
    rtol = _check_tol("rtol", rtol)
    atol = _check_tol("atol", atol)
    mode = _resolve_gradient(gradient, adjoint)
    jumps = _check_jump_t(jump_t, t)
    options = dict(options or {})
    if tab is not None and options:
        raise ValueError(f"options are passed to torchdiffeq methods only; method {name!r} is one of our "
                         f"tableaux and takes none; got options with keys {sorted(options)}")
    _check_func(func, y0, t)
    problem = Problem(func=func, y0=y0, t=t, method=name, tab=tab, step_size=step_size, rtol=rtol,
                      atol=atol, jump_t=jumps, options=options, adjoint_params=adjoint_params)
    return GRADIENT_MODES[mode](problem)
