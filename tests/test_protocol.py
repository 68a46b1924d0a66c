"""The references' training protocol (issue 19): early stopping on a validation split, a plateau
schedule stepped with the validation metric, the best-validation weights restored and scored once
on the test split, the weight penalty; and the data pipeline that keeps the test split apart."""

from __future__ import annotations

import json
import math

import pytest
import torch

from neuralode_rnn.data import load_task
from neuralode_rnn.training import RunDir, TrainConfig, train
from neuralode_rnn.training import loop as loop_module
from neuralode_rnn.training.callbacks import Callback, default_callbacks
from neuralode_rnn.training.objective import weight_penalty_term
from neuralode_rnn.zoo import build_model


class _Kill(Exception):
    pass


class KillAfter(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch(self, run, row):
        if row["epoch"] == self.epoch:
            raise _Kill


def test_patience_and_plateau_need_a_validation_split(tiny_config):
    with pytest.raises(ValueError, match=r"patience=3 choose on the per-epoch metric.*test split.*--validation"):
        tiny_config(patience=3).resolved()
    with pytest.raises(ValueError, match=r"schedule='plateau' choose.*validation > 0"):
        tiny_config(schedule="plateau").resolved()
    with pytest.raises(ValueError, match="plateau_factor/plateau_patience would be ignored"):
        tiny_config(validation=0.25, plateau_factor=0.5).resolved()
    with pytest.raises(ValueError, match=r"plateau_factor must be a number in \(0, 1\)"):
        tiny_config(validation=0.25, schedule="plateau", plateau_factor=1.0).resolved()
    with pytest.raises(ValueError, match="field_depth=2 would be ignored"):
        tiny_config(model="gru", field_depth=2).resolved()
    c = tiny_config(validation=0.25, patience=3, schedule="plateau").resolved()
    assert (c.patience, c.plateau_factor, c.plateau_patience, c.weight_penalty) == (3, 0.1, 10, 0.0)
    assert tiny_config(model="ncde").resolved().weight_penalty == 0.03  # the reference's default for ncde
    # ncde's preset stops as the reference does; the others, or ncde on a split of the caller's, on validation
    ncde = tiny_config(model="ncde").resolved()
    assert (ncde.stop_on, ncde.sources["stop_on"].startswith("preset:")) == ("training", True)
    assert tiny_config(model="ncde", validation=0.25).resolved().stop_on == "validation"
    assert tiny_config(model="gru", validation=0.25, patience=3).resolved().stop_on == "validation"


def test_the_test_split_never_selects(tiny_config, monkeypatch):
    """Validation accuracy peaks at epoch 2, the test accuracy at epoch 4: the run keeps epoch 2,
    stops (patience 2) after epoch 4, and reads the test split once, with epoch 2's weights."""
    val, test = [0.5, 0.8, 0.7, 0.6, 0.95], [0.1, 0.2, 0.3, 0.9, 0.99]
    real = loop_module.evaluate
    seen = {}
    states, test_calls = [], []

    class Grab(Callback):
        def on_start(self, run):
            seen["data"] = run.data

    def scripted(model, split, kind, *args, **kw):
        out = dict(real(model, split, kind, *args, **kw))
        state = {k: v.clone() for k, v in model.state_dict().items()}
        if split is seen["data"].final_test:
            test_calls.append(state)
            table = test
        else:
            table = val
        same = [i for i, s in enumerate(states) if all(torch.equal(s[k], state[k]) for k in s)]
        if split is seen["data"].test and not same:  # a training epoch's evaluation
            states.append(state)
            same = [len(states) - 1]
        out["accuracy"] = table[same[0]]
        return out

    monkeypatch.setattr(loop_module, "evaluate", scripted)
    result = train(tiny_config(model="gru", validation=0.25, patience=2, epochs=10), callbacks=[Grab()])
    assert len(result.rows) == 4 and result.status.startswith("stopped early after epoch 4")
    assert [r["test_accuracy"] for r in result.rows] == val[:4]
    assert len(test_calls) == 1 and all(torch.equal(test_calls[0][k], states[1][k]) for k in states[1])
    s = result.summary
    assert (s["best_epoch"], s["early_stopped"], s["epochs_run"]) == (2, True, 4)
    assert (s["validation_accuracy"], s["test_accuracy"]) == (0.8, 0.2)
    assert all(torch.equal(v, states[1][k]) for k, v in result.model.state_dict().items())  # restored


def test_validate_every_reads_the_metric_as_the_reference_does(tiny_config, monkeypatch):
    """Kidger et al.'s loop (experiments/common.py:145-171) reads the validation accuracy after epochs
    0, 10, 20, ... (0-based), keeps the first best of those readings and steps ReduceLROnPlateau(patience=1)
    with them.  validate_every=10, plateau_patience=1: the same learning rate at every epoch and the same
    kept epoch, though the unread epochs score higher (0.99): with every epoch read, epoch 2 would be kept."""
    read = {1: 0.5, 11: 0.7, 21: 0.7, 31: 0.7, 41: 0.6}  # 1-based epochs 1, 11, ... are the reference's 0, 10, ...
    real = loop_module.evaluate
    calls = []

    class Grab(Callback):
        def on_start(self, run):
            calls.append(run.data)

    def scripted(model, split, kind, *args, **kw):
        out = dict(real(model, split, kind, *args, **kw))
        if split is calls[0].test:
            calls.append(None)
            out["accuracy"] = read.get(len(calls) - 1, 0.99)
        return out

    monkeypatch.setattr(loop_module, "evaluate", scripted)
    result = train(tiny_config(model="gru", validation=0.25, schedule="plateau", plateau_patience=1, validate_every=10,
                               patience=30, epochs=45, lr=0.01), callbacks=[Grab()])
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.01)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1, mode="max")
    expected = []
    for epoch in range(41):  # the reference's 0-based epochs
        expected.append(opt.param_groups[0]["lr"])
        if epoch % 10 == 0:
            sched.step(read[epoch + 1])
    assert [r["lr"] for r in result.rows] == pytest.approx(expected, rel=1e-12)
    assert expected[31] == pytest.approx(1e-3) and expected[30] == 0.01  # cut after the 2nd reading without gain
    s = result.summary
    assert (s["best_epoch"], s["epochs_run"], s["early_stopped"]) == (11, 41, True)  # 30 epochs after the gain
    assert [r["test_accuracy"] for r in result.rows][:3] == [0.5, 0.99, 0.99]  # every epoch is still recorded
    with pytest.raises(ValueError, match=r"validate_every=10 choose on the per-epoch metric"):
        tiny_config(validate_every=10).resolved()


