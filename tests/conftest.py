"""Shared test set-up: the device, seeds, tiny training configurations and trained run directories.

The device: ``pytest --device cuda`` (or ``NEURALODE_RNN_TEST_DEVICE=cuda pytest``; default cpu) runs
every test with that device as torch's default (``with torch.device(...)``), so every tensor and
module a test builds without naming a device is made there; the ``device`` fixture names it for a
test that needs it explicitly.  The files listed in ``DEVICE_CONVERTED`` are checked
(tests/test_devices.py) never to pin tensors to the CPU behind the fixture's back; the others may
still do so (CLI, training, data and study tests: data sets are loaded on the CPU).
"""

import os
import random
import shutil

import numpy as np
import pytest
import torch

# The tests' tensors are tiny: intra-op threads only add synchronisation, and on a machine whose
# cores are shared with other jobs an OpenMP barrier waiting for a descheduled thread turns a 2 us
# matmul into 20 ms.  One thread keeps the suite's time about the work it does.
torch.set_num_threads(1)

TINY_TASK = {"n_train": 64, "n_test": 32}
"""64 training and 32 test digits: an epoch of a small model in well under a second."""

CLI_SMALL = ["--task", "digits", "--n-train", "48", "--n-test", "24", "--hidden-size", "6", "--batch-size", "24",
             "--quiet", "--threads", "1"]
"""`neuralode-rnn train` flags of a tiny run (add --model, --epochs, --run-dir)."""


DEVICE_ENV = "NEURALODE_RNN_TEST_DEVICE"
"""Environment variable naming the test device when ``--device`` is not given."""

DEVICE_CONVERTED = ("test_models.py", "test_fast.py", "test_paths.py", "test_solvers.py", "test_solvers_gradients.py",
                    "test_solvers_limits.py", "test_solvers_order.py", "test_solvers_stability.py", "test_sde.py")
"""Test files that take every tensor's device from the fixture (no CPU-only constructs in them)."""


def pytest_addoption(parser):
    parser.addoption("--device", default=None,
                     help=f"torch device the tests run on (default: ${DEVICE_ENV}, else cpu), e.g. cuda or cuda:1")


def resolve_device(config) -> torch.device:
    name = config.getoption("--device") or os.environ.get(DEVICE_ENV) or "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise pytest.UsageError(f"--device: not a torch device: {name!r} ({e})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError(f"--device {name}: torch sees no CUDA device here (torch.cuda.is_available() is False)")
    return device


def pytest_configure(config):
    config.test_device = resolve_device(config)


def pytest_report_header(config):
    return f"test device: {config.test_device}"


@pytest.fixture(scope="session")
def device(pytestconfig) -> torch.device:
    """The torch device of this test session (``--device``, ``$NEURALODE_RNN_TEST_DEVICE``, default cpu)."""
    return pytestconfig.test_device


@pytest.fixture(autouse=True)
def _default_device(device):
    """Every test runs with the session's device as torch's default device (on the CPU nothing is
    installed: a default-device mode costs a little on every torch call)."""
    if device.type == "cpu":
        yield
        return
    with torch.device(device):
        yield


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def tiny_config():
    """``tiny_config(**overrides)``: a TrainConfig of one quiet epoch of a hidden-8 model on 64 digits."""
    from neuralode_rnn.training import TrainConfig

    def make(**kw) -> TrainConfig:
        base = dict(task="digits", task_options=dict(TINY_TASK), hidden_size=8, epochs=1, batch_size=32, quiet=True,
                    threads=1)
        base.update(kw)
        return TrainConfig(**base)

    return make


def _hessian_vector_and_differences(loss, params, v, eps: float = 1e-6):
    """(H v by double backward, central differences of the gradient along v), one tensor per parameter.

    ``loss()`` recomputes the scalar loss; ``v`` holds one direction per parameter.  A complex
    parameter's pairing with its direction is taken in real coordinates (Re and Im as two reals)."""
    grads = torch.autograd.grad(loss(), params, create_graph=True)
    hv = torch.autograd.grad(sum((torch.view_as_real(a) * torch.view_as_real(d)).sum() if a.is_complex()
                                 else (a * d).sum() for a, d in zip(grads, v)), params)

    def grad_at(shift):
        with torch.no_grad():
            for p, d in zip(params, v):
                p.add_(shift * d)
        out = torch.autograd.grad(loss(), params)
        with torch.no_grad():
            for p, d in zip(params, v):
                p.sub_(shift * d)
        return out

    fd = [(a - b) / (2 * eps) for a, b in zip(grad_at(eps), grad_at(-eps))]
    return list(hv), fd


@pytest.fixture
def hessian_vector_and_differences():
    """``f(loss, params, v, eps=1e-6) -> (hv, fd)``: a Hessian-vector product by double backward and the
    central differences of the gradient along v that it must equal (lists per parameter)."""
    return _hessian_vector_and_differences


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """``trained_run(*flags, copy_to=None)``: the run directory of ``neuralode-rnn train CLI_SMALL
    *flags`` (trained once per distinct flags in this session); with ``copy_to`` a private copy
    there, for tests that change the files."""
    cache: dict[tuple, object] = {}
    root = tmp_path_factory.mktemp("runs")

    def make(*flags, copy_to=None):
        from neuralode_rnn.cli import main

        key = tuple(flags)
        if key not in cache:
            run = root / f"run{len(cache)}"
            torch.manual_seed(0)
            assert main(["train", *CLI_SMALL, "--epochs", "1", *flags, "--run-dir", str(run)]) == 0
            cache[key] = run
        if copy_to is None:
            return cache[key]
        shutil.copytree(cache[key], copy_to)
        return copy_to

    return make
