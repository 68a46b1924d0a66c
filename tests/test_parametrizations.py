"""neuralode_rnn.parametrizations and the fields' stability options: the bounds hold for every
parameter value and after optimiser steps, and with the options off the fields are as before."""

import pytest
import torch

import neuralode_rnn as nr
from neuralode_rnn.analysis import lipschitz_stability_condition, measure_contraction
from neuralode_rnn.parametrizations import contraction_shift, norm_bounded, spectral_norm, symmetric_skew

D64 = torch.float64


def _randomise(field: torch.nn.Module, scale: float, seed: int) -> None:
    """Every parameter drawn from N(0, scale^2): far outside the initialisation's range."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in field.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)


def _expand(field: torch.nn.Module, steps: int = 30, lr: float = 0.1) -> None:
    """Adam steps that push the field to expand: maximise ||W||_2 + lambda_max(A_sym) / 2 of the
    matrices it composes (under the bound A_sym follows -||W||_2, so W still grows)."""
    opt = torch.optim.Adam(field.parameters(), lr=lr)
    for _ in range(steps):
        A, W = field.A, field.W
        loss = -(torch.linalg.eigvalsh((A + A.T) / 2)[-1] / 2 + spectral_norm(W))
        opt.zero_grad()
        loss.backward()
        opt.step()


# ----------------------------------------------------------------------------- helpers
def test_spectral_norm_is_the_largest_singular_value():
    M = torch.randn(7, 5, dtype=D64)
    assert spectral_norm(M) == pytest.approx(float(torch.linalg.svdvals(M)[0]), rel=1e-12)


def test_norm_bounded_scales_down_only_beyond_the_bound():
    M = torch.randn(6, 6, dtype=D64)
    n = float(spectral_norm(M))
    torch.testing.assert_close(norm_bounded(M, 2 * n), M, rtol=0, atol=0)
    B = norm_bounded(M, n / 3)
    assert float(spectral_norm(B)) == pytest.approx(n / 3, rel=1e-12)
    torch.testing.assert_close(B, M / 3)  # a radial projection: the direction is kept
    with pytest.raises(ValueError, match="max_norm must be a positive number; got 0"):
        norm_bounded(M, 0)


def test_contraction_shift_makes_the_condition_hold_with_the_margin():
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        A = torch.randn(8, 8, generator=g, dtype=D64) * 2
        W = torch.randn(8, 8, generator=g, dtype=D64) * 2
        s = contraction_shift(A, W, 0.1)
        shifted = A - s * torch.eye(8, dtype=D64)
        c = float(torch.linalg.eigvalsh((shifted + shifted.T) / 2)[-1] + spectral_norm(W))
        assert c == pytest.approx(-0.1, abs=1e-10)  # active: the condition holds with equality
    A = -10 * torch.eye(4, dtype=D64)
    assert float(contraction_shift(A, torch.eye(4, dtype=D64), 0.1)) == 0.0  # holds already: no shift
    with pytest.raises(ValueError, match="margin must be a positive number"):
        contraction_shift(A, A, -1.0)


# ----------------------------------------------------------------------------- Lipschitz RNN
def test_lipschitz_defaults_are_unchanged():
    """With the options off the field draws the same parameters and composes the paper's matrices."""
    torch.manual_seed(3)
    f = nr.LipschitzField(2, 5, beta=0.7, gamma_A=0.2, gamma_W=0.05)
    torch.manual_seed(3)
    M_A, M_W = torch.randn(5, 5) * (1.0 / 5), torch.randn(5, 5) * (1.0 / 5)
    assert torch.equal(f.M_A, M_A) and torch.equal(f.M_W, M_W)
    assert f.stable_margin is None
    eye = torch.eye(5)
    assert torch.equal(f.A, 0.3 * (M_A + M_A.T) + 0.7 * (M_A - M_A.T) - 0.2 * eye)
    assert torch.equal(f.W, 0.3 * (M_W + M_W.T) + 0.7 * (M_W - M_W.T) - 0.05 * eye)


@pytest.mark.parametrize("margin", [1e-3, 0.1, 1.0])
def test_stable_margin_holds_for_random_parameters(margin):
    for seed in range(8):
        f = nr.LipschitzField(3, 10, stable_margin=margin).double()
        _randomise(f, scale=[0.01, 0.3, 3.0][seed % 3], seed=seed)
        cond = lipschitz_stability_condition(f)
        assert cond.satisfied
        assert cond.rate <= -margin + 1e-10


