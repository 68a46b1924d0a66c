"""Training recipes (issue 11): the solver each batch trains with, the local-error penalty, the
settings' checks, resume, the zoo default, and the robustness score in evaluate / compare-solvers."""

import json

import pytest
import torch

import neuralode_rnn as nr
from neuralode_rnn.cli import main
from neuralode_rnn.training import Callback, RunDir, TrainConfig, default_callbacks, train
from neuralode_rnn.training.recipes import (
    DEFAULT_RECIPE_SOLVERS,
    local_error_penalty,
    parse_recipe_solvers,
    recipe_solver,
)
from solvers.stepper import rk_step

D64 = torch.float64
CHOICES = (("euler", 3), ("heun", 1), ("rk4", 1), ("rk38", 2))


class SolverLog(Callback):
    """Records (method, step_size) each batch trained with, and the model's own after each epoch."""

    def __init__(self):
        self.batches, self.epochs = [], []

    def on_batch(self, run, info):
        assert (run.model.method, run.model.step_size) == (run.config.method, run.config.step_size)  # never changed
        self.batches.append((info["spec"].method, info["spec"].step_size))

    def on_epoch(self, run, row):
        self.epochs.append((run.model.method, run.model.step_size))


def _expected(recipe, seed, n, eps=1.0):
    out = []
    for k in range(n):
        m, sub = recipe_solver(recipe, CHOICES, seed, k)
        out.append((m, None if sub == 1 else eps / sub))
    return out


# ------------------------------------------------------------------------------ solver schedule
def test_parse_recipe_solvers_reads_method_and_substeps():
    assert parse_recipe_solvers("euler:3, heun,rk4:1") == (("euler", 3), ("heun", 1), ("rk4", 1))
    assert len(parse_recipe_solvers(DEFAULT_RECIPE_SOLVERS)) == 7


@pytest.mark.parametrize("text, match", [
    ("dopri5", "entry 'dopri5' names no fixed-step method"),
    ("euler:0", r"entry 'euler:0' has substeps '0'; expected a positive int"),
    ("euler:x", "has substeps 'x'"),
    ("", "must be a comma-separated list"),
])
def test_parse_recipe_solvers_names_the_bad_entry(text, match):
    with pytest.raises(ValueError, match=match):
        parse_recipe_solvers(text, "--recipe-solvers")


def test_cycle_takes_every_solver_once_per_round_in_a_changing_order():
    K = len(CHOICES)
    rounds = [[recipe_solver("cycle", CHOICES, 5, r * K + i) for i in range(K)] for r in range(6)]
    for r in rounds:
        assert sorted(r) == sorted(CHOICES)
    assert len({tuple(r) for r in rounds}) > 1  # shuffled anew per round, not one fixed order
    # a function of (seed, step) only
    assert recipe_solver("cycle", CHOICES, 5, 13) == recipe_solver("cycle", CHOICES, 5, 13)


def test_random_draws_every_solver_and_depends_only_on_seed_and_step():
    draws = [recipe_solver("random", CHOICES, 1, k) for k in range(200)]
    assert set(draws) == set(CHOICES)
    counts = [draws.count(c) for c in CHOICES]
    assert min(counts) > 25  # about 50 each
    assert draws == [recipe_solver("random", CHOICES, 1, k) for k in range(200)]
    assert recipe_solver("fixed", CHOICES, 1, 0) is None and recipe_solver("penalty", CHOICES, 1, 0) is None


def test_training_visits_the_cycle_and_evaluates_with_the_as_trained_solver(tiny_config):
    log = SolverLog()
    solvers_text = ",".join(f"{m}:{s}" for m, s in CHOICES)
    result = train(tiny_config(model="lipschitz", eps=1.0, recipe="cycle", recipe_solvers=solvers_text, epochs=2,
                               batch_size=16, seed=4), callbacks=[log])
    assert result.config.method == "rk4"  # the default as-trained solver of cycle
    assert log.batches == _expected("cycle", 4, 8)  # 64 samples / 16 = 4 batches per epoch
    assert log.epochs == [("rk4", None)] * 2  # each epoch's test evaluation
    assert (result.model.method, result.model.step_size) == ("rk4", None)


