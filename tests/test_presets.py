"""Presets as data (issue 17, item 5): settings not given come from the task's preset, an
explicit setting always wins, config.json says where each value came from, and every preset entry
is the documented run it names."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest

from neuralode_rnn.cli import main
from neuralode_rnn.data.presets import FAMILY_DEFAULTS, PRESETS, find_preset, preset_key
from neuralode_rnn.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def test_task_and_model_alone_get_the_documented_settings_not_the_old_defaults():
    # issue 17: `train --task digits --model lipschitz` trained at eps 0.03 with rk4 under the cycle
    # recipe for 30 epochs (52.2% test); the documented run is Euler at eps 1, fixed, 50 epochs (94.1%)
    c = TrainConfig(task="digits", model="lipschitz").resolved()
    assert (c.method, c.eps, c.recipe, c.lr, c.epochs, c.batch_size, c.hidden_size, c.init_std) == \
        ("euler", 1.0, "fixed", 0.003, 50, 64, 64, 1.0)
    assert c.recipe_solvers is None
    assert c.sources["eps"] == "preset:RESULTS.md digits/lipschitz-euler eps 1"
    assert c.sources["task"] == "default" and c.sources["rtol"] == "default"
    p = TrainConfig(task="digits", model="lipschitz", task_options={"permute": True}).resolved()
    assert (p.method, p.eps) == ("midpoint", 1.0)
    v = TrainConfig(task="uea:JapaneseVowels", model="antisymmetric").resolved()
    assert (v.eps, v.epochs, v.batch_size) == (0.1, 50, 32)  # the vowels entry: the same data


def test_an_explicit_setting_always_wins_and_is_recorded_as_given():
    c = TrainConfig(task="digits", model="lipschitz", eps=0.03, epochs=3, hidden_size=16, method="rk4").resolved()
    assert (c.eps, c.epochs, c.hidden_size, c.method, c.recipe) == (0.03, 3, 16, "rk4", "fixed")
    assert {c.sources[k] for k in ("eps", "epochs", "hidden_size", "method")} == {"flag"}
    assert c.sources["lr"].startswith("preset:")
    # a recipe other than the preset's keeps its own solver default (rk4), not the preset's method
    cyc = TrainConfig(task="digits", model="lipschitz", recipe="cycle").resolved()
    assert (cyc.recipe, cyc.method, cyc.sources["method"]) == ("cycle", "rk4", "default")


def test_solver_presets_go_only_to_models_that_have_a_solver():
    lstm = TrainConfig(task="mnist1d", model="lstm").resolved()  # would be refused if eps/method were filled
    assert (lstm.epochs, lstm.batch_size, lstm.eps, lstm.init_std) == (40, 128, None, None)
    cell = TrainConfig(task="digits", model="antisymmetric-discrete").resolved()
    assert (cell.method, cell.eps, cell.recipe, cell.init_std) == ("euler", 0.3, "fixed", None)
    base = TrainConfig(task="digits", model="gru-dt").resolved()  # no presets: the old defaults
    assert (base.hidden_size, base.epochs, base.sources["epochs"]) == (64, 30, "default")


def test_tasks_without_an_entry_get_the_family_default_and_task_defaults():
    c = TrainConfig(task="adding", model="lipschitz").resolved()
    assert (c.method, c.eps, c.recipe, c.epochs) == ("midpoint", 0.3, "fixed", 20)
    assert c.sources["eps"].startswith("preset:family default") and c.sources["epochs"] == "default"
    assert preset_key("mnist1d", {}, 0.5) == "mnist1d-drop50"
    assert find_preset("mnist1d", "lipschitz", {}, 0.4) is FAMILY_DEFAULTS["lipschitz"]


def test_init_std_reaches_the_lipschitz_field_and_is_refused_elsewhere(tiny_config):
    from neuralode_rnn.training import build_run

    _, model, _ = build_run(tiny_config(model="lipschitz", hidden_size=32, init_std=8.0, seed=0))
    # M ~ N(0, (init_std / N)^2): the sample std is 8/32 = 0.25 (1024 draws: within 10%)
    assert float(model.field.M_A.detach().std()) == pytest.approx(0.25, rel=0.1)
    _, default, _ = build_run(tiny_config(model="lipschitz", hidden_size=32, seed=0))
    assert float(default.field.M_A.detach().std()) == pytest.approx(1 / 32, rel=0.1)
    with pytest.raises(ValueError, match="init_std=2.0 would be ignored"):
        TrainConfig(model="gru", init_std=2.0).resolved()


def _documented_runs() -> dict[tuple[str, str, str], list[float]]:
    with open(ROOT / "docs" / "results" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    out: dict[tuple[str, str, str], list[float]] = {}
    for r in rows:
        out.setdefault((r["task"], r["model"], r["eps"]), []).append(100 * float(r["test_accuracy"]))
    return out


def _selection() -> dict[tuple[str, str], list[dict]]:
    with open(ROOT / "docs" / "results" / "selection.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    families = {"lipschitz-euler": "lipschitz", "lipschitz-midpoint": "lipschitz"}
    out: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        out.setdefault((r["task"], families.get(r["model"], r["model"])), []).append(r)
    return out


def test_every_preset_is_the_documented_run_it_names():
    runs, selection = _documented_runs(), _selection()
    for (task, family), p in PRESETS.items():
        assert p.source.startswith(f"RESULTS.md {task}/"), p.source
        row_model = p.source.split("/")[1].split(" ")[0]
        eps = "" if "eps" not in p.settings else str(float(p.settings["eps"]))
        accs = runs[task, row_model, eps]
        assert p.reference == pytest.approx(statistics.mean(accs), abs=0.051), (task, family)
        if "eps" in p.settings:
            # the validation rule of docs/RESULTS.md: best val accuracy, ties: lower val loss
            best = max(selection[task, family], key=lambda r: (float(r["val_accuracy"]), -float(r["val_loss"])))
            assert (best["model"], float(best["eps"])) == (row_model, p.settings["eps"]), (task, family)
            assert p.settings["method"] == best["method"]


def test_train_with_task_and_model_only_records_the_sources(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--task", "digits", "--model", "lstm", "--n-train", "64", "--n-test", "32",
                 "--epochs", "1", "--quiet", "--threads", "1", "--run-dir", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["batch_size"] == 64 and config["sources"]["batch_size"] == "preset:RESULTS.md digits/lstm"
    assert config["epochs"] == 1 and config["sources"]["epochs"] == "flag"
    assert config["sources"]["hidden_size"].startswith("preset:") and config["hidden_size"] == 64


def test_list_presets_shows_every_entry_and_its_source(capsys):
    assert main(["list", "presets"]) == 0
    out = capsys.readouterr().out
    assert out.count("RESULTS.md") >= len(PRESETS)
    assert "digits-permuted  lipschitz" in out and "method midpoint eps 1" in out
    assert "(other tasks)    lipschitz" in out
