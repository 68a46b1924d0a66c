"""Shared test set-up: seeds, tiny training configurations and trained run directories."""

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
