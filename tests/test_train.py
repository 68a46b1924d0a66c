"""The training loop: a smoke epoch per model family, exact resume, NaN guard, atomic writes."""

import math
import os

import pytest
import torch

from neuralode_rnn import runs
from neuralode_rnn import train as train_mod
from neuralode_rnn.runs import RunDir
from neuralode_rnn.train import NonFiniteLossError, TrainConfig, train
from neuralode_rnn.zoo import MODELS, build_model, count_parameters

TINY = {"n_train": 64, "n_test": 32}


def tiny(**kw) -> TrainConfig:
    base = dict(task="digits", task_options=dict(TINY), hidden_size=8, epochs=1, batch_size=32, quiet=True,
                threads=1)
    base.update(kw)
    return TrainConfig(**base)


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("model", ["lipschitz", "antisymmetric", "antisymmetric-gated", "unitary", "ctrnn",
                                   "lipschitz-discrete", "unitary-discrete", "lstm", "gru"])
def test_one_epoch_smoke_trains_every_family(model):
    torch.manual_seed(0)
    before = _params(build_model(model, 1, 10, 8))  # the same seed-0 initialisation train() draws
    result = train(tiny(model=model))
    (row,) = result.rows
    assert math.isfinite(row["train_loss"]) and math.isfinite(row["test_loss"])
    assert 0.0 <= row["test_accuracy"] <= 1.0
    assert row["nfe"] >= 64  # at least one evaluation per sample
    assert result.parameters == count_parameters(result.model)
    after = result.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "no parameter moved"


def test_midpoint_cell_counts_two_evaluations_per_step():
    result = train(tiny(model="lipschitz-discrete", method="midpoint"))
    assert result.rows[0]["nfe"] == 2 * 64


def test_sequence_task_reads_out_every_step():
    result = train(tiny(task="copy", model="lipschitz-discrete", task_options={"T": 5, "n_train": 32,
                                                                                "n_test": 16}))
    net = train_mod.PerStepReadout(result.model)
    values = torch.zeros(3, 25, 10)
    assert net(values).shape == (3, 25, 9)
    assert math.isfinite(result.rows[0]["test_loss"])


def test_regression_task_has_no_accuracy():
    result = train(tiny(task="adding", model="gru", task_options={"T": 10, "n_train": 32, "n_test": 16}))
    assert result.rows[0]["test_accuracy"] is None and result.rows[0]["train_accuracy"] is None


def test_irregular_task_feeds_scaled_sample_times_to_continuous_models():
    result = train(tiny(drop=0.5, model="lipschitz", task_options={"n_train": 32, "n_test": 16}))
    assert result.rows[0]["nfe"] <= 33  # one step per remaining observation (plus the first call)
    values = torch.zeros(2, 20, 1)
    times = torch.arange(1.0, 21.0).expand(2, -1) * torch.tensor([[1.0], [2.0]])
    t = train_mod.model_times(result.model, values, times, 0.03)
    assert torch.allclose(t, 0.03 * times)
    assert train_mod.model_times(build_model("gru", 1, 10, 4), values, times, 0.03) is None


class _Kill(Exception):
    pass


def _strip_time(rows):
    return [{k: v for k, v in r.items() if k not in ("epoch_seconds", "wall_seconds")} for r in rows]


# the discrete twin of the Lipschitz RK2 model: the loop is the same, the solve ~10x cheaper
RESUME = dict(model="lipschitz-discrete", method="midpoint", epochs=3, batch_size=16, seed=3)


def test_resume_after_a_kill_between_epochs_equals_an_uninterrupted_run(tmp_path):
    full = train(tiny(run_dir=str(tmp_path / "full"), **RESUME))

    def kill(epoch, row):
        if epoch == 1:
            raise _Kill

    with pytest.raises(_Kill):
        train(tiny(run_dir=str(tmp_path / "cut"), **RESUME), callbacks=[kill])
    assert RunDir(tmp_path / "cut").load_checkpoint()["epoch"] == 1
    torch.manual_seed(123)  # a resumed process starts from arbitrary global RNG states
    resumed = train(tiny(run_dir=str(tmp_path / "cut"), resume=True, **RESUME))
    assert _strip_time(resumed.rows) == _strip_time(full.rows)
    a, b = RunDir(tmp_path / "full").read_metrics(), RunDir(tmp_path / "cut").read_metrics()
    assert [r["test_loss"] for r in a] == [r["test_loss"] for r in b] and len(b) == 3
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_resume_after_a_kill_in_the_middle_of_an_epoch(tmp_path, monkeypatch):
    full = train(tiny(run_dir=str(tmp_path / "full"), **RESUME))
    calls = {"n": 0}
    original = train_mod._objective

    def dies_in_epoch_two(*args):
        calls["n"] += 1
        if calls["n"] == 4 + 2 + 2:  # 4 training batches + 1 test batch per epoch, then 2 more
            raise _Kill
        return original(*args)

    monkeypatch.setattr(train_mod, "_objective", dies_in_epoch_two)
    with pytest.raises(_Kill):
        train(tiny(run_dir=str(tmp_path / "cut"), **RESUME))
    monkeypatch.setattr(train_mod, "_objective", original)
    resumed = train(tiny(run_dir=str(tmp_path / "cut"), resume=True, **RESUME))
    assert _strip_time(resumed.rows) == _strip_time(full.rows)
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_stop_after_then_resume(tmp_path):
    first = train(tiny(run_dir=str(tmp_path / "r"), stop_after=1, **RESUME))
    assert len(first.rows) == 1 and first.status.startswith("stopped after epoch 1")
    second = train(tiny(run_dir=str(tmp_path / "r"), resume=True, **RESUME))
    assert [r["epoch"] for r in second.rows] == [1, 2, 3] and second.status == "finished"


