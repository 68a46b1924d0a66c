"""The training loop: epochs, evaluation, metrics, checkpoints, resume, NaN guard, schedule, seeds.

>>> from neuralode_rnn.train import TrainConfig, train
>>> result = train(TrainConfig(task="digits", model="lipschitz", method="midpoint", epochs=2,
...                            task_options={"n_train": 64, "n_test": 32}, hidden_size=8,
...                            run_dir="runs/demo"))                       # doctest: +SKIP

Determinism and resume.  Everything random is drawn from the seed: model initialisation from the
global torch RNG seeded at the start, and the shuffling order of epoch e from a local generator
seeded ``(seed, e)``.  The checkpoint written after every epoch holds the model, optimiser,
schedule, epoch, metrics so far and the python/numpy/torch RNG states, so a run killed at any
point and restarted with ``resume=True`` replays the unfinished epoch from its start and ends
with the same metrics and parameters as a run that was never interrupted.

Time.  Sample k of a regular task sits at t_k = k; a continuous model is fed times eps * t_k, so a
fixed-step solver with one step per gap steps by eps (the papers' discretisation).  Irregular
tasks (``drop`` > 0) carry per-sample times; continuous models integrate over them (scaled by
eps), discrete models and LSTM/GRU step once per *observed* sample and do not see the times.

Per-step targets (task kind "sequence", e.g. copy): the readout is applied to every state of
the trajectory (:class:`PerStepReadout`), and loss and accuracy average over all steps.
"""

from __future__ import annotations

import dataclasses
import math
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .data import KINDS, SequenceDataset, Split, load_task
from .distributed import DistEnv, all_reduce_sum, init_from_env, shard, wrap
from .runs import RunDir, rng_state, set_rng_state
from .zoo import (
    MODELS,
    build_model,
    count_parameters,
    evaluations_per_sequence,
    is_continuous,
    model_spec,
    step_features,
)

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "TASK_DEFAULTS",
    "NonFiniteLossError",
    "PerStepReadout",
    "TrainConfig",
    "TrainResult",
    "build_run",
    "evaluate",
    "load_run",
    "make_optimizer",
    "make_schedule",
    "model_times",
    "register_optimizer",
    "train",
    "validation_split",
]

TASK_DEFAULTS: dict[str, dict[str, int]] = {
    # The papers train MNIST for 100 epochs at batch 128 (Lipschitz RNN reference code).  These
    # tasks are 10-50x smaller, so fewer epochs reach a plateau; small sets get smaller batches so
    # an epoch still has a few dozen steps.
    "digits": {"epochs": 30, "batch_size": 64},     # 1437 training sequences of 64 steps
    "mnist1d": {"epochs": 30, "batch_size": 128},   # 4000 x 40 steps
    "mnist5k": {"epochs": 20, "batch_size": 128},   # 4000 x 784 steps: expensive on CPU
    "fashion": {"epochs": 20, "batch_size": 128},
    "vowels": {"epochs": 50, "batch_size": 32},     # 270 training series
    "adding": {"epochs": 20, "batch_size": 128},
    "copy": {"epochs": 20, "batch_size": 128},
}
_FALLBACK_DEFAULTS = {"epochs": 20, "batch_size": 128}

SCHEDULES = ("step", "cosine", "none")


class NonFiniteLossError(RuntimeError):
    """The training loss (or gradient) became NaN or infinite; the run stopped, the last good
    checkpoint is kept."""


