"""Every example runs end to end with a tiny configuration, so each flag reaches the code."""

import importlib.util
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_digits_lipschitz_smoke():
    result = _load("digits_lipschitz").main(epochs=1, hidden=8, eps=0.3, method="euler", n_train=64, batch_size=32,
                                            threads=1, quiet=True)
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert result["parameters"] == 8 * 8 * 2 + 8 * 1 + 8 + 8 * 10 + 10
