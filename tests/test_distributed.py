"""Data-parallel training: two gloo processes on loopback against one process on the same global batch."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import ddp_worker

from neuralode_rnn.distributed import DistEnv, shard
from neuralode_rnn.training import train

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shard_splits_a_global_batch_into_contiguous_slices():
    values, targets = torch.arange(5.0).reshape(5, 1, 1), torch.arange(5)
    parts = [shard((values, None, targets), DistEnv(rank=r, world_size=2, active=True)) for r in (0, 1)]
    assert parts[0][2].tolist() == [0, 1, 2] and parts[1][2].tolist() == [3, 4]
    assert parts[0][1] is None


def test_two_gloo_processes_match_one_process_on_the_same_global_batch(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo", PYTHONFAULTHANDLER="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(ROOT / "tests" / "ddp_worker.py"),
           None]
    for attempt in range(3):
        # each attempt writes its own directory: a worker that aborted in teardown had already
        # finished its run, and a retry over that run directory would be refused (it holds a run)
        out = tmp_path / f"attempt{attempt}"
        cmd[-1] = str(out)
        proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        # A gloo worker occasionally aborts in C++ ("terminate called without an active exception",
        # about 1 run in 20 here, also with a barrier before destroy_process_group): a teardown race
        # inside gloo, not a wrong result. Only that exact signature is retried, with a fresh port.
        if proc.returncode == 0 or "terminate called without an active exception" not in proc.stderr:
            break
        cmd = [f"--master_port={_free_port()}" if a.startswith("--master_port=") else a for a in cmd]
    if proc.returncode != 0:
        pytest.fail(f"torchrun failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    ranks = [torch.load(out / f"rank{r}.pt") for r in (0, 1)]
    for k in ranks[0]:
        assert torch.equal(ranks[0][k], ranks[1][k]), f"{k} differs across ranks"
    single = train(ddp_worker.config())
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(ranks[0][k], v, rtol=0, atol=1e-6, msg=f"{k}: 2 processes vs 1")
    rows = torch.load(out / "rows0.pt")
    for a, b in zip(rows, single.rows):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-9 and a["test_accuracy"] == b["test_accuracy"]
    # only rank 0 wrote the run directory, and it holds one consistent run
    assert (out / "run" / "metrics.csv").read_text().count("\n") == 3
    assert not list((out / "run").glob(".*.tmp"))
