"""The bridge: a field integrated on a held input with step eps at times eps*k is the paper's cell.

Each paper recurrence is written out here from its equation, with the parameters read from the
field's raw tensors, and compared with ContinuousRNN.trajectory to 1e-12 (float64).
"""

import copy
import math
import warnings

import pytest
import torch

import neuralode_rnn as nr
import solvers

EPS = 0.1
B, T, D, N = 3, 7, 2, 5


# ------------------------------------------------------------------ the papers' right-hand sides
def lipschitz_f(field):
    I = torch.eye(N, dtype=torch.float64)
    MA, MW, beta = field.M_A, field.M_W, field.beta_A
    A = (1 - beta) * (MA + MA.T) + beta * (MA - MA.T) - field.gamma_A * I
    W = (1 - beta) * (MW + MW.T) + beta * (MW - MW.T) - field.gamma_W * I
    U, b = field.input_map.weight, field.input_map.bias
    return lambda h, x: h @ A.T + torch.tanh(h @ W.T + x @ U.T + b)


def antisymmetric_f(field):
    I = torch.eye(N, dtype=torch.float64)
    Wg = field.M - field.M.T - field.gamma * I
    V, b = field.input_map.weight, field.input_map.bias
    if not field.gated:
        return lambda h, x: torch.tanh(h @ Wg.T + x @ V.T + b)
    Vh, Vz, bh, bz = V[:N], V[N:], b[:N], b[N:]
    return lambda h, x: torch.sigmoid(h @ Wg.T + x @ Vz.T + bz) * torch.tanh(h @ Wg.T + x @ Vh.T + bh)


def ctrnn_f(field):
    W, U, b = field.M, field.input_map.weight, field.input_map.bias
    return lambda h, x: -h + torch.tanh(h @ W.T + x @ U.T + b)


def modrelu_ref(z, b):
    mag = z.abs()
    return z * torch.relu(mag + b) / mag


def unitary_f(field):
    W = field.U
    V = torch.complex(field.input_map.weight[:N], field.input_map.weight[N:])
    return lambda h, x: -h + modrelu_ref(h @ W.T + x.to(h.dtype) @ V.T, field.b)


# ------------------------------------------------------------------ the schemes, written out
def euler(f, h, x, e):
    return h + e * f(h, x)


def midpoint(f, h, x, e):
    return h + e * f(h + 0.5 * e * f(h, x), x)


def heun(f, h, x, e):
    k1 = f(h, x)
    k2 = f(h + e * k1, x)
    return h + 0.5 * e * (k1 + k2)


def rk4_classic(f, h, x, e):
    k1 = f(h, x)
    k2 = f(h + 0.5 * e * k1, x)
    k3 = f(h + 0.5 * e * k2, x)
    k4 = f(h + e * k3, x)
    return h + e / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def rk4_38(f, h, x, e):
    """Kutta's 3/8 rule: what "rk4" means here, as in torchdiffeq."""
    k1 = f(h, x)
    k2 = f(h + e * k1 / 3, x)
    k3 = f(h + e * (k2 - k1 / 3), x)
    k4 = f(h + e * (k1 - k2 + k3), x)
    return h + e / 8 * (k1 + 3 * k2 + 3 * k3 + k4)


SCHEMES = {"euler": euler, "midpoint": midpoint, "heun": heun, "rk4": rk4_38, "rk4_classic": rk4_classic}

FAMILIES = {
    "lipschitz": (lambda: nr.LipschitzField(D, N, beta=0.7, gamma_A=0.05, gamma_W=0.02, init_std=3.0), lipschitz_f),
    "antisymmetric": (lambda: nr.AntisymmetricField(D, N, gamma=0.1), antisymmetric_f),
    "antisymmetric-gated": (lambda: nr.AntisymmetricField(D, N, gamma=0.1, gated=True), antisymmetric_f),
    "ctrnn": (lambda: nr.CTRNNField(D, N), ctrnn_f),
    "unitary": (lambda: nr.UnitaryField(D, N, bias_init=-0.1), unitary_f),
}


def _make(family):
    build, ref = FAMILIES[family]
    field = build().double()
    if family == "unitary":
        field.U.data = field.U.data.to(torch.complex128)
    return field, ref(field)


def _recurrence(f, x, e, scheme, complex_state=False):
    dtype = torch.complex128 if complex_state else torch.float64
    h = torch.zeros(x.shape[0], N, dtype=dtype)
    out = []
    for k in range(x.shape[1]):
        h = scheme(f, h, x[:, k], e)
        out.append(h)
    return torch.stack(out, 1)


