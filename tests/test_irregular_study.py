"""The protocol of scripts/irregular.py (docs/IRREGULAR.md): the same selection budget for every
model, continuous models no larger than the GRU, the selection rule, and a report from a CSV."""

from __future__ import annotations

import dataclasses
import json

import pytest

pytest.importorskip("sktime")


@pytest.fixture(scope="module")
def study():
    from scripts import irregular

    return irregular


def test_every_model_gets_the_same_number_of_distinct_configurations(study):
    assert set(study.SPACES) == set(study.MODELS)
    for model, configs in study.SPACES.items():
        ids = [study.config_id(model, o) for o in configs]
        assert len(configs) == study.K and len(set(ids)) == study.K, model
        assert all("lr" in o for o in configs), model  # the learning rate is searched for every model
    for model in study.CONTINUOUS:  # eps, solver and inputs are options of the continuous ones
        options = study.SPACES[model]
        assert {o["method"] for o in options} == {"euler", "dopri5"}
        assert {o["inputs"] for o in options} == {None, study.TIME_AWARE}
        assert len({o["eps"] for o in options}) == 3


@pytest.mark.parametrize("set_key", ["BasicMotions", "JapaneseVowels"])
def test_continuous_models_are_no_larger_than_the_gru(study, set_key):
    from neuralode_rnn.training import build_run
    from neuralode_rnn.zoo import count_parameters

    gru = count_parameters(build_run(study.make_config("test", set_key, "gru", {"lr": 0.003}, 0.0, 0))[1])
    for model in study.CONTINUOUS:
        for options in study.SPACES[model][:2]:  # without and with the time-aware input channels
            config = study.make_config("test", set_key, model, options, 0.0, 0)
            n = count_parameters(build_run(config)[1])
            assert n <= gru, (model, options)
            bigger = build_run(dataclasses.replace(config, hidden_size=config.hidden_size + 1))[1]
            assert count_parameters(bigger) > gru, (model, options)  # the largest N within the budget


def _select_row(study, model: str, options: dict, acc: float, loss: float, status: str = "ok") -> dict:
    return {"stage": "select", "set": "BasicMotions", "model": model, "config": study.config_id(model, options),
            "drop": study.SELECT_DROP, "seed": 0, "status": status, "accuracy_last3": acc, "loss_last3": loss}


def test_selection_takes_the_best_score_then_the_lower_loss(study):
    space = study.SPACES["gru"]
    rows = [_select_row(study, "gru", o, 0.5, 1.0) for o in space]
    assert study.chosen(rows[:-1], "BasicMotions", "gru") is None  # incomplete
    assert study.chosen(rows, "BasicMotions", "gru") == space[0]  # all tied: the first
    rows[3] = _select_row(study, "gru", space[3], 0.9, 0.8)
    rows[5] = _select_row(study, "gru", space[5], 0.9, 0.4)
    rows[6] = _select_row(study, "gru", space[6], 0.95, 0.1, status="diverged: x")  # failed runs never win
    assert study.chosen(rows, "BasicMotions", "gru") == space[5]
    failed = [_select_row(study, "gru", o, 0.0, 0.0, status="error: x") for o in space]
    with pytest.raises(LookupError, match="every selection run of gru on BasicMotions failed"):
        study.chosen(failed, "BasicMotions", "gru")


def _full_set_rows(study, set_key: str, score) -> list[dict]:
    """Selection rows of every model on ``set_key``; ``score(model, n)`` its n-th configuration's accuracy."""
    return [{**_select_row(study, m, o, score(m, n), 1.0), "set": set_key}
            for m in study.MODELS for n, o in enumerate(study.SPACES[m])]


