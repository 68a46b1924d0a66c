"""Bounded work and clear errors: every solve that cannot finish says so quickly and says what to change."""

from __future__ import annotations

import math

import pytest
import torch

import solvers

DT = torch.float64


def decay(t, y):
    return -y


def test_default_step_limit():
    assert solvers.DEFAULT_MAX_STEPS == 100_000


@pytest.mark.parametrize("how", ["step_size", "options", "max_num_steps"])
def test_fixed_grid_beyond_max_steps_is_refused_before_it_is_built(how):
    # 1e10 steps: allocating the grid alone would need 80 GB; refused from the step count.
    t = torch.tensor([0.0, 10.0], dtype=DT)
    kwargs = {"step_size": dict(step_size=1e-9), "options": dict(options={"step_size": 1e-9}),
              "max_num_steps": dict(step_size=1e-3, options={"max_num_steps": 100})}[how]
    with pytest.raises(solvers.StepLimitError, match=r"needs \d+ steps, more than max_steps = \d+; use a larger step "
                                                     r"size .* or raise max_steps"):
        solvers.odeint(decay, torch.ones(2, dtype=DT), t, method="euler", **kwargs)


def test_adaptive_step_limit():
    def fast(t, y):
        return torch.cos(300 * t) * y

    with pytest.raises(solvers.StepLimitError, match=r"needs 51 steps, more than max_steps = 50.*loosen|looser"):
        solvers.odeint(fast, torch.ones(1, dtype=DT), torch.tensor([0.0, 100.0], dtype=DT), max_steps=50)
    with pytest.raises(ValueError, match="max_steps must be a positive int; got 0"):
        solvers.odeint(fast, torch.ones(1, dtype=DT), torch.tensor([0.0, 1.0], dtype=DT), max_steps=0)


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_time_must_be_finite(bad):
    with pytest.raises(ValueError, match=r"t must hold finite times; got t\[1\] = (inf|-inf|nan).*event_fn"):
        solvers.odeint(decay, torch.ones(2, dtype=DT), torch.tensor([0.0, bad], dtype=DT))


def test_tolerances_below_float32_resolution_are_refused():
    y0 = torch.tensor([1.0, 0.0])  # float32

    def rotate(t, y):
        return torch.stack([y[1], -y[0]])

    with pytest.raises(ValueError, match=r"rtol = 1e-14 and atol = 1e-16 ask for errors a float32 state cannot "
                                         r"resolve.*use rtol >= 1e-09.*or a float64 state"):
        solvers.odeint(rotate, y0, torch.tensor([0.0, 10.0]), rtol=1e-14, atol=1e-16)
    with pytest.raises(ValueError, match=r"rtol = 0 and atol = 1e-16 ask for errors a float32 state cannot"):
        solvers.odeint(rotate, y0, torch.tensor([0.0, 10.0]), rtol=0, atol=1e-16)
    # atol carrying the tolerance is fine, and so is float32 with torchdiffeq's defaults
    solvers.odeint(rotate, y0, torch.tensor([0.0, 1.0]), rtol=1e-14, atol=1e-5)
    solvers.odeint(rotate, y0, torch.tensor([0.0, 1.0]))


def test_zero_tolerances_are_refused_and_pure_absolute_control_works():
    t = torch.tensor([0.0, 1.0], dtype=DT)
    with pytest.raises(ValueError, match="rtol and atol must not both be 0"):
        solvers.odeint(decay, torch.ones(2, dtype=DT), t, rtol=0, atol=0)
    sol = solvers.odeint(decay, torch.ones(2, dtype=DT), t, rtol=0, atol=1e-10)
    assert abs(float(sol[-1, 0]) - math.exp(-1)) < 1e-8


def test_nan_y0_is_refused_naming_y0():
    with pytest.raises(ValueError, match=r"y0 must be finite; got nan at flat index 1 \(of shape \(2,\)\)"):
        solvers.odeint(decay, torch.tensor([1.0, math.nan], dtype=DT), torch.tensor([0.0, 1.0], dtype=DT))
    with pytest.raises(ValueError, match=r"y0\[1\] must be finite"):
        solvers.odeint(lambda t, y: (-y[0], -y[1]), (torch.ones(1), torch.tensor([math.inf])), torch.tensor([0.0, 1.0]))


def test_field_returning_nan_mid_solve():
    def breaks(t, y):
        return -y if float(t) < 0.5 else y * math.nan

    with pytest.raises(solvers.NonFiniteStateError, match=r"NaN or inf at every step tried from t = 0\.4999.*check "
                                                          r"func near t"):
        solvers.odeint(breaks, torch.ones(2, dtype=DT), torch.tensor([0.0, 10.0], dtype=DT))
    # fixed steps: the NaN is reported instead of returned
    with pytest.raises(solvers.NonFiniteStateError, match=r"not finite at t\[2\] = 1.0.*stability limit"):
        solvers.odeint(breaks, torch.ones(2, dtype=DT), torch.tensor([0.0, 0.4, 1.0], dtype=DT), method="rk4",
                       step_size=0.1)


def test_blow_up_stops_at_the_singularity():
    # y' = y^2, y(0) = 1: y = 1 / (1 - t) blows up at t = 1
    with pytest.raises(solvers.StepSizeUnderflowError, match=r"at t = 1\.0000.*blows up there"):
        solvers.odeint(lambda t, y: y * y, torch.ones(1, dtype=DT), torch.tensor([0.0, 2.0], dtype=DT))


def test_unstable_fixed_steps_are_reported():
    # float32 overflows after 23 Euler steps of growth factor |1 - 50| = 49
    lam = -100.0
    h_max = solvers.max_stable_step("euler", [lam])
    t = torch.linspace(0, 50, 51)
    solvers.odeint(lambda s, y: lam * y, torch.ones(1), t, method="euler", step_size=0.9 * h_max)
    with pytest.raises(solvers.NonFiniteStateError, match="max_stable_step"):
        solvers.odeint(lambda s, y: lam * y, torch.ones(1), t, method="euler", step_size=0.5)


def test_errors_are_solver_errors():
    assert issubclass(solvers.StepLimitError, solvers.SolverError)
    assert issubclass(solvers.NonFiniteStateError, solvers.SolverError)
    assert issubclass(solvers.StepSizeUnderflowError, solvers.SolverError)
    assert issubclass(solvers.SolverError, RuntimeError)
