"""Every example runs end to end with a tiny configuration, so each flag reaches the code."""

import importlib.util
from pathlib import Path

import torch

from neuralode_rnn.training import RunDir

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_digits_lipschitz_smoke(tmp_path, capsys):
    """Edge (issue 12): the main job forced 2 threads and wrote no file or picture."""
    torch.set_num_threads(1)
    main = _load("digits_lipschitz").main
    result = main(epochs=1, hidden=8, eps=0.3, method="euler", n_train=64, batch_size=32, runs=str(tmp_path))
    assert torch.get_num_threads() == 1  # the environment's setting is left alone
    assert 0.0 <= result["test_accuracy"] <= 1.0 and 0.0 <= result["train_accuracy"] <= 1.0
    assert result["parameters"] == 8 * 8 * 2 + 8 * 1 + 8 + 8 * 10 + 10
    rd = RunDir(result["run_dir"])
    assert rd.path.parent == tmp_path and rd.path.name.startswith("digits-lipschitz-")
    assert rd.plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and len(rd.read_metrics()) == 1
    assert rd.read_config()["model"] == "lipschitz" and rd.read_config()["method"] == "euler"
    out = capsys.readouterr().out
    assert f"run directory {rd.path}" in out and "1 thread)" in out
    again = main(epochs=1, hidden=8, eps=0.3, method="euler", n_train=64, batch_size=32, runs=str(tmp_path),
                 quiet=True)
    assert again["run_dir"] != result["run_dir"]  # a fresh directory per run, never shared
    assert again["test_accuracy"] == result["test_accuracy"]

