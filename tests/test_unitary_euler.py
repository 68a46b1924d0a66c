"""The unitary field's fused Euler loop (``UnitaryField.euler_loop``, ``fields.unitary.euler_steps``): one
autograd Function with a hand-written backward that the driven term calls for fixed-grid Euler solves
under backprop.  Its states are the per-step loop's bit for bit; its gradients equal autograd through
that loop and through a plain complex loop written here (float64, 1e-10), on unit steps (the uRNN
cell), lerp steps, per-sample (index-clock) steps, a learned h0, a blank start (z = 0: modReLU's floor)
and dead units (b < 0); gradcheck in complex128; double backward (the autograd replay) against finite
differences; checkpoint equals backprop; no host read in its loop or its backward."""

from __future__ import annotations

import pytest
import torch

import neuralode_rnn as nr
from neuralode_rnn.fields.unitary import euler_steps, modrelu
from neuralode_rnn.parametrizations import random_unitary

DT = torch.float64
C128 = torch.complex128
B, T, D, N = 3, 12, 2, 5


def _field(bias: float = 0.1, learn: bool = False) -> nr.UnitaryField:
    torch.manual_seed(8)
    field = nr.UnitaryField(D, N, bias_init=bias, learn_initial_state=learn).double()
    field.U.data = random_unitary(N, C128)
    with torch.no_grad():
        field.b.add_(0.2 * torch.randn(N, dtype=DT))  # a spread of biases: live and dead units alike
    return field


def _times(kind: str):
    if kind == "regular":
        return None
    g = torch.Generator().manual_seed(5)
    return torch.cumsum(torch.rand(B, T, generator=g, dtype=DT) * 1.5 + 0.2, 1)


def _loss_grads(model, x, times, trajectory=True):
    out = model.trajectory(x, times) if trajectory else model(x, times)  # every state, or the readout of the last
    real = torch.view_as_real(out) if out.is_complex() else out
    w = torch.linspace(-1, 1, real.numel(), dtype=real.dtype).reshape(real.shape)
    loss = (real * w).sum() + (real ** 2).sum()
    params = [p for p in model.parameters() if p.requires_grad] + [x]
    return out.detach(), torch.autograd.grad(loss, params, allow_unused=True), model.nfe


def _per_step(monkeypatch):
    """The same solves with the field's loop switched off: the driven term's autograd loop of euler_step."""
    monkeypatch.setattr(nr.UnitaryField, "euler_loop", None)


def _assert_grads(got, want, tol=1e-10):
    for a, b in zip(got, want):
        if b is None:
            assert a is None
            continue
        scale = 1 + b.abs().max()
        torch.testing.assert_close(a, b, rtol=0, atol=tol * scale)


@pytest.mark.parametrize("trajectory", [True, False])
@pytest.mark.parametrize("learn", [False, True])
@pytest.mark.parametrize("bias", [0.1, -0.3])
@pytest.mark.parametrize("step_size, times", [(None, "regular"), (0.4, "regular"), (None, "per-sample"),
                                              (0.3, "per-sample")])
def test_fused_loop_equals_the_per_step_loop(step_size, times, bias, learn, trajectory, monkeypatch):
    """States bit for bit, gradients (every parameter and the input) to 1e-10, the same step count.
    Per-sample times run on the index clock (a (B, 1) step per sample): that path crashed before (lerp
    wants its weight in the state's complex dtype)."""
    field = _field(bias, learn)
    model = nr.ContinuousRNN(field, 2, method="euler", step_size=step_size).double()
    x = torch.randn(B, T, D, dtype=DT, requires_grad=True)
    fast = _loss_grads(model, x, _times(times), trajectory)
    _per_step(monkeypatch)
    slow = _loss_grads(model, x, _times(times), trajectory)
    torch.testing.assert_close(fast[0], slow[0], rtol=0, atol=0)
    _assert_grads(fast[1], slow[1])
    assert fast[2] == slow[2]


def _plain_loop(field, x, h0=None):
    """h_k = modReLU(W h_{k-1} + V x_k, b) as a user writes it (the paper's recurrence, step 1)."""
    V = torch.complex(field.input_map.weight[:N], field.input_map.weight[N:])
    h = torch.zeros(x.shape[0], N, dtype=C128) if h0 is None else h0
    states = []
    for k in range(x.shape[1]):
        h = modrelu(h @ field.U.T + x[:, k].to(C128) @ V.T, field.b)
        states.append(h)
    return torch.stack(states, 1)