@pytest.mark.parametrize("method", list(SCHEMES))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_continuous_on_hold_input_is_the_paper_recurrence(family, method):
    field, f = _make(family)
    x = torch.randn(B, T, D, dtype=torch.float64)
    times = EPS * torch.arange(1, T + 1, dtype=torch.float64)
    model = nr.ContinuousRNN(field, 3, method=method, step_size=EPS, interpolation="hold").double()
    with torch.no_grad():
        got = model.trajectory(x, times)
        want = _recurrence(f, x, EPS, SCHEMES[method], field.is_complex)
        disc = nr.DiscreteRNN(field.discretize(method, EPS), 3).double().trajectory(x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    torch.testing.assert_close(disc, want, rtol=0, atol=1e-12)


def test_unitary_euler_with_unit_step_is_the_urnn():
    field, _ = _make("unitary")
    x = torch.randn(B, T, D, dtype=torch.float64)
    V = torch.complex(field.input_map.weight[:N], field.input_map.weight[N:])
    h = torch.zeros(B, N, dtype=torch.complex128)
    want = []
    with torch.no_grad():
        for k in range(T):
            h = modrelu_ref(h @ field.U.T + x[:, k].to(h.dtype) @ V.T, field.b)
            want.append(h)
        got = nr.ContinuousRNN(field, 2, method="euler").double().trajectory(x)
    torch.testing.assert_close(got, torch.stack(want, 1), rtol=0, atol=1e-12)


def test_step_size_substeps_equal_a_finer_discrete_rnn():
    """step_size = eps/4 with samples every eps: four held sub-steps per sample."""
    field, f = _make("lipschitz")
    x = torch.randn(B, T, D, dtype=torch.float64)
    times = EPS * torch.arange(1, T + 1, dtype=torch.float64)
    with torch.no_grad():
        got = nr.ContinuousRNN(field, 2, method="midpoint", step_size=EPS / 4).double().trajectory(x, times)
        want = _recurrence(f, x.repeat_interleave(4, 1), EPS / 4, midpoint)[:, 3::4]
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("interpolation", ["linear", "cubic", "natural"])
def test_smooth_inputs_converge_to_the_same_solution_across_solvers(interpolation):
    field, _ = _make("lipschitz")
    x = torch.randn(2, 6, D, dtype=torch.float64)
    with torch.no_grad():
        ref = nr.ContinuousRNN(field, 2, method="dopri5", interpolation=interpolation, rtol=1e-11,
                               atol=1e-12).double().trajectory(x)
        errs = []
        for h in (0.05, 0.025):
            m = nr.ContinuousRNN(field, 2, method="rk4", step_size=h, interpolation=interpolation).double()
            errs.append((m.trajectory(x) - ref).abs().max().item())
    assert errs[1] < 1e-6
    # the path is smooth between knots and the grid is knot-aligned, so RK4 keeps order 4
    assert abs(math.log2(errs[0] / errs[1]) - 4) < 0.15


def test_adjoint_gradients_equal_backprop():
    torch.manual_seed(1)
    field = nr.LipschitzField(D, N, init_std=2.0).double()
    x = torch.randn(B, 5, D, dtype=torch.float64)
    y = torch.randint(0, 3, (B,))
    grads = {}
    for gradient in ("backprop", "adjoint"):
        model = nr.ContinuousRNN(field, 3, method="dopri5", interpolation="cubic", rtol=1e-10, atol=1e-12,
                                 gradient=gradient).double()
        torch.manual_seed(2)
        model.readout.reset_parameters()
        field.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        grads[gradient] = [p.grad.clone() for p in field.parameters()]
    for a, b in zip(grads["backprop"], grads["adjoint"]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)
    assert all(g.abs().sum() > 0 for g in grads["adjoint"])  # input map included


@pytest.mark.parametrize("family", ["lipschitz", "antisymmetric-gated", "unitary"])
def test_gradcheck_through_continuous_model(family):
    field, _ = _make(family)
    x = torch.randn(2, 4, D, dtype=torch.float64, requires_grad=True)
    model = nr.ContinuousRNN(field, 2, method="midpoint", interpolation="linear").double()
    assert torch.autograd.gradcheck(lambda v: model(v), (x,))


@pytest.mark.parametrize("family", ["lipschitz", "antisymmetric", "ctrnn", "unitary"])
def test_gradcheck_field_rhs(family):
    field, _ = _make(family)
    dtype = torch.complex128 if field.is_complex else torch.float64
    h = torch.randn(2, N, dtype=dtype, requires_grad=True)
    u = torch.randn(2, field.input_map.out_features, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(field.rhs, (h, u))


@pytest.mark.parametrize("method,step_size,tol", [("euler", None, 1e-12), ("rk4", None, 1e-12),
                                                  ("dopri5", None, 1e-7)])
@pytest.mark.parametrize("interpolation", ["hold", "cubic"])
def test_per_sample_times_equal_each_sample_alone(method, step_size, tol, interpolation):
    field, _ = _make("lipschitz")
    x = torch.randn(3, 6, D, dtype=torch.float64)
    g = torch.Generator(torch.get_default_device()).manual_seed(3)
    times = torch.cumsum(torch.rand(3, 6, generator=g, dtype=torch.float64) * 0.3 + 0.05, 1)
    model = nr.ContinuousRNN(field, 2, method=method, step_size=step_size, interpolation=interpolation,
                             rtol=1e-10, atol=1e-12).double()
    with torch.no_grad():
        both = model.trajectory(x, times)
        for b in range(3):
            alone = model.trajectory(x[b:b + 1], times[b])
            torch.testing.assert_close(both[b:b + 1], alone, rtol=0, atol=tol)


def test_per_sample_times_with_step_size_converge_to_each_sample_alone():
    field, _ = _make("lipschitz")
    x = torch.randn(2, 5, D, dtype=torch.float64)
    times = torch.tensor([[0.1, 0.2, 0.5, 0.6, 0.9], [0.2, 0.25, 0.3, 0.7, 0.8]], dtype=torch.float64)
    with torch.no_grad():
        both = nr.ContinuousRNN(field, 2, method="rk4_classic", step_size=0.01, interpolation="linear").double()
        exact = nr.ContinuousRNN(field, 2, method="dopri5", rtol=1e-11, atol=1e-12, interpolation="linear").double()
        got = both.trajectory(x, times)
        for b in range(2):
            alone = both.trajectory(x[b:b + 1], times[b])
            ref = exact.trajectory(x[b:b + 1], times[b])
            # the batch takes at least as many steps per gap as the sample alone: no less accurate
            err_both, err_alone = (got[b:b + 1] - ref).abs().max(), (alone - ref).abs().max()
            assert err_both <= err_alone * 1.01 + 1e-12
            assert err_alone < 1e-6


def test_readout_reads_the_last_observed_step():
    field, _ = _make("lipschitz")
    model = nr.ContinuousRNN(field, 4).double()
    x = torch.randn(2, 6, D, dtype=torch.float64)
    x[1, 4:] = float("nan")
    with torch.no_grad():
        states = model.trajectory(x)
        out = model(x)
        short = model(x[1:, :4])
    torch.testing.assert_close(out[0], model.readout(states[0, -1]))
    torch.testing.assert_close(out[1:], short, rtol=0, atol=1e-12)


def test_float32_runs_and_is_close_to_float64():
    field = nr.LipschitzField(D, N)
    model = nr.ContinuousRNN(field, 3, method="rk4")
    x = torch.randn(B, T, D)
    out32 = model(x)
    assert out32.dtype == torch.float32
    out64 = model.double()(x.double())
    torch.testing.assert_close(out32.double(), out64, rtol=1e-4, atol=1e-5)


def test_lipschitz_matrices_have_the_symmetric_skew_structure():
    f = nr.LipschitzField(2, 6, beta=1.0, gamma_A=0.3, gamma_W=0.0)
    A = f.A.detach()
    torch.testing.assert_close(A + A.T, -0.6 * torch.eye(6))  # beta = 1: skew minus gamma I
    assert f.input_map.in_features == 2 and f.input_map.out_features == 6
    g = nr.AntisymmetricField(2, 6, gamma=0.2).W.detach()
    torch.testing.assert_close(torch.linalg.eigvals(g).real, torch.full((6,), -0.2), rtol=0, atol=1e-5)


def test_nfe_is_counted():
    model = nr.ContinuousRNN(nr.CTRNNField(D, N), 2, method="rk4")
    model(torch.randn(2, 5, D))
    assert model.nfe == 4 * 5  # four stages a step, five steps, nothing else
    model = nr.ContinuousRNN(nr.UnitaryField(D, N), 2, method="heun3")  # the generic driven term
    model(torch.randn(2, 5, D))
    assert model.nfe == 3 * 5


# ------------------------------------------------------------------------------------ one input reader
D64 = torch.float64


@pytest.mark.parametrize("interpolation", ["hold", "cubic"])
@pytest.mark.parametrize("times", ["shared", "per_sample"])
@pytest.mark.parametrize("field_cls", [nr.LipschitzField, nr.CTRNNField, nr.UnitaryField])
def test_driven_by_reads_what_the_path_evaluates(field_cls, times, interpolation):
    """driven_by is the solvers' driven term over ``Path.input`` (no reader of its own): at knots and
    inside pieces, on the real-time clock (shared or per-sample knots) and the index clock, it reads
    input_map(x.evaluate(t)), with the clock rules of ``paths``."""
    torch.manual_seed(0)
    field = field_cls(D, N).to(D64)
    t = torch.cumsum(torch.rand(B, T, dtype=D64) + 0.2, 1) + 1.7e9
    path = nr.interpolate(torch.randn(B, T, D, dtype=D64), t if times == "per_sample" else t[0], interpolation)
    g = field.driven_by(path)
    assert isinstance(g.term, solvers.DrivenTerm) and isinstance(g.term.inputs, solvers.PiecewiseInput)
    for s in (t[0, 0] - 1.0, t[0, 0], t[0, 2], 0.5 * (t[0, 3] + t[0, 4]), t[0, -1] + 2.0):
        want = field.input_map(path.evaluate(s))
        torch.testing.assert_close(g.input_at(s), want, rtol=0, atol=1e-12)
        torch.testing.assert_close(field.driven_by(path, project=False).input_at(s), want, rtol=0, atol=1e-12)
    if times == "per_sample":
        gi = field.driven_by(path, clock="index")
        gaps = path.gaps()
        for s in (-1.0, 0.0, 2.0, 2.25, T - 1.0, T + 1.0):
            j = math.ceil(s) - 1  # the piece of index-clock time s, and each sample's time there from its t_1
            rel = path.relative()
            real = rel.knots[:, 0] if j < 0 else rel.knots[:, -1] + 1 if j >= T - 1 else \
                rel.knots[:, j] + (s - j) * gaps[:, j]
            want = field.input_map(rel.evaluate(real.unsqueeze(1))[:, 0])
            torch.testing.assert_close(gi.input_at(s), want, rtol=0, atol=1e-12)
            rate = gaps[:, min(max(j, 0), T - 2)].to(D64).unsqueeze(1)  # dt/ds: the piece's length
            h = field.initial_state(B, D64) + 0.1
            torch.testing.assert_close(gi(s, h), field.rhs(h, gi.input_at(s).to(h.real.dtype)
                                                          if not field.is_complex else gi.term.input_at(s)) * rate,
                                       rtol=0, atol=1e-12)


@pytest.mark.parametrize("times", ["shared", "per_sample"])
def test_driven_by_under_torchdiffeq_is_the_models_solve(times):
    """The same term under torchdiffeq.odeint (one midpoint step per gap, from one gap before the first
    sample) gives the ContinuousRNN's states to 1e-12; odeint_adjoint's gradients reach the input map."""
    torchdiffeq = pytest.importorskip("torchdiffeq")
    torch.manual_seed(1)
    field = nr.CTRNNField(D, N).to(D64)
    t = 0.1 * torch.cumsum(torch.rand(B, T, dtype=D64) + 0.2, 1)  # short gaps: the adjoint's error is small
    t = t if times == "per_sample" else t[0]
    values = torch.randn(B, T, D, dtype=D64)
    model = nr.ContinuousRNN(field, 2, method="midpoint", interpolation="cubic")
    want = model.trajectory(values, t)
    path = model.path(values, t)
    if times == "shared":
        g = field.driven_by(path.relative())
        grid = torch.cat([(2 * t[:1] - t[1:2]), t]) - t[0]
    else:
        g = field.driven_by(path, clock="index")
        grid = torch.arange(-1, T, dtype=D64)
    h0 = field.initial_state(B, D64)
    # perturb: stages on a step's ends read the step's own piece (the index clock's rate jumps at knots)
    got = torchdiffeq.odeint(g, h0, grid, method="midpoint", options=dict(perturb=True))[1:].transpose(0, 1)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    model.trajectory(values, t)[:, -1].sum().backward()
    want = [p.grad.clone() for p in field.parameters()]
    got = {}
    for project in (True, False):  # project=True: the projection cached in the no-grad forward is rebuilt
        field.zero_grad()
        g = field.driven_by(path.relative() if times == "shared" else path,
                            clock="time" if times == "shared" else "index", project=project)
        out = torchdiffeq.odeint_adjoint(g, h0, grid, method="midpoint", options=dict(perturb=True),
                                         adjoint_params=tuple(field.parameters()))
        out[-1].sum().backward()
        got[project] = [p.grad.clone() for p in field.parameters()]
    for a, b, c in zip(want, got[True], got[False]):
        assert a.abs().max() > 1e-3  # the input map's gradients too
        torch.testing.assert_close(b, c, rtol=0, atol=1e-12)
        # the continuous adjoint of one midpoint step per gap: the discrete gradient up to its error (~5%)
        torch.testing.assert_close(b, a, rtol=0, atol=0.1 * a.abs().max())


def test_driven_by_refuses_a_nan_time():
    g = nr.LipschitzField(D, N).driven_by(nr.interpolate(torch.randn(2, 5, D)))
    with pytest.raises(ValueError, match="t must be a time, not NaN"):
        g(torch.tensor(float("nan")), torch.zeros(2, N))


# ------------------------------------------------------------------------------------ errors
def test_error_wrong_channel_count():
    model = nr.ContinuousRNN(nr.LipschitzField(3, N), 2)
    with pytest.raises(ValueError, match=r"values must have 3 channels .* got shape \(2, 5, 2\)"):
        model(torch.randn(2, 5, 2))


def test_error_hidden_state_shape():
    model = nr.ContinuousRNN(nr.LipschitzField(D, N), 2)
    with pytest.raises(ValueError, match=r"h0 must have shape \(batch, hidden_size\) = \(2, 5\); got \(2, 4\)"):
        model(torch.randn(2, 5, D), h0=torch.zeros(2, 4))
    g = nr.LipschitzField(D, N).driven_by(nr.interpolate(torch.randn(2, 5, D)))
    with pytest.raises(ValueError, match=r"hidden state must have shape \(batch, hidden_size\) = \(2, 5\)"):
        g(torch.tensor(1.0), torch.zeros(3, 5))


def test_error_unknown_method_and_interpolation():
    with pytest.raises(ValueError, match="unknown method 'rk5'; expected one of the Runge-Kutta methods .*dopri5.*euler"):
        nr.ContinuousRNN(nr.LipschitzField(D, N), 2, method="rk5")
    with pytest.raises(ValueError, match="unknown method 'scipy_solver'; expected one of the Runge-Kutta methods"):
        nr.ContinuousRNN(nr.LipschitzField(D, N), 2, method="scipy_solver")  # not a Runge-Kutta method
    with pytest.raises(ValueError, match="unknown interpolation 'spline'"):
        nr.ContinuousRNN(nr.LipschitzField(D, N), 2, interpolation="spline")


def test_error_gradient_modes():
    with pytest.raises(ValueError, match="unknown gradient 'exact'; expected one of adjoint, backprop, checkpoint"):
        nr.ContinuousRNN(nr.LipschitzField(D, N), 2, gradient="exact")
    with pytest.raises(ValueError, match="adjoint=True is shorthand for gradient='adjoint' but gradient='backprop'"):
        nr.ContinuousRNN(nr.LipschitzField(D, N), 2, adjoint=True, gradient="backprop")


def test_error_field_arguments():
    with pytest.raises(ValueError, match="hidden_size must be a positive int; got 0"):
        nr.LipschitzField(2, 0)
    with pytest.raises(ValueError, match=r"beta_A must lie in \[0, 1\]; got 1.5"):
        nr.LipschitzField(2, 3, beta=1.5)
    with pytest.raises(ValueError, match="the path has 3 channels but the field expects input_size = 2"):
        nr.LipschitzField(2, 3).driven_by(nr.interpolate(torch.randn(1, 4, 3)))


def test_error_integer_values_through_the_model():
    with pytest.raises(TypeError, match="values must have a floating dtype"):
        nr.ContinuousRNN(nr.LipschitzField(1, N), 2)(torch.ones(2, 3, 1, dtype=torch.int32))


def test_a_registered_gradient_mode_reaches_the_model():
    """One registry: a mode added with solvers.register_gradient_mode is a ContinuousRNN option too."""
    seen = []

    def counting(problem):
        seen.append(problem.plan.tab.name)
        return solvers.GRADIENT_MODES["backprop"](problem)

    solvers.register_gradient_mode("counting", counting)
    try:
        model = nr.ContinuousRNN(nr.LipschitzField(D, N), 2, method="midpoint", gradient="counting")
        model(torch.randn(2, 5, D)).sum().backward()
        assert seen == ["midpoint"] and model.field.M_W.grad is not None
    finally:
        del solvers.GRADIENT_MODES["counting"]


# ------------------------------------------------------------------ inputs at the models' entry points
def _models():
    torch.manual_seed(0)
    lip = nr.LipschitzField(D, N)
    return {
        "continuous": nr.ContinuousRNN(lip, 3, method="midpoint"),
        "adaptive": nr.ContinuousRNN(nr.CTRNNField(D, N), 3, method="dopri5"),
        "unitary": nr.ContinuousRNN(nr.UnitaryField(D, N), 3),
        "discrete": nr.DiscreteRNN(lip.discretize("euler", 0.5), 3),
        "torch": nr.TorchRNN("gru", D, N, 3),
        "noisy": nr.StochasticRNN(nr.CTRNNField(D, N), 3, sigma=0.1).eval(),
    }


@pytest.mark.parametrize("kind", list(_models()))
def test_an_empty_batch_gives_empty_results(kind):
    """Edge (issue 12): an empty batch failed with "max() arg is an empty sequence"."""
    model = _models()[kind]
    values = torch.zeros(0, T, D)
    assert model(values).shape == (0, 3)
    states = model.trajectory(values)
    assert states.shape[:2] == (0, T)


@pytest.mark.parametrize("kind", list(_models()))
def test_unbatched_values_are_read_as_torch_nn_rnn_reads_them(kind):
    """Edge (issue 12): values (T, D) without a batch axis failed with "expanded size must match"."""
    model = _models()[kind]
    values = torch.randn(T, D)
    times = None if kind in ("discrete", "torch") else 0.3 * torch.arange(1, T + 1, dtype=torch.float32)
    batched = model(values.unsqueeze(0), times)
    assert model(values, times).shape == (3,)
    torch.testing.assert_close(model(values, times), batched[0], rtol=0, atol=0)
    torch.testing.assert_close(model.trajectory(values, times), model.trajectory(values.unsqueeze(0), times)[0],
                               rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"unbatched values \(T, D\)|shape \(batch, time, channels\)"):
        model(values, torch.ones(2, T)) if kind not in ("discrete", "torch") else model(values.reshape(-1))


def test_unbatched_h0_and_wrong_shapes():
    model = _models()["continuous"]
    values, h0 = torch.randn(T, D), torch.randn(N)
    torch.testing.assert_close(model(values, h0=h0), model(values.unsqueeze(0), h0=h0.unsqueeze(0))[0])
    with pytest.raises(ValueError, match=r"h0 must be unbatched too, shape \(hidden_size,\)"):
        model(values, h0=h0.unsqueeze(0))
    with pytest.raises(ValueError, match=r"\(batch, time, channels\) or unbatched \(time, channels\); got shape \(7,\)"):
        model(values[:, 0])


@pytest.mark.parametrize("kind", list(_models()))
def test_values_of_another_dtype_are_cast_to_the_models(kind):
    """Edge (issue 12): float64 values into a float32 model failed with "mat1 and mat2 must have the same dtype"."""
    model = _models()[kind]
    values = torch.randn(2, T, D, dtype=torch.float64)
    out = model(values)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, model(values.float()), rtol=0, atol=0)
    with pytest.raises(TypeError, match="floating dtype"):
        model(values.long())


def test_nan_times_are_refused_by_the_models():
    model = _models()["continuous"]
    times = torch.arange(1.0, T + 1)
    times[2] = float("nan")
    with pytest.raises(ValueError, match=r"times must be finite; got times\[2\] = nan"):
        model(torch.randn(2, T, D), times)


@pytest.mark.parametrize("cast", ["to", "double"])
def test_a_unitary_model_stays_complex_under_a_dtype_cast(cast):
    """Edge (issue 12): model.to(torch.float64) on a unitary model dropped W's imaginary part."""
    torch.manual_seed(0)
    model = nr.ContinuousRNN(nr.UnitaryField(D, N, learn_initial_state=True), 3)
    U, h0 = model.field.U.detach().clone(), model.field.h0.detach().clone()
    values = torch.randn(2, T, D, dtype=torch.float64)
    before = model(values)
    model = model.to(torch.float64) if cast == "to" else model.double()
    assert model.field.U.dtype == model.field.h0.dtype == torch.complex128
    assert model.field.b.dtype == model.readout.weight.dtype == torch.float64
    torch.testing.assert_close(model.field.U.detach(), U.to(torch.complex128), rtol=0, atol=0)
    torch.testing.assert_close(model.field.h0.detach(), h0.to(torch.complex128), rtol=0, atol=0)
    after = model(values)
    assert after.dtype == torch.float64
    torch.testing.assert_close(after, before.double(), rtol=1e-4, atol=1e-5)  # float32 -> float64 rounding only
    back = model.float()
    assert back.field.U.dtype == torch.complex64 and float(back.field.U.detach().imag.abs().max()) > 0.01
    with pytest.raises(TypeError, match="no complex dtype with torch.bfloat16 parts"):
        model.to(torch.bfloat16)


@pytest.mark.parametrize("cast", ["to", "double"])
def test_a_bare_unitary_field_stays_complex_under_a_dtype_cast(cast):
    """A field on its own (not inside a model) keeps its complex W too: ``field.to(torch.float64)`` used to
    cast W to a real matrix (its imaginary part discarded, with a warning)."""
    torch.manual_seed(0)
    field = nr.UnitaryField(D, N)
    U = field.U.detach().clone()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        field = field.to(torch.float64) if cast == "to" else field.double()
    assert field.U.dtype == torch.complex128 and field.input_map.weight.dtype == torch.float64
    torch.testing.assert_close(field.U.detach(), U.to(torch.complex128), rtol=0, atol=0)
    assert float(field.U.detach().imag.abs().max()) > 0.01


def test_impossible_tolerances_are_refused_at_once():
    """Edge (issue 12): dopri5 at rtol 1e-14, atol 1e-16 on a float32 batch ran for minutes."""
    model = nr.ContinuousRNN(nr.LipschitzField(D, N), 2, method="dopri5", rtol=1e-14, atol=1e-16)
    with pytest.raises(ValueError, match="rtol = 1e-14 and atol = 1e-16 ask for errors a float32 state cannot resolve"):
        model(torch.randn(2, 5, D))
    # the same tolerances in float64 are within reach
    model.double()(torch.randn(2, 5, D, dtype=torch.float64))


def test_step_limit_stops_a_runaway_solve():
    model = nr.ContinuousRNN(nr.LipschitzField(D, N), 2, method="euler", step_size=1e-6, max_steps=1000)
    with pytest.raises(solvers.StepLimitError, match="needs .* steps, more than max_steps = 1000"):
        model(torch.randn(2, 5, D))


# ------------------------------------------------------------------ issue 16: clocks, non-finite states, errors
def _epoch_times(base: float, shape, seed: int = 5) -> torch.Tensor:
    """base + cumulative gaps of 0.1-3 units, float64: epoch seconds (base 1.7e9) or epoch hours."""
    g = torch.Generator(torch.get_default_device()).manual_seed(seed)
    return base + torch.cumsum(0.1 + 2.9 * torch.rand(*shape, generator=g, dtype=torch.float64), -1)


@pytest.mark.parametrize("base", [1.7e9, 1.7e9 / 3600])  # epoch seconds, epoch hours
@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-sample"])
@pytest.mark.parametrize("method,interpolation", [("euler", "hold"), ("rk4", "cubic"), ("dopri5", "hold"),
                                                  ("dopri5", "cubic")])
def test_absolute_timestamps_give_the_logits_of_the_series_shifted_to_zero(base, shared, method, interpolation):
    """Issue 16 item 4: float64 epoch timestamps were cast to the float32 model first; 1.7e9 + 0.1
    merged with 1.7e9 ("times[1] = 1700000000.0 <= times[0]") and epoch-hour gaps shrank (logits moved
    by 0.28).  Now the clock stays float64 and starts at the first sample: the logits are those of the
    same series with its times shifted to start at 0, exactly, and those of float32 relative times to
    float32 rounding (fixed steps)."""
    torch.manual_seed(0)
    model = nr.ContinuousRNN(nr.LipschitzField(D, N), 3, method=method, interpolation=interpolation)
    x = torch.randn(B, 12, D)
    times = _epoch_times(base, (12,) if shared else (B, 12))
    shifted = times - times[..., :1]  # exact in float64
    with torch.no_grad():
        out = model(x, times)
        torch.testing.assert_close(out, model(x, shifted), rtol=0, atol=0)
        if method != "dopri5":  # an adaptive step sequence may jump with float32 rounding of the times
            torch.testing.assert_close(out, model(x, shifted.float()), rtol=0, atol=1e-4)
        # batched (B, T) and a (T,) row: the same clock rule
        torch.testing.assert_close(model.trajectory(x[:1], times[0] if not shared else times),
                                   model.trajectory(x[:1], shifted[0] if not shared else shifted), rtol=0, atol=0)


def test_strictly_increasing_epoch_times_are_not_merged_by_a_float32_cast():
    """Issue 16 item 4: validated in float64, so 1e8 and 1e8 + 1 stay distinct for a float32 model,
    and the path keeps the exact float64 gaps (0.1829 h stayed 0.1829, not 0.1562)."""
    x = torch.randn(2, 3, D)
    times = torch.tensor([1e8, 1e8 + 1, 1e8 + 2.5], dtype=torch.float64)
    nr.ContinuousRNN(nr.LipschitzField(D, N), 2)(x, times)  # no "times[1] = 1e8 <= times[0] = 1e8"
    hours = torch.tensor([472222.0, 472222.1829, 472222.5], dtype=torch.float64)
    path = nr.interpolate(x, hours, "linear")
    assert path.knots.dtype == torch.float64
    torch.testing.assert_close(path.gaps(), hours.diff(), rtol=0, atol=0)
    torch.testing.assert_close(path.evaluate(hours[1]), x[:, 1], rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"times\[2\] = 100000001.0 <= times\[1\] = 100000001.0"):
        nr.interpolate(x, torch.tensor([1e8, 1e8 + 1, 1e8 + 1], dtype=torch.float64))


def test_noisy_and_training_clocks_keep_absolute_timestamps():
    """Issue 16 item 4, the other consumers: the SDE model's clock, the training objective's times,
    a DiscreteRNN's even-spacing check and the time features difference in float64."""
    from neuralode_rnn.training.objective import model_times

    torch.manual_seed(0)
    x = torch.randn(2, 6, D)
    times = _epoch_times(1.7e9, (6,))
    sde = nr.StochasticRNN(nr.LipschitzField(D, N), 2, sigma=0.0).train()
    torch.testing.assert_close(sde(x, times), sde(x, times - times[0]), rtol=0, atol=1e-6)
    model = nr.ContinuousRNN(nr.LipschitzField(D, N), 2)
    assert model_times(model, x, times.float(), 1.0).dtype == torch.float64
    even = 1.7e9 + 0.5 * torch.arange(6, dtype=torch.float64)
    cell = nr.DiscreteRNN(nr.LipschitzField(D, N).discretize("euler", 0.5), 2)
    torch.testing.assert_close(cell(x, even), cell(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="evenly spaced"):
        cell(x, times)
    feats = nr.inputs.time_features(x, times, "time", time_scale=1.0)
    assert feats.dtype == torch.float32
    gaps = nr.inputs.step_gaps(x, times)
    torch.testing.assert_close(gaps[0, 1:], times.diff().float(), rtol=0, atol=0)


def test_a_non_finite_h0_is_refused_by_every_model():
    """Issue 16 item 5: an h0 holding NaN gave NaN logits with no error (solvers.odeint refuses a NaN y0)."""
    x = torch.randn(2, T, D)
    h0 = torch.zeros(2, N)
    h0[1, 3] = float("nan")
    field = nr.LipschitzField(D, N)
    for model in (nr.ContinuousRNN(field, 2), nr.DiscreteRNN(field.discretize("euler", 0.1), 2),
                  nr.StochasticRNN(field, 2, sigma=0.1).train()):
        with pytest.raises(ValueError, match=r"h0 must be finite; got h0\[1, 3\] = nan"):
            model(x, h0=h0)
    h0[1, 3] = float("inf")
    with pytest.raises(ValueError, match=r"h0 must be finite; got h0\[1, 3\] = inf"):
        nr.ContinuousRNN(field, 2).trajectory(x, h0=h0)
    with pytest.raises(ValueError, match=r"h0 must be finite; got h0\[0, 1, 3\] = inf"):
        nr.TorchRNN("gru", D, N, 2)(x, h0=h0.unsqueeze(0))


@pytest.mark.parametrize("method,step_size", [("euler", None), ("rk4", 1e11)])
def test_an_unstable_step_stops_with_the_step_and_what_to_try(method, step_size):
    """Issue 16 item 5: Euler over gaps of 1e12 returned NaN logits silently.  Now the model checks
    its states once after the solve and names the step it took and what to try."""
    model = nr.ContinuousRNN(nr.LipschitzField(D, N), 2, method=method, step_size=step_size)
    x = torch.randn(2, 6, D)
    times = 1e12 * torch.arange(1, 7, dtype=torch.float64)
    largest = "1e\\+12" if step_size is None else "1e\\+11"
    with pytest.raises(solvers.NonFiniteStateError,
                       match=rf"ContinuousRNN: the hidden state is not finite \(NaN or inf\) at sample \d, time step "
                             rf"\d: the fixed-step method '{method}' took steps up to {largest} .* try a smaller "
                             rf"step_size .*method='dopri5'"):
        model(x, times)
    model(x, times / 1e12)  # the same model on gaps of 1 is fine
    # a study that measures the divergence (analysis.compare_solvers) asks for the states as they are
    states = model.solve_path(model.path(x, times), check_finite=False)
    assert not bool(torch.isfinite(states).all())


def test_a_discrete_model_with_an_unstable_step_or_broken_parameters_stops():
    """Issue 16 item 5, the discrete twin and a diverged optimiser step (NaN parameters)."""
    field = nr.LipschitzField(D, N, gamma_A=5.0)
    x = torch.randn(2, 40, D)
    with pytest.raises(solvers.NonFiniteStateError, match=r"DiscreteRNN: .* eps = 100 is most likely beyond its "
                                                           r"stability limit"):
        nr.DiscreteRNN(field.discretize("euler", 100.0), 2)(x)
    model = nr.ContinuousRNN(nr.LipschitzField(D, N), 2)
    with torch.no_grad():
        model.field.M_A[0, 0] = float("nan")
    with pytest.raises(solvers.NonFiniteStateError, match=r"the parameters field.M_A are not finite \(a diverged "
                                                           r"optimiser step"):
        model(x)


def test_model_arguments_are_checked_where_the_model_is_made():
    """Issue 16 item 9: ContinuousRNN(rtol=-1) was accepted (and step_size=inf, True); issue 17: the
    solver settings are checked once, by solvers.SolveSpec, with its messages."""
    f = nr.LipschitzField(D, N)
    for kw, msg in [(dict(rtol=-1), r"rtol must be a non-negative finite number; got rtol = -1"),
                    (dict(atol=float("nan")), r"atol must be a non-negative finite number; got atol = nan"),
                    (dict(rtol=0, atol=0), r"rtol and atol must not both be 0"),
                    (dict(step_size=0.0), r"step_size must be None or a positive finite number; got step_size = 0.0"),
                    (dict(step_size=float("inf")), r"step_size must be None or a positive finite number; got "
                                                   r"step_size = inf"),
                    (dict(step_size=-0.1), r"step_size must be None or a positive finite number; got step_size = -0.1")]:
        with pytest.raises(ValueError, match=msg):
            nr.ContinuousRNN(f, 2, **kw)
    with pytest.raises(TypeError, match=r"step_size must be None or a number; got bool True"):
        nr.ContinuousRNN(f, 2, step_size=True)
    with pytest.raises(TypeError, match=r"rtol must be a number; got str '1e-3'"):
        nr.ContinuousRNN(f, 2, method="dopri5", rtol="1e-3")
    with pytest.raises(ValueError, match=r"step_size must be a positive finite number; got step_size = nan"):
        f.discretize("euler", float("nan"))


def test_unclear_input_errors_now_name_the_argument():
    """Issue 16 item 9: ragged times, a float64 h0 for a float32 model ("mat1 and mat2 must have the
    same dtype") and a real h0 for a unitary model."""
    x = torch.randn(2, T, D)
    model = nr.ContinuousRNN(nr.LipschitzField(D, N), 2)
    with pytest.raises(ValueError, match=r"times must be one tensor of shape \(T,\) or \(B, T\); got a list of 2 "
                                         r"tensors of different shapes \[\(7,\), \(5,\)\]"):
        model(x, [torch.arange(1.0, T + 1), torch.arange(1.0, 6)])
    torch.testing.assert_close(model(x, [torch.arange(1.0, T + 1)] * 2), model(x))  # equal lengths: stacked
    with pytest.raises(TypeError, match=r"h0 must have the model's state dtype torch.float32; got torch.float64 "
                                        r"\(cast it with h0.to\(torch.float32\), or the model with "
                                        r"model.to\(torch.float64\)\)"):
        model(x, h0=torch.zeros(2, N, dtype=torch.float64))
    cell = nr.DiscreteRNN(nr.LipschitzField(D, N).discretize("euler", 0.1), 2)
    with pytest.raises(TypeError, match=r"h0 must have the model's state dtype torch.float32; got torch.float64"):
        cell(x, h0=torch.zeros(2, N, dtype=torch.float64))
    unitary = nr.ContinuousRNN(nr.UnitaryField(D, N), 2)
    with pytest.raises(TypeError, match=r"h0 must be complex \(torch.complex64\) for UnitaryField, whose hidden "
                                        r"state is complex; got a real tensor of dtype torch.float32"):
        unitary(x, h0=torch.zeros(2, N))
    unitary(x, h0=torch.zeros(2, N, dtype=torch.complex64))


def _per_sample_gap(model, x, times):
    """Largest |state in the batch - the same sample alone| over the samples, and the states' scale."""
    with torch.no_grad():
        both = model.trajectory(x, times)
        gap = max(float((both[b:b + 1] - model.trajectory(x[b:b + 1], times[b])).abs().max())
                  for b in range(x.shape[0]))
    return gap, float(both.abs().max())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_what_per_sample_times_give_each_sample_as_the_readme_says(dtype):
    """Issue 16 item 8: README said every per-sample batch gives "each sample what it would get alone";
    that fails with step_size and with adaptive batch error control.  Each sentence README keeps:"""
    torch.manual_seed(0)
    field = nr.LipschitzField(D, N).to(dtype)
    x = torch.randn(4, 12, D, dtype=dtype)
    g = torch.Generator(torch.get_default_device()).manual_seed(1)
    times = torch.cumsum(0.05 + 1.5 * torch.rand(4, 12, generator=g, dtype=torch.float64), 1)
    rounding = 1e-12 if dtype == torch.float64 else 1e-5
    # fixed steps, one per gap: the same states to rounding (scale ~7)
    for method in ("euler", "rk4"):
        gap, scale = _per_sample_gap(nr.ContinuousRNN(field, 2, method=method), x, times)
        assert gap < rounding * scale
    # adaptive (one step sequence for the batch): within the tolerance, not the same states
    gap, scale = _per_sample_gap(nr.ContinuousRNN(field, 2, method="dopri5"), x, times)
    assert 1e-5 < gap < 1e-2
    # fixed steps with step_size: more steps than alone where a longer gap sits at the same position,
    # so not the same states (test_per_sample_times_with_step_size_converge_to_each_sample_alone: at
    # least as accurate)
    gap, scale = _per_sample_gap(nr.ContinuousRNN(field, 2, method="rk4", step_size=0.2), x, times)
    assert 1e-7 < gap < 1e-4


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_readme_discrete_cell_gives_the_continuous_states(dtype):
    """Issue 16 item 8: README's "identical states" for DiscreteRNN was 3.1e-6 apart in float32: its
    times 0.03 * k were float32, and the float32 rounding of a time made some gaps one ulp longer
    than the step, so they took two steps.  With float64 times the claim holds (to 1e-12 in float64,
    to float32 rounding in float32); with float32 times it holds to ~1e-5."""
    torch.manual_seed(0)
    values = torch.randn(4, 100, 3, dtype=dtype)
    field = nr.LipschitzField(3, 16, beta=0.75, gamma_A=0.001, gamma_W=0.001).to(dtype)
    model = nr.ContinuousRNN(field, 10, method="midpoint", step_size=0.03, interpolation="hold").to(dtype)
    disc = nr.DiscreteRNN(field.discretize("midpoint", step_size=0.03), 10).to(dtype)
    with torch.no_grad():
        ref = disc.trajectory(values)
        exact = model.trajectory(values, 0.03 * torch.arange(1, 101, dtype=torch.float64))
        rounded = model.trajectory(values, 0.03 * torch.arange(1, 101, dtype=torch.float32))
    torch.testing.assert_close(exact, ref, rtol=0, atol=1e-12 if dtype == torch.float64 else 1e-6)
    torch.testing.assert_close(rounded, ref, rtol=0, atol=1e-4)


def test_other_model_arguments_are_checked_where_made():
    """Issue 16 item 9, the other models: sigma = inf, output_size = True, a cell that is not one."""
    f = nr.LipschitzField(D, N)
    with pytest.raises(ValueError, match=r"sigma must be a non-negative finite number; got sigma = inf"):
        nr.StochasticRNN(f, 2, sigma=float("inf"))
    with pytest.raises(ValueError, match=r"output_size must be a positive int \(the readout's width\); got True"):
        nr.ContinuousRNN(f, True)
    with pytest.raises(ValueError, match=r"output_size must be a positive int \(the readout's width\); got 0"):
        nr.DiscreteRNN(f.discretize("euler", 0.1), 0)
    with pytest.raises(TypeError, match=r"cell must be a discrete cell, an nn.Module with input_size and hidden_size .* got "
                                        r"LipschitzField"):
        nr.DiscreteRNN(f, 2)


# ------------------------------------------------------------------ issue 17 item 3: a frozen solve specification
SETTINGS = ("method", "step_size", "rtol", "atol", "gradient", "max_steps")


def _solver_models():
    """One model of every class that has solver settings."""
    from neuralode_rnn.baselines import ODERNN, NeuralCDE
    from neuralode_rnn.noise import StochasticRNN

    return [nr.ContinuousRNN(nr.LipschitzField(D, N), 3, method="euler"),
            StochasticRNN(nr.LipschitzField(D, N), 3, sigma=0.1),
            ODERNN(D, N, 3), NeuralCDE(D, N, 3)]


@pytest.mark.parametrize("index", range(4))
def test_assigning_a_solver_setting_raises_and_names_with_solver(index):
    """Issue 17 item 3: solver settings were mutable model state (recipes and analysis assigned them)."""
    model = _solver_models()[index]
    spec = model.spec
    for name in SETTINGS:
        if not hasattr(type(model), name):
            continue  # the baselines have no max_steps
        value = getattr(model, name)
        with pytest.raises(AttributeError, match=rf"{type(model).__name__}\.{name} is part of the model's frozen "
                                                 rf"solve specification; use model\.with_solver\({name}="):
            setattr(model, name, value)
    assert model.spec is spec


@pytest.mark.parametrize("index", range(4))
def test_with_solver_shares_the_parameters(index):
    """An optimizer step on the model with_solver gives moves the original's parameters too."""
    model = _solver_models()[index]
    other = model.with_solver(method="midpoint")
    assert other.method == "midpoint" and model.method != "midpoint" and model.spec == other.spec.replace(
        method=model.method)
    assert [id(p) for p in other.parameters()] == [id(p) for p in model.parameters()]
    x = torch.randn(2, 6, D)
    times = torch.arange(1, 7, dtype=torch.float64) * 0.5
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(other.parameters(), lr=0.1)
    other.train()
    other(x, times).pow(2).sum().backward()
    opt.step()
    moved = [not torch.equal(b, p) for b, p in zip(before, model.parameters())]
    assert sum(moved) >= 2  # the original trained with the other


def test_with_solver_gives_what_a_model_made_with_those_settings_gives():
    torch.manual_seed(3)
    field = nr.LipschitzField(D, N, gamma_A=0.1).double()
    model = nr.ContinuousRNN(field, 3, method="euler").double()
    x = torch.randn(B, T, D, dtype=torch.float64)
    times = 0.3 * torch.arange(1, T + 1, dtype=torch.float64)
    for changes in (dict(method="rk4", step_size=0.1), dict(method="dopri5", rtol=1e-8, atol=1e-10),
                    dict(method="midpoint", gradient="adjoint")):
        made = nr.ContinuousRNN(copy.deepcopy(field), 3, **changes).double()
        made.readout.load_state_dict(model.readout.state_dict())
        want = made(x, times)
        switched = model.with_solver(**changes)
        torch.testing.assert_close(switched(x, times), want, rtol=0, atol=1e-12)
        # the same solve through the spec= argument of the call, the model's own spec unchanged
        torch.testing.assert_close(model(x, times, spec=switched.spec), want, rtol=0, atol=1e-12)
        torch.testing.assert_close(model.trajectory(x, times, spec=switched.spec), made.trajectory(x, times),
                                   rtol=0, atol=1e-12)
        assert switched.spec == solvers.SolveSpec(**{"method": "euler", **changes})
    assert (model.method, model.step_size, model.spec.gradient) == ("euler", None, "backprop")
    # euler at one step per gap differs from rk4 at 0.1: the spec argument is really used
    assert not torch.allclose(model(x, times), model(x, times, spec=model.spec.replace(method="rk4", step_size=0.1)))


def test_with_solver_refuses_what_the_spec_refuses():
    model = nr.ContinuousRNN(nr.LipschitzField(D, N), 3)
    with pytest.raises(ValueError, match="unknown method 'rk5'; expected one of the Runge-Kutta methods"):
        model.with_solver(method="rk5")
    with pytest.raises(TypeError, match="unknown solve setting"):
        model.with_solver(interpolation="cubic")
    with pytest.raises(TypeError, match="spec must be a solvers.SolveSpec"):
        model(torch.randn(1, 3, D), spec="rk4")


def test_the_stochastic_model_steps_its_sde_with_the_spec_it_is_given():
    from neuralode_rnn.noise import StochasticRNN

    torch.manual_seed(1)
    model = StochasticRNN(nr.LipschitzField(D, N).double(), 3, sigma=0.0).double()
    x = torch.randn(2, 6, D, dtype=torch.float64)
    fine = model.with_solver(step_size=0.25)
    assert fine.base.field is model.base.field and fine.readout is model.readout
    want = nr.ContinuousRNN(model.field, 3, step_size=0.25).double().trajectory(x)  # sigma 0: the ODE's euler
    torch.testing.assert_close(fine.train().trajectory(x), want, rtol=0, atol=1e-12)
    torch.testing.assert_close(model.train().trajectory(x, spec=fine.spec), want, rtol=0, atol=1e-12)


def test_no_solver_setting_is_assigned_outside_solvers():
    """Issue 17 goal: zero assignments of a model's solver settings outside solvers/ (there were 11:
    recipes, analysis/solver_comparison.py, scripts/continuous.py).  Every ``X.method = ...`` (and
    tuple targets, augmented assignments and setattr with such a name) whose object is not ``self``
    in the library, scripts, examples, benchmarks and tests."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    found = []
    for folder in ("neuralode_rnn", "scripts", "examples", "benchmarks", "tests"):
        for path in sorted((root / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                targets = []
                if isinstance(node, ast.Assign):
                    targets = node.targets
                elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                    targets = [node.target]
                flat = []
                for t in targets:
                    flat += t.elts if isinstance(t, ast.Tuple) else [t]
                for t in flat:
                    if isinstance(t, ast.Attribute) and t.attr in SETTINGS and not (
                            isinstance(t.value, ast.Name) and t.value.id == "self"):
                        found.append(f"{path.relative_to(root)}:{node.lineno}")
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setattr" and len(node.args) > 1 \
                        and isinstance(node.args[1], ast.Constant) and node.args[1].value in SETTINGS:
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert found == []