def test_random_recipe_and_a_fixed_step_size_scale_the_substeps(tiny_config):
    log = SolverLog()
    solvers_text = ",".join(f"{m}:{s}" for m, s in CHOICES)
    result = train(tiny_config(model="antisymmetric", eps=0.5, step_size=0.25, method="midpoint", recipe="random",
                               recipe_solvers=solvers_text, batch_size=16), callbacks=[log])
    # substeps split the model's own step (0.25), not the sample gap
    want = [(m, 0.25 / s) for m, s in (recipe_solver("random", CHOICES, 0, k) for k in range(4))]
    assert log.batches == want
    assert (result.model.method, result.model.step_size) == ("midpoint", 0.25)


def test_a_cycle_run_resumed_after_a_stop_equals_an_uninterrupted_one(tiny_config, tmp_path):
    kw = dict(model="lipschitz", eps=1.0, recipe="cycle", recipe_solvers="euler:2,heun,rk4", epochs=3,
              batch_size=16, seed=2)
    full_log, cut_log = SolverLog(), SolverLog()
    full = train(tiny_config(run_dir=str(tmp_path / "full"), **kw),
                 callbacks=[*default_callbacks(tiny_config(**kw)), full_log])
    cfg = tiny_config(run_dir=str(tmp_path / "cut"), stop_after=1, **kw)
    train(cfg, callbacks=[*default_callbacks(cfg), cut_log])
    assert RunDir(tmp_path / "cut").load_checkpoint()["epoch"] == 1
    torch.manual_seed(99)
    cfg = tiny_config(run_dir=str(tmp_path / "cut"), resume=True, **kw)
    resumed = train(cfg, callbacks=[*default_callbacks(cfg), cut_log])
    # 3 solvers, 4 batches per epoch: the round crosses the epoch boundary, so the position must come
    # from the global batch index
    assert cut_log.batches == full_log.batches and len(full_log.batches) == 12
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


# ------------------------------------------------------------------------------ penalty
def _linear_field(a: float) -> nr.LipschitzField:
    """h' = -a h + tanh(U x + b): A = -a I, W = 0."""
    f = nr.LipschitzField(2, 3, gamma_A=a, gamma_W=0.0).double()
    with torch.no_grad():
        f.M_A.zero_()
        f.M_W.zero_()
    return f


def test_the_penalty_is_zero_for_an_exact_step_and_the_heun_euler_estimate_otherwise():
    torch.manual_seed(0)
    values = torch.randn(5, 7, 2, dtype=D64)
    # a = 0: h' = tanh(U x + b) does not depend on h, Euler is exact for the held input
    exact = nr.ContinuousRNN(_linear_field(0.0), 2, method="euler").double()
    states = exact.trajectory(values)
    assert torch.equal(local_error_penalty(exact, values, states, 0.5), torch.zeros(5, dtype=D64))
    # a = 0.7: k2 - k1 = -a dt k1, so the estimate is (a dt^2 / 2)^2 |k1|^2 per step
    a, dt = 0.7, 0.5
    model = nr.ContinuousRNN(_linear_field(a), 2, method="euler", step_size=dt).double()
    states = model.trajectory(values)
    before = torch.cat([torch.zeros(5, 1, 3, dtype=D64), states[:, :-1]], 1)
    k1 = -a * before + torch.tanh(model.field.input_map(values))
    want = ((a * dt ** 2 / 2) ** 2 * k1.pow(2).sum(-1)).sum(1)
    got = local_error_penalty(model, values, states, dt)
    assert torch.allclose(got, want, rtol=1e-12, atol=0) and (got > 0).all()