def test_reduced_sets_take_each_models_best_configurations_and_the_best_families(study):
    family_bonus = {"lipschitz": 0.0, "antisymmetric": 0.02, "antisymmetric-gated": -0.01, "ctrnn": 0.01}

    def score(m, n):  # configurations 1, 3, 5, 7 best on average; antisymmetric and ctrnn the best families
        return 0.5 + 0.1 * (n % 2) + 0.001 * n + family_bonus.get(m, 0.0)

    first = _full_set_rows(study, "JapaneseVowels", score)
    second = _full_set_rows(study, "BasicMotions", score)
    assert study.space(first, "mnist1d", "gru") is None  # the full sets' selections are not all done
    assert study.models_for(first + second[:-1], "mnist1d") is None
    assert study.jobs(first, ["mnist1d"], list(study.MODELS), False) == ([], [])
    rows = first + second
    assert study.models_for(rows, "JapaneseVowels") == study.MODELS
    assert study.models_for(rows, "mnist1d") == study.BASELINES + ("antisymmetric", "ctrnn")
    for m in study.MODELS:
        assert study.space(rows, "JapaneseVowels", m) == study.SPACES[m]
        assert study.space(rows, "GunPoint", m) == study.SPACES[m][1::2][:study.REDUCED_K]
    # a failed run scores 0 on the full sets: that configuration drops out of the reduced space
    failed = [dict(r, status="error: x") if r["model"] == "gru" and r["config"] == "lr0.05" else r for r in rows]
    assert "lr0.05" not in [study.config_id("gru", o) for o in study.space(failed, "mnist1d", "gru")]
    select, test = study.jobs(rows, ["mnist1d"], list(study.MODELS), False)
    assert test == []
    assert len(select) == study.REDUCED_K * (len(study.BASELINES) + study.REDUCED_FAMILIES)
    assert [j[2] for j in select[::study.REDUCED_K]] == ["antisymmetric", "ctrnn", *study.BASELINES]  # families first
    assert all(j[4] == study.SELECT_DROP and j[5] == 0 for j in select)


def test_report_from_a_csv(study, tmp_path, monkeypatch):
    out = tmp_path / "irregular"
    out.mkdir()
    for name, value in {"OUT": out, "RUNS_CSV": out / "runs.csv", "SELECTION_CSV": out / "selection.csv",
                        "PLOT": out / "plot.png", "DOC": tmp_path / "IRREGULAR.md"}.items():
        monkeypatch.setattr(study, name, value)
    monkeypatch.setattr(study, "SETS", {"BasicMotions": study.SETS["BasicMotions"],
                                        "ItalyPowerDemand": study.SETS["ItalyPowerDemand"]})
    monkeypatch.setattr(study, "FULL_SETS", ("BasicMotions",))
    accuracy = {"gru": 0.8, "lipschitz": 0.9}
    for model in study.MODELS:
        for i, options in enumerate(study.SPACES[model]):
            study.append_row({**_select_row(study, model, options, 0.5 + 0.01 * i, 1.0),
                              "options": json.dumps(options), "train_seconds": 1.0})
        best = study.chosen(study.read_rows(), "BasicMotions", model)
        assert best == study.SPACES[model][-1]
        for drop in study.DROPS:
            for seed in study.SEEDS:
                study.append_row({"stage": "test", "set": "BasicMotions", "model": model, "drop": drop, "seed": seed,
                                  "config": study.config_id(model, best), "hidden_size": 64, "parameters": 100,
                                  "status": "ok", "accuracy": accuracy.get(model, 0.7) - 0.1 * drop + 0.01 * seed,
                                  "train_seconds": 2.0, "command": f"neuralode-rnn train --model {model}"})
    text = study.report()
    assert (tmp_path / "IRREGULAR.md").read_text() == text and (out / "plot.png").exists()
    assert "| GRU (time-blind) | `lr0.05` | 64 | 100 | 81.0 ± 1.0 | 78.0 ± 1.0 | 76.0 ± 1.0 | 74.0 ± 1.0 | 2 |" in text
    # all four continuous families scored alike; the first (Lipschitz) is the chosen one
    assert "chosen continuous model **Lipschitz**" in text
    assert "at least as accurate as every baseline at every drop rate: **yes**" in text
    assert "loss from 0% to 70% dropped 7.0 points: **no** (> 3)" in text
    selection = (out / "selection.csv").read_text().splitlines()
    assert len(selection) == 1 + study.K * len(study.MODELS) and selection[0].startswith("set,model,config")
    # the reduced set: not run, then incomplete; judged only when whole
    assert "- ItalyPowerDemand: not run" in text and "Complete sets: 1 of 2" in text
    planned = (len(study.BASELINES) + study.REDUCED_FAMILIES) * (study.REDUCED_K + len(study.DROPS) * len(study.SEEDS))
    assert f"| ItalyPowerDemand | reduced (K = {study.REDUCED_K}, 7 models) | 40 | 16 | 67 / 1029 | 0 / {planned} " \
           "(incomplete) |" in text
    for options in study.space(study.read_rows(), "ItalyPowerDemand", "lipschitz"):
        study.append_row({**_select_row(study, "lipschitz", options, 0.9, 0.5), "set": "ItalyPowerDemand",
                          "options": json.dumps(options), "train_seconds": 1.0})
    text = study.report()
    assert f"- ItalyPowerDemand: incomplete ({study.REDUCED_K} of {planned} runs" in text
    assert "**ItalyPowerDemand**" in text  # its selection table, K = REDUCED_K columns
    assert "| model | " + " | ".join(f"config {i + 1}" for i in range(study.REDUCED_K)) + " |\n" in text


