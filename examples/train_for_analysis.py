"""Train a small model on a task and save it as a run directory for ``neuralode_rnn.analysis``.

    python examples/train_for_analysis.py --field lipschitz --out runs/lipschitz
    python examples/train_for_analysis.py --field lipschitz --sigma 0.1 --out runs/lipschitz-noisy

Adam on the cross-entropy, by default Euler with one step per sample (the papers' discrete cells;
``--method``/``--step-size`` change it) on sample times t_k = time_step * k; the best test-accuracy epoch is kept as checkpoint_best.pt.  With
``sigma > 0`` the model is a StochasticRNN: additive noise sigma dB while training (Euler-Maruyama),
its deterministic ODE when evaluated.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from neuralode_rnn.analysis.robustness import accuracy
from neuralode_rnn.analysis.runs import build_model, run_data, save_run
from neuralode_rnn.data import load_task

FIELD_DEFAULTS = {
    "lipschitz": {"beta": 0.75, "gamma_A": 0.001, "gamma_W": 0.001},
    "antisymmetric": {"gamma": 0.01},
    "ctrnn": {},
}


def main(field: str = "lipschitz", task: str = "digits", hidden: int = 64, epochs: int = 30, lr: float = 3e-3,
         batch: int = 64, time_step: float = 0.1, sigma: float = 0.0, noise: str = "additive", seed: int = 0,
         n_train: int | None = None, n_test: int | None = None, out: str = "runs/model", threads: int = 1,
         method: str = "euler", step_size: float | None = None) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    data = load_task(task, n_train=n_train, n_test=n_test)
    task_kwargs = {k: v for k, v in (("n_train", n_train), ("n_test", n_test)) if v is not None}
    config = {"name": out.rstrip("/").split("/")[-1], "task": task, "task_kwargs": task_kwargs, "field": field,
              "field_kwargs": FIELD_DEFAULTS.get(field, {}), "input_size": data.input_size,
              "hidden_size": hidden, "output_size": data.output_size, "method": method, "step_size": step_size,
              "interpolation": "hold", "time_step": time_step,
              "noise": {"sigma": sigma, "noise": noise, "sde_method": "euler"} if sigma > 0 else None,
              "seed": seed, "epochs": epochs, "lr": lr, "batch": batch}
    model = build_model(config)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(0.8 * epochs)], 0.1)
    test_v, test_t, test_y = run_data(config, "test")
    best, history = -1.0, []
    for epoch in range(epochs):
        start = time.perf_counter()
        model.train()
        total = 0.0
        for values, _, targets in data.train.batches(batch, shuffle=True, seed=seed * 1000 + epoch):
            times = time_step * torch.arange(1, values.shape[1] + 1, dtype=values.dtype)
            loss = F.cross_entropy(model(values, times), targets)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * values.shape[0]
        sched.step()
        acc = accuracy(model, test_v, test_t, test_y)
        history.append({"epoch": epoch, "train_loss": total / len(data.train), "test_accuracy": acc,
                        "seconds": time.perf_counter() - start})
        print(json.dumps(history[-1]), flush=True)
        save_run(out, model, config, epoch, history[-1], best=acc > best)
        best = max(best, acc)
    return {"best_test_accuracy": best, "history": history}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--field", default="lipschitz")
    p.add_argument("--task", default="digits")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--time-step", type=float, default=0.1)
    p.add_argument("--sigma", type=float, default=0.0)
    p.add_argument("--noise", default="additive")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-train", type=int, default=None)
    p.add_argument("--n-test", type=int, default=None)
    p.add_argument("--out", default="runs/model")
    p.add_argument("--method", default="euler")
    p.add_argument("--step-size", type=float, default=None, help="fixed step (default: one step per sample)")
    a = p.parse_args()
    main(field=a.field, task=a.task, hidden=a.hidden, epochs=a.epochs, lr=a.lr, batch=a.batch,
         time_step=a.time_step, sigma=a.sigma, noise=a.noise, seed=a.seed, n_train=a.n_train, n_test=a.n_test,
         out=a.out, method=a.method, step_size=a.step_size)