def test_the_penalty_through_the_adaptive_heun_stepper_equals_the_hand_written_heun_euler_step(monkeypatch):
    """Issue 17 item 6: the estimate is one step of the stepper with the adaptive_heun tableau, no
    longer a Heun-Euler step written out in recipes.py; the numbers and the gradients are those of
    the written-out step e = dt/2 (f(h + dt f(h, u), u) - f(h, u)) on a nonlinear field."""
    torch.manual_seed(3)
    model = nr.ContinuousRNN(nr.LipschitzField(2, 4), 2, method="euler", step_size=0.3).double()
    values = torch.randn(3, 6, 2, dtype=D64)
    states = model.trajectory(values).detach()
    dt = 0.3
    field = model.field
    before = torch.cat([torch.zeros(3, 1, 4, dtype=D64), states[:, :-1]], 1).reshape(18, 4)
    u = field.input_map(values).reshape(18, -1)
    k1 = field.rhs(before, u)
    k2 = field.rhs(before + dt * k1, u)
    want = ((0.5 * dt) * (k2 - k1)).pow(2).sum(-1).reshape(3, 6).sum(1)
    from neuralode_rnn.training import recipes

    steps = []

    def counted(term, plan, *args, **kwargs):
        steps.append(plan.tab.name)
        return rk_step(term, plan, *args, **kwargs)

    monkeypatch.setattr(recipes, "rk_step", counted)
    got = local_error_penalty(model, values, states, dt)
    assert steps == ["adaptive_heun"]  # one step of the stepper, with that tableau
    assert (want > 1e-6).all()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    g_got = torch.autograd.grad(got.sum(), field.M_W, retain_graph=True)[0]
    g_want = torch.autograd.grad(want.sum(), field.M_W)[0]
    assert g_want.abs().max() > 1e-6
    torch.testing.assert_close(g_got, g_want, rtol=1e-10, atol=1e-14)


def test_the_penalty_recipe_adds_the_term_to_the_loss(tiny_config):
    base = dict(model="lipschitz", eps=1.0, method="midpoint", seed=1)
    plain = train(tiny_config(recipe="fixed", **base), callbacks=[])
    pen = train(tiny_config(recipe="penalty", penalty=10.0, **base), callbacks=[])
    assert pen.rows[0]["train_loss"] > plain.rows[0]["train_loss"]


# ------------------------------------------------------------------------------ settings
@pytest.mark.parametrize("kw, match", [
    (dict(recipe="sometimes"), r"recipe must be one of fixed, cycle, random, penalty; got 'sometimes'"),
    (dict(model="lstm", recipe="cycle"), r"recipe='cycle' .* 'lstm' is torch: use recipe 'fixed'"),
    (dict(model="lipschitz-discrete", recipe="random"), "is discrete: use recipe 'fixed'"),
    (dict(recipe="cycle", noise_sigma=0.1), "is for ODE models"),
    (dict(recipe="fixed", recipe_solvers="rk4"), "recipe_solvers='rk4' would be ignored"),
    (dict(recipe="cycle", recipe_solvers="rk4,dopri5"), "entry 'dopri5' names no fixed-step method"),
    (dict(recipe="penalty"), "recipe 'penalty' needs penalty > 0"),
    (dict(recipe="cycle", penalty=1.0), "penalty=1.0 would be ignored"),
    (dict(recipe="penalty", penalty=-1.0), "penalty must be a number >= 0"),
    (dict(recipe="penalty", penalty=1.0, method="dopri5"), "needs a fixed-step method; got 'dopri5'"),
    (dict(recipe="penalty", penalty=1.0, drop=0.3), "reads held, fully observed inputs"),
    (dict(model="antisymmetric", stable_margin=0.1), "stable_margin=0.1 would be ignored"),
    (dict(model="lstm", stable_margin=0.1), "stable_margin=0.1 would be ignored"),
])
def test_recipe_settings_are_checked_by_name(kw, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{"model": "lipschitz", **kw}).resolved()


