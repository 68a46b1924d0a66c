"""The fast driven path (solvers.integrate_driven, the structured autograd Function) against the
general path (solvers.odeint through DrivenField): same states to 1e-12 and same gradients
(float64), for every family, tableau, interpolation, shared and per-sample times and substeps;
gradcheck of the discrete adjoint; checkpoint equals backprop; saved memory of checkpoint."""

from __future__ import annotations

import pytest
import torch

import neuralode_rnn as nr
import solvers
from solvers import LinearActivation, integrate_driven

DT = torch.float64
B, T, D, N = 3, 6, 2, 5

FAMILIES = {
    "lipschitz": lambda: nr.LipschitzField(D, N, beta=0.7, gamma_A=0.05, gamma_W=0.02, init_std=3.0),
    "antisymmetric": lambda: nr.AntisymmetricField(D, N, gamma=0.1),
    "antisymmetric-gated": lambda: nr.AntisymmetricField(D, N, gamma=0.1, gated=True),
    "ctrnn": lambda: nr.CTRNNField(D, N),
    "unitary": lambda: nr.UnitaryField(D, N, bias_init=-0.1),
}


def _field(family):
    field = FAMILIES[family]().double()
    if family == "unitary":
        field.U.data = field.U.data.to(torch.complex128)
    return field


def _times(kind):
    g = torch.Generator().manual_seed(5)
    if kind == "regular":
        return None
    if kind == "shared":
        return torch.cumsum(torch.rand(T, generator=g, dtype=DT) * 0.3 + 0.05, 0)
    return torch.cumsum(torch.rand(B, T, generator=g, dtype=DT) * 0.3 + 0.05, 1)


def _both(model, x, times, h0=None):
    """(fast, general) trajectories, and the gradients of a loss on each w.r.t. params and x."""
    assert model.fast
    path_args = (x, times)
    res = []
    for general in (False, True):
        path = model.path(*path_args)
        h = model._h0(h0, B, DT, None)
        at = list(range(T))
        out = (model._solve_general if general else model._solve_fast)(path, h, at).transpose(0, 1)
        w = torch.linspace(-1, 1, out.numel(), dtype=DT).reshape(out.shape)
        loss = (out.real * w).sum() + (out.imag * w).sum() if out.is_complex() else (out * w).sum()
        params = [p for p in model.field.parameters()] + [x]
        res.append((out, torch.autograd.grad(loss, params, allow_unused=True)))
    return res


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4", "ralston"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_fast_equals_general_every_family_and_tableau(family, method):
    field = _field(family)
    model = nr.ContinuousRNN(field, 2, method=method, step_size=0.07, interpolation="linear").double()
    x = torch.randn(B, T, D, dtype=DT, requires_grad=True)
    (fast, gf), (gen, gg) = _both(model, x, _times("shared"))
    torch.testing.assert_close(fast, gen, rtol=0, atol=1e-12)
    for a, b in zip(gf, gg):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("step_size", [None, 0.07])
@pytest.mark.parametrize("times", ["regular", "shared", "per-sample"])
@pytest.mark.parametrize("interpolation", list(nr.INTERPOLATIONS))
def test_fast_equals_general_every_interpolation_and_clock(interpolation, times, step_size):
    field = _field("lipschitz")
    model = nr.ContinuousRNN(field, 2, method="rk4", step_size=step_size, interpolation=interpolation).double()
    x = torch.randn(B, T, D, dtype=DT, requires_grad=True)
    (fast, gf), (gen, gg) = _both(model, x, _times(times))
    torch.testing.assert_close(fast, gen, rtol=0, atol=1e-12)
    for a, b in zip(gf, gg):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("family", ["antisymmetric-gated", "unitary", "ctrnn"])