@dataclass
class TrainConfig:
    """Everything a run needs; what is None is filled from the model and task defaults.

    Task: ``task`` (a name in ``neuralode_rnn.data.TASKS``), ``task_options`` (keyword arguments of
    its loader: permute, n_train, n_test, T, seed, ...), ``drop`` (share of observations removed
    per sample, making an irregular task).

    Model: ``model`` (a name in ``neuralode_rnn.zoo.MODELS``), ``hidden_size`` (64: the results'
    size; the papers use 128), ``method`` ("euler": the papers' cells), ``eps`` (time between
    samples; None for the family's paper value, see ``zoo``), ``step_size`` (None: one solver step
    per sample gap), ``rtol``/``atol`` (1e-3/1e-5: loose, adaptive solvers only), ``gradient``,
    ``interpolation``, ``beta``/``gamma`` (None: paper values), ``noise_sigma``/``noise`` (0: none;
    > 0: a continuous model trained as an SDE with that diffusion, a ``noise.StochasticRNN``,
    evaluated without noise).

    Optimisation: ``optimizer`` ("adam"; "cayley" once ``neuralode_rnn.optim`` lands), ``lr`` (None:
    0.003, the Lipschitz RNN value), ``weight_decay``, ``schedule`` ("step": lr x 0.1 after 90% of
    the epochs, as the Lipschitz RNN reference; "cosine"; "none"), ``clip`` (max gradient norm or
    None), ``epochs``/``batch_size`` (None: ``TASK_DEFAULTS``), ``seed``.

    Model selection: ``validation`` (0: off) holds out this share of the training samples (a fixed
    seeded choice, the same for every run seed and model: :func:`validation_split`); the run trains
    on the rest and its per-epoch ``test_*`` metrics are measured on the held-out samples, never on
    the test split (the metrics rows say which: ``evaluated_on``).

    Run: ``run_dir`` (None: nothing written), ``resume``, ``stop_after`` (run at most this many
    epochs in this invocation, then exit cleanly; continue with resume), ``quiet``, ``threads``
    (torch intra-op threads; None leaves torch's choice), ``dtype`` ("float32" or "float64").
    """

    task: str = "digits"
    model: str = "lipschitz"
    task_options: dict[str, Any] = field(default_factory=dict)
    drop: float = 0.0
    hidden_size: int = 64
    method: str = "euler"
    eps: float | None = None
    step_size: float | None = None
    rtol: float = 1e-3
    atol: float = 1e-5
    gradient: str = "backprop"
    interpolation: str = "hold"
    beta: float | None = None
    gamma: float | None = None
    noise_sigma: float = 0.0
    noise: str = "additive"
    optimizer: str = "adam"
    lr: float | None = None
    weight_decay: float = 0.0
    schedule: str = "step"
    clip: float | None = None
    epochs: int | None = None
    batch_size: int | None = None
    eval_batch_size: int = 512
    seed: int = 0
    validation: float = 0.0
    run_dir: str | None = None
    resume: bool = False
    stop_after: int | None = None
    quiet: bool = False
    threads: int | None = None
    dtype: str = "float32"

    def resolved(self) -> TrainConfig:
        """A copy with every default filled in and every setting checked."""
        spec = model_spec(self.model)
        task_def = TASK_DEFAULTS.get(self.task, _FALLBACK_DEFAULTS)
        c = dataclasses.replace(self, task_options=dict(self.task_options))
        if c.eps is None and spec.eps is not None:
            c.eps = spec.eps
        if c.lr is None:
            c.lr = spec.lr
        if c.epochs is None:
            c.epochs = task_def["epochs"]
        if c.batch_size is None:
            c.batch_size = task_def["batch_size"]
        for name in ("epochs", "batch_size", "eval_batch_size", "hidden_size"):
            v = getattr(c, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int; got {v!r}")
        for name in ("lr", "rtol", "atol"):
            v = getattr(c, name)
            if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a positive number; got {v!r}")
        if c.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {c.schedule!r}; expected one of {', '.join(SCHEDULES)}")
        if c.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {c.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
        if c.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {c.dtype!r}")
        if not (isinstance(c.noise_sigma, (int, float)) and c.noise_sigma >= 0):
            raise ValueError(f"noise_sigma must be a number >= 0; got {c.noise_sigma!r}")
        if c.noise_sigma > 0 and spec.kind != "continuous":
            raise ValueError(f"noise_sigma > 0 needs a continuous model; {c.model!r} is {spec.kind}")
        if c.noise not in ("additive", "multiplicative"):
            raise ValueError(f"noise must be 'additive' or 'multiplicative'; got {c.noise!r}")
        if isinstance(c.validation, bool) or not (isinstance(c.validation, (int, float)) and
                                                  0.0 <= c.validation < 1.0):
            raise ValueError(f"validation must be a share in [0, 1) of the training samples; got {c.validation!r}")
        if c.clip is not None and not c.clip > 0:
            raise ValueError(f"clip must be None or a positive max gradient norm; got {c.clip!r}")
        if c.stop_after is not None and (not isinstance(c.stop_after, int) or c.stop_after < 1):
            raise ValueError(f"stop_after must be None or a positive int; got {c.stop_after!r}")
        if c.resume and c.run_dir is None:
            raise ValueError("resume=True needs run_dir (the directory of the run to continue)")
        return c

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; expected some of {sorted(known)}")
        return cls(**d)


@dataclass
class TrainResult:
    config: TrainConfig
    model: nn.Module
    rows: list[dict]
    parameters: int
    status: str
    run_dir: str | None


# ------------------------------------------------------------------------------- optimisers
OPTIMIZERS: dict[str, Callable[[nn.Module, float, float], torch.optim.Optimizer]] = {
    "adam": lambda m, lr, wd: torch.optim.Adam(m.parameters(), lr=lr, weight_decay=wd),
    "sgd": lambda m, lr, wd: torch.optim.SGD(m.parameters(), lr=lr, momentum=0.9, weight_decay=wd),
    "rmsprop": lambda m, lr, wd: torch.optim.RMSprop(m.parameters(), lr=lr, weight_decay=wd),
}
"""name -> factory(model, lr, weight_decay).  A factory takes the model, not its parameters, so an
optimiser can treat parameters differently (the unitary W: ``parametrizations.is_unitary_parameter``)."""


def register_optimizer(name: str, factory: Callable[[nn.Module, float, float], torch.optim.Optimizer]) -> None:
    """Add an optimiser choice (also offered by ``--optimizer``)."""
    OPTIMIZERS[name] = factory


def _cayley(model: nn.Module, lr: float, weight_decay: float):
    """The full-capacity uRNN's training (Wisdom et al. 2016): Cayley steps on the unitary group for
    parameters marked unitary (lambda = lr), RMSprop for the rest, as in the paper."""
    from .optim import FullCapacityOptimizer

    return FullCapacityOptimizer(model.parameters(), lr_unitary=lr, base=torch.optim.RMSprop, lr=lr,
                                 weight_decay=weight_decay)


OPTIMIZERS["cayley"] = _cayley


def make_optimizer(name: str, model: nn.Module, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    try:
        factory = OPTIMIZERS[name]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}") from None
    return factory(model, lr, weight_decay)


def make_schedule(name: str, optimizer: torch.optim.Optimizer, epochs: int):
    """Per-epoch learning-rate schedule: "step" multiplies lr by 0.1 once 90% of the epochs are done
    (the Lipschitz RNN reference: 100 epochs, decay at 90); "cosine" anneals to 0; "none"."""
    parts = getattr(optimizer, "optimizers", None)
    if parts is not None:  # a composite (FullCapacityOptimizer): one schedule per part
        return _Schedules([make_schedule(name, o, epochs) for o in parts])
    if name == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, [max(1, int(0.9 * epochs))], gamma=0.1)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "none":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 1.0)
    raise ValueError(f"unknown schedule {name!r}; expected one of {', '.join(SCHEDULES)}")


