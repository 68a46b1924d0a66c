"""The checks of ``solvers.odeint``'s arguments: each bad one a ValueError/TypeError naming it,
what came and what was expected (torchdiffeq's argument conventions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .errors import NonFiniteStateError
from .methods import METHODS
from .tableaux import REVERSIBLE_TABLEAUX, TABLEAUX, Tableau


def check_t(t: Any) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"t must be a 1-D torch.Tensor of times; got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"t must have a real floating dtype; got t.dtype = {t.dtype}")
    if t.numel() == 0 or t.ndim != 1:
        raise ValueError(f"t must be 1-D and non-empty; got shape {tuple(t.shape)}")
    td = t.detach()
    bad = torch.nonzero(~torch.isfinite(td)).reshape(-1)
    if bad.numel():
        k = int(bad[0])
        raise ValueError(f"t must hold finite times; got t[{k}] = {float(td[k])} (integrate to a "
                         f"finite end time, or stop at an event with event_fn)")
    if t.shape[0] > 1:
        d = td[1:] - td[:-1]
        sign = 1.0 if bool(d[0] > 0) else -1.0
        bad = torch.nonzero(~(d * sign > 0)).reshape(-1)
        if bad.numel():
            k = int(bad[0]) + 1
            raise ValueError(
                f"t must be strictly increasing or strictly decreasing; got t[{k}] = {float(td[k])} after "
                f"t[{k - 1}] = {float(td[k - 1])}" + (f" (with t[1] - t[0] = {float(d[0])})" if k > 1 else ""))
    return t


def check_y0(y0: Any, name: str = "y0") -> Tensor:
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


def check_times(name: str, values: Any, t: Tensor) -> Tensor | None:
    if values is None:
        return None
    v = torch.as_tensor(values).detach()
    if v.ndim > 1:
        raise ValueError(f"{name} must be a 1-D sequence of times; got shape {tuple(v.shape)}")
    if v.is_complex() or not torch.isfinite(v.to(torch.float64)).all():
        raise ValueError(f"{name} must hold finite real times")
    v = v.reshape(-1).to(dtype=torch.float64, device=t.device)
    return v if v.numel() else None


def resolve_method(method: Any, name: str = "method") -> tuple[str, Tableau | None]:
    if method is None:
        method = "dopri5"
    if isinstance(method, Tableau):
        return method.name, method
    if not isinstance(method, str):
        raise TypeError(f"{name} must be a str or a Tableau; got {type(method).__name__}")
    if method not in METHODS:
        raise ValueError(f"unknown {name} {method!r}; expected one of {', '.join(sorted(METHODS))}")
    return method, TABLEAUX.get(method, REVERSIBLE_TABLEAUX.get(method))


def check_finite_outputs(ys: Tensor, t: Tensor, name: str) -> None:
    finite = torch.isfinite(ys.detach()).reshape(ys.shape[0], -1).all(1)
    if not bool(finite.all()):
        k = int(torch.nonzero(~finite)[0])
        raise NonFiniteStateError(
            f"the solution of the fixed-step method {name!r} is not finite at t[{k}] = {float(t.reshape(-1)[k])} "
            f"(NaN or inf): a step beyond the method's stability limit (see solvers.max_stable_step), an overflow "
            f"of the vector field or a NaN it returned; take smaller steps or check func")


def adjoint_parameters(func: Any, adjoint_params: Sequence[Tensor] | None) -> tuple[Tensor, ...]:
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