# ------------------------------------------------------------------ the study under the issue 19 protocol
@pytest.fixture(scope="module")
def protocol():
    from scripts import irregular_protocol

    return irregular_protocol


def test_protocol_runs_the_earlier_choices_under_early_stopping(study, protocol):
    earlier = study.read_rows()
    jobs = protocol.plan_jobs(earlier)
    # the multichannel sets first and whole, the continuous model chosen there and GRU-D first
    first = jobs[:14]
    assert {j[0] for j in first} == {"JapaneseVowels"}
    assert [j[1] for j in first] == [study.best_continuous(earlier, "JapaneseVowels")] * 7 + ["gru-d"] * 7
    multi = [n for n, j in enumerate(jobs) if j[0] in protocol.MULTICHANNEL]
    assert multi == list(range(len(multi)))  # the multichannel sets, all four families there, before the rest
    assert {j[1] for j in jobs if j[0] == "JapaneseVowels"} == set(study.CONTINUOUS) | set(study.BASELINES)
    assert {j[1] for j in jobs if j[0] == "GunPoint"} == {study.best_continuous(earlier, "GunPoint"), *study.BASELINES}
    kinds = {(j[0], j[3]) for j in jobs}
    assert ("BasicMotions", "channels") in kinds and ("GunPoint", "channels") not in kinds  # one channel: no
    assert len({protocol.job_key(j) for j in jobs}) == len(jobs)
    ncde = next(j for j in jobs if j[1] == "ncde")
    assert ncde[2] == {"lr": study.chosen(earlier, ncde[0], "ncde")["lr"]}  # otherwise the reference defaults
    config = protocol.make_config(("JapaneseVowels", "gru-d", {"lr": 0.01}, "channels", 0.5)).resolved()
    assert (config.validation, config.patience, config.schedule, config.plateau_patience) == (0.25, 15, "plateau", 5)
    assert config.drop_channels == 0.5 and config.drop == 0.0 and config.epochs == protocol.EPOCH_CAP
    assert "--drop-channels 0.5" in protocol.harness.train_command(config) and "--patience 15" in \
        protocol.harness.train_command(config)