class _Schedules:
    """The same schedule on each part of a composite optimiser, saved and restored together."""

    def __init__(self, schedules: list) -> None:
        self.schedules = schedules

    def step(self) -> None:
        for s in self.schedules:
            s.step()

    def get_last_lr(self) -> list[float]:
        return [lr for s in self.schedules for lr in s.get_last_lr()]

    def state_dict(self) -> list[dict]:
        return [s.state_dict() for s in self.schedules]

    def load_state_dict(self, state: list[dict]) -> None:
        for s, d in zip(self.schedules, state):
            s.load_state_dict(d)


# ------------------------------------------------------------------------------- model plumbing
class PerStepReadout(nn.Module):
    """Wraps a sequence model so that ``forward`` reads out every step: (B, T, output_size).

    Uses only the public ``trajectory`` and ``readout`` of the models, so the models need no
    per-step mode; as an ``nn.Module`` it can itself be wrapped by DDP.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self._features = step_features(model)

    def forward(self, values: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.readout(self._features(self.model.trajectory(values, times)))


def model_times(model: nn.Module, values: torch.Tensor, times: torch.Tensor | None,
                eps: float | None) -> torch.Tensor | None:
    """The times to feed ``model``: eps * t for continuous models (t_k = k when ``times`` is None),
    None for discrete ones (they step once per sample)."""
    if not is_continuous(model):
        return None
    if times is None:
        return eps * torch.arange(1, values.shape[1] + 1, dtype=values.dtype, device=values.device)
    return eps * times.to(values.dtype)


def _objective(out: torch.Tensor, targets: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(sum of losses, number of correct predictions (0 for regression), number of loss terms)."""
    if kind == "classification":
        loss = F.cross_entropy(out, targets, reduction="sum")
        return loss, (out.argmax(-1) == targets).sum(), targets.numel()
    if kind == "sequence":
        logits = out.reshape(-1, out.shape[-1])
        flat = targets.reshape(-1)
        return F.cross_entropy(logits, flat, reduction="sum"), (logits.argmax(-1) == flat).sum(), flat.numel()
    target = targets.reshape(targets.shape[0], -1).to(out.dtype)
    return F.mse_loss(out.reshape_as(target), target, reduction="sum"), torch.zeros((), dtype=torch.long), \
        target.numel()


