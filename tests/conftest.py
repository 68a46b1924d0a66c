"""Shared test set-up: every test starts from the same seeds."""

import random

import numpy as np
import pytest
import torch

# The tests' tensors are tiny: intra-op threads only add synchronisation, and on a machine whose
# cores are shared with other jobs an OpenMP barrier waiting for a descheduled thread turns a 2 us
# matmul into 20 ms.  One thread keeps the suite's time about the work it does.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield
