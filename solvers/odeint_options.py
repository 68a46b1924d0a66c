"""torchdiffeq's ``options`` and ``adjoint_*`` arguments as :class:`~solvers.spec.SolveSpec` settings and the
keywords of ``SolveSpec.problem``: one parser for the forward's ``options`` and the backward's
``adjoint_options`` (the adjoint defaults to the forward's method, tolerances and options, its norm
excepted, torchdiffeq's rule); fixed grids (arange, ``grid_constructor``), ``perturb``, ``interp``."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .callbacks import step_callbacks
from .controller import SETTINGS, check_controller_options, rms_norm
from .grids import arange_grid, constructed_grid
from .odeint_args import check_times, resolve_method
from .spec import SolveSpec, check_max_steps, check_number, check_tolerance
from .tableaux import TABLEAUX, Tableau
from .tuple_state import Flat, mixed_norm, tuple_adjoint_norm

FIXED_OPTIONS = ("step_size", "grid_constructor", "perturb", "interp", "norm", "max_num_steps")
"""Options of fixed-grid methods: torchdiffeq's (``norm`` accepted and unused, as there), plus ``max_num_steps``."""

ADAPTIVE_OPTIONS = ("first_step", "safety", "ifactor", "dfactor", "min_step", "max_step", "max_num_steps", "step_t",
                    "jump_t", "norm", "dtype", "pcoeff", "icoeff", "max_time")
"""torchdiffeq's options of adaptive methods, plus ``pcoeff``/``icoeff`` (PI control) and ``max_time``; each
checked against its range here, not left to fail later as an unmet tolerance."""


def tol_tensor(tol: Any, y0: Tensor) -> Any:
    """A tensor tolerance on y0's device in its real dtype (anything else as given, for SolveSpec to check)."""
    if isinstance(tol, Tensor) and not tol.is_complex():
        return tol.to(device=y0.device, dtype=y0.real.dtype if y0.is_complex() else y0.dtype)
    return tol


def state_norm(user_norm: Any, flat: Flat | None) -> Callable[[Tensor], Any]:
    """The forward error norm on the flat state: the user's (on the tuple for tuple states) or the default."""
    if user_norm is None:
        return mixed_norm(flat) if flat is not None else rms_norm
    if not callable(user_norm):
        raise TypeError(f"options['norm'] must be callable; got {type(user_norm).__name__}")
    return user_norm if flat is None else lambda x: user_norm(flat.split(x))