def test_fast_equals_general_per_sample_with_missing_values(family):
    field = _field(family)
    model = nr.ContinuousRNN(field, 2, method="midpoint", step_size=0.05, interpolation="cubic").double()
    x = torch.randn(B, T, D, dtype=DT)
    x[0, 2, 1] = float("nan")
    x = x.requires_grad_()
    (fast, gf), (gen, gg) = _both(model, x, _times("per-sample"))
    torch.testing.assert_close(fast, gen, rtol=0, atol=1e-12)
    for a, b in zip(gf, gg):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-11)


def test_forward_reads_the_last_observed_state_on_the_fast_path():
    model = nr.ContinuousRNN(_field("lipschitz"), 3, method="midpoint").double()
    x = torch.randn(B, T, D, dtype=DT)
    x[1, 4:] = float("nan")
    with torch.no_grad():
        states = model.trajectory(x)
        want = model.readout(torch.stack([states[0, -1], states[1, 3], states[2, -1]]))
        torch.testing.assert_close(model(x), want, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------ the structured solver
def _structured(act, use_a, use_u):
    g = torch.Generator().manual_seed(1)
    P = N * (2 if act == "gated" else 1)
    W = (torch.randn(N, N, generator=g, dtype=DT) * 0.5).requires_grad_()
    A = (torch.randn(N, N, generator=g, dtype=DT) * 0.5).requires_grad_() if use_a else None
    U = torch.randn(P, D, generator=g, dtype=DT).requires_grad_() if use_u else None
    b = torch.randn(P, generator=g, dtype=DT).requires_grad_() if use_u else None
    return W, A, U, b, P


@pytest.mark.parametrize("act,use_a,use_u,method,held,per_sample", [
    ("tanh", True, True, "euler", True, False),      # the folded Euler step
    ("tanh", True, True, "euler", False, True),      # Euler, per-sample steps: not folded
    ("tanh", True, True, "rk4", False, False),       # stages sharing an input node
    ("tanh", False, False, "midpoint", False, True),
    ("gated", False, True, "euler", True, False),
    ("gated", True, False, "rk4", True, True),
    ("gated", True, True, "ralston", False, False),
])
def test_structured_gradcheck(act, use_a, use_u, method, held, per_sample):
    W, A, U, b, P = _structured(act, use_a, use_u)
    nodes, node_of_stage = solvers.stage_nodes(method, held=held)
    n = 4
    x = torch.randn(n, len(nodes), 2, D if use_u else P, dtype=DT, requires_grad=True)
    dt = torch.rand(n, 2, dtype=DT) * 0.3 if per_sample else torch.rand(n, dtype=DT) * 0.3
    y0 = torch.randn(2, N, dtype=DT, requires_grad=True)
    tensors = [t for t in (y0, x, W, A, U, b) if t is not None]

    def run(*ts):
        it = iter(ts)
        y, xx, WW = next(it), next(it), next(it)
        AA = next(it) if A is not None else None
        UU, bb = (next(it), next(it)) if U is not None else (None, None)
        field = LinearActivation(W=WW, A=AA, U=UU, b=bb, activation=act)
        return integrate_driven(field, y, xx, dt, method, node_of_stage, outputs=[0, 2, n])

    assert torch.autograd.gradcheck(run, tensors, fast_mode=True)


def test_structured_equals_its_own_rhs_with_autograd():
    W, A, U, b, _ = _structured("tanh", True, True)
    field = LinearActivation(W=W, A=A, U=U, b=b)
    x = torch.randn(40, 3, B, D, dtype=DT)
    dt = torch.full((40,), 0.05, dtype=DT)
    y0 = torch.randn(B, N, dtype=DT)
    fast = integrate_driven(field, y0, x, dt, "rk4")
    slow = integrate_driven(field.rhs, y0, x @ U.T + b, dt, "rk4")
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-12)
    gf = torch.autograd.grad(fast[-1].sum(), (W, A, U, b))
    gs = torch.autograd.grad(slow[-1].sum(), (W, A, U, b))
    for a, c in zip(gf, gs):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("family", ["lipschitz", "antisymmetric-gated", "unitary"])
