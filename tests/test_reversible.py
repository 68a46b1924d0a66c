"""Reversible methods (McCallum and Foster 2024) and the "reversible" gradient mode.

Claims proved here: a reversible step inverts to rounding; reversible_<p> converges with the base
method's order p; the "reversible" mode's gradient equals backprop through the same reversible solve
(1e-10 relative in float64, 1e-5 in float32) for every family of fields, fixed and adaptive steps;
gradcheck against finite differences; the names reach odeint, ContinuousRNN and the command line;
a non-reversible method is refused by the mode; a reconstruction that rounding has ruined warns.
"""

from __future__ import annotations

import math

import pytest
import torch

import neuralode_rnn as nr
import solvers
from neuralode_rnn.analysis.solver_comparison import observed_order
from scripts.reversible_drift import FIELDS  # the five fields of the goal table, N = 8
from solvers import reversible_gradient as rg
from solvers.engine import solve_fixed
from solvers.reversible import reversible_solve, step, unstep
from solvers.stepper import Plan
from solvers.tableaux import REVERSIBLE_TABLEAUX
from solvers.terms import FuncTerm

DT = torch.float64
REV = sorted(REVERSIBLE_TABLEAUX)
MAIN = ["reversible_euler", "reversible_midpoint", "reversible_rk4", "reversible_dopri5"]


def _func():
    g = torch.Generator(torch.get_default_device()).manual_seed(3)
    w = (torch.randn(3, 3, generator=g, dtype=DT) * 0.8).requires_grad_(True)
    return w, (lambda t, y: torch.tanh(y @ w.T) * torch.cos(t) - 0.3 * y)


@pytest.mark.parametrize("name", REV)
def test_step_inverts_to_rounding(name):
    w, f = _func()
    term = FuncTerm(f, DT, torch.get_default_device())
    plan = Plan.of(REVERSIBLE_TABLEAUX[name])
    y = torch.randn(4, 3, dtype=DT)
    z = y + 0.1 * torch.randn(4, 3, dtype=DT)
    with torch.no_grad():
        y1, z1, _ = step(term, plan, 0.3, 0.55, y, z)
        y0, z0 = unstep(term, plan, 0.3, 0.55, y1, z1)
    assert (y1 - y).abs().max() > 1e-2  # a real step
    assert torch.allclose(y0, y, rtol=0, atol=1e-14) and torch.allclose(z0, z, rtol=0, atol=1e-14)


@pytest.mark.parametrize("name", [n for n in REV if not REVERSIBLE_TABLEAUX[n].adaptive or n.endswith("dopri5")])
def test_convergence_order_is_the_base_methods(name):
    """y' = cos(t) y on [0, 3] (exact exp(sin t)), step 0.1 halved three times: the observed order is the
    base method's p (within -0.3; up to +0.8, the coupled pair's error constants making some look faster
    at these steps: midpoint 2.5, rk4 4.7), while one wrong coefficient would make it first order."""
    tab = REVERSIBLE_TABLEAUX[name]
    term = FuncTerm(lambda t, y: torch.cos(t) * y, DT, torch.get_default_device())
    hs = [0.1 / 2 ** k for k in range(4)]
    errors = []
    for h in hs:
        n = round(3.0 / h)
        grid = [k * 3.0 / n for k in range(n + 1)]
        run = reversible_solve(term, Plan.of(tab), torch.ones(1, dtype=DT), [0.0, 3.0], grid=grid,
                               perturb=False, max_steps=10 ** 6)
        errors.append(abs(float(run.outputs[-1]) - math.exp(math.sin(3.0))))
    p = observed_order(errors, hs)
    assert tab.order - 0.3 < p < tab.order + 0.8, (errors, p)
    # and it is not the base method's solve (the pair (y, z) is coupled)
    plain = solve_fixed(term, Plan.of(tab.base), torch.ones(1, dtype=DT), grid, [0.0, 3.0], perturb=False)[-1]
    assert float((plain - run.outputs[-1]).abs()) > 0


