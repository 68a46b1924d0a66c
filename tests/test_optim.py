"""The full-capacity optimiser: PyTorch's complex-gradient convention, the Cayley step written out,
unitarity over 1,000 steps, descent, delegation to the base optimiser, and the parametrized
alternative."""

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.parametrize import cached

import neuralode_rnn as nr
from neuralode_rnn.optim import (
    CayleyOptimizer,
    FullCapacityOptimizer,
    cayley_step,
    parametrize_unitary,
    unitary_parameters,
)
from neuralode_rnn.parametrizations import random_unitary, unitarity_error

N = 6


def _w_loss(W, X, Y):
    """A real loss of a complex matrix with no unitary minimiser: ||W X - Y||^2 + Re tr(C W)."""
    C = torch.arange(W.numel(), dtype=W.real.dtype).reshape(W.shape).to(W.dtype) / W.numel()
    return (W @ X - Y).abs().pow(2).sum() + torch.trace(C @ W).real


def _model(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    field = nr.UnitaryField(3, N, bias_init=-0.05)
    model = nr.DiscreteRNN(field.discretize("euler", 1.0), 2)
    if dtype == torch.float64:
        model = model.double()
        # .double() leaves complex parameters alone; draw W unitary to double precision
        field.U.data = random_unitary(N, torch.complex128, generator=torch.Generator().manual_seed(seed))
    return model


def _model_loss(model, x, y):
    return F.cross_entropy(model(x), y)


def _batch(dtype=torch.float64):
    g = torch.Generator().manual_seed(3)
    return torch.randn(8, 10, 3, generator=g, dtype=dtype), torch.randint(0, 2, (8,), generator=g)


# ------------------------------------------------------------------ the gradient convention
def test_complex_grad_is_dL_dRe_plus_i_dL_dIm():
    """PyTorch's W.grad = 2 dL/d(conj W) = dL/dRe W + i dL/dIm W: the paper's G, by central differences."""
    g = torch.Generator().manual_seed(0)
    W0 = random_unitary(N, torch.complex128, generator=g)
    X = torch.randn(N, 4, dtype=torch.complex128, generator=g)
    Y = torch.randn(N, 4, dtype=torch.complex128, generator=g)
    W = W0.clone().requires_grad_(True)
    _w_loss(W, X, Y).backward()
    h = 1e-6
    fd = torch.zeros_like(W0)
    for i in range(N):
        for j in range(N):
            E = torch.zeros_like(W0)
            E[i, j] = 1.0
            d_re = (_w_loss(W0 + h * E, X, Y) - _w_loss(W0 - h * E, X, Y)) / (2 * h)
            d_im = (_w_loss(W0 + 1j * h * E, X, Y) - _w_loss(W0 - 1j * h * E, X, Y)) / (2 * h)
            fd[i, j] = torch.complex(d_re, d_im)
    torch.testing.assert_close(W.grad, fd, rtol=1e-7, atol=1e-7)


# ------------------------------------------------------------------ the step
def test_cayley_step_is_the_paper_formula():
    g = torch.Generator().manual_seed(1)
    W = random_unitary(N, torch.complex128, generator=g)
    G = torch.randn(N, N, dtype=torch.complex128, generator=g)
    lr = 0.3
    I = torch.eye(N, dtype=torch.complex128)
    A = G @ W.conj().T - W @ G.conj().T
    want = torch.linalg.inv(I + lr / 2 * A) @ (I - lr / 2 * A) @ W
    torch.testing.assert_close(cayley_step(W, G, lr), want, rtol=0, atol=1e-13)


def test_optimizer_step_is_cayley_step_of_the_grad():
    model = _model()
    x, y = _batch()
    U0 = model.cell.field.U.detach().clone()
    _model_loss(model, x, y).backward()
    G = model.cell.field.U.grad.clone()
    FullCapacityOptimizer(model.parameters(), lr_unitary=0.05, lr=1e-3).step()
    torch.testing.assert_close(model.cell.field.U.detach(), cayley_step(U0, G, 0.05), rtol=0, atol=0)


@pytest.mark.parametrize("dtype,tol", [(torch.complex64, 1e-5), (torch.complex128, 1e-12)])
def test_unitary_after_1000_steps(dtype, tol):
    g = torch.Generator().manual_seed(2)
    W = torch.nn.Parameter(random_unitary(16, dtype, generator=g))
    X = torch.randn(16, 5, dtype=dtype, generator=g)
    Y = 3 * torch.randn(16, 5, dtype=dtype, generator=g)
    W0 = W.detach().clone()
    opt = CayleyOptimizer([W], lr=0.01)
    for _ in range(1000):
        opt.zero_grad()
        _w_loss(W, X, Y).backward()
        opt.step()
    assert (W.detach() - W0).abs().max() > 0.5  # it really moved
    assert unitarity_error(W.detach()) < tol


def test_cayley_step_decreases_the_loss_for_small_lr():
    """On a fixed batch: loss(lr) < loss(0), at the first-order rate -lr/2 ||W^H G - G^H W||_F^2."""
    x, y = _batch()
    model = _model()
    field = model.cell.field
    loss0 = _model_loss(model, x, y)
    loss0.backward()
    W, G = field.U.detach().clone(), field.U.grad.clone()
    S = W.conj().T @ G
    rate = 0.5 * (S - S.conj().T).abs().pow(2).sum().item()
    assert rate > 0
    for lr in (1e-2, 1e-3, 1e-4):
        with torch.no_grad():
            field.U.copy_(cayley_step(W, G, lr))
            loss = _model_loss(model, x, y).item()
        assert loss < loss0.item()
        slope = (loss - loss0.item()) / lr
        if lr <= 1e-3:
            assert slope == pytest.approx(-rate, rel=2e-2)


def test_full_capacity_training_keeps_w_unitary_and_learns():
    x, y = _batch()
    model = _model()
    opt = FullCapacityOptimizer(model.parameters(), lr_unitary=1e-2, lr=1e-2)
    first = _model_loss(model, x, y).item()
    for _ in range(40):
        opt.zero_grad()
        _model_loss(model, x, y).backward()
        opt.step()
    assert _model_loss(model, x, y).item() < 0.5 * first
    assert unitarity_error(model.cell.field.U.detach()) < 1e-12


# ------------------------------------------------------------------ the other parameters
def test_other_parameters_follow_the_base_optimizer_alone():
    x, y = _batch()
    a, b = _model(), _model()
    U = b.cell.field.U
    others = [p for p in b.parameters() if p is not U]
    opt_a = FullCapacityOptimizer(a.parameters(), lr_unitary=0.1, base=torch.optim.RMSprop, lr=1e-2)
    opt_b = torch.optim.RMSprop(others, lr=1e-2)
    assert opt_a.unitary.param_groups[0]["params"] == [a.cell.field.U]
    assert len(opt_a.base.param_groups[0]["params"]) == len(others)
    # one step: same gradients, so the same base update; W takes the Cayley step
    for model, opt in ((a, opt_a), (b, opt_b)):
        opt.zero_grad()
        _model_loss(model, x, y).backward()
        opt.step()
    for (name, pa), pb in zip(((n, p) for n, p in a.named_parameters() if p is not a.cell.field.U), others):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0, msg=name)
    assert (a.cell.field.U - U).abs().max() > 1e-4