@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_checkpoint_equals_backprop(family, method):
    field = _field(family)
    x = torch.randn(B, 30, D, dtype=DT)
    y = torch.tensor([0, 1, 0])
    grads = {}
    for gradient in ("backprop", "checkpoint"):
        model = nr.ContinuousRNN(field, 2, method=method, interpolation="linear", gradient=gradient).double()
        torch.manual_seed(3)
        model.readout.reset_parameters()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        grads[gradient] = (loss.detach(), torch.autograd.grad(loss, list(field.parameters())))
    assert torch.equal(grads["backprop"][0], grads["checkpoint"][0])
    for a, b in zip(grads["backprop"][1], grads["checkpoint"][1]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)  # weight sums grouped differently


def test_odeint_checkpoint_equals_backprop_for_any_func():
    lin = torch.nn.Linear(3, 3).double()
    w = torch.randn(3, dtype=DT, requires_grad=True)

    def f(t, y):
        return torch.tanh(lin(y)) + w * torch.cos(t)

    y0 = torch.randn(3, dtype=DT, requires_grad=True)
    t = torch.linspace(0, 2, 9, dtype=DT)
    res = {}
    for gradient in ("backprop", "checkpoint"):
        sol = solvers.odeint(f, y0, t, method="rk4", step_size=0.01, gradient=gradient)
        res[gradient] = (sol, torch.autograd.grad((sol ** 2).sum(), [y0, w, *lin.parameters()]))
    assert torch.equal(res["backprop"][0], res["checkpoint"][0])
    for a, b in zip(res["backprop"][1], res["checkpoint"][1]):
        assert torch.equal(a, b)


def test_odeint_checkpoint_needs_a_tableau():
    with pytest.raises(ValueError, match="gradient='checkpoint' .* needs one of our tableaux; got method 'dopri5'"):
        solvers.odeint(lambda t, y: -y, torch.ones(2, dtype=DT), torch.tensor([0.0, 1.0], dtype=DT),
                       method="dopri5", gradient="checkpoint")


@pytest.mark.parametrize("method,order", [("euler", 1), ("midpoint", 2)])
def test_adjoint_agrees_with_backprop_within_solver_tolerance(method, order):
    # The adjoint integrates the adjoint ODE with the same method: its gradients differ from the
    # exact gradients of the discrete forward by the method's error, O(dt^order), not by rounding.
    torch.manual_seed(1)
    field = nr.LipschitzField(D, N).double()
    x = torch.randn(B, 4, D, dtype=DT)
    errors = []
    for step in (0.04, 0.02):
        grads = {}
        for gradient in ("backprop", "adjoint"):
            model = nr.ContinuousRNN(field, 2, method=method, step_size=step, gradient=gradient).double()
            torch.manual_seed(2)
            model.readout.reset_parameters()
            grads[gradient] = torch.autograd.grad(model(x).sum(), list(field.parameters()))
        errors.append(max(float((a - b).abs().max() / a.abs().max())
                          for a, b in zip(grads["backprop"], grads["adjoint"])))
    assert errors[1] < 0.1 ** order
    assert 2 ** order * 0.8 < errors[0] / errors[1] < 2 ** order * 1.25, errors


def _saved_elements(fn):
    """Elements of all tensors autograd saves for backward while ``fn`` runs."""
    count = [0]

    def pack(t):
        count[0] += t.numel()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return count[0]


