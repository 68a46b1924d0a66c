"""The neuralode-rnn command line, run in-process through main([...])."""

import csv
import json

import pytest

from neuralode_rnn.cli import COMMANDS, build_parser, main

SMALL = ["--task", "digits", "--n-train", "48", "--n-test", "24", "--hidden-size", "6", "--batch-size", "24",
         "--quiet", "--threads", "1"]


def test_list_names_tasks_models_and_solvers(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("digits", "mnist1d", "vowels", "copy", "lipschitz-discrete", "antisymmetric-gated", "unitary",
                 "ctrnn", "lstm", "gru", "midpoint", "dopri5", "rk4"):
        assert word in out, word


def test_list_one_section(capsys):
    main(["list", "solvers"])
    out = capsys.readouterr().out
    assert "midpoint" in out and "lipschitz" not in out


def test_train_writes_a_run_directory_and_evaluate_reads_it(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *SMALL, "--model", "lipschitz", "--method", "midpoint", "--epochs", "2",
                 "--run-dir", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "lipschitz" and config["method"] == "midpoint" and config["eps"] == 0.03
    assert config["lr"] == 0.003 and config["epochs"] == 2
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"train_loss", "test_accuracy", "nfe", "wall_seconds"} <= set(rows[0])
    assert (run / "last.pt").exists() and (run / "best.pt").exists()
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "status.txt").read_text().strip() == "finished"
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"accuracy {float(rows[-1]['test_accuracy']):.4f}" in out
    assert main(["evaluate", str(run), "--method", "rk4"]) == 0  # the trained field under another solver
    assert "(rk4)" in capsys.readouterr().out


def test_stop_after_and_resume_through_the_command_line(tmp_path):
    run = str(tmp_path / "run")
    main(["train", *SMALL, "--model", "gru", "--epochs", "2", "--stop-after", "1", "--run-dir", run])
    assert "stopped after epoch 1" in (tmp_path / "run" / "status.txt").read_text()
    assert main(["train", "--resume", run, "--quiet"]) == 0
    with open(tmp_path / "run" / "metrics.csv") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2"]


@pytest.mark.parametrize("argv, message", [
    (["train", "--lr", "-1"], "argument --lr: --lr expects a positive float; got '-1'"),
    (["train", "--drop", "1.5"], "--drop expects a share of observations in [0, 1); got '1.5'"),
    (["train", "--model", "lstn"], "argument --model: invalid choice: 'lstn'"),
    (["train", "--validation", "1"], "--validation expects a share in [0, 1); got '1'"),
    (["train", "--task", "vowels", "--permute", "--epochs", "1", "--quiet"], "task 'vowels' does not take permute"),
    (["evaluate", "/nonexistent/run"], "config.json not found"),
])
def test_bad_flags_name_the_flag_the_value_and_what_was_expected(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_commands_come_from_the_registry():
    assert {"train", "evaluate", "list"} <= set(COMMANDS)
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(COMMANDS) <= set(sub.choices)


def test_validation_flag_reaches_the_config():
    from neuralode_rnn.cli import _train_config

    args = build_parser().parse_args(["train", "--validation", "0.2"])
    assert _train_config(args).validation == 0.2
    assert _train_config(build_parser().parse_args(["train"])).validation == 0.0