def test_recipe_fixed_from_the_presets_cycle_when_asked_with_rk4_as_its_solver():
    # issue 17 item 5: the presets train the documented fixed cells; cycle is chosen by the caller
    c = TrainConfig(model="lipschitz", recipe="cycle").resolved()
    assert (c.recipe, c.method, c.recipe_solvers) == ("cycle", "rk4", DEFAULT_RECIPE_SOLVERS)
    assert TrainConfig(model="antisymmetric", method="midpoint", recipe="cycle").resolved().method == "midpoint"
    for kw in (dict(model="lipschitz"), dict(model="antisymmetric", task="adding"), dict(model="lipschitz-discrete"),
               dict(model="lstm"), dict(model="lipschitz", method="dopri5"), dict(model="lipschitz", noise_sigma=0.1)):
        c = TrainConfig(**kw).resolved()
        assert c.recipe == "fixed", kw
    assert TrainConfig(model="lipschitz", recipe="fixed").resolved().method == "euler"  # the digits preset
    assert TrainConfig(model="lstm", method="euler").resolved().method == "euler"  # not refused as ignored
    # a config.json written before recipes existed trained with its own solver: it stays "fixed"
    old = TrainConfig(model="lipschitz", method="midpoint").resolved().to_dict()
    del old["recipe"], old["recipe_solvers"], old["penalty"], old["stable_margin"]
    assert TrainConfig.from_dict(old).resolved().recipe == "fixed"


def test_stable_margin_reaches_the_field(tiny_config):
    from neuralode_rnn.training import build_run

    _, model, _ = build_run(tiny_config(model="lipschitz", stable_margin=0.2))
    assert model.field.stable_margin == 0.2


# ------------------------------------------------------------------------------ command line
def test_cli_recipe_flags_are_checked_by_name(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--recipe-solvers", "rk4,euler:-1"])
    assert e.value.code == 2
    assert "--recipe-solvers: entry 'euler:-1' has substeps '-1'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["train", "--recipe", "often"])
    assert e.value.code == 2 and "--recipe: invalid choice: 'often'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["train", "--penalty", "0"])
    assert e.value.code == 2 and "--penalty expects a positive float; got '0'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["train", "--model", "gru", "--recipe", "random", "--n-train", "8"])
    assert e.value.code == 2 and "'gru' is torch: use recipe 'fixed'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("recipes") / "run"
    main(["train", "--task", "digits", "--n-train", "32", "--n-test", "24", "--hidden-size", "6", "--epochs", "1",
          "--eps", "1", "--recipe", "cycle", "--recipe-solvers", "euler:2,rk4", "--threads", "1", "--quiet",
          "--run-dir", str(d)])
    return d


def _check_score(r):
    assert list(r["accuracies"]) == ["euler h/4", "midpoint h", "rk4 h", "dopri5 rtol 1e-06"]
    drops = {k: r["as_trained"] - a for k, a in r["accuracies"].items()}
    assert r["max_drop"] == pytest.approx(max(drops.values()))
    assert r["method"] == "rk4" and r["step"] == 1.0


def test_evaluate_prints_and_writes_the_robustness_score(tiny_run, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(tiny_run), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "solver robustness (24 samples" in text and "dopri5 rtol 1e-06" in text and "max drop" in text
    result = json.loads(out.read_text())
    _check_score(result["robustness"])
    assert result["robustness"]["as_trained"] == pytest.approx(result["accuracy"])
    assert main(["evaluate", str(tiny_run), "--no-robustness", "--out", str(out)]) == 0
    assert "robustness" not in json.loads(out.read_text())


def test_compare_solvers_reports_the_robustness_score(tiny_run, tmp_path, capsys):
    assert main(["compare-solvers", str(tiny_run), "--checkpoint", "last", "--batch", "4", "--methods",
                 "euler,rk4", "--step-sizes", "1,0.5", "--rtols", "1e-4", "--robustness", "16",
                 "--out", str(tmp_path)]) == 0
    assert "solver robustness (16 samples" in capsys.readouterr().out
    _check_score(json.loads((tmp_path / "solver_comparison.json").read_text())["robustness"])


def test_evaluate_says_why_the_score_does_not_apply(tmp_path, capsys):
    run = tmp_path / "disc"
    main(["train", "--task", "digits", "--n-train", "16", "--n-test", "8", "--hidden-size", "4", "--epochs", "1",
          "--model", "lipschitz-discrete", "--threads", "1", "--quiet", "--run-dir", str(run)])
    assert main(["evaluate", str(run), "--out", str(tmp_path / "e.json")]) == 0
    assert "solver robustness: not applicable (a discrete model has no solver to change)" in capsys.readouterr().out
    assert json.loads((tmp_path / "e.json").read_text())["robustness"] == {
        "not_applicable": "a discrete model has no solver to change"}
