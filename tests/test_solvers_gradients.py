"""Gradients of every mode: against finite differences (float64 gradcheck) and against each other
(checkpoint replays backprop's steps exactly; the continuous adjoint agrees to its tolerance)."""

from __future__ import annotations

import pytest
import torch

import solvers

DT = torch.float64
MODES = ["backprop", "checkpoint", "adjoint"]


class Small(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator(torch.get_default_device()).manual_seed(2)
        self.w = torch.nn.Parameter(torch.randn(2, 2, generator=g, dtype=DT) * 0.7)

    def forward(self, t, y):
        return torch.tanh(y @ self.w.T) * torch.cos(t) - 0.2 * y


def _kwargs(method, t=None):
    tab = solvers.TABLEAUX[method]
    if tab.adaptive:
        # outputs on step ends (step_t): finite differences of a dense output would see the interpolation error
        # change with the step sequence (large for bosh3 / fehlberg2, whose midpoint weights are poor)
        kw = dict(rtol=1e-10, atol=1e-12) if tab.order > 2 else dict(rtol=1e-8, atol=1e-10)
        return kw if t is None else dict(kw, options={"step_t": t})
    return dict(step_size=0.002 if tab.order == 1 else 0.02)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", ["euler", "rk4", "midpoint", "dopri5", "tsit5"])
def test_gradcheck_every_mode(method, mode):
    f = Small()
    t = torch.tensor([0.0, 0.35, 0.8], dtype=DT)

    def run(y0, w):
        with torch.no_grad():
            f.w.copy_(w)
        # route w through the field functionally so gradcheck sees it
        def g(s, y):
            return torch.tanh(y @ w.T) * torch.cos(s) - 0.2 * y

        extra = dict(adjoint_params=(w,)) if mode == "adjoint" else {}
        return solvers.odeint(g, y0, t, method=method, gradient=mode, **_kwargs(method, t), **extra)

    y0 = torch.tensor([0.3, -0.6], dtype=DT, requires_grad=True)
    w = f.w.detach().clone().requires_grad_()
    # the adjoint's gradient is exact up to its backward solve: fixed-step adjoints are O(h^p) off
    tab = solvers.TABLEAUX[method]
    atol = 1e-5 if mode != "adjoint" or tab.adaptive else 5e-3
    if tab.order <= 2 and tab.adaptive:
        atol = 1e-4
    assert torch.autograd.gradcheck(run, (y0, w), atol=atol, rtol=1e-3)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", ["dopri5", "rk4"])
def test_time_gradients_against_finite_differences(method, mode):
    f = Small()
    y0 = torch.tensor([0.3, -0.6], dtype=DT)
    kw = _kwargs(method)
    if method == "rk4":
        kw = dict(step_size=0.01)

    def run(t):
        return solvers.odeint(f, y0, t, method=method, gradient=mode, **kw)

    t = torch.tensor([0.1, 0.45, 0.9], dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(run, (t,), atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("method", ["dopri5", "tsit5", "fehlberg2", "rk4", "euler"])
def test_checkpoint_equals_backprop_exactly(method):
    f = Small()
    t = torch.tensor([0.0, 0.3, 1.1, 2.0], dtype=DT)
    jumps = torch.tensor([0.0, 0.7, 1.5], dtype=DT)  # a jump at t0 too: the first stage after it, also replayed
    kw = dict(rtol=1e-7, atol=1e-9) if solvers.TABLEAUX[method].adaptive else dict(step_size=0.01)
    grads = {}
    for mode in ("backprop", "checkpoint"):
        y0 = torch.tensor([0.3, -0.6], dtype=DT, requires_grad=True)
        sol = solvers.odeint(f, y0, t, method=method, gradient=mode, jump_t=jumps, **kw)
        grads[mode] = (sol, torch.autograd.grad((sol ** 2).sum(), (y0, f.w)))
    assert torch.equal(grads["backprop"][0], grads["checkpoint"][0])
    for a, b in zip(grads["backprop"][1], grads["checkpoint"][1]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-14)


@pytest.mark.parametrize("method, kw, tol", [("dopri5", dict(rtol=1e-10, atol=1e-12), 1e-7),
                                             ("tsit5", dict(rtol=1e-10, atol=1e-12), 1e-7),
                                             # bosh3's dense output is second order: outputs on step ends
                                             ("bosh3", dict(rtol=1e-9, atol=1e-11, options={"step_t": [0.5]}), 1e-6),
                                             ("rk4", dict(step_size=0.01), 1e-7),
                                             ("midpoint", dict(step_size=0.01), 1e-3)])
def test_adjoint_agrees_with_backprop(method, kw, tol):
    f = Small()
    t = torch.tensor([0.0, 0.5, 1.5], dtype=DT, requires_grad=True)
    grads = {}
    for mode in ("backprop", "adjoint"):
        y0 = torch.tensor([0.3, -0.6], dtype=DT, requires_grad=True)
        sol = solvers.odeint(f, y0, t, method=method, gradient=mode, **kw)
        grads[mode] = torch.autograd.grad((sol ** 2).sum(), (y0, t, f.w))
    for a, b in zip(grads["backprop"], grads["adjoint"]):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_tuple_state_gradients_through_every_mode():
    w = torch.tensor([0.5, -0.3], dtype=DT, requires_grad=True)

    def f(t, state):
        a, b = state
        return -w[0] * a * b.sum(), torch.sin(t) * a - w[1] * b

    t = torch.tensor([0.0, 0.6, 1.2], dtype=DT)
    out = {}
    for mode in MODES:
        a0 = torch.tensor(0.8, dtype=DT, requires_grad=True)
        b0 = torch.tensor([0.5, -0.2], dtype=DT, requires_grad=True)
        extra = dict(adjoint_params=(w,)) if mode == "adjoint" else {}
        sa, sb = solvers.odeint(f, (a0, b0), t, rtol=1e-10, atol=1e-12, gradient=mode, **extra)
        out[mode] = torch.autograd.grad(sa.sum() + (sb ** 2).sum(), (a0, b0, w))
    for mode in ("checkpoint", "adjoint"):
        for a, b in zip(out["backprop"], out[mode]):
            torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)