def parse_options(options: Any, where: str, tab: Tableau, t: Tensor) -> dict:
    """``options`` (``where``: "options" or "adjoint_options") of method ``tab``, each checked and named as
    the caller spelt it: ``norm``, ``max_steps`` (when given); adaptive methods: ``jump_t``, ``step_t`` and
    ``settings`` (the controller's :class:`~solvers.spec.SolveSpec` fields and ``first_step``); fixed ones:
    ``perturb`` (None: not given), ``interp``, ``step_size`` and ``grid_constructor``."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise TypeError(f"{where} must be a dict or None; got {type(options).__name__}")
    allowed = ADAPTIVE_OPTIONS if tab.adaptive else FIXED_OPTIONS
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{where} {unknown} are not options of method {tab.name!r}; its options are "
                         f"{', '.join(allowed)}")
    o = dict(options)
    out: dict = {"norm": o.pop("norm", None)}
    if "max_num_steps" in o:
        out["max_steps"] = check_max_steps(f"{where}['max_num_steps']", o.pop("max_num_steps"))
    if not tab.adaptive:
        out.update(perturb=o.pop("perturb", None), interp=o.pop("interp", "linear"),
                   step_size=check_number(f"{where}['step_size']", o.pop("step_size", None), allow_none=True),
                   grid_constructor=o.pop("grid_constructor", None))
        if out["interp"] not in ("linear", "cubic"):
            raise ValueError(f"{where}['interp'] must be 'linear' or 'cubic'; got {out['interp']!r}")
        if out["grid_constructor"] is not None and not callable(out["grid_constructor"]):
            raise TypeError(f"{where}['grid_constructor'] must be callable; got "
                            f"{type(out['grid_constructor']).__name__}")
        if out["step_size"] is not None and out["grid_constructor"] is not None:
            raise ValueError(f"{where}: step_size and grid_constructor are mutually exclusive (torchdiffeq's rule)")
        return out
    dtype = o.pop("dtype", None)
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"{where}['dtype'] must be a floating torch.dtype such as torch.float64 (the times' "
                        f"precision); got {dtype!r}")
    if dtype is not None and dtype != torch.float64:
        warnings.warn(f"{where}['dtype'] = {dtype}: times are float64 here whatever this option says", stacklevel=3)
    first = check_number(f"{where}['first_step']", o.pop("first_step", None), allow_none=True)
    values = {k: o.pop(k) for k in SETTINGS if k in o}
    check_controller_options(where, **values)
    values = {k: float(v) if isinstance(v, Tensor) else v for k, v in values.items()}
    min_step, max_step = values.get("min_step", 0.0), values.get("max_step", math.inf)
    if min_step > max_step:
        raise ValueError(f"{where}['min_step'] = {min_step} must not exceed {where}['max_step'] = {max_step}")
    out.update(settings={**values, "first_step": first},
               jump_t=check_times(f"{where}['jump_t']", o.pop("jump_t", None), t),
               step_t=check_times(f"{where}['step_t']", o.pop("step_t", None), t))
    return out


def fixed_grid(o: dict, name: str, step_size: float | None, jumps: Tensor | None, event_fn: Any, user_func: Any,
               callbacks: Any, y0: Tensor, flat: Flat | None, t: Tensor, sign: float, max_steps: int) -> dict:
    """A fixed method's parsed options ``o`` as keywords of ``SolveSpec.problem``: ``perturb``, ``interp`` and
    the grid (torchdiffeq's arange grid for ``options["step_size"]``, a user's ``grid_constructor``, or the
    start and ``event_step`` of an event search; none: the spec's knot grid).  Fixed grids call only
    ``callback_step``: the other callbacks are dropped with a warning, as torchdiffeq does."""
    if callbacks is not None and (callbacks.accept or callbacks.reject):
        unsupported = sorted(n for n in ("callback_accept_step", "callback_reject_step")
                             if getattr(user_func, n, None) is not None)
        warnings.warn(f"Solver {name!r} does not support callbacks {unsupported}: fixed grids call only "
                      f"callback_step", stacklevel=3)
        callbacks.accept = callbacks.reject = None
    perturb = o["perturb"] if o["perturb"] is not None else jumps is not None
    clock = dict(perturb=bool(perturb), interp=o["interp"])
    opt_step, constructor = o["step_size"], o["grid_constructor"]
    if step_size is not None and (opt_step is not None or constructor is not None):
        raise ValueError("pass one of step_size=, options['step_size'] and options['grid_constructor'] "
                         "(torchdiffeq: step_size and grid_constructor are mutually exclusive)")
    if (opt_step is not None or constructor is not None) and jumps is not None:
        raise ValueError("jump_t builds a knot-aligned grid itself; use step_size= (not "
                         "options['step_size'] or a grid_constructor) with it")
    if event_fn is not None:
        event_step = opt_step if opt_step is not None else step_size
        if event_step is None:
            raise ValueError(f"event_fn with the fixed-step method {name!r} needs a step size: "
                             f"options={{'step_size': h}} (as torchdiffeq) or step_size=h")
        clock.update(grid=[sign * float(t[0])], event_step=event_step)
    elif opt_step is not None:
        clock.update(grid=arange_grid(t.detach() * sign, opt_step, max_steps).tolist())
    elif constructor is not None:
        y = y0 if flat is None else flat.split(y0)
        clock.update(grid=constructed_grid(constructor, user_func, y, t, sign, max_steps))
    return clock


def signed_times(times: Tensor | None, sign: float) -> list[float]:
    return [] if times is None else sorted({sign * float(x) for x in times.tolist()})


def backward_settings(spec: SolveSpec, perturb: bool | None, options: dict, method: Any, adjoint_method: Any,
                      adjoint_rtol: Any, adjoint_atol: Any, adjoint_options: dict | None, flat: Flat | None,
                      y0: Tensor, user: Any, sign: float, t: Tensor,
                      jumps: Tensor | None) -> tuple[SolveSpec, bool, dict]:
    """The adjoint's backward solve: its specification (``spec`` is the forward's), whether its norm is the
    seminorm, and the runtime pieces of its :class:`~solvers.problem.AdjointSpec`.  ``perturb``: the forward
    fixed grid's (None: the forward is adaptive); ``options``: the forward's as given."""
    if adjoint_method is not None and adjoint_method != method and options and adjoint_options is None:
        raise ValueError("adjoint_method differs from method and options were given: the backward solve cannot "
                         "infer its options from them, so pass adjoint_options too (torchdiffeq's rule)")
    a_name, a_tab = resolve_method(adjoint_method if adjoint_method is not None else method, "adjoint_method")
    if a_tab is None:
        raise ValueError(f"adjoint_method {a_name!r} is run by torchdiffeq; the adjoint here solves backward on this "
                         f"package's engine: use a Runge-Kutta method ({', '.join(sorted(TABLEAUX))})")
    if adjoint_options is None:  # the forward's, its norm excepted (and its dtype, warned about once)
        adjoint_options = {k: v for k, v in options.items() if k not in ("norm", "dtype")}
    o = parse_options(adjoint_options, "adjoint_options", a_tab, t)
    seminorm = o["norm"] == "seminorm"
    custom = None
    if o["norm"] is not None and not seminorm:
        if not callable(o["norm"]):
            raise TypeError(f"adjoint_options['norm'] must be 'seminorm' or callable; got {o['norm']!r}")
        custom = o["norm"] if flat is None else tuple_adjoint_norm(o["norm"], flat)
    tols = {}
    for key, given, default in (("rtol", adjoint_rtol, spec.rtol), ("atol", adjoint_atol, spec.atol)):
        tols[key] = default if given is None else tol_tensor(flat.tol(f"adjoint_{key}", given) if flat is not None else given, y0)
        if given is not None:
            check_tolerance(f"adjoint_{key}", tols[key])
    max_steps = o.get("max_steps", spec.max_steps)
    fields = dict(method=a_tab, max_steps=max_steps, **tols)
    extras: dict = dict(norm=custom, callbacks=step_callbacks(user, None, sign, torch.float64 if a_tab.adaptive
                                                              else t.dtype, "_adjoint"))
    if a_tab.adaptive:
        a_jumps = o["jump_t"]
        if jumps is not None:
            a_jumps = jumps if a_jumps is None else torch.cat([a_jumps, jumps])
        fields.update(o["settings"])
        extras.update(jump_t=signed_times(a_jumps, sign), step_t=signed_times(o["step_t"], sign), perturb=False)
    else:
        extras.update(perturb=bool(o["perturb"] if o["perturb"] is not None else perturb or False),
                      backward_grid=backward_grid(o["step_size"], o["grid_constructor"], user, y0, flat, sign, t,
                                                  max_steps))
    return SolveSpec(**fields), seminorm, extras


def backward_grid(step: float | None, constructor: Callable | None, user: Any, y0: Tensor, flat: Flat | None,
                  sign: float, t: Tensor, max_steps: int):
    """torchdiffeq's backward grids: per output interval, from t_hi down to t_lo, by its step_size (arange) or
    its grid_constructor; returned in negated problem time s = -t, increasing."""
    if step is None and constructor is None:
        return None

    def grid(t_hi: float, t_lo: float) -> list[float]:
        if step is not None:
            return arange_grid(torch.tensor([-t_hi, -t_lo], dtype=t.dtype, device=t.device), step, max_steps).tolist()
        tt = torch.tensor([sign * t_hi, sign * t_lo], dtype=t.dtype, device=t.device)
        return constructed_grid(constructor, user, y0 if flat is None else flat.split(y0), tt, -sign, max_steps,
                                "adjoint_options['grid_constructor']")

    return grid