def test_reference_pass_plan_and_configs(study, protocol):
    """The second pass: per set the first pass's validation choice per kind and the baselines, the
    Neural CDE last, each (set, model, kind, rate) once; its configs carry the reference's loop."""
    earlier = study.read_rows()
    first = protocol.cells(protocol.harness.read_rows(protocol.FIRST_PASS.csv()))
    everything = protocol.reference_jobs(first, earlier)
    jobs = protocol.reference_jobs(first, earlier, seed=1)  # seeds other than 0: no other families
    assert everything[:len(jobs)] == jobs and len({protocol.job_key(j) for j in everything}) == len(everything)
    assert [j[0] for j in jobs] == sorted((j[0] for j in jobs), key=protocol.REFERENCE_ORDER.index)  # set by set
    for s in protocol.MULTICHANNEL:  # seed 0 then runs every family at every condition there
        fams = protocol.families(earlier, s)
        assert {(j[1], j[3], j[4]) for j in everything if j[0] == s and j[1] in fams} == {
            (m, k, r) for m in fams for k, r in protocol.conditions(s)}
    assert {j[0] for j in everything[len(jobs):]} == set(protocol.MULTICHANNEL)
    for s in protocol.REFERENCE_ORDER:
        mine = [j for j in jobs if j[0] == s]
        ncde = [n for n, j in enumerate(mine) if j[1] == "ncde"]
        assert ncde == list(range(len(mine) - len(ncde), len(mine))) and ncde  # the Neural CDE last
        for kind in ("steps", "channels") if s in protocol.MULTICHANNEL else ("steps",):
            cont = protocol.chosen_continuous(first, earlier, s, kind)[0]
            want = {(m, r) for m in (cont, *study.BASELINES) for r in (0.0, *protocol.RATES)}
            assert want <= {(j[1], j[4]) for j in mine if j[3] == kind or j[4] == 0.0}
    # BasicMotions: Antisymmetric gated chosen for steps, Lipschitz for values per channel
    bm = {(j[1], j[3]) for j in jobs if j[0] == "BasicMotions" and j[4] > 0}
    assert {m for m, k in bm if k == "channels"} - set(study.BASELINES) == {
        protocol.chosen_continuous(first, earlier, "BasicMotions", "channels")[0]}
    assert len(protocol.reference_jobs(first, earlier, ("GunPoint",))) == 24
    # once every family ran on this pass with seed 0, the family of its best mean validation accuracy is
    # judged and the other seeds run it
    fams = protocol.families(earlier, "BasicMotions")
    ref = protocol.cells([{"set": "BasicMotions", "model": m, "kind": k, "rate": r, "status": "ok", "test_accuracy": 0.5,
                           "validation_accuracy": 0.9 if m == fams[3] else 0.8}
                          for m in fams for k, r in protocol.conditions("BasicMotions")])
    for kind in ("steps", "channels"):
        assert protocol.reference_choice(ref, first, earlier, "BasicMotions", kind) == (fams[3], "this pass's validation")
        assert protocol.reference_choice({}, first, earlier, "BasicMotions", kind) == (
            protocol.chosen_continuous(first, earlier, "BasicMotions", kind)[0], "the first pass's validation")
    later = protocol.reference_jobs(first, earlier, ("BasicMotions",), ref, seed=2)
    assert {j[1] for j in later} - set(study.BASELINES) == {fams[3]} and len(later) == 7 * 6
    config = protocol.make_config(jobs[0], protocol.REFERENCE_PASS).resolved()
    assert (config.patience, config.stop_on, config.validate_every, config.plateau_patience, config.epochs) == (
        50, "training", 10, 1, 1000)
    assert config.run_dir.startswith(str(protocol.REFERENCE_PASS.run_dirs()))
    command = protocol.harness.train_command(config)
    assert "--stop-on training --hidden-size" in command and "--validate-every 10" in command
    with pytest.raises(SystemExit):
        protocol.main(["run-reference", "--sets", "GunPoint,Nope"])