def test_plateau_schedule_steps_on_the_validation_metric(tiny_config):
    result = train(tiny_config(model="gru", validation=0.25, schedule="plateau", plateau_factor=0.5,
                               plateau_patience=1, epochs=6, lr=0.01))
    # the same metrics through torch's ReduceLROnPlateau, stepped by hand
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.01)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=1)
    expected = []
    for r in result.rows:
        expected.append(opt.param_groups[0]["lr"])
        sched.step(r["test_accuracy"])
    assert [r["lr"] for r in result.rows] == pytest.approx(expected, rel=1e-12)
    assert result.summary["best_epoch"] == max(range(6), key=lambda i: (result.rows[i]["test_accuracy"], -i)) + 1


def test_resume_with_early_stopping_and_plateau_is_byte_identical(tiny_config, tmp_path):
    kw = dict(model="gru", validation=0.25, patience=2, schedule="plateau", plateau_patience=1, epochs=12,
              batch_size=16, seed=1)
    full = train(tiny_config(run_dir=str(tmp_path / "full"), **kw))
    assert full.summary["early_stopped"] and full.summary["epochs_run"] < 12  # early stopping fired mid-way
    cut = tiny_config(run_dir=str(tmp_path / "cut"), **kw)
    with pytest.raises(_Kill):
        train(cut, callbacks=[*default_callbacks(cut), KillAfter(2)])
    torch.manual_seed(99)
    resumed = train(tiny_config(run_dir=str(tmp_path / "cut"), resume=True, **kw))
    a, b = RunDir(tmp_path / "full"), RunDir(tmp_path / "cut")
    assert a.metrics_path.read_bytes() == b.metrics_path.read_bytes()
    assert a.summary_path.read_bytes() == b.summary_path.read_bytes()
    assert resumed.summary == full.summary == json.loads(a.summary_path.read_text())
    # killed after the stopping epoch's checkpoint: the resumed run stops at once, the same summary
    last = full.summary["epochs_run"]
    cut2 = tiny_config(run_dir=str(tmp_path / "cut2"), **kw)
    with pytest.raises(_Kill):
        train(cut2, callbacks=[*default_callbacks(cut2), KillAfter(last)])
    again = train(tiny_config(run_dir=str(tmp_path / "cut2"), resume=True, **kw))
    assert again.summary == full.summary and len(again.rows) == last


