"""The test device: one fixture (``pytest --device cuda`` or ``$NEURALODE_RNN_TEST_DEVICE``) that every
test's tensors follow, and the converted files checked never to pin a tensor to the CPU behind it."""

import ast
import os
import pathlib
import re
import subprocess
import sys

import pytest
import torch
from conftest import DEVICE_CONVERTED, DEVICE_ENV, resolve_device

HERE = pathlib.Path(__file__).parent
ROOT = HERE.parent

CPU_PINS = {
    r"""device\s*=\s*["']cpu["']""": "a device='cpu' argument",
    r"""torch\.device\(\s*["']cpu["']\s*\)""": "torch.device('cpu')",
    r"torch\.Generator\(\s*\)": "torch.Generator() (a CPU generator: pass torch.get_default_device())",
    r"from_numpy\(": "torch.from_numpy (shares NumPy's CPU memory: use torch.as_tensor)",
    r"(?<!cpu\(\))\.numpy\(\)": ".numpy() of a tensor not moved with .cpu() first",
}

TENSOR_MAKERS = {"tensor", "as_tensor", "zeros", "ones", "randn", "rand", "empty", "full", "arange", "linspace", "eye"}


def test_the_default_device_is_the_fixtures(device):
    assert torch.empty(0).device.type == device.type
    assert torch.nn.Linear(2, 3).weight.device.type == device.type


def _module_level_tensors(source: str) -> list[int]:
    """Lines of module-level assignments that call a torch tensor constructor (made at import, before
    any fixture runs, so always on the CPU)."""
    lines = []
    for node in ast.parse(source).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            for call in ast.walk(node):
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and \
                        call.func.attr in TENSOR_MAKERS and isinstance(call.func.value, ast.Name) and \
                        call.func.value.id == "torch":
                    lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("name", DEVICE_CONVERTED)
def test_converted_files_never_pin_a_tensor_to_the_cpu(name):
    source = (HERE / name).read_text()
    found = [f"line {source.count(chr(10), 0, m.start()) + 1}: {what}"
             for pattern, what in CPU_PINS.items() for m in re.finditer(pattern, source)]
    found += [f"line {n}: a tensor made at import" for n in _module_level_tensors(source)]
    assert not found, f"{name} builds tensors outside the device fixture: {found}"


def test_the_guard_catches_a_pinned_tensor():
    bad = "import torch\nX = torch.zeros(3)\n\ndef test_x():\n    g = torch.Generator()\n    y = torch.ones(2, device='cpu')\n"
    assert _module_level_tensors(bad) == [2]
    assert sum(bool(re.search(p, bad)) for p in CPU_PINS) == 2


class _Config:
    def __init__(self, option):
        self.option = option

    def getoption(self, name):
        assert name == "--device"
        return self.option


def test_device_comes_from_the_option_else_the_environment_else_cpu(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    assert resolve_device(_Config(None)) == torch.device("cpu")
    monkeypatch.setenv(DEVICE_ENV, "meta")
    assert resolve_device(_Config(None)) == torch.device("meta")
    assert resolve_device(_Config("cpu")) == torch.device("cpu")  # the option wins
    with pytest.raises(pytest.UsageError, match="--device: not a torch device: 'nonsense'"):
        resolve_device(_Config("nonsense"))
    if not torch.cuda.is_available():
        with pytest.raises(pytest.UsageError, match="torch sees no CUDA device"):
            resolve_device(_Config("cuda"))


def test_device_option_runs_the_tests_on_that_device():
    """End to end: ``pytest --device meta`` (a device every machine has) makes the fixture and torch's
    default device meta in the test."""
    res = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--device", "meta",
                          "tests/test_devices.py::test_the_default_device_is_the_fixtures"], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert res.returncode == 0 and "test device: meta" in res.stdout, res.stdout + res.stderr


def test_benchmark_takes_the_device_flag():
    """``benchmarks/run.py --device``: a device torch does not know stops the run before any row, naming
    the flag (the same check refuses cuda where torch sees none; the benchmark itself is not run here)."""
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--device", "nonsense"],
                         cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         timeout=120)
    assert res.returncode == 1 and res.stderr.strip().splitlines()[-1].startswith("--device: not a torch device: "
                                                                                 "'nonsense'"), res.stderr