def test_with_zero_unitary_lr_it_is_the_base_optimizer_over_many_steps():
    x, y = _batch()
    a, b = _model(), _model()
    U = b.cell.field.U
    opt_a = FullCapacityOptimizer(a.parameters(), lr_unitary=0.0, base=torch.optim.Adam, lr=1e-2)
    opt_b = torch.optim.Adam([p for p in b.parameters() if p is not U], lr=1e-2)
    for _ in range(5):
        for model, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            _model_loss(model, x, y).backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)


def test_unitary_parameters_and_state_dict_round_trip():
    model = _model()
    assert unitary_parameters(model) == [model.cell.field.U]
    opt = FullCapacityOptimizer(model.parameters(), lr_unitary=1e-3, lr=1e-3)
    x, y = _batch()
    _model_loss(model, x, y).backward()
    opt.step()
    state = opt.state_dict()
    opt2 = FullCapacityOptimizer(model.parameters(), lr_unitary=1e-3, lr=1e-3)
    opt2.load_state_dict(state)
    assert opt2.base.state_dict()["state"].keys() == opt.base.state_dict()["state"].keys()
    assert len(opt.param_groups) == 2


def test_bad_arguments_are_named():
    W = torch.eye(3, dtype=torch.complex64)
    with pytest.raises(ValueError, match="square"):
        cayley_step(torch.ones(3, 2, dtype=torch.complex64), torch.ones(3, 2, dtype=torch.complex64), 0.1)
    with pytest.raises(ValueError, match="gradient G must have"):
        cayley_step(W, torch.ones(2, 2, dtype=torch.complex64), 0.1)
    with pytest.raises(TypeError, match="base must be a torch.optim.Optimizer"):
        FullCapacityOptimizer([torch.nn.Parameter(W)], base="adam")
    with pytest.raises(ValueError, match="lr must be a non-negative"):
        CayleyOptimizer([torch.nn.Parameter(W)], lr=-1.0)
    with pytest.raises(ValueError, match="square"):
        CayleyOptimizer([torch.nn.Parameter(torch.ones(3, 2))], lr=0.1)
    with pytest.raises(ValueError, match="unknown orthogonal_map 'householder'"):
        parametrize_unitary(nr.UnitaryField(2, 3), "U", "householder")


# ------------------------------------------------------------------ the modern alternative
@pytest.mark.parametrize("orthogonal_map", ["matrix_exp", "cayley"])
def test_orthogonal_parametrization_keeps_value_stays_unitary_and_learns(orthogonal_map):
    torch.manual_seed(0)
    field = nr.UnitaryField(3, N, bias_init=-0.05)
    model = nr.DiscreteRNN(field.discretize("euler", 1.0), 2)
    before = field.U.detach().clone()
    parametrize_unitary(field, "U", orthogonal_map)
    torch.testing.assert_close(field.U.detach(), before, rtol=0, atol=0)
    assert unitary_parameters(model) == []  # the unconstrained parameter goes to the base optimiser
    opt = FullCapacityOptimizer(model.parameters(), lr_unitary=1e-2, base=torch.optim.Adam, lr=5e-2)
    assert opt.unitary is None
    x, y = _batch(torch.float32)
    first = _model_loss(model, x, y).item()
    for _ in range(60):
        opt.zero_grad()
        with cached():  # map X -> W once per forward, not once per time step
            _model_loss(model, x, y).backward()
        opt.step()
    assert _model_loss(model, x, y).item() < 0.5 * first
    assert (field.U.detach() - before).abs().max() > 0.05
    assert unitarity_error(field.U.detach()) < 1e-5