def test_every_model_gets_the_goals_tests_against_the_others(study, protocol):
    """A model passes the first test only if no other model beats it at any rate (ties pass); the loss
    is its own 0% minus 70% accuracy; the section counts each model's passes over the judged pairs."""
    models = ("lipschitz", *study.BASELINES)
    acc = {m: {0.0: 0.80, 0.3: 0.70, 0.5: 0.60, 0.7: 0.50} for m in models}
    acc["gru-d"] = {0.0: 0.90, 0.3: 0.70, 0.5: 0.60, 0.7: 0.89}  # best at 0% and 70%, tied at 30% and 50%
    acc["gru"] = {0.0: 0.80, 0.3: 0.75, 0.5: 0.60, 0.7: 0.50}  # best at 30% only
    c = {("GunPoint", m, "steps", r): {"test_accuracy": str(a), "validation_accuracy": "0.5"}
         for m in models for r, a in acc[m].items()}
    tests = protocol.model_tests(c, "GunPoint", "steps", models)
    assert tests["gru-d"][0] is False  # the GRU is ahead of it at 30%
    assert all(not t[0] for t in tests.values())
    assert tests["gru-d"][1] == pytest.approx(1.0) and tests["lipschitz"][1] == pytest.approx(30.0)
    acc["gru-d"][0.3] = 0.75  # now tied with the GRU at 30%: ties pass
    c.update({("GunPoint", "gru-d", "steps", 0.3): {"test_accuracy": "0.75", "validation_accuracy": "0.5"}})
    tests = protocol.model_tests(c, "GunPoint", "steps", models)
    assert [m for m, t in tests.items() if t[0]] == ["gru-d"]
    v = {"model": "lipschitz", "seeds": (0,)}
    text = "\n".join(protocol.every_model_section({0: c}, [("steps", "GunPoint", v)]))
    assert f"{study.LABELS['gru-d']} 1" in text and "the seed field 0" in text
    assert "| GunPoint (steps) | Lipschitz: no, 30.0 |" in text
    assert "GunPoint (steps) 39.0 points (58.5 test samples)" in text  # GRU-D 89 vs 50 at 70%; 150 test samples
    assert protocol.every_model_section({0: c}, []) == []


def test_run_reference_models_splits_a_set_between_processes(protocol, monkeypatch):
    """``--models`` keeps only those models' jobs (two processes on one set and seed take disjoint runs);
    an unknown name is refused."""
    seen = {}

    def capture(p, jobs):
        seen[p.seed] = jobs([])

    monkeypatch.setattr(protocol, "run_pass", capture)
    protocol.main(["run-reference", "--sets", "GunPoint", "--seed", "2", "--models", "ncde,gru"])
    protocol.main(["run-reference", "--sets", "GunPoint", "--seed", "3"])
    assert {j[1] for j in seen[2]} == {"ncde", "gru"} and len(seen[2]) == 8
    assert {j[0] for j in seen[3]} == {"GunPoint"} and len(seen[3]) == 24
    assert [j for j in seen[3] if j[1] in ("ncde", "gru")] == seen[2]
    with pytest.raises(SystemExit):
        protocol.main(["run-reference", "--models", "gru,nope"])


def test_reference_verdict_averages_the_seeds_a_set_has_whole(study, protocol):
    """Seed 0 alone until seed 1 has every run the verdict needs, then the mean of both."""
    models = ("lipschitz", *study.BASELINES)
    rates = (0.0, *protocol.RATES)

    def make(acc):
        return {("GunPoint", m, "steps", r): {"test_accuracy": str(acc(m, r)), "validation_accuracy": "0.5"}
                for m in models for r in rates}

    s0 = make(lambda m, r: 0.90 if m == "lipschitz" else 0.89)  # seed 0: the seed field ahead by 1 point
    s1 = make(lambda m, r: 0.80 if m == "lipschitz" else 0.83)  # seed 1: behind by 3
    v = protocol._seed_verdict({0: s0}, "GunPoint", "steps", "lipschitz")
    assert (v["beats"], v["how"]) == (True, "the first pass's validation; seed 0")
    partial = dict(s1)
    partial.pop(("GunPoint", "gru-d", "steps", 0.7))
    v = protocol._seed_verdict({0: s0, 1: partial}, "GunPoint", "steps", "lipschitz")
    assert (v["beats"], v["how"]) == (True, "the first pass's validation; seed 0")  # seed 1 incomplete: not averaged in
    v = protocol._seed_verdict({0: s0, 1: s1}, "GunPoint", "steps", "lipschitz")
    assert v["seeds"] == (0, 1)
    assert (v["beats"], v["how"]) == (False, "the first pass's validation; mean of seeds 0, 1")  # 85.0 against 86.0
    assert v["short"][0] == f"0%: {study.LABELS[study.BASELINES[0]]} 86.0 vs 85.0"
    assert protocol._seed_verdict({1: s1}, "GunPoint", "steps", "lipschitz") is None  # seed 0 must be whole
    rows = [{"set": "GunPoint", "model": m, "status": "ok", "seed": str(seed), "kind": "steps", "rate": str(r),
             "train_accuracy_last": str(fit)}
            for m, seed, r, fit in (("gru", 0, 0.0, 0.55), ("gru", 1, 0.3, 0.5), ("gru-d", 0, 0.3, 1.0),
                                    ("lipschitz", 0, 0.3, 0.5), ("ode-rnn", 0, 0.7, 0.89))]
    assert protocol.unfitted_baselines(rows, "GunPoint", "steps") == (
        f"Caveat: 2 baseline run(s) here ended below 90% training accuracy ({study.LABELS['gru']} 0% 55%, "
        f"{study.LABELS['ode-rnn']} 70% 89%)")  # seed 1, the seed field and fitted runs are not named
    assert protocol.unfitted_baselines(rows, "GunPoint", "steps", (0, 1)) == (
        f"Caveat: 3 baseline run(s) here ended below 90% training accuracy ({study.LABELS['gru']} 0% seed 0 55%, "
        f"{study.LABELS['gru']} 30% seed 1 50%, {study.LABELS['ode-rnn']} 70% seed 0 89%)")
    assert protocol.unfitted_baselines(rows, "GunPoint", "channels") == (
        f"Caveat: 1 baseline run(s) here ended below 90% training accuracy ({study.LABELS['gru']} 0% 55%)")
    config = protocol.make_config(("GunPoint", "gru", {"lr": 0.01}, "steps", 0.3),
                                  protocol.dataclasses.replace(protocol.REFERENCE_PASS, seed=1))
    assert config.seed == 1 and config.run_dir.endswith("__s1")


