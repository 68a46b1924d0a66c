"""neuralode_rnn.analysis.solver_robustness: the same weights under other solvers, one score."""


import pytest
import torch

import neuralode_rnn as nr
from neuralode_rnn.analysis import ROBUSTNESS_SETTINGS, RobustnessSetting, solver_robustness
from neuralode_rnn.analysis.robustness import accuracy

D64 = torch.float64


def _decay_model(rate: float, step_size: float | None = None) -> nr.ContinuousRNN:
    """h' = -rate h + tanh(U x + b) with 2 units and a readout that reads the sign of h_1.

    A = -rate I (M_A = 0, gamma_A = rate), W = 0.  Euler with step h multiplies h by 1 - rate h per
    step: at rate 3 and h = 1 by -2, so Euler's h_T is dominated by the first samples with
    alternating signs, while the ODE forgets them and follows the last ones.
    """
    f = nr.LipschitzField(1, 2, gamma_A=rate, gamma_W=0.0).double()
    model = nr.ContinuousRNN(f, 2, method="euler", step_size=step_size).double()
    with torch.no_grad():
        f.M_A.zero_()
        f.M_W.zero_()
        f.input_map.weight.copy_(torch.tensor([[1.0], [0.5]]))
        f.input_map.bias.zero_()
        model.readout.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        model.readout.bias.zero_()
    return model


def _labelled_by(model, values, times=None):
    """Targets equal to the model's own predictions: its as-trained accuracy is exactly 1."""
    with torch.no_grad():
        return model(values, times).argmax(-1)


def test_a_model_whose_solvers_agree_scores_no_drop():
    # rate 0.05 with unit steps: |1 - 0.05| < 1 and the held input makes each gap's exact solution
    # smooth, so Euler at h/4, midpoint, RK4 and dopri5 agree on every sign
    model = _decay_model(0.05)
    values = torch.randn(64, 12, 1, dtype=D64)
    targets = _labelled_by(model, values)
    score = solver_robustness(model, values, None, targets)
    assert score.as_trained == 1.0
    assert list(score.accuracies) == ["euler h/4", "midpoint h", "rk4 h", "dopri5 rtol 1e-06"]
    assert score.max_drop == pytest.approx(0.0, abs=1 / 64)
    assert score.step == 1.0 and score.samples == 64 and score.method == "euler"


def test_a_model_that_relies_on_its_discretisation_shows_a_drop():
    model = _decay_model(3.0)  # Euler at h = 1: factor -2 per step; the ODE decays at rate 3
    values = torch.randn(200, 12, 1, dtype=D64)
    targets = _labelled_by(model, values)
    score = solver_robustness(model, values, None, targets)
    assert score.as_trained == 1.0
    assert score.max_drop > 0.25
    assert all(score.drops[k] > 0.25 for k in ("rk4 h", "dopri5 rtol 1e-06"))
    # the accuracy under each setting is that of the model built with that solver
    rk4 = model.with_solver(method="rk4")
    assert score.accuracies["rk4 h"] == accuracy(rk4, values, None, targets)
    quarter = model.with_solver(step_size=0.25)  # Euler at a quarter of the unit gap: stable, close to the ODE
    assert score.accuracies["euler h/4"] == accuracy(quarter, values, None, targets)
    assert score.drops == {k: score.as_trained - a for k, a in score.accuracies.items()}
    assert score.max_drop == max(score.drops.values()) and score.drops[score.worst] == score.max_drop


def test_the_training_step_is_the_models_step_or_the_sample_gap():
    model = _decay_model(3.0, step_size=0.5)
    values = torch.randn(50, 10, 1, dtype=D64)
    times = 2.0 * torch.arange(1, 11, dtype=D64)  # gaps of 2, four steps of 0.5 each
    targets = _labelled_by(model, values, times)
    score = solver_robustness(model, values, times, targets)
    assert score.step == 0.5
    eighth = model.with_solver(step_size=0.125)
    assert score.accuracies["euler h/4"] == accuracy(eighth, values, times, targets)
    # once per gap: h is the gap
    per_gap = _decay_model(0.05)
    assert solver_robustness(per_gap, values, times, _labelled_by(per_gap, values, times)).step == 2.0


def test_the_model_is_left_as_it_was():
    model = _decay_model(3.0, step_size=0.5).with_solver(rtol=1e-2, atol=1e-4)
    spec = model.spec
    solver_robustness(model, torch.randn(4, 6, 1, dtype=D64), None, torch.zeros(4, dtype=torch.long))
    assert (model.method, model.step_size, model.rtol, model.atol) == ("euler", 0.5, 1e-2, 1e-4)
    assert model.spec is spec


def test_custom_settings_and_labels():
    model = _decay_model(0.05)
    values = torch.randn(8, 5, 1, dtype=D64)
    settings = (RobustnessSetting("heun", step_fraction=0.5), RobustnessSetting("bosh3", rtol=1e-4))
    score = solver_robustness(model, values, None, _labelled_by(model, values), settings)
    assert list(score.accuracies) == ["heun h/2", "bosh3 rtol 0.0001"]
    assert [s.label for s in ROBUSTNESS_SETTINGS] == ["euler h/4", "midpoint h", "rk4 h", "dopri5 rtol 1e-06"]


def test_errors():
    with pytest.raises(ValueError, match="unknown method 'rk5'"):
        RobustnessSetting("rk5", step_fraction=1.0)
    with pytest.raises(ValueError, match="fixed-step method 'rk4' needs step_fraction > 0"):
        RobustnessSetting("rk4", rtol=1e-3)
    with pytest.raises(ValueError, match="adaptive method 'dopri5' needs rtol > 0"):
        RobustnessSetting("dopri5", step_fraction=0.5)
    disc = nr.DiscreteRNN(nr.LipschitzField(1, 2).discretize("euler", 1.0), 2)
    x, y = torch.randn(2, 3, 1), torch.zeros(2, dtype=torch.long)
    with pytest.raises(TypeError, match="needs a continuous model .* got DiscreteRNN"):
        solver_robustness(disc, x, None, y)
    with pytest.raises(ValueError, match="settings must be distinct"):
        solver_robustness(_decay_model(0.05), x.double(), None, y, [ROBUSTNESS_SETTINGS[0]] * 2)