def _nfe(model: nn.Module, length: int) -> int:
    return model.nfe if is_continuous(model) else evaluations_per_sequence(model, length)


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % (2 ** 63)


def evaluate(model: nn.Module, split: Split, kind: str, eps: float | None = None, batch_size: int = 512,
             env: DistEnv | None = None, device: str | torch.device = "cpu",
             dtype: torch.dtype = torch.float32) -> dict:
    """Mean loss, accuracy (None for regression) and mean NFE per batch of ``model`` on ``split``.

    Under DDP each rank evaluates its slice of each batch and the sums are all-reduced.
    """
    env = env or DistEnv()
    net = PerStepReadout(model) if kind == "sequence" else model
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64)
    nfe, batches = 0, 0
    with torch.no_grad():
        for batch in split.batches(batch_size):
            values, times, targets = shard(batch, env)
            values = values.to(device=device, dtype=dtype)
            times = None if times is None else times.to(device=device, dtype=dtype)
            out = net(values, model_times(model, values, times, eps))
            loss, correct, count = _objective(out, targets.to(device), kind)
            sums += torch.tensor([loss.item(), float(correct), float(count)], dtype=torch.float64)
            nfe += _nfe(model, values.shape[1])
            batches += 1
    all_reduce_sum(sums, env)
    model.train(was_training)
    loss, correct, count = sums.tolist()
    return {"loss": loss / count, "accuracy": None if kind == "regression" else correct / count,
            "nfe": nfe / max(batches, 1)}


VALIDATION_SEED = 0
"""Seeds the choice of held-out samples: one validation set per task, whatever the run's seed."""


def validation_split(data: SequenceDataset, fraction: float, seed: int = VALIDATION_SEED) -> SequenceDataset:
    """``data`` with ``train`` = the training samples minus a held-out share ``fraction`` and
    ``test`` = those held-out samples (the last ``fraction`` of a permutation drawn from ``seed``).

    The test split of ``data`` is not used, so hyper-parameters chosen on the result never saw it.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1); got {fraction!r}")
    n = data.train.n_samples
    n_val = round(fraction * n)
    if not 0 < n_val < n:
        raise ValueError(f"a validation share of {fraction} of {n} training samples leaves an empty split")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    keep, held = order[: n - n_val].sort().values, order[n - n_val:].sort().values
    info = dict(data.info, validation=fraction, validation_seed=seed)
    return data.replace(train=data.train.subset(keep), test=data.train.subset(held), info=info)


def _load_data(c: TrainConfig) -> SequenceDataset:
    data = load_task(c.task, drop=c.drop, **c.task_options)
    if data.kind not in KINDS:  # pragma: no cover - SequenceDataset checks this already
        raise ValueError(f"task kind {data.kind!r} not supported")
    if c.validation:
        data = validation_split(data, c.validation)
    return data


def _build(c: TrainConfig, data: SequenceDataset) -> nn.Module:
    model = build_model(c.model, data.input_size, data.output_size, c.hidden_size, method=c.method, eps=c.eps,
                        step_size=c.step_size, interpolation=c.interpolation, gradient=c.gradient, rtol=c.rtol,
                        atol=c.atol, beta=c.beta, gamma=c.gamma, noise_sigma=c.noise_sigma, noise=c.noise)
    return _cast(model, getattr(torch, c.dtype))


def _cast(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Real parameters to ``dtype``, complex ones to its complex twin.  (``Module.to(float32)`` would
    drop the imaginary part of the unitary field's W.)"""
    if dtype == torch.float32:
        return model  # the fields are built in float32 / complex64 already
    cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64

    def cast(t: torch.Tensor) -> torch.Tensor:
        if t.is_complex():
            return t.to(cdtype)
        return t.to(dtype) if t.is_floating_point() else t

    return model._apply(cast)