@pytest.fixture
def kernel_modes(monkeypatch):
    """The gradient modes the structured kernel ran (its term's solve_<mode> hooks), in call order."""
    seen = []
    term = solvers.LinearActivationTerm
    for mode in ("backprop", "reversible"):
        hook = getattr(term, f"solve_{mode}")

        def spy(self, p, hook=hook, mode=mode):
            seen.append(mode)
            return hook(self, p)

        monkeypatch.setattr(term, f"solve_{mode}", spy)
    return seen


def _field_grads(field, method, mode, dtype, T, seed=0, generic=False):
    """The field's parameter gradient of a sum of squares of a readout, and the model used (``generic``:
    the field's rhs through the driven term, not the structured kernel)."""
    torch.manual_seed(seed)
    name = method if isinstance(method, str) else method.name
    opts = {"rtol": 1e-6, "atol": 1e-8} if name.endswith("dopri5") else {}
    f = field()
    if generic:
        f.structure = lambda: None
    model = nr.ContinuousRNN(f, 3, method=method, **opts).to(dtype)
    torch.manual_seed(seed + 1)
    x = torch.randn(3, T, 2, dtype=dtype)
    times = 0.1 * torch.arange(1, T + 1, dtype=dtype)
    m = model.with_solver(gradient=mode)
    model.zero_grad()
    m(x, times).pow(2).sum().backward()
    return torch.cat([p.grad.reshape(-1) for p in model.field.parameters()]).clone(), m


def _model_grads(field, method, mode, dtype, T=100, seed=0):
    g, m = _field_grads(field, method, mode, dtype, T, seed)
    return g, m.stats


# h' = -h + ... (CTRNN, unitary) contracts at rate ~1: at the default coupling 0.999 the reversible pair's
# forward is itself unstable on them (its parasitic mode grows ~1.1 a step, docs/GRADIENTS.md), so CTRNN runs
# at T = 784 with a coupling that keeps it stable (0.8), and the unitary field (the generic driven term, no
# structured kernel) at the default coupling over 3 time units
STRUCTURED = ["lipschitz", "antisymmetric", "gated", "ctrnn"]
COUPLED = {"ctrnn": 0.8}


def _method(field, method):
    lam = COUPLED.get(field)
    return method if lam is None else solvers.tableaux.reversible(method.removeprefix("reversible_"), lam)


@pytest.mark.parametrize("method", MAIN)
@pytest.mark.parametrize("field", FIELDS)
def test_reversible_gradient_equals_backprop_float64(field, method, kernel_modes):
    """Issue 18's length, T = 784 (the unitary field: 30), one step per sample (dopri5: rtol 1e-6); the
    structured fields run on the structured kernel in both modes (its hand-written backward passes)."""
    T = 30 if field == "unitary" else 784
    ref, s_ref = _model_grads(FIELDS[field], _method(field, method), "backprop", DT, T=T)
    g, stats = _model_grads(FIELDS[field], _method(field, method), "reversible", DT, T=T)
    assert float((g - ref).norm() / ref.norm()) < 1e-10
    assert stats.accepted == s_ref.accepted and stats.reconstruction_error < 1e-10
    assert kernel_modes == ([] if field == "unitary" else ["backprop", "reversible"])


@pytest.mark.parametrize("method", MAIN)
@pytest.mark.parametrize("field", STRUCTURED)
def test_kernel_matches_the_generic_term(field, method, kernel_modes):
    """The reversible solve on the structured kernel against the same solve of the field's own rhs on
    the generic driven term: outputs to 1e-12 relative, backprop's gradient to 1e-10 (float64)."""
    T = 100
    outs = {}
    for generic in (False, True):
        torch.manual_seed(0)
        f = FIELDS[field]()
        if generic:
            f.structure = lambda: None
        name = method.removeprefix("reversible_")
        opts = {"rtol": 1e-6, "atol": 1e-8} if name == "dopri5" else {}
        model = nr.ContinuousRNN(f, 3, method=_method(field, method), **opts).double()
        torch.manual_seed(1)
        x = torch.randn(3, T, 2, dtype=DT)
        out = model.trajectory(x, 0.1 * torch.arange(1, T + 1, dtype=DT))
        out.pow(2).sum().backward()
        outs[generic] = (out.detach(), torch.cat([p.grad.reshape(-1) for p in model.field.parameters()]))
    (o, g), (o_ref, g_ref) = outs[False], outs[True]
    assert float((o - o_ref).norm() / o_ref.norm()) < 1e-12
    assert float((g - g_ref).norm() / g_ref.norm()) < 1e-10
    assert kernel_modes == ["backprop"]


