"""Input paths: torchcde agreement, hold semantics, missing values, projection identity, errors."""

import math

import pytest
import torch

import neuralode_rnn as nr

torchcde = pytest.importorskip("torchcde")

METHODS = ["hold", "linear", "cubic", "natural"]


def _data(B=3, T=9, D=2, seed=0):
    g = torch.Generator(torch.get_default_device()).manual_seed(seed)
    x = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    t = torch.cumsum(torch.rand(T, generator=g, dtype=torch.float64) + 0.1, 0)
    return x, t


def _with_gaps(x):
    x = x.clone()
    x[0, 3, 1] = float("nan")
    x[1, 0, 0] = float("nan")
    x[2, -2:, :] = float("nan")
    x[0, 4:6, 0] = float("nan")
    return x


TORCHCDE = {
    "linear": (lambda x, t: torchcde.LinearInterpolation(torchcde.linear_interpolation_coeffs(x, t), t)),
    "cubic": (lambda x, t: torchcde.CubicSpline(
        torchcde.hermite_cubic_coefficients_with_backward_differences(x, t), t)),
    "natural": (lambda x, t: torchcde.CubicSpline(torchcde.natural_cubic_coeffs(x, t), t)),
}


@pytest.mark.parametrize("method", ["linear", "cubic", "natural"])
@pytest.mark.parametrize("missing", [False, True])
def test_agrees_with_torchcde(method, missing):
    x, t = _data()
    if missing:
        if method == "natural":
            pytest.skip("torchcde splines each channel through its own observations; we fill linearly first")
        x = _with_gaps(x)
    ours = nr.interpolate(x, t, method)
    ref = TORCHCDE[method](x, t)
    ts = torch.linspace(t[0].item(), t[-1].item(), 101, dtype=torch.float64)
    torch.testing.assert_close(ours.evaluate(ts), ref.evaluate(ts), rtol=0, atol=1e-12)
    inner = (ts[1:-1] + 1e-7)
    torch.testing.assert_close(ours.derivative(inner), ref.derivative(inner), rtol=0, atol=1e-10)


def test_natural_spline_with_missing_values_fills_linearly_first():
    x, t = _data()
    xg = _with_gaps(x)
    filled = nr.interpolate(xg, t, "linear").evaluate(t)
    ours = nr.interpolate(xg, t, "natural")
    ref = torchcde.CubicSpline(torchcde.natural_cubic_coeffs(filled, t), t)
    ts = torch.linspace(t[0].item(), t[-1].item(), 41, dtype=torch.float64)
    torch.testing.assert_close(ours.evaluate(ts), ref.evaluate(ts), rtol=0, atol=1e-12)


def test_hold_reads_the_sample_at_the_right_end_of_each_piece():
    x, t = _data()
    p = nr.interpolate(x, t, "hold")
    for k in range(1, t.shape[0]):
        mid = 0.5 * (t[k - 1] + t[k])
        torch.testing.assert_close(p.evaluate(mid), x[:, k], rtol=0, atol=0)
        torch.testing.assert_close(p.evaluate(t[k]), x[:, k], rtol=0, atol=0)  # closed on the right
        torch.testing.assert_close(p.evaluate(torch.nextafter(t[k - 1], t[k])), x[:, k], rtol=0, atol=0)
    torch.testing.assert_close(p.evaluate(t[0] - 1.0), x[:, 0])
    torch.testing.assert_close(p.evaluate(t[-1] + 5.0), x[:, -1])
    assert torch.equal(p.derivative(0.5 * (t[0] + t[1])), torch.zeros_like(x[:, 0]))


@pytest.mark.parametrize("method", METHODS)
def test_paths_pass_through_the_samples_and_are_constant_outside(method):
    x, t = _data()
    p = nr.interpolate(x, t, method)
    torch.testing.assert_close(p.evaluate(t), x, rtol=0, atol=1e-12)
    torch.testing.assert_close(p.evaluate(t[0] - 3.0), x[:, 0], rtol=0, atol=1e-12)
    torch.testing.assert_close(p.evaluate(t[-1] + 3.0), x[:, -1], rtol=0, atol=1e-12)
    assert p.knots is t or torch.equal(p.knots, t)


