"""Run by tests/test_distributed.py under torchrun: train a tiny model on every rank, then save
this rank's parameters to OUT/rank<r>.pt.  Not a test module itself."""

import sys

import torch

from neuralode_rnn.distributed import init_from_env, shutdown
from neuralode_rnn.training import TrainConfig, train


def config(run_dir=None) -> TrainConfig:
    # 45 samples in global batches of 14: slices of 7/7 and a last batch of 3 split 2/1, so the
    # loss scaling must handle uneven slices; float64 keeps summation-order noise far below 1e-6.
    # eps and recipe as before the presets (the digits preset's eps 1 makes this N = 6 model's loss
    # ~1e7, where 1e-9 absolute agreement is below float64's resolution)
    return TrainConfig(task="digits", model="lipschitz", method="euler", eps=0.03, recipe="cycle",
                       task_options={"n_train": 45, "n_test": 20}, hidden_size=6, epochs=2, batch_size=14, seed=5,
                       dtype="float64", quiet=True, threads=1, run_dir=run_dir)


if __name__ == "__main__":
    out = sys.argv[1]
    env = init_from_env(backend="gloo", device="cpu")
    result = train(config(run_dir=f"{out}/run"), env=env)
    torch.save({k: v.detach().clone() for k, v in result.model.state_dict().items()}, f"{out}/rank{env.rank}.pt")
    torch.save(result.rows, f"{out}/rows{env.rank}.pt")
    shutdown(env)
