"""Unitary fields: the restricted product written out factor by factor, modReLU's gradients (also at
and near z = 0), and the unitary field under other solvers and on irregular samples."""

import math

import pytest
import torch
import torch.nn.functional as F

import neuralode_rnn as nr
from neuralode_rnn.fields.restricted_unitary import (
    RestrictedUnitaryField,
    restricted_unitary_apply,
    restricted_unitary_matrix,
)
from neuralode_rnn.fields.unitary import modrelu
from neuralode_rnn.optim import FullCapacityOptimizer
from neuralode_rnn.parametrizations import random_unitary, unitarity_error

C128 = torch.complex128


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """torch.fft with 2 intra-op threads on a loaded 2-core machine took ~15 ms per call (4 us with
    one thread, measured): run this module single-threaded, and restore the setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------ restricted product, factor by factor
def _factors_product(theta, reflections, perm):
    """D3 R2 F^-1 D2 Pi R1 F D1 from explicit matrices (no FFT)."""
    n = theta.shape[1]
    j = torch.arange(n, dtype=torch.float64)
    Fm = torch.exp(-2j * math.pi * torch.outer(j, j) / n) / math.sqrt(n)  # unitary DFT
    D = [torch.diag(torch.exp(1j * theta[k].to(C128))) for k in range(3)]
    R = []
    for k in range(2):
        v = torch.complex(reflections[k, 0], reflections[k, 1]).to(C128).unsqueeze(1)
        R.append(torch.eye(n, dtype=C128) - 2 * (v @ v.conj().T) / (v.conj().T @ v))
    Pi = torch.zeros(n, n, dtype=C128)
    Pi[torch.arange(n), perm] = 1.0  # (Pi h)_k = h_perm[k]
    return D[2] @ R[1] @ Fm.conj().T @ D[1] @ Pi @ R[0] @ Fm @ D[0]


@pytest.mark.parametrize("n", [1, 4, 7, 8, 33])
def test_restricted_product_is_the_factors_and_unitary(n):
    torch.manual_seed(n)
    field = RestrictedUnitaryField(2, n, permutation_seed=n).double()
    with torch.no_grad():  # arbitrary parameters, far from the initialisation
        field.theta.normal_(0, 3)
        field.reflections.normal_(0, 5)
    want = _factors_product(field.theta, field.reflections, field.permutation)
    W = field.W
    assert W.dtype == C128
    torch.testing.assert_close(W, want, rtol=0, atol=1e-12)
    assert unitarity_error(W.detach()) < 1e-12
    h = torch.randn(5, n, dtype=C128)
    torch.testing.assert_close(field.apply_W(h), h @ want.T, rtol=0, atol=1e-12)


def test_restricted_float32_is_unitary_to_float32_precision():
    field = RestrictedUnitaryField(2, 64)
    assert field.W.dtype == torch.complex64
    assert unitarity_error(field.W.detach()) < 1e-5


def test_restricted_euler_unit_step_is_the_restricted_urnn():
    torch.manual_seed(0)
    B, T, D, n = 3, 6, 2, 5
    field = RestrictedUnitaryField(D, n, bias_init=-0.1).double()
    x = torch.randn(B, T, D, dtype=torch.float64)
    W = _factors_product(field.theta, field.reflections, field.permutation).detach()
    V = torch.complex(field.input_map.weight[:n], field.input_map.weight[n:]).detach()
    h = torch.zeros(B, n, dtype=C128)
    want = []
    with torch.no_grad():
        for k in range(T):
            z = h @ W.T + x[:, k].to(C128) @ V.T
            h = z * torch.relu(z.abs() + field.b) / z.abs()
            want.append(h)
        got = nr.ContinuousRNN(field, 2, method="euler").double().trajectory(x)
        disc = nr.DiscreteRNN(field.discretize("euler", 1.0), 2).double().trajectory(x)
    torch.testing.assert_close(got, torch.stack(want, 1), rtol=0, atol=1e-12)
    torch.testing.assert_close(disc, torch.stack(want, 1), rtol=0, atol=1e-12)


def test_restricted_gradcheck_in_its_parameters():
    torch.manual_seed(1)
    n = 6
    theta = torch.randn(3, n, dtype=torch.float64, requires_grad=True)
    refl = torch.randn(2, 2, n, dtype=torch.float64, requires_grad=True)
    perm = torch.randperm(n)
    h = torch.randn(2, n, dtype=C128, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, r, hh: restricted_unitary_apply(hh, t, r, perm), (theta, refl, h))
    assert torch.autograd.gradcheck(lambda t, r: restricted_unitary_matrix(t, r, perm), (theta, refl))


def test_restricted_field_trains_with_a_plain_optimizer():
    torch.manual_seed(2)
    field = RestrictedUnitaryField(3, 8)
    model = nr.DiscreteRNN(field.discretize("euler", 1.0), 2)
    x, y = torch.randn(16, 8, 3), torch.randint(0, 2, (16,))
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-2)
    theta0 = field.theta.detach().clone()
    first = F.cross_entropy(model(x), y).item()
    for _ in range(30):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    assert F.cross_entropy(model(x), y).item() < 0.7 * first
    assert (field.theta - theta0).abs().max() > 1e-3
    assert unitarity_error(field.W.detach()) < 1e-5


# ------------------------------------------------------------------ modReLU
def _modrelu_ref(z, b):
    return z * torch.relu(z.abs() + b) / z.abs()


def test_modrelu_value():
    z = torch.randn(4, 7, dtype=C128)
    b = torch.linspace(-1, 1, 7, dtype=torch.float64)
    torch.testing.assert_close(modrelu(z, b), _modrelu_ref(z, b), rtol=1e-14, atol=1e-14)


def test_modrelu_gradcheck_generic_points():
    torch.manual_seed(3)
    z = torch.randn(3, 6, dtype=C128, requires_grad=True)
    # biases away from -|z| so finite differences do not straddle the relu's kink
    b = torch.tensor([-0.05, 0.0, 0.3, -0.02, 0.5, 0.1], dtype=torch.float64)
    keep = (z.detach().abs() + b).abs().min()
    assert keep > 1e-3
    b.requires_grad_(True)
    assert torch.autograd.gradcheck(modrelu, (z, b))
    assert torch.autograd.gradgradcheck(modrelu, (z, b))


@pytest.mark.parametrize("bias", [0.0, -0.1])
def test_modrelu_gradcheck_near_zero(bias):
    """|z| ~ 1e-8: the identity (b = 0) or the dead zone (b < 0); both have well-defined gradients."""
    z = (1e-8 * torch.tensor([1 + 1j, -0.5 + 2j, 3 - 1j], dtype=C128)).requires_grad_(True)
    b = torch.full((3,), bias, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda zz: modrelu(zz, b), (z,), eps=1e-10, atol=1e-6)
    out = modrelu(z, b)
    out.abs().sum().backward()
    assert torch.isfinite(torch.view_as_real(z.grad)).all()


@pytest.mark.parametrize("bias", [-0.1, 0.0, 0.1])
def test_modrelu_exactly_zero_has_finite_value_and_gradient(bias):
    z = torch.zeros(4, dtype=C128, requires_grad=True)
    b = torch.full((4,), bias, dtype=torch.float64, requires_grad=True)
    out = modrelu(z, b)
    assert torch.equal(out, torch.zeros_like(out))
    (out.real.sum() + 2 * out.imag.sum()).backward()
    assert torch.isfinite(torch.view_as_real(z.grad)).all()
    assert torch.isfinite(b.grad).all()
    # and through a uRNN step that starts at h = 0 with zero input (the usual first step)
    field = nr.UnitaryField(2, 4, bias_init=bias).double()
    field.U.data = random_unitary(4, C128)
    model = nr.DiscreteRNN(field.discretize("euler", 1.0), 2).double()
    model(torch.zeros(2, 3, 2, dtype=torch.float64)).sum().backward()
    for p in model.parameters():
        assert torch.isfinite(torch.view_as_real(p.grad) if p.grad.is_complex() else p.grad).all()


# ------------------------------------------------------------------ continuous-time use
def _smooth_unitary_field(n=4, d=2, bias=0.0):
    """b = 0: modReLU is the identity off z = 0, so the field is smooth.  With b != 0 it is not:
    for b < 0 the field has a kink on |z| = -b, for b > 0 a jump at z = 0 (direction z/|z|), and
    trajectories that pass near those sets cost RK4 its order (measured: slopes 0..3 instead of 4)."""
    torch.manual_seed(4)
    field = nr.UnitaryField(d, n, bias_init=bias).double()
    field.U.data = random_unitary(n, C128)
    return field


@pytest.mark.parametrize("method,order", [("midpoint", 2), ("rk4", 4)])
@pytest.mark.parametrize("field_kind", ["full", "restricted"])
def test_unitary_field_converges_at_the_method_order_on_a_smooth_input(method, order, field_kind):
    if field_kind == "full":
        field = _smooth_unitary_field()
    else:
        torch.manual_seed(4)
        field = RestrictedUnitaryField(2, 4, bias_init=0.0).double()
    x = torch.randn(2, 5, 2, dtype=torch.float64)
    with torch.no_grad():
        ref = nr.ContinuousRNN(field, 2, method="dopri5", interpolation="cubic", rtol=1e-12,
                               atol=1e-13).double().trajectory(x)
        errs = []
        for h in (0.05, 0.025):
            m = nr.ContinuousRNN(field, 2, method=method, step_size=h, interpolation="cubic").double()
            errs.append((m.trajectory(x) - ref).abs().max().item())
    assert errs[1] < 1e-3
    assert abs(math.log2(errs[0] / errs[1]) - order) < 0.25


def test_irregular_per_sample_times_converge_and_match_each_sample_alone():
    field = _smooth_unitary_field()
    g = torch.Generator().manual_seed(5)
    B, T = 3, 6
    x = torch.randn(B, T, 2, dtype=torch.float64, generator=g)
    times = torch.cumsum(0.3 + torch.rand(B, T, dtype=torch.float64, generator=g), 1)
    with torch.no_grad():
        ref = nr.ContinuousRNN(field, 2, method="dopri5", interpolation="linear", rtol=1e-12,
                               atol=1e-13).double().trajectory(x, times)
        errs = []
        for h in (0.1, 0.05):
            m = nr.ContinuousRNN(field, 2, method="rk4", step_size=h, interpolation="linear").double()
            errs.append((m.trajectory(x, times) - ref).abs().max().item())
        alone = torch.cat([nr.ContinuousRNN(field, 2, method="dopri5", interpolation="linear", rtol=1e-12,
                                            atol=1e-13).double().trajectory(x[i:i + 1], times[i])
                           for i in range(B)])
    assert errs[1] < 1e-5 and abs(math.log2(errs[0] / errs[1]) - 4) < 0.3  # knot-aligned steps keep order 4
    torch.testing.assert_close(ref, alone, rtol=0, atol=1e-9)


def test_full_capacity_training_on_irregular_samples_learns_and_stays_unitary():
    field = _smooth_unitary_field(bias=-0.05)
    model = nr.ContinuousRNN(field, 2, method="midpoint", step_size=0.5, interpolation="linear").double()
    g = torch.Generator().manual_seed(6)
    x = torch.randn(16, 6, 2, dtype=torch.float64, generator=g)
    times = torch.cumsum(0.2 + torch.rand(16, 6, dtype=torch.float64, generator=g), 1)
    y = (x[:, 0, 0] > 0).long()  # needs memory of the first sample
    opt = FullCapacityOptimizer(model.parameters(), lr_unitary=0.05, lr=1e-2)
    first = F.cross_entropy(model(x, times), y).item()
    for _ in range(25):
        opt.zero_grad()
        F.cross_entropy(model(x, times), y).backward()
        opt.step()
    assert F.cross_entropy(model(x, times), y).item() < 0.7 * first
    assert unitarity_error(field.U.detach()) < 1e-12


def test_modrelu_gradient_at_zero_is_bounded_by_the_floor():
    """b > 0 makes modReLU jump at 0; the floor keeps the first step from h = 0 trainable."""
    from neuralode_rnn.fields.unitary import MODRELU_FLOOR

    z = torch.zeros(3, dtype=C128, requires_grad=True)
    b = torch.full((3,), 0.1, dtype=torch.float64)
    modrelu(z, b).real.sum().backward()
    bound = (MODRELU_FLOOR + 0.1) / MODRELU_FLOOR
    assert torch.view_as_real(z.grad).abs().max() <= bound * (1 + 1e-12)
    # and exact above the floor
    w = torch.tensor([2e-5 + 0j, 0.3 - 0.4j], dtype=C128)
    bb = torch.tensor([0.1, -0.2], dtype=torch.float64)
    torch.testing.assert_close(modrelu(w, bb), _modrelu_ref(w, bb), rtol=1e-14, atol=0)


def test_learned_initial_state_keeps_gradients_finite_on_long_blank_inputs():
    """b > 0 makes h = 0 unstable: from h0 = 0 a long run of zero inputs overflows the gradient
    (NaN); a learned nonzero h0 keeps it finite, and h0 itself is trained."""
    torch.manual_seed(0)
    x = torch.zeros(4, 300, 1)
    x[:, -5:] = 1.0
    grads = {}
    for learn in (False, True):
        torch.manual_seed(1)
        field = nr.UnitaryField(1, 16, bias_init=0.003, learn_initial_state=learn)
        model = nr.DiscreteRNN(field.discretize("euler", 1.0), 10)
        model(x).square().sum().backward()
        grads[learn] = torch.view_as_real(field.U.grad).abs().max()
        if learn:
            assert field.h0.grad is not None and torch.isfinite(torch.view_as_real(field.h0.grad)).all()
            h = model.trajectory(x[:, :1])
            expected = modrelu(field.h0.detach() @ field.U.detach().T, field.b.detach())
            torch.testing.assert_close(h[0, 0].detach(), expected)  # the first step starts from h0
    assert not torch.isfinite(grads[False])
    assert torch.isfinite(grads[True])
