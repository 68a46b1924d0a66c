"""Optimisers and learning-rate schedules by name: the registries behind ``--optimizer`` and ``--schedule``.

``OPTIMIZERS`` maps a name to a factory ``(model, lr, weight_decay) -> torch.optim.Optimizer``; a
factory takes the model, not its parameters, so an optimiser can treat parameters differently
(the unitary W: ``parametrizations.is_unitary_parameter``).  :func:`register_optimizer` adds one
(the command line offers every registered name).  Schedules are per epoch (:func:`make_schedule`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..parametrizations import is_unitary_parameter

__all__ = ["OPTIMIZERS", "SCHEDULES", "Schedules", "make_optimizer", "make_schedule", "register_optimizer",
           "steps_on_metric"]

SCHEDULES = ("step", "cosine", "none", "plateau")
"""Per-epoch schedules; "plateau" is stepped with the validation metric (``steps_on_metric``)."""

Factory = Callable[[nn.Module, float, float], torch.optim.Optimizer]


def cayley(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """The full-capacity uRNN's training (Wisdom et al. 2016): Cayley steps on the unitary group for
    parameters marked unitary (lambda = lr), RMSprop for the rest, as in the paper."""
    from ..optim import FullCapacityOptimizer

    if not any(is_unitary_parameter(p) for p in model.parameters()):
        raise ValueError(f"optimizer 'cayley' moves a unitary W on the unitary group; {type(model).__name__} has no "
                         f"parameter marked unitary (use a unitary model, or another optimizer)")
    return FullCapacityOptimizer(model.parameters(), lr_unitary=lr, base=torch.optim.RMSprop, lr=lr,
                                 weight_decay=weight_decay)


OPTIMIZERS: dict[str, Factory] = {
    "adam": lambda m, lr, wd: torch.optim.Adam(m.parameters(), lr=lr, weight_decay=wd),
    "sgd": lambda m, lr, wd: torch.optim.SGD(m.parameters(), lr=lr, momentum=0.9, weight_decay=wd),
    "rmsprop": lambda m, lr, wd: torch.optim.RMSprop(m.parameters(), lr=lr, weight_decay=wd),
    "cayley": cayley,
}
"""name -> factory(model, lr, weight_decay)."""


def register_optimizer(name: str, factory: Factory) -> None:
    """Add an optimiser choice (also offered by ``--optimizer``)."""
    if not callable(factory):
        raise TypeError(f"factory must be callable as factory(model, lr, weight_decay); got {type(factory).__name__}")
    OPTIMIZERS[name] = factory


def make_optimizer(name: str, model: nn.Module, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """The optimiser ``name`` (a key of ``OPTIMIZERS``) for ``model``."""
    try:
        factory = OPTIMIZERS[name]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}") from None
    return factory(model, lr, weight_decay)


def steps_on_metric(name: str) -> bool:
    """Whether the schedule ``name`` is stepped with the epoch's validation metric (``step(metric)``)."""
    return name == "plateau"


def make_schedule(name: str, optimizer: torch.optim.Optimizer, epochs: int, factor: float = 0.1,
                  patience: int = 10):
    """Per-epoch learning-rate schedule planned over ``epochs``: "step" multiplies lr by 0.1 once 90%
    of the epochs are done (the Lipschitz RNN reference: 100 epochs, decay at 90) and keeps it
    there; "cosine" anneals to 0 at ``epochs``; "none"; "plateau" multiplies lr by ``factor`` when the
    validation metric (accuracy, or -loss; mode "max") has not improved for ``patience`` epochs
    (``torch.optim.lr_scheduler.ReduceLROnPlateau``, the references' schedule: Kidger et al.'s
    ``experiments/common.py``), stepped with that metric.  Its ``state_dict`` is saved in checkpoints."""
    parts = getattr(optimizer, "optimizers", None)
    if parts is not None:  # a composite (FullCapacityOptimizer): one schedule per part
        return Schedules([make_schedule(name, o, epochs, factor, patience) for o in parts])
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=factor, patience=patience)
    if name == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, [max(1, int(0.9 * epochs))], gamma=0.1)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "none":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 1.0)
    raise ValueError(f"unknown schedule {name!r}; expected one of {', '.join(SCHEDULES)}")


class Schedules:
    """The same schedule on each part of a composite optimiser, saved and restored together."""

    def __init__(self, schedules: list) -> None:
        self.schedules = schedules

    def step(self, *metric) -> None:
        for s in self.schedules:
            s.step(*metric)

    def get_last_lr(self) -> list[float]:
        return [lr for s in self.schedules for lr in s.get_last_lr()]

    def state_dict(self) -> list[dict]:
        return [s.state_dict() for s in self.schedules]

    def load_state_dict(self, state: list[dict]) -> None:
        for s, d in zip(self.schedules, state):
            s.load_state_dict(d)
