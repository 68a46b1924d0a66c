"""Gradients with respect to the times ``t`` of a solve, in closed form: dL/dt_k = <dL/dy_k, f(t_k, y_k)>
for the outputs and -<dL/dy0, f(t0, y0)> for the start (every gradient mode)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .terms import FuncTerm


def inner_product(grad: Tensor, f: Tensor) -> Tensor:
    return (grad * f.conj()).real if grad.is_complex() else grad * f


class TimeGradient(torch.autograd.Function):
    """Identity on the outputs ys (T, ...); gives t the closed-form gradient <dL/dy_k, f(t_k, y_k)> for
    k >= 1, f evaluated only when the backward pass asks for it."""

    @staticmethod
    def forward(ctx, t: Tensor, ys: Tensor, slopes: Callable[[Tensor], Tensor], cancel_first: bool) -> Tensor:
        ctx.slopes, ctx.cancel_first, ctx.t_dtype = slopes, cancel_first, t.dtype
        ctx.save_for_backward(ys)
        return ys.view_as(ys)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (ys,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, grad, None, None
        with torch.no_grad():
            fs = ctx.slopes(ys.detach())
            prod = inner_product(grad, fs)
            gt = prod.reshape(grad.shape[0], -1).sum(1)
            if not ctx.cancel_first:
                gt[0] = 0.0
        # cancel_first: output 0 came through the start-time node too, whose -<g0, f0> this cancels
        return gt.to(ctx.t_dtype), grad, None, None


class StartTime(torch.autograd.Function):
    """Identity on y0; gives t0 the gradient -<dL/dy0, f(t0, y0)> (the flow started later)."""

    @staticmethod
    def forward(ctx, t0: Tensor, y0: Tensor, slope: Callable[[Tensor], Tensor]) -> Tensor:
        ctx.slope, ctx.t_dtype = slope, t0.dtype
        ctx.save_for_backward(y0)
        return y0.view_as(y0)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (y0,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, grad, None
        with torch.no_grad():
            g = inner_product(grad, ctx.slope(y0.detach())).sum()
        return -g.to(ctx.t_dtype), grad, None


def slope_at(base: FuncTerm, t_out: Any, sign: float, k: int) -> Callable[[Tensor], Tensor]:
    return lambda y: base.f(sign * t_out[k], y)


def slopes_at(base: FuncTerm, t_out: Any, sign: float) -> Callable[[Tensor], Tensor]:
    return lambda ys: torch.stack([base.f(sign * t_out[k], ys[k]) for k in range(ys.shape[0])])