def test_stable_margin_holds_after_optimiser_steps_that_push_it_to_expand():
    free = nr.LipschitzField(2, 8).double()
    bound = nr.LipschitzField(2, 8, stable_margin=0.05).double()
    bound.load_state_dict(free.state_dict())
    _expand(free)
    _expand(bound)
    assert lipschitz_stability_condition(free).rate > 1.0  # the push works on the free field
    cond = lipschitz_stability_condition(bound)
    assert cond.satisfied and cond.rate <= -0.05 + 1e-10
    assert cond.norm_W > 1.0  # W grew: the bound is kept by moving A, not by freezing W


def test_stable_field_contracts_at_least_at_the_margin():
    f = nr.LipschitzField(2, 6, stable_margin=0.5).double()
    _randomise(f, scale=1.0, seed=0)
    values = torch.randn(4, 25, 2, dtype=D64)
    c = measure_contraction(f, values, 0.2 * torch.arange(1, 26, dtype=D64), scale=3.0)
    assert c.predicted_rate >= 0.5 - 1e-10
    assert c.bound_holds and c.measured_rate >= c.predicted_rate


def _compose(M_A, M_W, margin):
    """The stable field's A as a function of its two parameter matrices (for gradcheck)."""
    g = nr.LipschitzField(1, M_A.shape[0], stable_margin=margin).double()
    del g.M_A, g.M_W
    g.M_A, g.M_W = M_A, M_W
    return g.A


def test_stable_margin_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(1)
    M_A = (torch.randn(5, 5, generator=g, dtype=D64) * 0.5).requires_grad_()
    M_W = (torch.randn(5, 5, generator=g, dtype=D64) * 0.5).requires_grad_()
    # the shift is active (the condition fails without it), so A depends on M_W as well
    with torch.no_grad():
        assert float(contraction_shift(symmetric_skew(M_A, 0.75, 0.001), symmetric_skew(M_W, 0.75, 0.001), 0.2)) > 0
    assert torch.autograd.gradcheck(lambda a, w: _compose(a, w, 0.2), (M_A, M_W))


def test_stable_margin_errors():
    with pytest.raises(ValueError, match="stable_margin must be None .* or a positive number; got 0"):
        nr.LipschitzField(1, 4, stable_margin=0)
    with pytest.raises(ValueError, match="max_norm must be None .* or a positive number; got -1"):
        nr.AntisymmetricField(1, 4, max_norm=-1)


# ----------------------------------------------------------------------------- AntisymmetricRNN
def test_antisymmetric_defaults_are_unchanged():
    torch.manual_seed(4)
    f = nr.AntisymmetricField(2, 5, gamma=0.3)
    torch.manual_seed(4)
    M = torch.randn(5, 5) * (1.0 / 5 ** 0.5)
    assert torch.equal(f.M, M) and f.max_norm is None
    assert torch.equal(f.W, M - M.T - 0.3 * torch.eye(5))


@pytest.mark.parametrize("gated", [False, True])
def test_antisymmetric_max_norm_bounds_the_field_lipschitz_constant(gated):
    L, gamma = 0.5, 0.1
    f = nr.AntisymmetricField(2, 8, gamma=gamma, gated=gated, max_norm=L).double()
    for seed in range(6):
        _randomise(f, scale=[0.05, 1.0, 10.0][seed % 3], seed=seed)
        W = f.W.detach()
        skew = W + gamma * torch.eye(8, dtype=D64)
        torch.testing.assert_close(skew, -skew.T, rtol=0, atol=1e-12)  # still skew: Re(eig W) = -gamma
        assert float(spectral_norm(skew)) <= L * (1 + 1e-12)
        # the field's Jacobian at random points: ||J||_2 <= (1 or 5/4 gated) * ||W||_2 <= that * sqrt(L^2 + gamma^2)
        h = torch.randn(16, 8, dtype=D64) * 3
        u = torch.randn(16, f.input_map.out_features, dtype=D64)
        J = torch.func.vmap(torch.func.jacrev(lambda a, b: f.rhs(a[None], b[None])[0]))(h, u)
        bound = (1.25 if gated else 1.0) * (L ** 2 + gamma ** 2) ** 0.5
        assert float(torch.linalg.matrix_norm(J.detach(), 2).max()) <= bound * (1 + 1e-12)


def test_antisymmetric_max_norm_holds_after_optimiser_steps():
    f = nr.AntisymmetricField(1, 6, max_norm=0.3).double()
    opt = torch.optim.Adam(f.parameters(), lr=0.5)
    for _ in range(20):
        loss = -spectral_norm(f.W)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert float(spectral_norm(f.M - f.M.T)) > 0.3 * 2  # the raw parameter grew past the bound
        assert float(spectral_norm(f.W + 0.01 * torch.eye(6, dtype=D64))) <= 0.3 * (1 + 1e-12)