@pytest.mark.parametrize("family", ["lipschitz", "unitary"])
def test_checkpoint_saves_sqrt_memory(family):
    # N >> D as in practice: what is saved is O(T N) with backprop and O(sqrt(T) N + T D) with
    # checkpoint (the raw inputs stay; their projection is recomputed per segment).
    field = nr.LipschitzField(1, 32).double() if family == "lipschitz" else nr.UnitaryField(1, 32).double()
    if family == "unitary":
        field.U.data = field.U.data.to(torch.complex128)
    saved = {}
    for T_ in (64, 576):
        x = torch.randn(2, T_, 1, dtype=DT)
        for gradient in ("backprop", "checkpoint"):
            model = nr.ContinuousRNN(field, 2, method="midpoint", gradient=gradient).double()
            saved[gradient, T_] = _saved_elements(lambda m=model, v=x: m(v).sum())
    assert saved["checkpoint", 576] < 0.25 * saved["backprop", 576]
    assert 7 < saved["backprop", 576] / saved["backprop", 64] < 10  # O(T), plus a constant
    assert saved["checkpoint", 576] / saved["checkpoint", 64] < 5  # ~sqrt(T) N + T D


def test_trajectory_cannot_be_changed_in_place_under_the_saved_state():
    W, A, U, b, _ = _structured("tanh", True, True)
    out = integrate_driven(LinearActivation(W=W, A=A, U=U, b=b), torch.zeros(2, N, dtype=DT),
                           torch.randn(4, 1, 2, D, dtype=DT), torch.full((4,), 0.1, dtype=DT), "euler")
    with pytest.raises(RuntimeError, match="is a view and is being modified inplace"):
        out.mul_(2)


def test_driven_errors():
    y0 = torch.zeros(2, N, dtype=DT)
    W, A, U, b, _ = _structured("tanh", True, True)
    field = LinearActivation(W=W, A=A, U=U, b=b)
    with pytest.raises(ValueError, match=r"inputs must have shape \(n, m, B, D\) = \(4, m, 2, D\)"):
        integrate_driven(field, y0, torch.randn(3, 1, 2, D, dtype=DT), torch.full((4,), 0.1, dtype=DT), "euler")
    with pytest.raises(ValueError, match="unknown gradient 'adjoint' for integrate_driven"):
        integrate_driven(field, y0, torch.randn(4, 1, 2, D, dtype=DT), torch.full((4,), 0.1, dtype=DT), "euler",
                         gradient="adjoint")
    with pytest.raises(ValueError, match="unknown activation 'relu'"):
        LinearActivation(W=W, activation="relu")
    with pytest.raises(ValueError, match=r"U must have shape \(P, D\) with P = 10"):
        LinearActivation(W=W, U=U, activation="gated")
    assert solvers.stage_nodes("rk4") == ((0.0, 0.5, 1.0), (0, 1, 1, 2))


@pytest.mark.parametrize("method", ["euler", "midpoint"])
@pytest.mark.parametrize("gradient", ["backprop", "checkpoint"])
@pytest.mark.parametrize("gated", [False, True])
def test_double_backward_through_the_fast_path_equals_finite_differences(method, gradient, gated):
    """create_graph=True (Hessian-vector products) replays the steps with autograd: H v is exact."""
    torch.manual_seed(0)
    field = nr.AntisymmetricField(1, 4, gated=True) if gated else nr.LipschitzField(1, 4, init_std=2.0)
    model = nr.ContinuousRNN(field, 3, method=method, step_size=0.5, gradient=gradient).double()
    x = torch.randn(5, 6, 1, dtype=torch.float64)
    y = torch.randint(0, 3, (5,))
    params = list(model.parameters())
    v = [torch.randn_like(p) for p in params]

    def loss():
        return torch.nn.functional.cross_entropy(model(x), y)

    g = torch.autograd.grad(loss(), params, create_graph=True)
    hv = torch.autograd.grad(sum((a * b).sum() for a, b in zip(g, v)), params)

    def grad_at(shift):
        with torch.no_grad():
            for p, d in zip(params, v):
                p.add_(shift * d)
        out = torch.autograd.grad(loss(), params)
        with torch.no_grad():
            for p, d in zip(params, v):
                p.sub_(shift * d)
        return out

    eps = 1e-6
    fd = [(a - b) / (2 * eps) for a, b in zip(grad_at(eps), grad_at(-eps))]
    for a, b in zip(hv, fd):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
