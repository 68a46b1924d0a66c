"""Bounded work and clear errors: every solve that cannot finish says so quickly and says what to change."""

from __future__ import annotations

import logging
import math
import re
import time

import pytest
import torch

import solvers
from solvers.spec import SolveSpec

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
                                                     r"size, or raise max_steps"):
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


# ------------------------------------------------------------------ issue 16, items 7 and 9
def robertson(t, y):
    """Robertson's stiff chemical kinetics: dopri5 at default tolerances crawls (61 s, then StepLimitError)."""
    y1, y2, y3 = y[0], y[1], y[2]
    return torch.stack([-0.04 * y1 + 1e4 * y2 * y3, 0.04 * y1 - 1e4 * y2 * y3 - 3e7 * y2 ** 2, 3e7 * y2 ** 2])


def _robertson():
    """(y0, t) of Robertson's problem, made on the test's device."""
    return torch.tensor([1.0, 0.0, 0.0], dtype=DT), torch.tensor([0.0, 1e5], dtype=DT)


def test_a_runaway_solve_stops_at_max_time_naming_stiffness(monkeypatch):
    # a clock that advances 0.1 ms per reading (one per attempted step): the limit falls after ~5,000
    # steps however loaded the machine is (the stiffness cause is named from 500 steps on)
    from solvers import clock

    ticks = iter(range(10 ** 9))
    monkeypatch.setattr(clock.time, "monotonic", lambda: 1e-4 * next(ticks))
    start = time.perf_counter()
    with pytest.raises(solvers.TimeLimitError, match=r"stopped after max_time = 0.5 s: at t = .* of \[0, 100000\] "
                                                     r"after \d+ s, \d+ steps tried \(\d+ rejected\), step size now .*"
                                                     r"probably stiff.*method='scipy_solver'"):
        solvers.odeint(robertson, *_robertson(), options={"max_time": 0.5})
    assert time.perf_counter() - start < 60


def test_a_long_solve_reports_its_progress(monkeypatch, caplog):
    """A runaway solve printed nothing for 61 s (Robertson) or 36 s (t = [0, 1e300]) before failing."""
    from solvers import clock

    monkeypatch.setattr(clock, "PROGRESS_SECONDS", 0.2)
    with caplog.at_level(logging.WARNING, logger="solvers"):
        with pytest.raises(solvers.StepLimitError, match="stiff|beyond max_steps"):
            solvers.odeint(robertson, *_robertson(), max_steps=4000)
    lines = [r.getMessage() for r in caplog.records if "still running" in r.getMessage()]
    assert lines, "no progress line"
    assert re.search(r"at t = \S+ of \[0, 100000\] after \d+ s, \d+ steps tried \(\d+ rejected\), step size now",
                     lines[0])
    assert "max_time" in lines[0]
    # the huge span: the step limit's message says the span is the cause, not a larger step size
    with pytest.raises(solvers.StepLimitError, match=r"rest of the span needs about \S+ more steps, beyond "
                                                     r"max_steps = 300: integrate over a shorter span"):
        solvers.odeint(decay, torch.ones(1, dtype=DT), torch.tensor([0.0, 1e300], dtype=DT), max_steps=300)