def test_the_test_split_rides_along_the_pipeline():
    plain = load_task("digits", n_train=64, n_test=32)
    held = load_task("digits", n_train=64, n_test=32, validation=0.25)
    assert held.test.n_samples == 16 and torch.equal(held.final_test.values, plain.test.values)
    assert plain.final_test is None
    dropped = load_task("uea:BasicMotions", validation=0.25, drop=0.5, inputs="time,mask")
    assert torch.equal(dropped.final_test.targets, load_task("uea:BasicMotions").test.targets)
    assert dropped.final_test.values.shape[1:] == dropped.train.values.shape[1:]
    # standardised with the training samples' statistics, like the others
    raw = load_task("uea:BasicMotions", standardize=False, validation=0.25)
    s = load_task("uea:BasicMotions", validation=0.25)
    mean, std = torch.tensor(s.info["mean"]), torch.tensor(s.info["std"])
    torch.testing.assert_close(s.final_test.values, ((raw.final_test.values.double() - mean) / std).float(),
                               equal_nan=True)


def test_weight_penalty_adds_its_gradient(tiny_config):
    """One SGD step (momentum's first step is the gradient): the penalised run moves each parameter
    by -lr x w x p / ||p|| more than the plain one (Kidger et al.'s 0.03 x sum of norms)."""
    kw = dict(model="gru", optimizer="sgd", lr=0.1, task_options={"n_train": 32, "n_test": 16}, batch_size=32,
              schedule="none")
    torch.manual_seed(0)
    plain = train(tiny_config(**kw))
    penalised = train(tiny_config(weight_penalty=0.5, **kw))
    torch.manual_seed(0)
    init = build_model("gru", 1, 10, 8).state_dict()  # digits: 1 channel, 10 classes; initialised as train does
    for (name, p), q in zip(plain.model.named_parameters(), penalised.model.parameters()):
        p0 = init[name]
        torch.testing.assert_close(q - p, -0.1 * 0.5 * p0 / p0.norm(), rtol=1e-4, atol=1e-6)


def test_ncde_penalises_its_vector_field_only():
    model = build_model("ncde", 2, 3, 4)
    expected = sum(p.norm() for p in model.func.parameters())
    torch.testing.assert_close(weight_penalty_term(model), expected)
    gru = build_model("gru", 2, 3, 4)
    torch.testing.assert_close(weight_penalty_term(gru), sum(p.norm() for p in gru.parameters()))


