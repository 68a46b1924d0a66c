"""Irregular series through the training stack (issue 10, phase 2): uea:NAME tasks, --drop-channels
and --inputs from the command line to the data and the model, task defaults, GRU-D's mean fitted on
the training values, and a validation split that informs no preprocessing statistic."""

from __future__ import annotations

import pytest
import torch

from neuralode_rnn.cli import COMMANDS, build_parser, main
from neuralode_rnn.data import load_task, load_uea, standardize, validation_split
from neuralode_rnn.inputs import observed_mask
from neuralode_rnn.training import TrainConfig, build_run, load_data, task_defaults, train

pytest.importorskip("sktime")

TINY_UEA = {"n_train": 12, "n_test": 8}


def train_config(argv: list[str]) -> TrainConfig:
    """The config `neuralode-rnn train ARGV` would run (the parser -> config step only)."""
    return COMMANDS["train"][1].__globals__["_train_config"](build_parser().parse_args(["train", *argv]))


def test_uea_task_drop_channels_and_inputs_flags_reach_the_config_and_the_data():
    config = train_config(["--task", "uea:BasicMotions", "--drop-channels", "0.3", "--inputs", "mask,time",
                           "--n-train", "12", "--n-test", "8"])
    assert config.task == "uea:BasicMotions" and config.drop_channels == 0.3
    assert config.inputs == "time,mask"  # canonical order
    data = load_data(config.resolved())
    assert data.input_size == 6 + 1 + 6  # values, time, one mask channel per value channel
    raw = load_task("uea:BasicMotions", drop_channels=0.3, **TINY_UEA)
    torch.testing.assert_close(data.train.values[..., :6], raw.train.values, equal_nan=True)
    # mask channels say which values were observed, per channel; about 30% of the values went
    mask = data.train.values[..., 7:]
    real = ~torch.isnan(mask)
    torch.testing.assert_close(mask[real], observed_mask(raw.train.values)[real].float())
    assert ((mask == 0) & (mask.sum(-1, keepdim=True) > 0)).any()  # steps with part of their channels
    assert abs(1 - observed_mask(raw.train.values).float().mean().item() - 0.3) < 0.03  # 7200 values
    defaults = train_config([])
    assert defaults.drop_channels == 0.0 and defaults.inputs is None


def test_inputs_add_the_channels_to_the_model_it_trains():
    config = TrainConfig(task="uea:JapaneseVowels", model="lipschitz", inputs="time,intensity,mask", hidden_size=4,
                         task_options=TINY_UEA)
    c, model, data = build_run(config)
    assert data.input_size == 12 + 1 + 12 + 12
    assert model.field.input_map.in_features == 37
    assert "+ time,intensity,mask" in c.label


@pytest.mark.parametrize("model", ["gru", "lipschitz", "gru-d", "ncde"])
def test_a_uea_task_trains_one_tiny_epoch_through_train(model):
    result = train(TrainConfig(task="uea:BasicMotions", model=model, task_options=TINY_UEA, hidden_size=4, epochs=1,
                               batch_size=4, drop=0.5, inputs="time", quiet=True, threads=1))
    row = result.rows[-1]
    # ncde's defaults are the reference's training, with its validation split
    assert row["task"] == "uea:BasicMotions" and row["evaluated_on"] == ("validation" if model == "ncde" else "test")
    assert 0.0 <= row["test_accuracy"] <= 1.0 and row["train_loss"] > 0
    if model == "ncde":
        assert result.summary["weights"] == "best validation epoch (1)" and result.summary["epochs_cap"] == 1


