"""The standard baselines of irregular time-series classification, each with the models' call signature.

    model(values (B, T, D), times None | (T,) | (B, T)) -> (B, output_size)    NaN = missing

=========  ===============================================================  =====================
name       model                                                            reads
=========  ===============================================================  =====================
gru-dt     GRU over [x_k, t_k - t_{k-1}]                                    gaps
gru-d      GRU-D: inputs decay to the empirical mean, state decays (Che     mask, time since last
           et al. 2018)                                                     observation
ode-rnn    GRU update at observations, neural ODE between them (Rubanova    gaps
           et al. 2019), through ``solvers.odeint``
ncde       Neural CDE on [time, x] (Kidger et al. 2020) through torchcde     time channel
*-cde      a seed field in controlled form dz = f(z) dt + U dX on the       time channel
           Neural CDE's path and solve (``controlled``; not a baseline but
           built the same way): lipschitz-, antisymmetric-,
           antisymmetric-gated-, ctrnn-cde
=========  ===============================================================  =====================

Each class sets ``reads_times = True``: it must be given the samples' times
(``zoo.uses_times``).  The time-blind LSTM/GRU are ``models.TorchRNN``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from .controlled import CONTROLLED, ControlledRNN
from .gru_d import GRUD
from .gru_dt import GRUdt
from .ncde import CDE_INTERPOLATIONS, CDEVectorField, NeuralCDE
from .ode_rnn import ODERNN

__all__ = ["BASELINES", "CDE_INTERPOLATIONS", "CDEVectorField", "ControlledRNN", "GRUD", "GRUdt", "NeuralCDE",
           "ODERNN", "build_baseline"]

BASELINES: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "gru-dt": (GRUdt, "GRU reading the time gaps as an input channel (GRU-dt)"),
    "gru-d": (GRUD, "GRU-D: learned decay of inputs to the empirical mean and of the state (Che et al. 2018)"),
    "ode-rnn": (ODERNN, "ODE-RNN: GRU at observations, neural ODE between them (Rubanova et al. 2019); --method"),
    "ncde": (NeuralCDE, "Neural CDE on [time, x] through torchcde (Kidger et al. 2020); --method (torchdiffeq)"),
}
for _name, _cls in CONTROLLED.items():
    BASELINES[_name] = (_cls, f"{_cls.FAMILY} field in controlled (CDE) form dz = f(z) dt + U dX (time-aware; "
                              "not a baseline); --method (torchdiffeq)")
"""name -> (class, one line for ``neuralode-rnn list``)."""


def build_baseline(name: str, input_size: int, output_size: int, hidden_size: int, **options) -> nn.Module:
    """Baseline ``name`` with the ``options`` its class takes (method, step_size, interpolation, rtol,
    atol, gradient, hidden_hidden_size, ...); options it does not take are ignored, as LSTM/GRU
    ignore solver settings.  ``interpolation=None`` means the class default."""
    try:
        cls = BASELINES[name][0]
    except KeyError:
        raise ValueError(f"unknown baseline {name!r}; expected one of {', '.join(BASELINES)}") from None
    accepted = inspect.signature(cls).parameters
    kwargs = {k: v for k, v in options.items() if k in accepted and v is not None}
    if issubclass(cls, NeuralCDE) and kwargs.get("interpolation") == "hold":
        raise ValueError(f"{name!r} is a CDE, driven by dX, which a held (piecewise-constant) path does not have: "
                         f"use interpolation one of {', '.join(CDE_INTERPOLATIONS)} (default natural)")
    return cls(input_size, hidden_size, output_size, **kwargs)
