"""The one harness of the study scripts (issue 17 item 6): ``scripts/harness.py``, used by
``irregular.py``, ``continuous.py`` and ``results.py`` and imported here as a package (no importlib).

The stored command of a run must repeat it: parsed by ``neuralode-rnn train``, it gives back every
setting the study chose.  The CSV rows survive a round trip, missing columns empty."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from neuralode_rnn.training import TrainConfig
from neuralode_rnn.zoo import model_spec
from scripts import continuous, harness, irregular, results

RUN_CONTROLS = ("run_dir", "resume", "fresh", "stop_after", "quiet", "device", "memory_limit", "tanh_kernel")


class Captured(Exception):
    """Raised by the stand-in for ``train`` with the config the command line made."""


def parsed(command: str, monkeypatch) -> TrainConfig:
    """The TrainConfig ``neuralode-rnn train`` makes from ``command`` (training replaced by a stand-in)."""
    import neuralode_rnn.training
    from neuralode_rnn.cli import main

    def capture(config, **kwargs):
        raise Captured(config)

    monkeypatch.setattr(neuralode_rnn.training, "train", capture)
    argv = command.split()
    assert argv[:2] == ["neuralode-rnn", "train"]
    with pytest.raises(Captured) as info:
        main(argv[1:])
    return info.value.args[0]


def chosen(config: TrainConfig) -> dict:
    """The settings a study set (those differing from TrainConfig's defaults), run controls and the record of sources aside."""
    default = TrainConfig()
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(TrainConfig)
            if f.name not in RUN_CONTROLS and f.name != "sources" and getattr(config, f.name) != getattr(default, f.name)}


def study_configs() -> list[TrainConfig]:
    out = []
    for model in irregular.MODELS:  # every model's configurations: inputs, dopri5, eps, lr, ...
        for options in irregular.SPACES[model][:3] + irregular.SPACES[model][-2:]:
            out.append(irregular.make_config("select", "mnist1d", model, options, irregular.SELECT_DROP, 0))
    out.append(irregular.make_config("test", "JapaneseVowels", "lipschitz", irregular.SPACES["lipschitz"][1], 0.3, 2))
    for task in ("digits-permuted", "mnist1d-drop50", "mnist5k-permuted"):
        for model in ("lipschitz-midpoint", "unitary", "lstm"):
            eps = None if model == "lstm" else 0.3
            out.append(results.config_for(task, model, 0, eps, select=eps is not None))
    for job in (("pdigits", "lipschitz", "cheap-2x", 1), ("mnist1d", "antisymmetric", "discrete", 0),
                ("digits", "lipschitz", "stable", 0), ("digits", "lipschitz", "penalty", 0)):
        config = continuous.make_config(*job)
        out += [config, config.resolved()]  # the script stores the resolved config's command
    return out


@pytest.mark.parametrize("config", study_configs(), ids=lambda c: f"{c.task}-{c.model}")
def test_a_stored_command_repeats_the_run(config, monkeypatch):
    """Edge: three copies of command_for wrote three dialects of the same command."""
    command = harness.train_command(config)
    got = chosen(parsed(command, monkeypatch))
    want = chosen(config)
    kind = model_spec(config.model).kind
    if kind == "torch":  # an LSTM has no solver: its solver settings are not written, nor read
        want = {k: v for k, v in want.items() if k not in ("method", "eps", "recipe")}
    if kind != "continuous":
        want.pop("recipe", None)
    if want.get("weight_penalty") == TrainConfig(model=config.model).resolved().weight_penalty:
        want.pop("weight_penalty")  # the model's default, what the command's None resolves to
    model_default = TrainConfig(task=config.task, model=config.model).resolved()
    for k in ("validation", "schedule", "plateau_patience", "validate_every", "stop_on"):  # None: the model's default (ncde: the reference's)
        if got.get(k) is None and want.get(k) == getattr(model_default, k):
            want.pop(k)
    assert {k: got.get(k) for k in want} == want, command
    assert command.endswith(" --run-dir runs/X")


def test_a_setting_without_a_flag_is_refused():
    with pytest.raises(ValueError, match=r"eval_batch_size=64 has no train flag"):
        harness.train_command(TrainConfig(eval_batch_size=64))
    with pytest.raises(ValueError, match=r"task_options \['length'\] have no train flag"):
        harness.train_command(TrainConfig(task_options={"length": 3}))


def test_the_results_page_commands_are_unchanged():
    """The commands docs/RESULTS.md lists, as results.py wrote them before the harness."""
    assert results.command_for("digits-permuted", "lipschitz-midpoint", 0.3, select=True) == (
        "neuralode-rnn train --task digits --permute --model lipschitz-discrete --method midpoint --eps 0.3 "
        "--validation 0.2 --hidden-size 64 --epochs 50 --batch-size 64 --seed 0 --threads 1 --run-dir runs/X")
    assert results.command_for("mnist1d-drop30", "unitary") == (
        "neuralode-rnn train --task mnist1d --drop 0.3 --model unitary --method euler --recipe fixed "
        "--optimizer cayley --hidden-size 64 --epochs 40 --batch-size 128 --seed 0 --threads 1 --run-dir runs/X")
    assert results.command_for("mnist5k-permuted", "lstm") == (
        "neuralode-rnn train --task mnist5k --permute --n-train 2000 --model lstm --hidden-size 64 --epochs 6 "
        "--batch-size 128 --seed 0 --threads 1 --run-dir runs/X")


def test_rows_round_trip_with_missing_columns_empty(tmp_path):
    path = tmp_path / "study" / "runs.csv"  # the directory is made with the first row
    assert harness.read_rows(path) == []
    harness.append_row(path, ("a", "b", "c"), {"a": 1, "c": 0.5})
    harness.append_row(path, ("a", "b", "c"), {"b": "x,y"})
    assert harness.read_rows(path) == [{"a": "1", "b": "", "c": "0.5"}, {"a": "", "b": "x,y", "c": ""}]
    assert path.read_text().splitlines()[0] == "a,b,c"


@pytest.mark.parametrize("in_process", [True, False])
def test_run_jobs_hands_back_every_job_and_takes_new_ones(in_process):
    """finished() may queue more work, at the front or the back of the same list (the work: a builtin,
    so the spawned workers import nothing heavy)."""
    seen = []
    pending = [-1, 2]

    def finished(job, result):
        seen.append((job, result))
        if job == -1:
            pending.append(-3)

    harness.run_jobs(abs, pending, 2, finished, in_process=in_process)
    assert sorted(seen) == [(-3, 3), (-1, 1), (2, 2)] and pending == []


def test_every_study_uses_the_harness_and_none_keeps_a_copy():
    for study in (irregular, continuous, results):
        source = inspect.getsource(study)
        assert "harness." in source
        for copy in ("csv.DictWriter", "csv.DictReader", "ProcessPoolExecutor", "Pool(", "argparse.ArgumentParser",
                     "def _read("):
            assert copy not in source, (study.__name__, copy)
