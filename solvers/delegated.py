"""The methods run by torchdiffeq itself (``explicit_adams``, ``implicit_adams``, ``fixed_adams``,
``scipy_solver``): ``solvers.odeint`` hands them over with the arguments they accept."""

from __future__ import annotations

import torchdiffeq


def delegate(func, y0, t, name, rtol, atol, options, event_fn, step_size, jump_t, mode, adjoint_rtol, adjoint_atol,
              adjoint_method, adjoint_options, adjoint_params):
    if step_size is not None or jump_t is not None:
        raise ValueError(f"method {name!r} is run by torchdiffeq, which takes its grid from options; "
                         f"step_size= and jump_t= apply to the Runge-Kutta methods")
    if mode not in ("backprop", "adjoint"):
        raise ValueError(f"gradient={mode!r} is a mode of this package's Runge-Kutta engine; method {name!r} is run "
                         f"by torchdiffeq: use gradient='backprop' or 'adjoint'")
    kw = dict(rtol=rtol, atol=atol, method=name, options=options or None, event_fn=event_fn)
    if mode == "adjoint":
        return torchdiffeq.odeint_adjoint(func, y0, t, adjoint_rtol=adjoint_rtol, adjoint_atol=adjoint_atol,
                                          adjoint_method=adjoint_method, adjoint_options=adjoint_options,
                                          adjoint_params=adjoint_params, **kw)
    return torchdiffeq.odeint(func, y0, t, **kw)