def test_cli_trains_a_uea_task(capsys):
    assert main(["train", "--task", "uea:BasicMotions", "--n-train", "8", "--n-test", "4", "--model", "gru-dt",
                 "--hidden-size", "4", "--epochs", "1", "--drop", "0.3", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "gru-dt" in out and "uea:BasicMotions, 30% dropped" in out


@pytest.mark.parametrize("argv, message", [
    (["--task", "nope"], "--task expects one of adding, copy, digits"),
    (["--task", "uea:"], "or uea:NAME"),
    (["--inputs", "time,clock"], "argument --inputs: unknown input feature 'clock'"),
    (["--inputs", ","], "--inputs expects a comma-separated subset of time, intensity, mask"),
    (["--drop-channels", "1"], "--drop-channels expects a probability in [0, 1); got '1'"),
])
def test_bad_irregular_flags_are_refused_in_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_an_unknown_archive_is_one_line_naming_the_bundled_ones(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--task", "uea:NoSuchSet", "--epochs", "1", "--quiet"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "NoSuchSet_TRAIN.ts" in err and "BasicMotions" in err and "Traceback" not in err


def test_list_tasks_prints_the_uea_sets_with_their_defaults(capsys):
    assert main(["list", "tasks"]) == 0
    out = capsys.readouterr().out
    line = next(s for s in out.splitlines() if "uea:BasicMotions" in s)
    assert "epochs  50, batch   8" in line
    assert "uea:JapaneseVowels" in out and "timing" in out


def test_task_defaults_for_uea_sets_and_timing():
    assert task_defaults("uea:BasicMotions") == {"epochs": 50, "batch_size": 8}
    assert task_defaults("timing")["batch_size"] == 64
    assert task_defaults("uea:SomeOtherSet") == {"epochs": 50, "batch_size": 16}  # any archive from a folder
    assert task_defaults("digits") == {"epochs": 30, "batch_size": 64}
    c = TrainConfig(task="uea:BasicMotions", model="gru").resolved()
    assert (c.epochs, c.batch_size) == (50, 8)


def test_config_checks_the_new_settings():
    with pytest.raises(ValueError, match=r"drop_channels \(the probability that each value is missing\)"):
        TrainConfig(drop_channels=1.0).resolved()
    with pytest.raises(ValueError, match="unknown input feature 'clock'"):
        TrainConfig(inputs="time,clock").resolved()
    assert TrainConfig(inputs="mask,intensity").resolved().inputs == "intensity,mask"
    assert TrainConfig(inputs="").resolved().inputs is None
    # an old config.json without the new keys still loads, with their defaults
    old = {k: v for k, v in TrainConfig().to_dict().items() if k not in ("drop_channels", "inputs")}
    assert TrainConfig.from_dict(old).inputs is None


def test_gru_d_mean_is_fitted_on_the_training_values():
    config = TrainConfig(task="uea:BasicMotions", model="gru-d", inputs="time,mask", drop=0.5, hidden_size=4,
                         task_options=TINY_UEA, validation=0.25)
    _, model, data = build_run(config)
    flat = data.train.values.reshape(-1, data.input_size).double()
    expected = torch.nanmean(flat, dim=0).float()
    torch.testing.assert_close(model.x_mean, expected)
    assert float(expected[-6:].min()) > 0.9  # the mask channels are 1 wherever a step is observed
    assert float(model.x_mean.abs().max()) > 0.1  # not the default zeros


def test_validation_standardises_on_the_samples_the_run_trains_on():
    data = load_task("uea:BasicMotions", validation=0.25)
    raw = validation_split(load_uea("BasicMotions", standardize=False), 0.25)
    observed = data.train.values.reshape(-1, 6).double()
    torch.testing.assert_close(observed.mean(0), torch.zeros(6, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(observed.std(0, unbiased=False), torch.ones(6, dtype=torch.float64), atol=1e-5, rtol=0)
    # the held-out samples are scaled by the kept samples' statistics, not by all training samples'
    kept = raw.train.values.reshape(-1, 6).double()
    mean, std = kept.mean(0), kept.std(0, unbiased=False)
    torch.testing.assert_close(data.test.values.double(), (raw.test.values.double() - mean) / std, atol=1e-5,
                               rtol=1e-5)
    everything = load_uea("BasicMotions").train.values
    held = validation_split(load_uea("BasicMotions"), 0.25).test.values
    assert (held - data.test.values).abs().max() > 1e-3  # the old way (statistics of all 40) differs
    assert everything.shape[0] == 40 and data.train.n_samples == 30 and data.info["validation"] == 0.25
    # the standardisation function itself: training statistics applied to both splits
    again = standardize(raw)
    torch.testing.assert_close(again.test.values, data.test.values)


def test_validation_without_standardisation_is_the_plain_split():
    plain = validation_split(load_task("digits", n_train=64, n_test=32), 0.25)
    via = load_task("digits", n_train=64, n_test=32, validation=0.25)
    assert torch.equal(plain.test.values, via.test.values) and torch.equal(plain.train.values, via.train.values)
    with pytest.raises(ValueError, match=r"validation \(the share of the training samples to hold out\)"):
        load_task("digits", validation=1.0)
    # an explicit standardize=False is kept: nothing is standardised
    raw = load_task("uea:BasicMotions", standardize=False, validation=0.25)
    assert torch.equal(raw.test.values, validation_split(load_uea("BasicMotions", standardize=False), 0.25).test.values)
