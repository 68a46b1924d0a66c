"""Train a Lipschitz RNN, integrated with RK2 (explicit midpoint), on sklearn's 8x8 digits.

Each image is read as a 64-step sequence of pixels (D = 1), one pixel per time step at
t_k = eps * k, held over each step ("hold" input): with step eps this is exactly the Lipschitz
RNN paper's RK2 cell.  The data ships with scikit-learn, so this runs offline in about a minute
on a 2-core CPU.

    python examples/digits_lipschitz.py                # the README's main job
    python examples/digits_lipschitz.py --epochs 2 --hidden 16
"""

from __future__ import annotations

import argparse
import time

import torch

import neuralode_rnn as nr
from neuralode_rnn.data import load_task


def evaluate(model: torch.nn.Module, split, times: torch.Tensor, batch_size: int = 512) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for values, _, targets in split.batches(batch_size):
            correct += (model(values, times[: values.shape[1]]).argmax(-1) == targets).sum().item()
    model.train()
    return correct / len(split)


def main(epochs: int = 30, hidden: int = 64, eps: float = 0.3, method: str = "midpoint", lr: float = 1e-2,
         batch_size: int = 64, seed: int = 0, permute: bool = False, n_train: int | None = None,
         threads: int = 2, quiet: bool = False) -> dict:
    """Train and return {"test_accuracy", "train_accuracy", "seconds", "parameters"}."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    data = load_task("digits", seed=seed, permute=permute, n_train=n_train)
    T = data.train.values.shape[1]
    times = eps * torch.arange(1, T + 1, dtype=torch.float32)
    field = nr.LipschitzField(input_size=1, hidden_size=hidden, beta=0.75, gamma_A=0.001, gamma_W=0.001)
    model = nr.ContinuousRNN(field, output_size=data.n_classes, method=method, step_size=eps, interpolation="hold")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[int(0.8 * epochs)], gamma=0.1)
    params = sum(p.numel() for p in model.parameters())
    start = time.perf_counter()
    for epoch in range(epochs):
        total, n = 0.0, 0
        for values, _, targets in data.train.batches(batch_size, shuffle=True, seed=seed + epoch):
            loss = torch.nn.functional.cross_entropy(model(values, times), targets)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(targets)
            n += len(targets)
        sched.step()
        if not quiet:
            print(f"epoch {epoch + 1:2d}/{epochs}  loss {total / n:.4f}  NFE/batch {model.nfe}  "
                  f"{time.perf_counter() - start:5.1f} s", flush=True)
    result = {"test_accuracy": evaluate(model, data.test, times), "train_accuracy": evaluate(model, data.train, times),
              "seconds": time.perf_counter() - start, "parameters": params}
    if not quiet:
        print(f"Lipschitz RNN ({method}, N={hidden}, {params} parameters): test accuracy "
              f"{100 * result['test_accuracy']:.1f}% on {len(data.test)} digits, train "
              f"{100 * result['train_accuracy']:.1f}%, {result['seconds']:.0f} s")
    return result


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
    p.add_argument("--threads", type=int, default=2)
    main(**{k.replace("-", "_"): v for k, v in vars(p.parse_args()).items()})