def build_run(config: TrainConfig) -> tuple[TrainConfig, nn.Module, SequenceDataset]:
    """The resolved config, an untrained model (initialised from torch's global RNG) and the data
    of ``config``: what :func:`load_run` fills with a checkpoint's weights."""
    c = config.resolved()
    data = _load_data(c)
    return c, _build(c, data), data


def load_run(run_dir: str, which: str = "last", **overrides: Any) -> tuple[TrainConfig, nn.Module, SequenceDataset]:
    """The config, the trained model (weights of ``which`` checkpoint) and the data of a run.

    ``overrides`` replace config entries before the model is built (e.g. ``method="rk4"`` to
    evaluate a trained continuous model with another solver).
    """
    rd = RunDir(run_dir)
    config = TrainConfig.from_dict(rd.read_config())
    config, model, data = build_run(dataclasses.replace(config, **overrides))
    model.load_state_dict(rd.load_checkpoint(which)["model"])
    return config, model, data


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def train(config: TrainConfig, callbacks: Iterable[Callable[[int, dict], None]] = (),
          env: DistEnv | None = None) -> TrainResult:
    """Train ``config.model`` on ``config.task``; see the module docstring.

    ``callbacks`` are called as ``callback(epoch, row)`` after each epoch's checkpoint is written
    (an exception raised there stops the run as a crash would).  Raises
    :class:`NonFiniteLossError` when the loss or the gradient norm becomes NaN/inf: nothing of
    that step is applied or saved, and ``last.pt`` still holds the last good epoch.
    """
    c = config.resolved()
    env = env if env is not None else init_from_env()
    if c.threads is not None:
        torch.set_num_threads(c.threads)
    dtype = getattr(torch, c.dtype)
    rd = RunDir(c.run_dir) if c.run_dir is not None else None
    if rd is not None and c.resume:
        stored = TrainConfig.from_dict(rd.read_config())
        # the stored run wins; only the run controls may change between invocations
        c = dataclasses.replace(stored, run_dir=c.run_dir, resume=True, stop_after=c.stop_after,
                                quiet=c.quiet, threads=c.threads).resolved()
    elif rd is not None and rd.last.exists():
        raise FileExistsError(f"{rd.path} already holds a run (last.pt); pass resume=True (--resume) to "
                              f"continue it, or choose another run directory")

    _seed_everything(c.seed)
    data = _load_data(c)
    model = _build(c, data).to(env.device)
    n_params = count_parameters(model)
    optimizer = make_optimizer(c.optimizer, model, c.lr, c.weight_decay)
    schedule = make_schedule(c.schedule, optimizer, c.epochs)
    rows: list[dict] = []
    start, best, wall0 = 0, -math.inf, 0.0
    if rd is not None and c.resume and rd.last.exists():
        state = rd.load_checkpoint("last", map_location=env.device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        rows, start, best = state["rows"], state["epoch"], state["best"]
        wall0 = rows[-1]["wall_seconds"] if rows else 0.0
        set_rng_state(state["rng"])
    main = env.is_main and rd is not None
    if main:
        rd.create()
        if not c.resume or not rd.config_path.exists():
            cfg = c.to_dict()
            cfg.update(resume=False, stop_after=None)
            rd.write_config(cfg)
        rd.write_status(f"running (epoch {start + 1} of {c.epochs})")

    net = wrap(PerStepReadout(model) if data.kind == "sequence" else model, env)
    show = not c.quiet and env.is_main
    status = "finished"
    ran = 0
    for epoch in range(start + 1, c.epochs + 1):
        if c.stop_after is not None and ran >= c.stop_after:
            status = f"stopped after epoch {epoch - 1} (stop_after={c.stop_after}); continue with resume"
            break
        t0 = time.perf_counter()
        model.train()
        sums = torch.zeros(3, dtype=torch.float64)
        nfe, n_batches = 0, 0
        batches = data.train.batches(c.batch_size, shuffle=True, seed=_epoch_seed(c.seed, epoch))
        n_total = math.ceil(data.train.n_samples / c.batch_size)
        bar = _progress(n_total, f"epoch {epoch}/{c.epochs}", show)
        for i, batch in enumerate(batches):
            values, times, targets = shard(batch, env)
            global_count = _objective_count(batch[2], data.kind, data.output_size)
            values = values.to(device=env.device, dtype=dtype)
            times = None if times is None else times.to(device=env.device, dtype=dtype)
            out = net(values, model_times(model, values, times, c.eps))
            loss_sum, correct, count = _objective(out, targets.to(env.device), data.kind)
            # sum / global count * world: DDP's gradient average then equals one process's mean
            loss = loss_sum * (env.world_size / global_count)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), c.clip if c.clip else math.inf)
            batch_sums = torch.tensor([loss_sum.item(), float(correct), float(count)], dtype=torch.float64)
            all_reduce_sum(batch_sums, env)
            if not (math.isfinite(batch_sums[0].item()) and math.isfinite(float(grad_norm))):
                if bar is not None:
                    bar.close()
                what = "loss" if not math.isfinite(batch_sums[0].item()) else "gradient norm"
                msg = (f"the training {what} became {batch_sums[0].item() if what == 'loss' else float(grad_norm)}"
                       f" at epoch {epoch}, batch {i + 1}; the run stopped without applying that step. "
                       + (f"The last good checkpoint ({rd.last}, epoch {start + ran}) is kept. " if rd and
                          rd.last.exists() else "No checkpoint was written yet. ")
                       + f"Try a smaller --lr (now {c.lr}), --clip, or a smaller --eps/--step-size.")
                if main:
                    rd.write_status("failed: " + msg)
                raise NonFiniteLossError(msg)
            optimizer.step()
            sums += batch_sums
            nfe += _nfe(model, values.shape[1])
            n_batches += 1
            if bar is not None:
                post = {"loss": f"{batch_sums[0].item() / batch_sums[2].item():.4f}",
                        "nfe": _nfe(model, values.shape[1])}
                if data.kind != "regression":
                    post["acc"] = f"{batch_sums[1].item() / batch_sums[2].item():.3f}"
                bar.set_postfix(post)
                bar.update()
        if bar is not None:
            bar.close()
        lr = optimizer.param_groups[0]["lr"]
        schedule.step()
        test = evaluate(model, data.test, data.kind, c.eps, c.eval_batch_size, env, env.device, dtype)
        seconds = time.perf_counter() - t0
        row = {
            "epoch": epoch, "lr": lr,
            "train_loss": sums[0].item() / sums[2].item(),
            "train_accuracy": None if data.kind == "regression" else sums[1].item() / sums[2].item(),
            "test_loss": test["loss"], "test_accuracy": test["accuracy"],
            "nfe": nfe / max(n_batches, 1),
            "epoch_seconds": seconds,
            "wall_seconds": (rows[-1]["wall_seconds"] if rows else wall0) + seconds,
            "evaluated_on": "validation" if c.validation else "test",
        }
        rows.append(row)
        ran += 1
        metric = -test["loss"] if test["accuracy"] is None else test["accuracy"]
        improved = metric > best
        best = max(best, metric)
        if main:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "schedule": schedule.state_dict(), "epoch": epoch, "rows": rows, "best": best,
                     "rng": rng_state(), "config": c.to_dict(), "parameters": n_params}
            rd.save_checkpoint(state, best=improved)
            rd.write_metrics(rows)
            try:
                from .plots import plot_curves

                plot_curves(rows, rd.plot_path, title=f"{c.model} ({c.method}) on {c.task}")
            except Exception as exc:  # noqa: BLE001 - a plot must never kill a training run
                print(f"warning: could not draw {rd.plot_path}: {exc}", file=sys.stderr)
        if show:
            acc = "" if row["test_accuracy"] is None else f" test_acc {row['test_accuracy']:.4f}"
            print(f"epoch {epoch}/{c.epochs} train_loss {row['train_loss']:.4f} test_loss "
                  f"{row['test_loss']:.4f}{acc} nfe {row['nfe']:.0f} {seconds:.1f}s", flush=True)
        for callback in callbacks:
            callback(epoch, row)
    if main:
        rd.write_status(status)
    return TrainResult(c, model, rows, n_params, status, c.run_dir)


def _objective_count(targets: torch.Tensor, kind: str, output_size: int) -> int:
    """Number of loss terms of a whole (global) batch."""
    if kind == "regression":
        return targets.shape[0] * output_size
    return targets.numel()


def _progress(total: int, desc: str, show: bool):
    """A tqdm bar on stderr when ``show`` and stderr is a terminal; None otherwise."""
    if not show or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


# keep the model registry importable from here for the CLI
MODEL_NAMES = tuple(MODELS)
