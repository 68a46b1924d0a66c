"""Per-sample error control (options={"per_sample": True}, solvers.per_sample): a sample's steps and
results do not depend on the rest of the batch."""

from __future__ import annotations

import pytest
import torch

import solvers
from solvers.controller import Controller, sample_rms_norm
from solvers.engine import Tape
from solvers.per_sample import PerSampleStats, solve_adaptive_per_sample
from solvers.stepper import Plan
from solvers.terms import FuncTerm

DT = torch.float64
B = 4


class Batched(torch.nn.Module):
    """Samples of very different stiffness (rates 0.3 .. 12), a shared nonlinear coupling; row b of the output
    depends on row b of y (and t[b] when t is per sample) only."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.w = torch.nn.Parameter(torch.randn(3, 3, generator=g, dtype=DT) * 0.8)
        self.rates = torch.tensor([0.3, 2.0, 12.0, 1.0], dtype=DT)
        self.times_seen = []

    def forward(self, t, y):
        self.times_seen.append(tuple(t.shape))
        rates = self.rates[self.rows]
        return -rates[:, None] * y + torch.sin(3 * t).reshape(-1, 1) * torch.tanh(y @ self.w.T)

    rows = slice(None)


def _y0():
    return torch.linspace(-1, 1, B * 3, dtype=DT).reshape(B, 3)


def _alone(f, b, y0, t, **kw):
    f.rows = slice(b, b + 1)
    try:
        tb = t[b] if t.ndim == 2 else t
        return solvers.odeint(f, y0[b:b + 1], tb, options={"per_sample": True}, **kw)
    finally:
        f.rows = slice(None)


@pytest.mark.parametrize("method, rtol", [("dopri5", 1e-7), ("adaptive_heun", 1e-3), ("bosh3", 1e-5)])
@pytest.mark.parametrize("times", ["shared", "per-sample"])
def test_batched_solve_equals_each_sample_alone(method, rtol, times):
    f = Batched()
    if times == "shared":
        t = torch.tensor([0.0, 0.4, 1.5, 2.0], dtype=DT)
    else:
        t = torch.tensor([[0.0, 0.3, 1.0, 2.0], [0.5, 0.6, 0.9, 1.7], [0.0, 1.0, 2.0, 3.0], [-1.0, 0.0, 0.1, 0.2]],
                         dtype=DT)
    kw = dict(method=method, rtol=rtol, atol=rtol * 1e-2)
    y0 = _y0().requires_grad_()
    batched = solvers.odeint(f, y0, t, options={"per_sample": True}, **kw)
    assert batched.shape == (4, B, 3)
    grad = torch.autograd.grad((batched ** 2).sum(), (y0, f.w))
    for b in range(B):
        yb = _y0().requires_grad_()
        alone = _alone(f, b, yb, t, **kw)
        torch.testing.assert_close(alone[:, 0], batched[:, b], rtol=0, atol=1e-12)
        ga = torch.autograd.grad((alone ** 2).sum(), (yb, f.w))
        torch.testing.assert_close(ga[0][b], grad[0][b], rtol=0, atol=1e-12)
    # the parameter gradient of the batch is the sum of the samples' gradients
    total = sum(torch.autograd.grad((_alone(f, b, _y0(), t, **kw) ** 2).sum(), f.w)[0] for b in range(B))
    torch.testing.assert_close(total, grad[1], rtol=1e-10, atol=1e-12)


def _engine(term, plan, y0, t_out, **kw):
    controller = Controller(rtol=1e-7, atol=1e-9, order=plan.tab.order, norm=sample_rms_norm)
    stats = PerSampleStats()
    out = solve_adaptive_per_sample(term, plan, y0, t_out, controller, stats=stats, **kw)
    return out, stats


def test_same_number_of_accepted_steps_as_alone_and_independent_of_the_batch():
    f = Batched()
    term = FuncTerm(f, DT, torch.device("cpu"), per_sample=True)
    plan = Plan.of(solvers.TABLEAUX["dopri5"])
    t = torch.tensor([0.0, 2.0], dtype=DT)
    jumps = torch.tensor([[0.5, 1.1], [0.2, 1.9], [1.0, 1.5], [0.7, 0.8]], dtype=DT)
    out, stats = _engine(term, plan, _y0(), t, jump_t=jumps)
    assert stats.accepted.tolist() != [stats.accepted[0].item()] * B  # the samples really take different steps
    for b in range(B):
        f.rows = slice(b, b + 1)
        alone, s1 = _engine(term, plan, _y0()[b:b + 1], t, jump_t=jumps[b:b + 1])
        f.rows = slice(None)
        assert int(s1.accepted[0]) == int(stats.accepted[b]) and int(s1.rejected[0]) == int(stats.rejected[b])
        torch.testing.assert_close(alone[-1][0], out[-1][b], rtol=0, atol=1e-12)


def test_one_sample_equals_the_shared_clock_solve():
    f = Batched()
    f.rows = slice(1, 2)
    t = torch.linspace(0, 2, 5, dtype=DT)
    y0 = _y0()[1:2]
    steps = {}
    for label, options in (("per-sample", {"per_sample": True}), ("shared", {})):
        f.times_seen.clear()
        sol = solvers.odeint(f, y0, t, rtol=1e-8, atol=1e-10, options=options)
        steps[label] = (sol, len(f.times_seen), set(f.times_seen))
    torch.testing.assert_close(steps["per-sample"][0], steps["shared"][0], rtol=0, atol=1e-13)
    assert steps["per-sample"][1] == steps["shared"][1]
    # the field gets t as a (B,) tensor per sample, a 0-d tensor on the shared clock
    assert steps["per-sample"][2] == {(1,)} and steps["shared"][2] == {()}


def test_decreasing_time_and_exact_outputs():
    f = Batched()
    t = torch.tensor([2.0, 1.2, 0.0], dtype=DT)
    back = solvers.odeint(f, _y0(), t, rtol=1e-9, atol=1e-11, options={"per_sample": True})
    fwd = solvers.odeint(f, back[-1], t.flip(0), rtol=1e-9, atol=1e-11, options={"per_sample": True})
    torch.testing.assert_close(fwd[-1], _y0(), rtol=0, atol=1e-7)
    # exact outputs: steps land on each sample's output times, and agree with the dense outputs to tolerance
    term = FuncTerm(f, DT, torch.device("cpu"), per_sample=True)
    plan = Plan.of(solvers.TABLEAUX["dopri5"])
    t_out = torch.tensor([[0.0, 0.3, 1.0], [0.0, 0.5, 0.6], [0.2, 0.4, 2.0], [0.0, 1.0, 1.1]], dtype=DT)
    exact, _ = _engine(term, plan, _y0(), t_out, exact_outputs=True)
    dense, _ = _engine(term, plan, _y0(), t_out)
    for a, b in zip(exact, dense):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_tape_records_per_sample_steps_and_identity_for_the_others():
    f = Batched()
    term = FuncTerm(f, DT, torch.device("cpu"), per_sample=True)
    tab = solvers.TABLEAUX["dopri5"]
    plan = Plan.of(tab)
    t_out = torch.tensor([[0.0, 0.5, 1.0], [0.0, 0.2, 2.0], [0.0, 1.0, 1.5], [0.0, 0.3, 0.4]], dtype=DT)
    tape = Tape()
    out, stats = _engine(term, plan, _y0(), t_out, exact_outputs=True, tape=tape)
    n = len(tape)
    assert all(t0.shape == (B,) and t1.shape == (B,) for t0, t1 in zip(tape.t0, tape.t1))
    steps = torch.stack([t1 - t0 for t0, t1 in zip(tape.t0, tape.t1)])  # (n, B)
    assert bool((steps >= 0).all())
    assert (steps > 0).sum(0).tolist() == stats.accepted.tolist()  # size-0 entries: rejected or finished
    # replaying the recorded stages by hand reproduces the next recorded state: y + dt sum_i b_i f(t0 + c_i dt, ys_i)
    for k in range(n - 1):
        t0, t1, ys = tape.t0[k], tape.t1[k], tape.ys[k]
        dt = (t1 - t0)[:, None]
        incr = sum(b * f(t0 + c * (t1 - t0), y) for b, c, y in zip(tab.b, tab.c, ys) if b != 0.0)
        torch.testing.assert_close(ys[0] + dt * incr, tape.ys[k + 1][0], rtol=0, atol=1e-12)
        idle = (t1 == t0)
        for y in ys:  # identity rows hold the state at t0 in every stage
            assert torch.equal(y[idle], ys[0][idle])
    # outputs: tape.ends[k][b] records after which sample b had reached output k + 1
    for k, ends in enumerate(tape.ends):
        for b in range(B):
            e = int(ends[b])
            assert float(tape.t1[e - 1][b]) == float(t_out[b, k + 1])
            assert float(tape.t0[e - 1][b]) < float(tape.t1[e - 1][b])


def test_per_sample_refusals():
    f = Batched()
    t = torch.tensor([0.0, 1.0], dtype=DT)
    with pytest.raises(ValueError, match="method 'rk4' has fixed steps"):
        solvers.odeint(f, _y0(), t, method="rk4", options={"per_sample": True})
    with pytest.raises(ValueError, match="supports gradient='backprop'.*got gradient='adjoint'"):
        solvers.odeint(f, _y0(), t, options={"per_sample": True}, gradient="adjoint")
    with pytest.raises(ValueError, match="tuple y0"):
        solvers.odeint(lambda s, y: (-y[0],), (_y0(),), t, options={"per_sample": True})
    with pytest.raises(ValueError, match="event_fn is not supported"):
        solvers.odeint(f, _y0(), t, options={"per_sample": True}, event_fn=lambda s, y: y.sum())
    with pytest.raises(ValueError, match=r"one ratio per sample, shape \(4,\)"):
        solvers.odeint(f, _y0(), t, options={"per_sample": True, "norm": lambda x: x.abs().max()})
    with pytest.raises(ValueError, match=r"t must be 1-D \(or \(B, T\) with options=\{'per_sample': True\}\)"):
        solvers.odeint(f, _y0(), torch.zeros(2, 2, 2, dtype=DT), options={"per_sample": True})
    with pytest.raises(ValueError, match=r"t_out must be \(K,\) shared or \(B, K\) = \(4, K\)"):
        solvers.odeint(f, _y0(), torch.tensor([[0.0, 1.0], [0.0, 2.0]], dtype=DT), options={"per_sample": True})


def test_per_sample_time_gradients():
    f = Batched()
    t = torch.tensor([[0.0, 0.7], [0.1, 0.5], [0.0, 0.3], [0.2, 1.0]], dtype=DT, requires_grad=True)
    y0 = _y0()
    sol = solvers.odeint(f, y0, t, rtol=1e-10, atol=1e-12, options={"per_sample": True})
    g = torch.autograd.grad(sol[-1].sum(), t)[0]
    # dL/dt_end[b] = sum f(t_end, y_end)[b]; dL/dt_0[b] = -<lambda_b(t0), f(t0, y0)[b]>: check by differences
    eps = 1e-6
    for b, k in ((0, 0), (1, 1), (2, 1), (3, 0)):  # a start and an end time each, on all four samples
        tp = t.detach().clone()
        tp[b, k] += eps
        tm = t.detach().clone()
        tm[b, k] -= eps
        with torch.no_grad():
            fd = (solvers.odeint(f, y0, tp, rtol=1e-12, atol=1e-14, options={"per_sample": True})[-1].sum()
                  - solvers.odeint(f, y0, tm, rtol=1e-12, atol=1e-14, options={"per_sample": True})[-1].sum()) \
                / (2 * eps)
        assert abs(float(fd) - float(g[b, k])) < 1e-5, (b, k, float(fd), float(g[b, k]))


def test_per_sample_loop_uses_the_one_acceptance_rule(monkeypatch):
    """per_sample.py copied the engine's accept/reject rule and its error messages; both loops now ask
    Controller.accepts (and build their errors with engine.underflow_error / state_error)."""
    calls = {"shared": 0, "per-sample": 0}
    real = Controller.accepts

    def spy(self, ratio, dt):
        calls["per-sample" if isinstance(ratio, torch.Tensor) and ratio.dim() else "shared"] += 1
        return real(self, ratio, dt)

    monkeypatch.setattr(Controller, "accepts", spy)
    y0 = torch.ones(3, 2, dtype=torch.float64)
    t = torch.linspace(0, 1, 3, dtype=torch.float64)
    shared = solvers.odeint(lambda t, y: -y, y0, t, method="dopri5")
    alone = solvers.odeint(lambda t, y: -y, y0, t, method="dopri5", options={"per_sample": True})
    assert calls["shared"] > 0 and calls["per-sample"] > 0
    assert torch.allclose(shared, alone, rtol=0, atol=1e-12)