def test_lr_chosen_under_the_reference_pass(study, protocol):
    """Every model's LR_GRID at 50% steps first; a model's other rates once all its candidates ran,
    with the lr of the best validation accuracy (ties: the smaller)."""
    earlier = study.read_rows()
    first = protocol.cells(protocol.harness.read_rows(protocol.FIRST_PASS.csv()))
    jobs = protocol.lr_jobs([], first, earlier)
    n = len(protocol.LR_GRID)
    assert len(jobs) == n * (1 + len(study.BASELINES)) and {j[4] for j in jobs} == {protocol.SELECT_RATE}
    assert [j[1] for j in jobs[-n:]] == ["ncde"] * n  # the costliest last
    s, m = "GunPoint", "gru"
    base = protocol.options_for(earlier, s, m)

    def row(lr, val, status="ok"):
        return {"set": s, "model": m, "config": protocol.config_id(m, {**base, "lr": lr}), "kind": "steps",
                "rate": str(protocol.SELECT_RATE), "status": status, "validation_accuracy": str(val)}

    rows = [row(0.001, 0.5), row(0.003, 0.75), row(0.01, 0.75)]
    assert protocol.lr_choice(rows, s, m, base) is None  # 0.03 not run yet
    rows.append(row(0.03, 0.9, status="error: diverged"))  # a failed run scores 0
    assert protocol.lr_choice(rows, s, m, base) == {**base, "lr": 0.003}  # the tie to the smaller lr
    later = [j for j in protocol.lr_jobs(rows, first, earlier) if j[1] == m and j[4] != protocol.SELECT_RATE]
    assert [(j[2]["lr"], j[4]) for j in later] == [(0.003, r) for r in (0.0, 0.3, 0.7)]
    config = protocol.make_config(later[0], protocol.LR_PASS)
    assert config.stop_on == "training" and config.lr == 0.003 and "reference-lr" in config.run_dir


