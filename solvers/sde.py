"""Stochastic differential equations dy = f(t, y) dt + g(t, y) dB through torchsde (its methods, Brownian
motion and adjoint), with torchsde's calling conventions.

What it adds is what ``solvers.odeint`` does for fixed-step ODE methods, so an SDE with g = 0 is exactly
that ODE solve: a knot-aligned grid (``solvers.grids.knot_grid``: steps never straddle an output time or a
``jump_t`` point; torchsde's own loop steps over the knots of a held input and interpolates), and stages on a
step's ends evaluated one ulp inside it.  Only the forward loop is ours, one torchsde ``step`` per step; its
method registry and contract check come from ``torchsde._core`` (no public single-step API; pyproject bounds
torchsde below 0.3 for it).  ``adjoint=True`` is ``torchsde.sdeint_adjoint`` on torchsde's own uniform grid
of step ``dt``: use it with continuous inputs, or with gaps that are multiples of ``dt``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .grids import knot_grid

__all__ = ["NOISE_TYPES", "SDE", "SDE_METHODS", "brownian_interval", "sdeint"]

NOISE_TYPES = ("diagonal", "additive", "scalar", "general")

SDE_METHODS: dict[str, dict[str, Any]] = {
    # name -> what torchsde's method supports: sde types and its strong order per noise type
    "euler": {"sde_types": ("ito",), "strong_order": {"additive": 1.0, "diagonal": 0.5, "scalar": 0.5,
                                                         "general": 0.5}},
    "milstein": {"sde_types": ("ito", "stratonovich"), "strong_order": {"additive": 1.0, "diagonal": 1.0,
                                                                          "scalar": 1.0}},
    "srk": {"sde_types": ("ito",), "strong_order": {"additive": 1.5, "diagonal": 1.0, "scalar": 1.0}},
    "midpoint": {"sde_types": ("stratonovich",), "strong_order": {"additive": 1.0, "diagonal": 0.5,
                                                                  "scalar": 0.5, "general": 0.5}},
    "heun": {"sde_types": ("stratonovich",), "strong_order": {"additive": 1.0, "diagonal": 0.5,
                                                              "scalar": 0.5, "general": 0.5}},
    "euler_heun": {"sde_types": ("stratonovich",), "strong_order": {"additive": 1.0, "diagonal": 0.5,
                                                                    "scalar": 0.5, "general": 0.5}},
}
"""The torchsde methods ``sdeint`` accepts, with their SDE types and strong orders."""

Func = Callable[[Tensor, Tensor], Tensor]


class SDE(nn.Module):
    """A torchsde-style SDE module built from a drift and a diffusion callable.

    Args:
        drift: f(t, y) -> (batch, state).
        diffusion: g(t, y) -> (batch, state) for "diagonal" noise, (batch, state, m) otherwise.
        noise_type, sde_type: torchsde's attributes ("diagonal" | "additive" | "scalar" |
            "general"; "ito" | "stratonovich").

    If ``drift``/``diffusion`` are ``nn.Module`` s their parameters are this module's, so the
    adjoint finds them.  Stage times equal to the current step's ends (set by ``sdeint``'s loop)
    are moved one ulp inside the step.
    """

    def __init__(self, drift: Func, diffusion: Func, noise_type: str = "diagonal", sde_type: str = "ito"):
        super().__init__()
        if noise_type not in NOISE_TYPES:
            raise ValueError(f"unknown noise_type {noise_type!r}; expected one of {', '.join(NOISE_TYPES)}")
        if sde_type not in ("ito", "stratonovich"):
            raise ValueError(f"unknown sde_type {sde_type!r}; expected 'ito' or 'stratonovich'")
        for name, fn in (("drift", drift), ("diffusion", diffusion)):
            if not callable(fn):
                raise TypeError(f"{name} must be callable as {name}(t, y); got {type(fn).__name__}")
        self.drift = drift
        self.diffusion = diffusion
        self.noise_type = noise_type
        self.sde_type = sde_type
        self._step: tuple[Tensor, Tensor] | None = None

    def _inside(self, t: Tensor) -> Tensor:
        if self._step is None:
            return t
        t0, t1 = self._step
        if bool(t == t0):
            return torch.nextafter(t0, t1)
        if bool(t == t1):
            return torch.nextafter(t1, t0)
        return t

    def f(self, t: Tensor, y: Tensor) -> Tensor:
        return self.drift(self._inside(t), y)

    def g(self, t: Tensor, y: Tensor) -> Tensor:
        return self.diffusion(self._inside(t), y)


def brownian_interval(t0: float, t1: float, batch_size: int, channels: int, dtype: torch.dtype = torch.float64,
                      device: Any = None, entropy: int | None = None, method: str = "euler"):
    """A ``torchsde.BrownianInterval`` of shape (batch_size, channels) on [t0, t1], seeded by ``entropy``.

    Queried at any resolution it returns increments of one and the same Brownian path, which
    is what a strong-convergence study needs.  ``method`` "srk" needs space-time Levy area.
    """
    import torchsde

    levy = "space-time" if method == "srk" else "none"
    return torchsde.BrownianInterval(t0=float(t0), t1=float(t1), size=(batch_size, channels), dtype=dtype,
                                     device=device, entropy=entropy, levy_area_approximation=levy)


def _as_sde(sde: Any, diffusion: Func | None, noise_type: str | None, sde_type: str | None,
            names: dict | None = None) -> SDE:
    if diffusion is not None:
        if names:
            raise ValueError("names= renames the methods of an sde object; with diffusion=... pass the functions")
        return SDE(sde, diffusion, noise_type or "diagonal", sde_type or "ito")
    names = dict(names or {})
    unknown = sorted(set(names) - {"drift", "diffusion"})
    if unknown:
        raise ValueError(f"names takes the keys 'drift' and 'diffusion'; got {unknown}")
    f_name, g_name = names.get("drift", "f"), names.get("diffusion", "g")
    missing = [n for n in (f_name, g_name, "noise_type", "sde_type") if not hasattr(sde, n)]
    if missing:
        raise TypeError(
            f"sde must be a drift callable (with diffusion=... given) or an object with {f_name}, {g_name}, "
            f"noise_type and sde_type (a torchsde SDE); got {type(sde).__name__} lacking {', '.join(missing)}"
        )
    if noise_type is not None or sde_type is not None:
        raise ValueError("noise_type / sde_type are read from the sde object; pass them only with diffusion=...")
    if isinstance(sde, SDE) and not names:
        return sde
    wrapped = SDE(getattr(sde, f_name), getattr(sde, g_name), sde.noise_type, sde.sde_type)
    if isinstance(sde, nn.Module):
        # its parameters become the wrapper's: torchsde's adjoint differentiates wrapped.parameters()
        wrapped.source = sde
    return wrapped


def _default_method(sde: SDE) -> str:
    """torchsde's default method for the SDE's types (``torchsde.sdeint`` with ``method=None``)."""
    if sde.sde_type == "stratonovich":
        return "midpoint"
    return "euler" if sde.noise_type == "general" else "srk"


def sdeint(
    sde: Any,
    y0: Tensor,
    ts: Tensor | Sequence[float],
    bm: Any = None,
    method: str | None = None,
    dt: float | None = 1e-3,
    adjoint: bool = False,
    diffusion: Func | None = None,
    noise_type: str | None = None,
    sde_type: str | None = None,
    jump_t: Tensor | Sequence[float] | None = None,
    adjoint_params: Sequence[Tensor] | None = None,
    options: dict | None = None,
    names: dict[str, str] | None = None,
    adaptive: bool = False,
    rtol: float | None = None,
    atol: float | None = None,
    dt_min: float | None = None,
    logqp: bool = False,
    extra: bool = False,
    extra_solver_state: Any = None,
) -> Tensor:
    """Solve dy = f(t, y) dt + g(t, y) dB, y(ts[0]) = y0, with a fixed-step torchsde method; the first six
    arguments are ``torchsde.sdeint``'s, in its order and with its defaults.  Returns (len(ts), batch, state).

    Args:
        sde: the drift f(t, y) (then give ``diffusion``), or any torchsde SDE (``f``, ``g``, ``noise_type``,
            ``sde_type``; ``names`` renames f and g).
        y0: (batch, state), real floating.  ts: (T,) strictly increasing, a tensor or a list of floats.
        bm: a torchsde Brownian object of shape (batch, m) (default a fresh ``BrownianInterval``).
        method: one of ``SDE_METHODS``; None: torchsde's default for the SDE's types.
        dt: largest step; each gap of the grid ts + jump_t is split into equal substeps no longer than it
            (None: one step per gap; not with ``adjoint``).
        diffusion, noise_type, sde_type: g(t, y) when ``sde`` is the drift (default "diagonal", "ito").
        jump_t: times where f or g may jump (a held input's knots).
        adjoint_params: the adjoint's tensors (default: the SDE's parameters); ``()`` when it has none.
        adaptive, logqp, extra, extra_solver_state: refused unless at their defaults (use torchsde.sdeint);
            ``rtol``, ``atol``, ``dt_min`` are accepted and unused, as torchsde does without ``adaptive``.
    """
    for name, value, default in (("adaptive", adaptive, False), ("logqp", logqp, False), ("extra", extra, False),
                                 ("extra_solver_state", extra_solver_state, None)):
        if value is not default and value != default:
            raise ValueError(f"{name}={value!r} is a torchsde option that solvers.sdeint (fixed, knot-aligned "
                             f"steps) does not offer; call torchsde.sdeint for it")
    if bm is not None and (isinstance(bm, str) or not callable(bm)):
        raise TypeError(f"bm (the 4th positional argument, as in torchsde.sdeint) must be a Brownian motion object "
                        f"such as torchsde.BrownianInterval; got {bm!r}: pass the method by keyword, method=...")
    model = _as_sde(sde, diffusion, noise_type, sde_type, names)
    if method is None:
        method = _default_method(model)
    if method not in SDE_METHODS:
        raise ValueError(f"unknown SDE method {method!r}; expected one of {', '.join(sorted(SDE_METHODS))}")
    info = SDE_METHODS[method]
    if model.sde_type not in info["sde_types"]:
        raise ValueError(f"method {method!r} solves {' or '.join(info['sde_types'])} SDEs; the sde is "
                         f"{model.sde_type!r} (set sde_type or choose another method)")
    if model.noise_type not in info["strong_order"]:
        raise ValueError(f"method {method!r} does not support noise_type {model.noise_type!r}; it supports "
                         f"{', '.join(info['strong_order'])}")
    if not isinstance(y0, Tensor) or y0.dim() != 2:
        raise ValueError(f"y0 must be a (batch, state) tensor (torchsde's contract); got "
                         f"{tuple(y0.shape) if isinstance(y0, Tensor) else type(y0).__name__}")
    if y0.is_complex() or not y0.is_floating_point():
        raise TypeError(f"y0 must be real floating; got {y0.dtype} (complex states are not supported by torchsde)")
    if isinstance(ts, (list, tuple)):
        if not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in ts):
            raise ValueError(f"ts must be a 1-D tensor or a list of floats (torchsde's contract); got {ts!r}")
        ts = torch.tensor(ts, dtype=y0.dtype, device=y0.device)
    if not isinstance(ts, Tensor) or ts.dim() != 1 or ts.numel() < 2:
        raise ValueError(f"ts must be a 1-D tensor of at least two times; got "
                         f"{tuple(ts.shape) if isinstance(ts, Tensor) else type(ts).__name__}")
    if not bool(torch.isfinite(ts).all()):
        raise ValueError(f"ts must be finite; got {ts.tolist()}")
    if not bool((ts[1:] > ts[:-1]).all()):
        k = int(torch.nonzero(~(ts[1:] > ts[:-1]))[0]) + 1
        raise ValueError(f"ts must be strictly increasing; got ts[{k}] = {float(ts[k])} after "
                         f"ts[{k - 1}] = {float(ts[k - 1])}")
    if dt is not None and not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number or None; got {dt!r}")
    ts = ts.detach()

    import torchsde

    if adjoint:
        if dt is None:
            raise ValueError("adjoint=True runs torchsde's own grid and needs a step: pass dt")
        if adjoint_params is None and not any(p.requires_grad for p in model.parameters()):
            raise ValueError(
                f"adjoint=True differentiates the parameters of the sde, and {type(sde).__name__} has none that "
                f"require grad (closures' tensors are not found): pass adjoint_params=(tensors...) to "
                f"differentiate, or adjoint_params=() for gradients with respect to y0 only")
        return torchsde.sdeint_adjoint(model, y0, ts, bm=bm, method=method, dt=dt, adjoint_params=adjoint_params,
                                       options=options)

    from torchsde._core import methods as _methods
    from torchsde._core.sdeint import check_contract

    jumps = None if jump_t is None else torch.as_tensor(jump_t, dtype=ts.dtype, device=ts.device).reshape(-1)
    grid, out_index = knot_grid(ts, jumps, dt)
    # torchsde's own contract check: shapes of f and g, default Brownian motion, the wrapped SDE.
    fsde, y0, _, bm, method, opts = check_contract(model, y0, grid, bm, method, False, options, None, False)
    solver = _methods.select(method=method, sde_type=fsde.sde_type)(
        sde=fsde, bm=bm, dt=float(dt or 1.0), adaptive=False, rtol=0.0, atol=0.0, dt_min=0.0, options=opts)
    extra = solver.init_extra_solver_state(grid[0], y0)
    outputs, y = [y0], y0
    wanted = iter(out_index[1:])
    next_out = next(wanted, -1)
    try:
        for n in range(grid.shape[0] - 1):
            t0, t1 = grid[n], grid[n + 1]
            model._step = (t0, t1)
            y, extra = solver.step(t0, t1, y, extra)
            if n + 1 == next_out:
                outputs.append(y)
                next_out = next(wanted, -1)
    finally:
        model._step = None
    return torch.stack(outputs)