def test_a_used_run_directory_needs_resume(tmp_path):
    train(tiny(model="gru", run_dir=str(tmp_path)))
    with pytest.raises(FileExistsError, match="--resume"):
        train(tiny(model="gru", run_dir=str(tmp_path)))


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    original = train_mod._objective
    calls = {"n": 0}

    def nan_in_epoch_two(out, targets, kind):
        calls["n"] += 1
        loss, correct, count = original(out, targets, kind)
        if calls["n"] == 4:  # 2 training batches + 1 test batch in epoch 1, then the first of epoch 2
            loss = loss * float("nan")
        return loss, correct, count

    monkeypatch.setattr(train_mod, "_objective", nan_in_epoch_two)
    rd = RunDir(tmp_path)
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at epoch 2, batch 1.*last good checkpoint"):
        train(tiny(model="lipschitz-discrete", epochs=3, run_dir=str(tmp_path)))
    state = rd.load_checkpoint()
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert rd.status_path.read_text().startswith("failed: the training loss became nan")
    assert len(rd.read_metrics()) == 1


def test_huge_learning_rate_is_caught_by_the_guard():
    with pytest.raises(NonFiniteLossError, match="smaller --lr"):
        train(tiny(model="lipschitz-discrete", lr=1e30, epochs=3, batch_size=8))


def test_atomic_save_leaves_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "last.pt"
    runs.atomic_save({"epoch": 1}, target)

    def broken_save(obj, f):
        f.write(b"PARTIAL")
        raise OSError("disk full")

    monkeypatch.setattr(runs.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        runs.atomic_save({"epoch": 2}, target)
    assert os.listdir(tmp_path) == ["last.pt"]  # no temporary file left behind
    monkeypatch.undo()
    assert torch.load(target)["epoch"] == 1


@pytest.mark.parametrize("kw, match", [
    ({"model": "lstmx"}, "unknown model 'lstmx'; expected one of lipschitz"),
    ({"schedule": "exp"}, "unknown schedule 'exp'"),
    ({"optimizer": "adamw2"}, "unknown optimizer 'adamw2'"),
    ({"epochs": 0}, "epochs must be a positive int; got 0"),
    ({"lr": -1.0}, "lr must be a positive number"),
    ({"model": "gru", "noise_sigma": 0.1}, "noise_sigma > 0 needs a continuous model; 'gru' is torch"),
    ({"noise_sigma": -0.1}, "noise_sigma must be a number >= 0"),
    ({"noise_sigma": 0.1, "noise": "pink"}, "noise must be 'additive' or 'multiplicative'"),
])
def test_bad_settings_name_the_setting(kw, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kw).resolved()


def test_cayley_optimizer_keeps_w_unitary_and_resumes_exactly(tmp_path):
    from neuralode_rnn.parametrizations import is_unitary_parameter, unitarity_error

    kw = dict(RESUME, model="unitary", method="euler", optimizer="cayley")
    full = train(tiny(run_dir=str(tmp_path / "full"), **kw))
    (W,) = [p for p in full.model.parameters() if is_unitary_parameter(p)]
    assert unitarity_error(W.detach()) < 1e-5
    torch.manual_seed(kw["seed"])  # the initialisation train() draws
    before = build_model("unitary", 1, 10, 8)
    assert not torch.equal(W.detach(), [p for p in before.parameters() if is_unitary_parameter(p)][0].detach())

    def kill(epoch, row):
        if epoch == 1:
            raise _Kill

    with pytest.raises(_Kill):
        train(tiny(run_dir=str(tmp_path / "cut"), **kw), callbacks=[kill])
    resumed = train(tiny(run_dir=str(tmp_path / "cut"), resume=True, **kw))
    assert _strip_time(resumed.rows) == _strip_time(full.rows)
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_every_model_name_builds():
    for name in MODELS:
        m = build_model(name, 2, 3, 4)
        assert m(torch.zeros(1, 5, 2)).shape == (1, 3)


def test_validation_holds_out_a_fixed_share_of_the_training_set_and_never_reads_test():
    from neuralode_rnn.train import _load_data, validation_split

    full = _load_data(tiny().resolved())
    data = _load_data(tiny(validation=0.25, seed=5).resolved())
    assert data.train.n_samples == 48 and data.test.n_samples == 16
    # held-out and kept samples partition the training set; the test split is not among them
    rows = {tuple(v.flatten().tolist()) for v in full.train.values}
    kept = {tuple(v.flatten().tolist()) for v in data.train.values}
    held = {tuple(v.flatten().tolist()) for v in data.test.values}
    assert kept | held == rows and not kept & held
    assert not held & {tuple(v.flatten().tolist()) for v in full.test.values}
    # the same held-out samples for every run seed (one validation set per task)
    again = validation_split(full, 0.25)
    assert torch.equal(again.test.values, data.test.values)
    result = train(tiny(validation=0.25))
    assert result.rows[-1]["evaluated_on"] == "validation"
    assert train(tiny()).rows[-1]["evaluated_on"] == "test"
    with pytest.raises(ValueError, match="validation"):
        train(tiny(validation=1.0))