def test_protocol_verdicts_from_rows(study, protocol):
    earlier = study.read_rows()
    cont = study.best_continuous(earlier, "JapaneseVowels")
    acc = {cont: 0.95, "gru": 0.9, "gru-dt": 0.9, "gru-d": 0.96, "ode-rnn": 0.9, "ncde": 0.9}
    rows = []
    for m, a in acc.items():
        for kind, rate in protocol.conditions("JapaneseVowels"):
            rows.append({"set": "JapaneseVowels", "model": m, "kind": kind, "rate": rate, "status": "ok",
                         "test_accuracy": a - (0.05 if rate == 0.7 else 0.0) + (0.02 if m == cont and rate else 0)})
    cells = protocol.cells(rows)
    v = protocol.verdict(cells, earlier, "JapaneseVowels", "steps")
    # GRU-D is better at 0% only (96 > 95); the continuous model loses 95 - 92 = 3 points: within 3
    assert not v["beats"] and len(v["short"]) == 1 and v["short"][0].startswith("0%: GRU-D 96.0 vs 95.0")
    assert v["loss"] == pytest.approx(3.0)
    assert protocol.verdict(cells, earlier, "BasicMotions", "steps") is None  # not run: not judged


def test_protocol_chooses_the_family_on_its_own_validation_once_all_have_run(study, protocol):
    earlier = study.read_rows()
    fams = protocol.families(earlier, "BasicMotions")
    assert fams[0] == study.best_continuous(earlier, "BasicMotions") and sorted(fams) == sorted(study.CONTINUOUS)
    rows = [{"set": "BasicMotions", "model": m, "kind": k, "rate": r, "status": "ok", "test_accuracy": 0.5,
             "validation_accuracy": 0.9 if m == fams[2] else 0.8}
            for m in fams for k, r in protocol.conditions("BasicMotions")]
    cells = protocol.cells(rows)
    assert protocol.chosen_continuous(cells, earlier, "BasicMotions", "channels") == (fams[2], "this protocol's validation")
    cells = protocol.cells([r for r in rows if not (r["model"] == fams[3] and r["rate"] == 0.7)])
    assert protocol.chosen_continuous(cells, earlier, "BasicMotions", "steps") == (fams[0], "the earlier study's validation")


def test_controlled_form_is_chosen_on_validation_then_runs_every_condition(protocol):
    """The controlled study: per set, the candidates' runs at 50% steps first; the one with the best
    validation accuracy (ties: the earlier candidate) then runs the set's other conditions, the 50% run
    not repeated; a failed candidate scores 0."""
    cands = protocol.controlled_candidates()
    assert len(cands) == 4 and {m for m, _ in cands} == set(protocol.CONTROLLED_FAMILIES)

    def row(m, o, val, status="ok"):
        return {"set": "BasicMotions", "model": m, "config": protocol.config_id(m, o), "kind": "steps",
                "rate": protocol.SELECT_RATE, "status": status, "validation_accuracy": val}

    rows = [row(m, o, 0.5) for m, o in cands[:-1]]
    assert protocol.controlled_choice(rows, "BasicMotions") is None  # one candidate not run yet
    jobs = protocol.controlled_jobs(rows)
    assert [j for j in jobs if j[0] == "BasicMotions"] == [("BasicMotions", m, o, "steps", protocol.SELECT_RATE)
                                                          for m, o in cands]
    rows.append(row(*cands[-1], 0.5))
    assert protocol.controlled_choice(rows, "BasicMotions") == cands[0]  # all tied: the first
    rows[2] = row(*cands[2], 0.9)
    rows[1] = row(*cands[1], 0.95, status="error: diverged")  # a failed run scores 0, whatever it says
    assert protocol.controlled_choice(rows, "BasicMotions") == cands[2]
    later = [j for j in protocol.controlled_jobs(rows) if j[0] == "BasicMotions"][len(cands):]
    assert [(j[1], j[2]) for j in later] == [cands[2]] * (len(protocol.conditions("BasicMotions")) - 1)
    assert ("steps", protocol.SELECT_RATE) not in [(j[3], j[4]) for j in later]
    assert {(j[3], j[4]) for j in later} | {("steps", protocol.SELECT_RATE)} == set(protocol.conditions("BasicMotions"))


