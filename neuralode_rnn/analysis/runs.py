"""Run directories: the one place that knows their format (adapt here after the training branch lands).

A run directory holds

    config.json            what to build and on which task (below)
    checkpoint_best.pt     torch.save({"model": state_dict, "epoch": int, "metrics": {...}})
    checkpoint_last.pt     same, last epoch (used when there is no best)

config.json keys read here (others are ignored):

    task, task_kwargs        neuralode_rnn.data.load_task(task, **task_kwargs)
    field, field_kwargs      "lipschitz" | "antisymmetric" | "ctrnn" | "unitary", extra field arguments
    input_size, hidden_size, output_size
    method, step_size, interpolation      the ContinuousRNN's solver settings (default euler, None, hold)
    time_step                sample times t_k = time_step * k (k = 1..T); null: the task's own times
    noise                    null, or {"sigma", "noise", "sde_method"}: a StochasticRNN

:func:`load_run` builds the model and loads the weights; :func:`save_run` writes the format;
:func:`random_run` builds an untrained model for ``--random``; :func:`run_data` loads a split as
tensors with the run's times.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["FIELDS", "Run", "build_model", "load_run", "random_run", "run_data", "run_times", "save_run"]


def _fields() -> dict[str, type]:
    from .. import fields

    return {"lipschitz": fields.LipschitzField, "antisymmetric": fields.AntisymmetricField,
            "ctrnn": fields.CTRNNField, "unitary": fields.UnitaryField}


FIELDS = ("lipschitz", "antisymmetric", "ctrnn", "unitary")


@dataclass
class Run:
    """A loaded run: the model (eval mode), its config, directory, checkpoint file and metrics."""

    model: nn.Module
    config: dict
    path: Path | None = None
    checkpoint: str | None = None
    metrics: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.get("name") or (self.path.name if self.path else "random")


def build_model(config: dict) -> nn.Module:
    """A ContinuousRNN (or StochasticRNN when ``config["noise"]``) from a config dict."""
    from ..models import ContinuousRNN
    from ..noise import StochasticRNN

    kinds = _fields()
    name = config.get("field")
    if name not in kinds:
        raise ValueError(f"config field must be one of {', '.join(FIELDS)}; got {name!r}")
    for key in ("input_size", "hidden_size", "output_size"):
        if not isinstance(config.get(key), int):
            raise ValueError(f"config must give {key} as an int; got {config.get(key)!r}")
    f = kinds[name](config["input_size"], config["hidden_size"], **config.get("field_kwargs", {}))
    solver = dict(method=config.get("method", "euler"), step_size=config.get("step_size"),
                  interpolation=config.get("interpolation", "hold"))
    noise = config.get("noise")
    if noise:
        return StochasticRNN(f, config["output_size"], sigma=noise.get("sigma", 0.1),
                             noise=noise.get("noise", "additive"), sde_method=noise.get("sde_method", "euler"),
                             **solver)
    return ContinuousRNN(f, config["output_size"], **solver)


def save_run(run_dir: str | Path, model: nn.Module, config: dict, epoch: int, metrics: dict,
             best: bool = False) -> None:
    """Write config.json and checkpoint_last.pt (and checkpoint_best.pt when ``best``)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))
    state = {"model": model.state_dict(), "epoch": epoch, "metrics": metrics}
    torch.save(state, run_dir / "checkpoint_last.pt")
    if best:
        torch.save(state, run_dir / "checkpoint_best.pt")


def load_run(run_dir: str | Path) -> Run:
    """Read ``config.json`` and ``checkpoint_best.pt`` (else ``checkpoint_last.pt``) of a run."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory: no config.json in it")
    config = json.loads(cfg_path.read_text())
    for name in ("checkpoint_best.pt", "checkpoint_last.pt"):
        if (run_dir / name).is_file():
            break
    else:
        raise FileNotFoundError(f"{run_dir} holds no checkpoint_best.pt or checkpoint_last.pt")
    state = torch.load(run_dir / name, map_location="cpu", weights_only=True)
    model = build_model(config)
    model.load_state_dict(state["model"] if "model" in state else state)
    model.eval()
    return Run(model=model, config=config, path=run_dir, checkpoint=name, metrics=state.get("metrics", {}))


def random_run(field: str = "lipschitz", task: str = "digits", hidden_size: int = 32, seed: int = 0,
               time_step: float | None = 0.1, **field_kwargs: Any) -> Run:
    """An untrained model for ``task`` (seeded), for ``compare-solvers --random``."""
    from ..data import load_task

    data = load_task(task, n_train=1, n_test=1)
    config = {"name": f"random-{field}", "task": task, "task_kwargs": {}, "field": field,
              "field_kwargs": field_kwargs, "input_size": data.input_size, "hidden_size": hidden_size,
              "output_size": data.output_size, "method": "euler", "step_size": None, "interpolation": "hold",
              "time_step": time_step, "noise": None, "seed": seed}
    torch.manual_seed(seed)
    model = build_model(config).eval()
    return Run(model=model, config=config)


def run_times(config: dict, length: int, times: Tensor | None = None) -> Tensor | None:
    """The sample times the run uses: time_step * (1..T) if set, else the data's own ``times``."""
    step = config.get("time_step")
    if step is None:
        return times
    if times is not None:
        raise ValueError("config time_step rescales evenly sampled tasks; this task has its own times")
    return step * torch.arange(1, length + 1, dtype=torch.float32)


def run_data(config: dict, split: str = "test", n: int | None = None) -> tuple[Tensor, Tensor | None, Tensor]:
    """(values, times, targets) of a split of the run's task, the first ``n`` samples."""
    from ..data import load_task

    data = load_task(config["task"], **config.get("task_kwargs", {}))
    part = getattr(data, split)
    n = len(part) if n is None else min(n, len(part))
    values, targets = part.values[:n], part.targets[:n]
    times = None if part.times is None else part.times[:n]
    return values, run_times(config, values.shape[1], times), targets