@pytest.mark.parametrize("start", ["blank", "tiny"])
@pytest.mark.parametrize("bias", [0.1, -0.3])
def test_unit_steps_equal_a_plain_complex_loop(bias, start):
    """The uRNN cell (Euler, step 1) against a plain complex loop: states to 1e-12, gradients of every
    parameter and of the input to 1e-10, with a blank start (zero inputs from h0 = 0: z = 0 exactly) or a
    tiny one (0 < |z| < modReLU's floor, where the floored modulus is a constant), and, for b < 0, dead
    units (relu(|z| + b) = 0)."""
    field = _field(bias)
    x = torch.randn(B, T, D, dtype=DT)
    x[:, :3] = 0.0 if start == "blank" else 1e-9 * x[:, :3]
    x.requires_grad_(True)
    model = nr.ContinuousRNN(field, 2, method="euler").double()
    params = list(field.parameters()) + [x]

    def loss(states):
        real = torch.view_as_real(states)
        return (real * torch.linspace(-1, 1, real.numel(), dtype=DT).reshape(real.shape)).sum() + (real ** 2).sum()

    states = model.trajectory(x)
    want_states = _plain_loop(field, x)
    torch.testing.assert_close(states, want_states, rtol=0, atol=1e-12)
    if start == "blank":
        assert (want_states[:, :3] == 0).all()  # the blank start stays at 0
    else:
        V = torch.complex(field.input_map.weight[:N], field.input_map.weight[N:])
        assert (x[:, 0].to(C128) @ V.T).abs().max() < 1e-5  # the first step's z is below the floor
    if bias < 0:
        assert (want_states[:, 3:] == 0).any()  # some units dead
    got = torch.autograd.grad(loss(states), params)
    want = torch.autograd.grad(loss(_plain_loop(field, x)), params)
    _assert_grads(got, want)
    for g in got:
        assert torch.isfinite(torch.view_as_real(g) if g.is_complex() else g).all()


@pytest.mark.parametrize("dts", ["unit", "floats", "tensors"])
def test_euler_steps_gradcheck(dts):
    """gradcheck of the hand-written backward in h0, the inputs, W and b (complex128 / float64), with
    two outputs (an interior state and the last), away from modReLU's kinks."""
    torch.manual_seed(2)
    S, Bs, Ns = 4, 2, 3
    h0 = (0.5 * torch.randn(Bs, Ns, dtype=C128)).requires_grad_()
    U = torch.randn(S, Bs, Ns, dtype=C128, requires_grad=True)
    W = (random_unitary(Ns, C128) + 0.1 * torch.randn(Ns, Ns, dtype=C128)).requires_grad_()
    b = torch.tensor([0.2, -0.1, 0.05], dtype=DT, requires_grad=True)
    steps = {"unit": [1.0] * S, "floats": [0.5, 0.25, 1.0, 0.7],
             "tensors": [torch.rand(Bs, 1, dtype=DT) * 0.8 + 0.1 for _ in range(S)]}[dts]
    assert torch.autograd.gradcheck(lambda *a: euler_steps(*a, steps, [2, S]), (h0, U, W, b))


def test_euler_steps_checks_its_arguments():
    h0, U = torch.zeros(2, 3, dtype=C128), torch.zeros(4, 2, 3, dtype=C128)
    W, b = torch.eye(3, dtype=C128), torch.zeros(3, dtype=DT)
    with pytest.raises(ValueError, match=r"U \(S, B, N\) = \(len\(dts\), \*h0.shape\) = \(3, \(2, 3\)\); got U of "
                                         r"shape \(4, 2, 3\)"):
        euler_steps(h0, U, W, b, [1.0] * 3, [3])
    with pytest.raises(ValueError, match=r"ends must be increasing step counts in 1..4 ending at 4; got \[2, 1, 4\]"):
        euler_steps(h0, U, W, b, [1.0] * 4, [2, 1, 4])


@pytest.mark.parametrize("step_size, times", [(None, "regular"), (0.4, "regular"), (None, "per-sample")])
def test_double_backward_equals_finite_differences(step_size, times, hessian_vector_and_differences):
    """create_graph=True (a Hessian-vector product) replays the steps with autograd ops: H v equals
    central differences of the gradient along v (complex W moved along a complex direction)."""
    field = _field(0.1)
    model = nr.ContinuousRNN(field, 3, method="euler", step_size=step_size).double()
    x = torch.randn(B, T, D, dtype=DT)
    y = torch.randint(0, 3, (B,))
    t = _times(times)
    params = list(model.parameters())
    g = torch.Generator().manual_seed(3)
    v = [torch.randn(p.shape, dtype=p.dtype, generator=g) for p in params]

    def loss():
        return torch.nn.functional.cross_entropy(model(x, t), y)

    hv, fd = hessian_vector_and_differences(loss, params, v)
    for a, b in zip(hv, fd):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("times", ["regular", "per-sample"])
def test_checkpoint_equals_backprop(times):
    """gradient="checkpoint" (the engine's segments, replayed) gives the fused loop's gradients."""
    grads = {}
    for gradient in ("backprop", "checkpoint"):
        model = nr.ContinuousRNN(_field(0.1), 2, method="euler", gradient=gradient).double()
        torch.manual_seed(1)
        x = torch.randn(B, T, D, dtype=DT, requires_grad=True)
        grads[gradient] = _loss_grads(model, x, _times(times))[1]
    _assert_grads(grads["checkpoint"], grads["backprop"], tol=1e-12)