@pytest.mark.parametrize("name, value, match", [
    ("safety", 2.0, r"options\['safety'\] must be in \(0, 1\] .*got options\['safety'\] = 2.0"),
    ("safety", 0.0, r"options\['safety'\] must be in \(0, 1\]"),
    ("ifactor", 0.5, r"options\['ifactor'\] must be >= 1 .*got options\['ifactor'\] = 0.5"),
    ("dfactor", 1.0, r"options\['dfactor'\] must be in \(0, 1\) .*forever"),
    ("dfactor", -0.1, r"options\['dfactor'\] must be in \(0, 1\)"),
    ("pcoeff", -0.4, r"options\['pcoeff'\] must be >= 0"),
    ("icoeff", 0.0, r"options\['icoeff'\] must be > 0"),
    ("min_step", -1.0, r"options\['min_step'\] must be >= 0"),
    ("max_step", 0.0, r"options\['max_step'\] must be > 0"),
    ("max_time", 0.0, r"options\['max_time'\] must be > 0 seconds"),
    ("max_time", float("nan"), r"options\['max_time'\] must be > 0 seconds"),
    ("first_step", -1.0, r"options\['first_step'\] must be None or a positive finite number"),
    ("first_step", math.inf, r"options\['first_step'\] must be None or a positive finite number"),
    ("max_num_steps", 0, r"options\['max_num_steps'\] must be a positive int"),
])
def test_every_controller_option_is_checked_where_it_is_given(name, value, match):
    """safety=2.0 or ifactor=0.5 were accepted, then failed far away, blamed on rtol/atol."""
    with pytest.raises(ValueError, match=match):
        solvers.odeint(decay, torch.ones(2, dtype=DT), torch.tensor([0.0, 1.0], dtype=DT), options={name: value})


def test_controller_options_of_the_wrong_type_and_direct_specifications_are_checked():
    t = torch.tensor([0.0, 1.0], dtype=DT)
    with pytest.raises(TypeError, match=r"options\['safety'\] must be a number; got str '0.9'"):
        solvers.odeint(decay, torch.ones(2, dtype=DT), t, options={"safety": "0.9"})
    with pytest.raises(TypeError, match=r"options\['dtype'\] must be a floating torch.dtype .*got 'float64'"):
        solvers.odeint(decay, torch.ones(2, dtype=DT), t, options={"dtype": "float64"})
    with pytest.raises(ValueError, match=r"adjoint_options\['ifactor'\] must be >= 1"):
        solvers.odeint(decay, torch.ones(2, dtype=DT), t, gradient="adjoint", adjoint_params=(),
                       adjoint_options={"ifactor": 0.5})
    with pytest.raises(ValueError, match=r"safety must be in \(0, 1\]"):
        SolveSpec(method="dopri5", safety=2.0)  # the one builder of controllers checks them when it is made
    # the valid extremes still solve
    out = solvers.odeint(decay, torch.ones(2, dtype=DT), t, options={"safety": 1.0, "ifactor": 5.0, "dfactor": 0.5,
                                                                     "max_time": 60})
    assert torch.allclose(out[-1], torch.full((2,), math.exp(-1), dtype=DT), rtol=1e-6)


def test_float16_advice_is_true():
    """float16 with dopri5 advised "rtol >= 1e-05", which then underflowed (its error ratios overflowed float16)."""
    def rotate(t, y):
        return torch.stack([y[1], -y[0]])

    y0, t = torch.tensor([1.0, 0.0], dtype=torch.float16), torch.tensor([0.0, 10.0])
    with pytest.raises(ValueError, match=r"float16 state cannot resolve .*use rtol >= (\S+) ") as info:
        solvers.odeint(rotate, y0, t)
    rtol = float(re.search(r"use rtol >= (\S+) ", str(info.value)).group(1))
    assert rtol == pytest.approx(10 * 1e-3 * torch.finfo(torch.float16).eps, rel=0.1)
    out = solvers.odeint(rotate, y0, t, rtol=rtol, atol=rtol)  # following the advice works
    assert out.dtype == torch.float16
    assert abs(float(out[-1, 0]) - math.cos(10.0)) < 0.01 and abs(float(out[-1, 1]) + math.sin(10.0)) < 0.01


def test_a_fixed_method_without_a_step_size_says_what_to_do_about_many_output_times():
    """1e6 output times and no step size advised "use a larger step size", which there is none of."""
    t = torch.linspace(0.0, 1.0, 1_000_000, dtype=DT)
    with pytest.raises(solvers.StepLimitError, match=r"method 'euler' without a step size steps once per gap of t: "
                                                     r"1000000 output times needs 999999 steps, more than max_steps = "
                                                     r"100000; pass fewer output times, or raise max_steps"):
        solvers.odeint(decay, torch.ones(1, dtype=DT), t, method="euler")
