"""Train a Lipschitz RNN, integrated with RK2 (explicit midpoint), on sklearn's 8x8 digits.

Each image is read as a 64-step sequence of pixels (D = 1), one pixel per time step at
t_k = eps * k, held over each step ("hold" input): with one step of eps per pixel this is exactly
the Lipschitz RNN paper's RK2 cell.  It trains with the ``cycle`` recipe (each batch with the
next solver of a set, docs/CONTINUOUS.md; set here, since the preset of digits trains the fixed
cell, ``neuralode-rnn list presets``) and is evaluated with
RK2, so the weights are those of the ODE, not of one discretisation.  The data ships with
scikit-learn, so this runs offline.

It trains with the library's training stack (``neuralode_rnn.training``), so the run has its own
directory (a fresh ``runs/digits-lipschitz-<date>-<time>`` per run, never shared) with
config.json, metrics.csv, the checkpoints and curves.png, and can be resumed
(``neuralode-rnn train --resume <dir>``) or evaluated with another solver
(``neuralode-rnn evaluate <dir> --method rk4``).  Threads are torch's choice, i.e. what
OMP_NUM_THREADS says (``--threads`` to set them).

    python examples/digits_lipschitz.py                # the README's main job
    python examples/digits_lipschitz.py --epochs 2 --hidden 16
    python examples/digits_lipschitz.py --epochs 1 --n-train 200 --runs /tmp/runs  # CI's reduced budget
    python examples/digits_lipschitz.py --recipe fixed # the paper's RK2 cell, trained with RK2 only
"""

from __future__ import annotations

import argparse
import time

import torch

from neuralode_rnn.training import TrainConfig, evaluate, fresh_run_dir, load_data, train


def main(epochs: int = 30, hidden: int = 64, eps: float = 0.3, method: str = "midpoint", lr: float = 1e-2,
         batch_size: int = 64, seed: int = 0, permute: bool = False, n_train: int | None = None,
         threads: int | None = None, quiet: bool = False, run_dir: str | None = None, runs: str = "runs",
         recipe: str = "cycle") -> dict:
    """Train and return {"test_accuracy", "train_accuracy", "seconds", "parameters", "run_dir"}.

    ``run_dir``: where the run is written (default: a fresh directory under ``runs``);
    ``threads``: torch threads (default None: leave torch's setting, which follows OMP_NUM_THREADS);
    ``recipe``: the training recipe (default ``cycle``; ``"fixed"`` trains the paper's RK2 cell
    with ``method`` only).
    """
    start = time.perf_counter()
    options = {"permute": True} if permute else {}
    if n_train is not None:
        options["n_train"] = n_train
    run_dir = str(run_dir or fresh_run_dir(runs, "digits-lipschitz"))
    config = TrainConfig(task="digits", model="lipschitz", task_options=options, hidden_size=hidden, method=method,
                         eps=eps, lr=lr, epochs=epochs, batch_size=batch_size, seed=seed, run_dir=run_dir,
                         quiet=quiet, threads=threads, recipe=recipe)
    result = train(config)
    c = result.config
    data = load_data(c)
    scores = {split: evaluate(result.model, getattr(data, split), data.kind, c.eps, c.eval_batch_size)["accuracy"]
              for split in ("test", "train")}
    out = {"test_accuracy": scores["test"], "train_accuracy": scores["train"],
           "seconds": time.perf_counter() - start, "parameters": result.parameters, "run_dir": run_dir}
    if not quiet:
        print(f"Lipschitz RNN ({method}, N={hidden}, {result.parameters} parameters, {torch.get_num_threads()} "
              f"thread{'s' * (torch.get_num_threads() != 1)}): test accuracy {100 * out['test_accuracy']:.1f}% on "
              f"{len(data.test)} digits, train {100 * out['train_accuracy']:.1f}%, {out['seconds']:.0f} s; "
              f"run directory {run_dir} (metrics.csv, curves.png)")
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--eps", type=float, default=0.3, help="time between pixels = the RK2 step")
    p.add_argument("--method", default="midpoint", help="any solvers.METHODS name")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--permute", action="store_true")
    p.add_argument("--n-train", type=int, default=None, help="train on the first N training digits (default: all)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS / torch's)")
    p.add_argument("--run-dir", default=None, help="default: a fresh directory under --runs")
    p.add_argument("--runs", default="runs", help="where fresh run directories go (default runs/)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--recipe", default="cycle", help="training recipe (default: cycle; fixed: the paper's RK2 cell)")
    main(**{k.replace("-", "_"): v for k, v in vars(p.parse_args()).items()})