@pytest.mark.parametrize("method", ["reversible_rk4", "reversible_dopri5"])
@pytest.mark.parametrize("field", ["lipschitz", "antisymmetric", "gated"])
def test_reversible_gradient_equals_backprop_float32(field, method):
    ref, _ = _model_grads(FIELDS[field], method, "backprop", torch.float32)
    g, _ = _model_grads(FIELDS[field], method, "reversible", torch.float32)
    assert float((g - ref).norm() / ref.norm()) < 1e-5


@pytest.mark.parametrize("method", ["reversible_midpoint", "reversible_rk4"])
def test_float32_antisymmetric_at_issue_length(method):
    """Plain Antisymmetric, T = 784, float32: within 1e-5 of float32 backprop through the same solve
    (both on the structured kernel, whose backward passes share the step adjoint)."""
    ref, _ = _model_grads(FIELDS["antisymmetric"], method, "backprop", torch.float32, T=784)
    g, _ = _model_grads(FIELDS["antisymmetric"], method, "reversible", torch.float32, T=784)
    assert float((g - ref).norm() / ref.norm()) < 1e-5


@pytest.mark.parametrize("gated, method, gradient", [
    (False, "reversible_midpoint", "reversible"), (True, "reversible_rk4", "reversible"),
    (False, "reversible_rk4", "backprop")])
def test_kernel_gradcheck(gated, method, gradient, kernel_modes):
    """Finite differences through the structured kernel's reversible solves (fixed steps; adaptive ones are
    compared with backprop at 1e-10 above): the values' gradient (through the input coefficients: the
    input-gradient rows of the kernel's step adjoint) and a parameter's."""
    torch.manual_seed(4)
    field = (nr.AntisymmetricField(1, 3, gated=True) if gated else nr.LipschitzField(1, 3, init_std=2.0)).double()
    model = nr.ContinuousRNN(field, 2, method=method, step_size=0.3 if method.endswith("rk4") else None,
                             interpolation="linear", gradient=gradient).double()
    x = torch.randn(2, 4, 1, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: model.trajectory(v), (x,), atol=1e-7)
    name, w = next(iter(model.field.named_parameters()))

    def of_param(p):
        return torch.func.functional_call(model, {"field." + name: p}, (x.detach(),))

    assert torch.autograd.gradcheck(of_param, (w.detach().clone().requires_grad_(True),), atol=1e-7)
    assert set(kernel_modes) == {gradient}


def test_kernel_double_backward_matches_the_generic_term():
    """create_graph=True through the kernel's reversible solve (replayed with autograd ops): a gradient
    penalty's gradient equals plain autograd's through the generic term (backprop)."""
    res = []
    for generic in (False, True):
        torch.manual_seed(0)
        f = nr.LipschitzField(2, 4)
        if generic:
            f.structure = lambda: None
        model = nr.ContinuousRNN(f, 2, method="reversible_midpoint",
                                 gradient="backprop" if generic else "reversible").double()
        x = torch.randn(2, 6, 2, dtype=DT)
        params = list(model.field.parameters())
        g = torch.autograd.grad(model(x).pow(2).sum(), params, create_graph=True)
        res.append(torch.cat([q.reshape(-1) for q in torch.autograd.grad(sum(q.pow(2).sum() for q in g), params)]))
    assert float((res[0] - res[1]).norm() / res[1].norm()) < 1e-10