def test_cli_flags_reach_the_config():
    from neuralode_rnn.cli import COMMANDS, build_parser

    train_config = COMMANDS["train"][1].__globals__["_train_config"]  # the parser -> config step

    args = build_parser().parse_args(["train", "--model", "ncde", "--validation", "0.2", "--patience", "50",
                                      "--schedule", "plateau", "--plateau-factor", "0.5", "--plateau-patience", "5",
                                      "--weight-penalty", "0.01", "--field-width", "16", "--field-depth", "2",
                                      "--tie-break", "loss", "--validate-every", "10", "--stop-on", "training"])
    c = train_config(args)
    assert (c.patience, c.schedule, c.plateau_factor, c.plateau_patience, c.weight_penalty, c.field_width,
            c.field_depth, c.tie_break, c.validate_every, c.stop_on) == (50, "plateau", 0.5, 5, 0.01, 16, 2, "loss",
                                                                         10, "training")
    assert isinstance(TrainConfig.from_dict(c.to_dict()), TrainConfig)


@pytest.mark.parametrize("tie_break, best, stopped", [("none", 2, 4), ("loss", 3, 4)])
def test_tie_break_loss_keeps_the_equal_accuracy_epoch_with_the_lower_loss(tiny_config, monkeypatch, tie_break,
                                                                            best, stopped):
    """Validation accuracy 0.5, 0.8, 0.8, 0.8, 0.8, ... with losses 1.0, 0.9, 0.7, 0.8, 0.75, ...: the
    reference's rule keeps epoch 2 and stops after 4 (patience 2); with ties broken on the loss it
    keeps epoch 3, and still stops after 4: early stopping reads the accuracy alone."""
    acc, loss = [0.5, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8], [1.0, 0.9, 0.7, 0.8, 0.75, 0.9, 0.9]
    real = loop_module.evaluate
    seen, states = {}, []

    class Grab(Callback):
        def on_start(self, run):
            seen["data"] = run.data

    def scripted(model, split, kind, *args, **kw):
        out = dict(real(model, split, kind, *args, **kw))
        if split is not seen["data"].test:
            return out
        state = {k: v.clone() for k, v in model.state_dict().items()}
        same = [i for i, s in enumerate(states) if all(torch.equal(s[k], state[k]) for k in s)]
        if not same:
            states.append(state)
            same = [len(states) - 1]
        out["accuracy"], out["loss"] = acc[same[0]], loss[same[0]]
        return out

    monkeypatch.setattr(loop_module, "evaluate", scripted)
    result = train(tiny_config(model="gru", validation=0.25, patience=2, epochs=7, tie_break=tie_break),
                   callbacks=[Grab()])
    s = result.summary
    assert (s["best_epoch"], s["epochs_run"], s["early_stopped"]) == (best, stopped, True)
    assert s["validation_loss"] == loss[best - 1]
    with pytest.raises(ValueError, match="tie_break must be 'none' or 'loss'"):
        tiny_config(validation=0.25, tie_break="accuracy").resolved()


def _reference_break(train_loss: dict, train_accuracy: dict, plateau_terminate: int, max_epochs: int) -> int:
    """Kidger et al.'s ``_train_loop`` (experiments/common.py) written out: 0-based epochs, metrics read
    at epochs 0, 10, 20, ...; the number of epochs it trains before breaking."""
    best_loss, best_loss_epoch, best_acc, best_acc_epoch = math.inf, 0, 0.0, 0
    for epoch in range(max_epochs):
        if epoch % 10 == 0:
            loss, acc = train_loss[epoch + 1], train_accuracy[epoch + 1]
            if loss * 1.0001 < best_loss:
                best_loss, best_loss_epoch = loss, epoch
            if acc > best_acc * 1.001:
                best_acc, best_acc_epoch = acc, epoch
            if epoch > best_loss_epoch + plateau_terminate or epoch > best_acc_epoch + plateau_terminate:
                return epoch + 1
    return max_epochs