@pytest.mark.parametrize("method", ["linear", "cubic", "natural"])
def test_derivative_matches_finite_differences(method):
    x, t = _data()
    p = nr.interpolate(x, t, method)
    ts = torch.linspace(t[0].item() + 0.01, t[-1].item() - 0.01, 37, dtype=torch.float64)
    eps = 1e-6
    fd = (p.evaluate(ts + eps) - p.evaluate(ts - eps)) / (2 * eps)
    # pieces join C^0 (linear) so stay away from knots there; cubic and natural are C^1
    near = (ts.unsqueeze(1) - t.unsqueeze(0)).abs().min(1).values < 2 * eps
    keep = ~near
    torch.testing.assert_close(p.derivative(ts)[:, keep], fd[:, keep], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", ["cubic", "natural"])
def test_cubic_paths_are_c1(method):
    x, t = _data()
    p = nr.interpolate(x, t, method)
    k = t[1:-1]
    left = p.derivative(k)                          # piece ending at the knot
    right = p.derivative(torch.nextafter(k, k + 1))  # piece starting there
    torch.testing.assert_close(left, right, rtol=1e-9, atol=1e-9)


def test_natural_spline_has_zero_second_derivative_at_the_ends():
    x, t = _data()
    p = nr.interpolate(x, t, "natural")
    c2 = p.coeffs[2]
    torch.testing.assert_close(c2[:, 0], torch.zeros_like(c2[:, 0]), rtol=0, atol=1e-10)
    h = t[-1] - t[-2]
    end = 2 * p.coeffs[2][:, -1] + 6 * p.coeffs[3][:, -1] * h
    torch.testing.assert_close(end, torch.zeros_like(end), rtol=0, atol=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_affine_projection_identity(method):
    """Interpolating W x + b equals W (interpolated x) + b: exact for every method."""
    x, t = _data()
    xg = _with_gaps(x)
    lin = torch.nn.Linear(2, 5).double()
    p = nr.interpolate(xg, t, method)
    projected = p.affine(lin.weight, lin.bias)
    ts = torch.linspace(t[0].item() - 0.5, t[-1].item() + 0.5, 53, dtype=torch.float64)
    torch.testing.assert_close(projected.evaluate(ts), lin(p.evaluate(ts)), rtol=0, atol=1e-12)
    filled = p.evaluate(t)
    direct = nr.interpolate(lin(filled), t, method)
    torch.testing.assert_close(projected.evaluate(ts), direct.evaluate(ts), rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_missing_values_never_reach_the_path(method):
    x, t = _data()
    xg = _with_gaps(x)
    xg[1, :, 1] = float("nan")  # a channel never observed -> zeros
    p = nr.interpolate(xg, t, method)
    ts = torch.linspace(t[0].item() - 1, t[-1].item() + 1, 99, dtype=torch.float64)
    v = p.evaluate(ts)
    assert torch.isfinite(v).all()
    assert torch.equal(v[1, :, 1], torch.zeros_like(v[1, :, 1]))
    observed = ~torch.isnan(xg)
    torch.testing.assert_close(p.evaluate(t)[observed], xg[observed], rtol=0, atol=1e-12)


def test_hold_carries_the_last_observation_forward():
    x, t = _data()
    xg = _with_gaps(x)
    v = nr.interpolate(xg, t, "hold").evaluate(t)
    assert v[0, 3, 1] == x[0, 2, 1]
    assert v[0, 5, 0] == x[0, 3, 0]
    assert v[1, 0, 0] == x[1, 1, 0]  # leading gap: first observation
    assert torch.equal(v[2, -1], x[2, -3])


def test_linear_fill_interpolates_in_time():
    x, t = _data()
    xg = _with_gaps(x)
    v = nr.interpolate(xg, t, "linear").evaluate(t)
    w = (t[4] - t[3]) / (t[6] - t[3])
    torch.testing.assert_close(v[0, 4, 0], x[0, 3, 0] + w * (x[0, 6, 0] - x[0, 3, 0]))


def test_per_sample_times_equal_each_sample_alone():
    x, t = _data(B=3)
    g = torch.Generator(torch.get_default_device()).manual_seed(5)
    tt = torch.stack([t, t * 1.7 + 0.3, torch.cumsum(torch.rand(t.shape[0], generator=g, dtype=torch.float64) + 0.05, 0)])
    ts = torch.linspace(0, 12, 77, dtype=torch.float64)
    for method in METHODS:
        p = nr.interpolate(x, tt, method)
        both = p.evaluate(ts)
        for b in range(3):
            alone = nr.interpolate(x[b:b + 1], tt[b], method).evaluate(ts)
            torch.testing.assert_close(both[b:b + 1], alone, rtol=0, atol=1e-12)
        per = p.evaluate(ts.unsqueeze(0).expand(3, -1))
        torch.testing.assert_close(per, both, rtol=0, atol=0)


@pytest.mark.parametrize("per_sample", [False, True])
def test_input_reads_what_evaluate_gives(per_sample):
    """``Path.input``, the solvers' reader of a path (a cursor over the same coefficients), gives
    ``evaluate`` on the real-time clock (shared or per-sample knots) and on the index clock (knot k at
    s = k, local time scaled by each sample's gap), before, at, inside and after the knots."""
    x, t = _data()
    B, T = x.shape[0], t.shape[0]
    if per_sample:
        t = t.unsqueeze(0) + torch.rand(B, 1, dtype=torch.float64, generator=torch.Generator(
            torch.get_default_device()).manual_seed(1))
    for method in METHODS:
        p = nr.interpolate(x, t, method)
        real = p.input()
        index = p.input("index")
        k = p.knots if per_sample else p.knots.expand(B, -1)
        for s in (-1.5, 0.0, 0.3, 1.0, T / 2 + 0.7, T - 1.0, T + 0.5):
            j = math.ceil(s) - 1
            at = k[:, 0] - 1 if j < 0 else k[:, -1] + 1 if j >= T - 1 else k[:, j] + (s - j) * (k[:, j + 1] - k[:, j])
            want = p.evaluate(at.unsqueeze(1))[:, 0]
            torch.testing.assert_close(index.raw(index.piece(s), s), want, rtol=0, atol=1e-12)
            if per_sample:
                torch.testing.assert_close(real.raw(real.pieces(at), at), want, rtol=0, atol=1e-12)
            else:
                torch.testing.assert_close(real.raw(real.piece(float(at[0])), float(at[0])), want, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="unknown clock 'wall'"):
        p.input("wall")


@pytest.mark.parametrize("method", METHODS)
def test_gradcheck_wrt_values(method):
    x, t = _data(B=2, T=5, D=2)
    x.requires_grad_(True)
    ts = torch.tensor([t[0] - 0.2, t[1] + 0.05, t[3] - 0.1, t[-1] + 0.3], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda v: nr.interpolate(v, t, method).evaluate(ts), (x,))
    assert torch.autograd.gradcheck(lambda v: nr.interpolate(v, t, method).derivative(ts[1:3]), (x,))


def test_float32_and_single_sample():
    x = torch.randn(2, 1, 3)
    p = nr.interpolate(x, None, "cubic")
    assert p.evaluate(5.0).dtype == torch.float32
    torch.testing.assert_close(p.evaluate(0.0), x[:, 0])
    assert torch.equal(p.derivative(1.0), torch.zeros(2, 3))
    p2 = nr.interpolate(torch.randn(2, 2, 3), None, "natural")
    assert p2.evaluate(torch.tensor([1.0, 1.5, 2.0])).shape == (2, 3, 3)


def test_times_default_are_one_to_T():
    x, _ = _data(T=4)
    assert torch.equal(nr.interpolate(x).knots, torch.arange(1, 5, dtype=torch.float64))


# ------------------------------------------------------------------------------------ errors
def test_error_values_not_3d():
    with pytest.raises(ValueError, match=r"values must be 3-D \(batch, time, channels\); got shape \(4, 5\)"):
        nr.interpolate(torch.randn(4, 5))


def test_error_integer_values():
    with pytest.raises(TypeError, match="values must have a floating dtype.*torch.int64"):
        nr.interpolate(torch.ones(2, 3, 1, dtype=torch.long))


def test_error_inf_values():
    x = torch.randn(2, 3, 1)
    x[1, 2, 0] = float("inf")
    with pytest.raises(ValueError, match=r"values must be finite or NaN \(missing\); got values\[1, 2, 0\] = inf"):
        nr.interpolate(x)


def test_error_times_not_increasing():
    x = torch.randn(1, 4, 1)
    with pytest.raises(ValueError, match=r"strictly increasing.*times\[3\] = 1.5 <= times\[2\] = 1.5"):
        nr.interpolate(x, torch.tensor([0.0, 1.0, 1.5, 1.5]))
    with pytest.raises(ValueError, match=r"times\[0, 3\] = 1.5 <= times\[0, 2\] = 1.5"):
        nr.interpolate(x, torch.tensor([[0.0, 1.0, 1.5, 1.5]]))


def test_error_times_length_mismatch():
    with pytest.raises(ValueError, match="times and values must have the same length: values has T = 4 steps, times has 3"):
        nr.interpolate(torch.randn(2, 4, 1), torch.arange(3.0))


def test_error_times_batch_mismatch():
    with pytest.raises(ValueError, match=r"per-sample times must have shape \(B, T\) = \(2, 4\)"):
        nr.interpolate(torch.randn(2, 4, 1), torch.arange(12.0).view(3, 4))


def test_error_unknown_method():
    with pytest.raises(ValueError, match="unknown interpolation method 'spline'; expected one of 'hold', 'linear'"):
        nr.interpolate(torch.randn(2, 4, 1), method="spline")


def test_error_values_not_tensor():
    with pytest.raises(TypeError, match="values must be a torch.Tensor"):
        nr.interpolate([[[1.0]]])


def test_evaluating_at_nan_is_refused():
    """Edge (issue 12): Path.evaluate(nan) returned the last sample."""
    x, t = _data()
    path = nr.interpolate(x, t, "linear")
    with pytest.raises(ValueError, match="t must be a time, not NaN"):
        path.evaluate(float("nan"))
    with pytest.raises(ValueError, match=r"not NaN; got NaN at index \(1,\)"):
        path.derivative(torch.tensor([t[0], float("nan")]))


@pytest.mark.parametrize("method", ["linear", "cubic", "natural"])
def test_derivative_at_the_first_knot_is_the_first_pieces(method):
    """Edge (issue 12): Path.derivative(t_1) was 0 (the constant before the path), while every other
    knot reads its piece; at t_1 it is now the one-sided derivative from inside, as torchcde's."""
    x, t = _data()
    path = nr.interpolate(x, t, method)
    inside = path.derivative(t[0] + 1e-7)
    torch.testing.assert_close(path.derivative(t[0]), inside, rtol=1e-5, atol=1e-5)
    assert float(path.derivative(t[0]).abs().max()) > 1e-2
    assert float(path.derivative(t[0] - 1e-7).abs().max()) == 0.0  # before the first knot: constant
    if method == "linear":
        torch.testing.assert_close(path.derivative(t[0]), (x[:, 1] - x[:, 0]) / (t[1] - t[0]))
    per_sample = nr.interpolate(x, t.expand(3, -1), method)
    torch.testing.assert_close(per_sample.derivative(t[0].expand(3, 1))[:, 0], path.derivative(t[0]))


def test_nan_times_are_refused_with_their_index():
    x, t = _data()
    t = t.clone()
    t[4] = float("nan")
    with pytest.raises(ValueError, match=r"times must be finite; got times\[4\] = nan"):
        nr.interpolate(x, t)
