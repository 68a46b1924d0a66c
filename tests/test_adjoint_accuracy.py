"""The continuous adjoint checks itself: its backward solve reconstructs the forward's states, the
reconstruction error lands in the solve's Stats, and a large one raises ``AdjointAccuracyWarning``
once per solve specification.  Calibration (docs/GRADIENTS.md): the Antisymmetric Euler regime of
issue 18 must warn (its gradient is >10% off), accurate solves must not (gradient within 1e-3)."""

from __future__ import annotations

import warnings

import pytest
import torch

import neuralode_rnn as nr
import solvers
from solvers.reconstruction import RECONSTRUCTION_TOLERANCE, flush_accuracy_checks, reset_adjoint_warnings
from solvers.terms import FuncTerm


def _grads(model, x, times, y, mode):
    m = model.with_solver(gradient=mode)
    model.zero_grad()
    torch.nn.functional.cross_entropy(m(x, times), y).backward()
    return torch.cat([p.grad.reshape(-1) for p in model.field.parameters()]).clone(), m.stats


def _case(field, method, **opts):
    """Issue 18's setting on a small shape (B=4, T=200, N=32, float32: the same regime as T=784, N=128)."""
    torch.manual_seed(0)
    model = nr.ContinuousRNN(field(32), 10, method=method, **opts)
    x = torch.randn(4, 200, 1)
    times = 0.1 * torch.arange(1, 201, dtype=torch.float32)
    y = torch.randint(0, 10, (4,))
    ref, _ = _grads(model, x, times, y, "backprop")
    reset_adjoint_warnings()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g, stats = _grads(model, x, times, y, "adjoint")
        flush_accuracy_checks()  # the check reads the error after the backward pass (no host read in it)
    warned = [w for w in caught if issubclass(w.category, solvers.AdjointAccuracyWarning)]
    return float((g - ref).norm() / ref.norm()), stats.reconstruction_error, warned, (model, x, times, y)


def test_antisymmetric_euler_warns_naming_mode_error_and_alternatives():
    err, rec, warned, _ = _case(lambda n: nr.AntisymmetricField(1, n), "euler")
    assert err > 0.1  # the regime of the issue: the adjoint's gradient is not the forward's
    assert rec > RECONSTRUCTION_TOLERANCE
    assert len(warned) == 1
    msg = str(warned[0].message)
    assert "gradient='adjoint'" in msg and "'euler'" in msg and f"{rec:.3g}" in msg
    assert "gradient='checkpoint'" in msg and "reversible" in msg


@pytest.mark.parametrize("field", [lambda n: nr.LipschitzField(1, n), lambda n: nr.AntisymmetricField(1, n)],
                         ids=["lipschitz", "antisymmetric"])
def test_accurate_adjoint_is_silent(field):
    err, rec, warned, _ = _case(field, "dopri5", rtol=1e-6, atol=1e-8)
    assert err < 1e-3
    assert rec is not None and rec < 1e-4
    assert warned == []


def test_warns_once_per_model_and_stats_hold_the_error():
    _, rec, warned, (model, x, times, y) = _case(lambda n: nr.AntisymmetricField(1, n), "euler")
    assert len(warned) == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, stats = _grads(model, x, times, y, "adjoint")  # the same model: already warned
        flush_accuracy_checks()
    assert not [w for w in caught if issubclass(w.category, solvers.AdjointAccuracyWarning)]
    assert stats.reconstruction_error == pytest.approx(rec, rel=1e-6)
    _, stats = _grads(model, x, times, y, "backprop")
    assert stats.reconstruction_error is None  # only the adjoint measures it


def test_the_next_solve_warns_without_a_flush():
    """A training loop needs no call: the next solve (its SolveSpec.problem) reads the queued error."""
    _, _, _, (model, x, times, y) = _case(lambda n: nr.AntisymmetricField(1, n), "euler")
    reset_adjoint_warnings()
    m = model.with_solver(gradient="adjoint")
    torch.nn.functional.cross_entropy(m(x, times), y).backward()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m(x, times)
    assert len([w for w in caught if issubclass(w.category, solvers.AdjointAccuracyWarning)]) == 1


def test_generic_adjoint_measures_the_reconstruction():
    """The autograd-VJP adjoint (any term): Euler's backward retrace of a rotation is off by O(h),
    measured against the known exact reconstruction error of one backward Euler step."""
    w = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    term = FuncTerm(lambda t, y: y @ w.T, torch.float64, torch.get_default_device())
    y0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    h = 0.1
    spec = solvers.SolveSpec(method="euler", gradient="adjoint")
    reset_adjoint_warnings()
    sol = spec.solve_with_stats(term, y0, torch.tensor([0.0, h], dtype=torch.float64), params=(w,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sol.ys[-1].sum().backward()
        flush_accuracy_checks()
    # y1 = (I + hW) y0; the backward step gives (I - hW) y1 = (I - h^2 W^2) y0 = (1 + h^2) y0: the error
    # h^2 rms(y0) relative to the largest state's rms, rms(y1) = sqrt(1 + h^2) rms(y0)
    expected = h ** 2 / (1 + h ** 2) ** 0.5
    assert sol.stats.reconstruction_error == pytest.approx(expected, rel=1e-9)
    assert len([w for w in caught if issubclass(w.category, solvers.AdjointAccuracyWarning)]) == 0  # 0.00995 < 1e-2


def test_unitary_adjoint_gives_real_gradients_to_real_parameters_and_matches_backprop():
    """A complex state with real parameters (modReLU's b, the input map): the augmented state is
    complex, the gradients handed back must be real again (this raised in autograd before), and on a
    smooth short solve the adjoint equals backprop to its discretisation error."""
    torch.manual_seed(0)
    field = nr.UnitaryField(2, 6, learn_initial_state=True).double()
    x = torch.randn(3, 5, 2, dtype=torch.float64)
    model = nr.ContinuousRNN(field, 3, method="rk4", step_size=0.02, interpolation="linear").double()
    grads = {}
    for mode in ("backprop", "adjoint"):
        model.zero_grad()
        model.with_solver(gradient=mode)(x).pow(2).sum().backward()
        grads[mode] = {n: p.grad.clone() for n, p in field.named_parameters()}
    for name, p in field.named_parameters():
        ref, got = grads["backprop"][name], grads["adjoint"][name]
        assert got.dtype == p.dtype, name
        assert float((got - ref).norm() / ref.norm()) < 1e-5, name