@pytest.mark.parametrize("case", ["loss", "accuracy"])
def test_stop_on_training_is_the_reference_rule(tiny_config, monkeypatch, case):
    """The training split read at epochs 1, 11, 21, ... (the reference's 0, 10, 20, ...): the run stops
    where the reference's loop breaks, more than ``patience`` epochs after the last lower training loss
    (by a relative 1e-4) or higher training accuracy (by a relative 1e-3), whatever the validation
    accuracy does (flat here: stopping on it would end the run after epoch 21)."""
    if case == "loss":  # the accuracy keeps rising; the loss's last gain of more than 1e-4 is at epoch 31
        loss = {1: 1.0, 11: 0.9, 21: 0.8, 31: 0.7, 41: 0.69995, 51: 0.69996, 61: 0.69995, 71: 0.7, 81: 0.69995}
        acc = {e: 0.1 + e / 100 for e in loss}
    else:  # the loss keeps falling; the accuracy's gains after epoch 21 are below 1e-3 relative
        loss = {e: 2.0 - e / 100 for e in range(1, 92, 10)}
        acc = {1: 0.5, 11: 0.6, 21: 0.7, 31: 0.7006, 41: 0.7006, 51: 0.7, 61: 0.7, 71: 0.7006, 81: 0.9, 91: 0.9}
    real = loop_module.evaluate
    seen = {}

    class Grab(Callback):
        def on_start(self, run):
            seen["data"] = run.data

    def scripted(model, split, kind, *args, **kw):
        out = dict(real(model, split, kind, *args, **kw))
        if split is seen["data"].train:
            seen.setdefault("read", []).append(len(seen.get("read", [])) * 10 + 1)
            epoch = seen["read"][-1]
            out["loss"], out["accuracy"] = loss[epoch], acc[epoch]
        elif split is seen["data"].test:
            out["accuracy"] = 0.5
        return out

    monkeypatch.setattr(loop_module, "evaluate", scripted)
    result = train(tiny_config(model="gru", validation=0.25, validate_every=10, patience=40, stop_on="training",
                               epochs=95, lr=0.01), callbacks=[Grab()])
    expected = _reference_break(loss, acc, 40, 95)
    assert expected == (81 if case == "loss" else 71)
    assert len(result.rows) == expected and result.summary["early_stopped"] and result.summary["stop_on"] == "training"
    assert f"no improvement in training {case} for more than 40 epochs" in result.status
    assert seen["read"] == list(range(1, expected + 1, 10))  # the training split read at the readings only
    stopped_on_validation = train(tiny_config(model="gru", validation=0.25, validate_every=10, patience=20,
                                              epochs=95, lr=0.01), callbacks=[Grab()])
    assert len(stopped_on_validation.rows) == 21


def test_stop_on_training_resumes_where_it_left_off(tiny_config, tmp_path):
    """The best training loss and accuracy and their epochs are in the checkpoint: without them a
    resumed run would count its plateau again from its first reading and stop later."""
    kw = dict(model="gru", validation=0.25, patience=2, stop_on="training", validate_every=2, epochs=14, lr=1e-7,
              batch_size=16, seed=1)
    full = train(tiny_config(run_dir=str(tmp_path / "full"), **kw))
    assert full.summary["early_stopped"] and full.summary["epochs_run"] == 5  # readings 1, 3, 5: 5 > 1 + 2
    cut = tiny_config(run_dir=str(tmp_path / "cut"), **kw)
    with pytest.raises(_Kill):
        train(cut, callbacks=[*default_callbacks(cut), KillAfter(3)])
    resumed = train(tiny_config(run_dir=str(tmp_path / "cut"), resume=True, **kw))
    a, b = RunDir(tmp_path / "full"), RunDir(tmp_path / "cut")
    assert a.metrics_path.read_bytes() == b.metrics_path.read_bytes()
    assert resumed.summary == full.summary


def test_stop_on_is_checked(tiny_config):
    with pytest.raises(ValueError, match=r"stop_on must be one of validation, training .*got 'train'"):
        tiny_config(validation=0.25, patience=3, stop_on="train").resolved()
    with pytest.raises(ValueError, match=r"stop_on='training' would be ignored: early stopping is off.*--patience"):
        tiny_config(validation=0.25, stop_on="training").resolved()
    # the training split only: no validation split needed (nothing held out is read)
    assert tiny_config(patience=3, stop_on="training").resolved().stop_on == "training"