@pytest.mark.parametrize("method", ["reversible_midpoint", "reversible_rk4", "reversible_bosh3"])
def test_gradcheck(method):
    w, f = _func()
    t = torch.tensor([0.0, 0.4, 0.9], dtype=DT)
    kw = {"rtol": 1e-8, "atol": 1e-10, "options": {"step_t": t}} if solvers.METHODS[method].kind == "adaptive" \
        else {"step_size": 0.05}

    def run(y0, w_):
        def g(s, y):
            return torch.tanh(y @ w_.T) * torch.cos(s) - 0.3 * y

        return solvers.odeint(g, y0, t, method=method, gradient="reversible", adjoint_params=(w_,), **kw)

    y0 = torch.randn(2, 3, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(run, (y0, w), atol=1e-6, rtol=1e-5)


def test_odeint_outputs_and_gradients_match_backprop():
    w, f = _func()
    y0 = torch.randn(2, 3, dtype=DT, requires_grad=True)
    t = torch.linspace(0, 2, 6, dtype=DT)
    ys = solvers.odeint(f, y0, t, method="reversible_rk4", step_size=0.05, adjoint_params=(w,))
    yr = solvers.odeint(f, y0, t, method="reversible_rk4", step_size=0.05, gradient="reversible", adjoint_params=(w,))
    assert torch.equal(ys, yr)
    exact = solvers.odeint(f, y0, t, method="dopri5", rtol=1e-11, atol=1e-13)
    assert float((ys - exact).detach().abs().max()) < 1e-6  # a fourth-order solve
    g1 = torch.autograd.grad((ys * exact.detach()).sum(), (y0, w))
    g2 = torch.autograd.grad((yr * exact.detach()).sum(), (y0, w))
    for a, b in zip(g1, g2):
        assert float((a - b).norm() / a.norm()) < 1e-12


def test_registry_and_names():
    assert solvers.METHODS["reversible_rk4"].kind == "fixed" and solvers.METHODS["reversible_rk4"].order == 4
    assert solvers.METHODS["reversible_dopri5"].kind == "adaptive"
    assert "reversible" in solvers.GRADIENT_MODES
    from neuralode_rnn.cli import model_methods

    assert {"reversible_euler", "reversible_midpoint", "reversible_rk4", "reversible_dopri5"} <= set(model_methods())
    model = nr.ContinuousRNN(nr.LipschitzField(1, 4), 2, method="reversible_midpoint", gradient="reversible")
    assert model.spec.reversible and model(torch.randn(2, 5, 1)).shape == (2, 2)
    assert not set(REVERSIBLE_TABLEAUX) & set(solvers.TABLEAUX)  # a reversible method is no plain tableau


def test_non_reversible_method_refused():
    with pytest.raises(ValueError, match="gradient='reversible'.*method 'rk4' is not one.*reversible_rk4"):
        solvers.SolveSpec(method="rk4", gradient="reversible")
    with pytest.raises(ValueError, match="reversible_midpoint"):
        nr.ContinuousRNN(nr.LipschitzField(1, 4), 2, method="midpoint", gradient="reversible")
    w, f = _func()
    with pytest.raises(ValueError, match="reversible"):
        solvers.odeint(f, torch.ones(1, 3, dtype=DT), torch.tensor([0.0, 1.0], dtype=DT), method="euler",
                       gradient="reversible", adjoint_params=(w,))
    with pytest.raises(ValueError, match="gradient='checkpoint'"):
        solvers.SolveSpec(method="reversible_rk4", gradient="checkpoint")


def _coupled_grads(field, lam, mode, dtype, T, seed=0):
    return _field_grads(FIELDS[field], solvers.tableaux.reversible("midpoint", lam), mode, dtype, T, seed)


@pytest.mark.parametrize("field", ["ctrnn", "unitary"])
def test_contracting_field_is_exact_through_anchors(field, monkeypatch):
    """h' = -h + ... contracts at rate ~1: over 40 time units the backward reconstruction expands
    rounding by ~e^40 (lambda = 0.8, where the forward itself is stable).  The segment checks refine
    until the rebuilt segments hold, so the gradient is backprop's to 1e-10; the spacing they learned
    is used by the next forward (no refinement then, same gradient); without the checks (an infinite
    tolerance) the gradient is far off, so the anchors are what makes it exact."""
    ref, m = _coupled_grads(field, 0.8, "backprop", DT, 400)
    g, m = _coupled_grads(field, 0.8, "reversible", DT, 400)
    assert float((g - ref).norm() / ref.norm()) < 1e-10
    spacing = rg.anchor_spacing(m.spec)
    assert spacing is not None and 1 <= spacing < 200
    # more than 16 segments of L steps: the next forward anchors every K ~ sqrt(n L) steps, and the
    # backward recomputes each K-segment's anchors every L (two levels)
    K, L = rg.forward_spacing(m.spec)
    assert L == spacing and K % L == 0 and (K > L) == (m.stats.accepted > 16 * L)
    g2, m2 = _coupled_grads(field, 0.8, "reversible", DT, 400)
    assert float((g2 - ref).norm() / ref.norm()) < 1e-10 and rg.anchor_spacing(m2.spec) <= spacing
    assert m2.stats.reconstruction_error < 16 * torch.finfo(DT).eps
    rg.forget_anchor_spacings()
    monkeypatch.setattr(rg, "ANCHOR_TOLERANCE", math.inf)
    bad, _ = _coupled_grads(field, 0.8, "reversible", DT, 400)
    assert not float((bad - ref).norm() / ref.norm()) < 1e-3  # NaN counts as off
    assert rg.anchor_spacing(m.spec) is None


@pytest.mark.parametrize("field", ["ctrnn", "unitary"])
def test_contracting_field_float32(field):
    ref, _ = _coupled_grads(field, 0.8, "backprop", torch.float32, 200)
    g, _ = _coupled_grads(field, 0.8, "reversible", torch.float32, 200)
    assert float((g - ref).norm() / ref.norm()) < 1e-5


def test_a_field_that_does_not_contract_keeps_no_anchor():
    """Antisymmetric over 10 time units at the default coupling: every rebuilt segment holds, so
    nothing is refined and the next forward keeps only y0 (memory flat in T)."""
    rg.forget_anchor_spacings()
    _, m = _coupled_grads("antisymmetric", solvers.tableaux.COUPLING, "reversible", DT, 100)
    assert rg.anchor_spacing(m.spec) is None


def test_learned_spacing_grows_back():
    """A spacing (say one learned while the field contracted) doubles at each backward pass whose
    segments all hold with a margin (8x under the tolerance), then stays where they no longer do."""
    rg.forget_anchor_spacings()
    _, m = _coupled_grads("antisymmetric", solvers.tableaux.COUPLING, "reversible", DT, 100)
    rg.set_anchor_spacing(m.spec, 10)
    seen = []
    for _ in range(4):
        _, m = _coupled_grads("antisymmetric", solvers.tableaux.COUPLING, "reversible", DT, 100)
        seen.append(rg.anchor_spacing(m.spec))
    assert seen[:2] == [20, 40] and all(k is None or k >= 40 for k in seen[2:])
    rg.set_anchor_spacing(m.spec, 99)  # one segment of 99 steps and one of 1
    _, m = _coupled_grads("antisymmetric", solvers.tableaux.COUPLING, "reversible", DT, 100)
    assert rg.anchor_spacing(m.spec) in (99, None)
    with pytest.raises(ValueError, match="every must be None or a positive int"):
        rg.set_anchor_spacing(m.spec, 0)


@pytest.mark.parametrize("method, opts", [("reversible_rk4", {"step_size": 0.3}),
                                          ("reversible_dopri5", {"rtol": 1e-7, "atol": 1e-9})])
def test_kernel_on_an_index_clock(method, opts, kernel_modes):
    """Per-sample times (the index clock: each sample's field scaled by its own gap) through the kernel's
    reversible solves, both modes, against backprop through the generic term: 1e-10."""
    res = {}
    for generic, mode in ((True, "backprop"), (False, "backprop"), (False, "reversible")):
        torch.manual_seed(0)
        f = nr.LipschitzField(2, 5)
        if generic:
            f.structure = lambda: None
        model = nr.ContinuousRNN(f, 3, method=method, gradient=mode, **opts).double()
        torch.manual_seed(1)
        x = torch.randn(3, 12, 2, dtype=DT)
        times = torch.cumsum(torch.rand(3, 12, dtype=DT) + 0.1, 1)
        model(x, times).pow(2).sum().backward()
        res[generic, mode] = torch.cat([p.grad.reshape(-1) for p in model.field.parameters()])
    ref = res[True, "backprop"]
    for key in ((False, "backprop"), (False, "reversible")):
        assert float((res[key] - ref).norm() / ref.norm()) < 1e-10
    assert kernel_modes == ["backprop", "reversible"]