def test_first_pass_and_its_controlled_forms_run_through_the_pass_loop(study, protocol, monkeypatch):
    """run and run-controlled go through run_pass like the other passes: the first pass's rule and run
    directories, rows in protocol.csv and controlled.csv, the jobs of each."""
    seen = []
    monkeypatch.setattr(protocol, "run_pass", lambda p, jobs: seen.append((p, jobs([]))))
    protocol.main(["run"])
    protocol.main(["run-controlled"])
    (first, first_jobs), (ctrl, ctrl_jobs) = seen
    assert first == protocol.FIRST_PASS and first.csv().name == "protocol.csv"
    assert first_jobs == protocol.plan_jobs(protocol.earlier_rows())
    assert ctrl.csv() == study.OUT / "controlled.csv" and ctrl.run_dirs() == protocol.FIRST_PASS.run_dirs()
    assert dataclasses.replace(ctrl, table="") == protocol.FIRST_PASS
    assert ctrl_jobs == protocol.controlled_jobs([])


def test_controlled_forms_under_the_reference_pass(study, protocol, tmp_path, monkeypatch):
    """run-reference-controlled runs the controlled candidates of the given sets under the reference
    pass's loop; its section compares the chosen form with the pass's seed-0 seed field and baselines."""
    seen = []
    monkeypatch.setattr(protocol, "run_pass", lambda p, jobs: seen.append((p, jobs([]))))
    protocol.main(["run-reference-controlled", "--sets", "GunPoint"])
    p, jobs = seen[0]
    assert (p.name, p.stop_on, p.patience, p.validate_every) == ("reference-controlled", "training", 50, 10)
    assert jobs == [("GunPoint", m, o, "steps", protocol.SELECT_RATE) for m, o in protocol.controlled_candidates()]
    with pytest.raises(SystemExit):
        protocol.main(["run-reference-controlled", "--sets", "Nope"])

    monkeypatch.setattr(study, "OUT", tmp_path)
    earlier = study.read_rows()
    first = protocol.cells(protocol.harness.read_rows(protocol.FIRST_PASS.csv()))
    s = "GunPoint"
    seed_model = protocol.reference_choice({}, first, earlier, s, "steps")[0]
    rates = (0.0, *protocol.RATES)
    c = {(s, m, "steps", r): {"test_accuracy": str(0.80 if m == seed_model else 0.70), "validation_accuracy": "0.5"}
         for m in (seed_model, *study.BASELINES) for r in rates}
    assert protocol.reference_controlled_section(c, first, earlier) == []  # nothing run: no section
    cands = protocol.controlled_candidates()
    pick = cands[1]
    path = protocol.CONTROLLED_REFERENCE.csv()
    assert path.parent == tmp_path
    base = {f: "" for f in protocol.FIELDS}
    for m, o in cands:
        protocol.harness.append_row(path, protocol.FIELDS, {
            **base, "set": s, "model": m, "config": protocol.config_id(m, o), "kind": "steps", "seed": "0",
            "rate": str(protocol.SELECT_RATE), "status": "ok", "test_accuracy": "0.9", "epochs_run": "61",
            "early_stopped": "1", "train_accuracy_best": "1.0", "command": "neuralode-rnn train",
            "validation_accuracy": "0.9" if (m, o) == pick else "0.5"})
    for r in (0.0, 0.3, 0.7):
        protocol.harness.append_row(path, protocol.FIELDS, {
            **base, "set": s, "model": pick[0], "config": protocol.config_id(*pick), "kind": "steps", "seed": "0",
            "rate": str(r), "status": "ok", "test_accuracy": "0.6", "validation_accuracy": "0.5", "epochs_run": "61",
            "early_stopped": "1", "train_accuracy_best": "1.0", "command": "neuralode-rnn train"})
    text = "\n".join(protocol.reference_controlled_section(c, first, earlier))
    assert "under the reference rule" in text and "sets with a choice made: 1 of" in text
    assert f"| {study.SETS[s][0]} | " in text and f"{study.LABELS[pick[0]]} eps {pick[1]['eps']:g} |" in text
    # the controlled form: 60 at 0/30/70% (below the baselines' 70), 90 at 50%; the seed field 80 everywhere
    assert f"GunPoint: {study.LABELS[pick[0]]}: no (0%: " in text
    assert "GunPoint 0% -20.0, 30% -20.0, 50% +10.0, 70% -20.0" in text

