"""The model zoo: a model name and a few settings -> an ``nn.Module`` with the common call signature.

Names (``MODELS``):

* continuous (``ContinuousRNN``, any Runge-Kutta method of ``solvers.TABLEAUX`` via ``method``):
  ``lipschitz``, ``antisymmetric``, ``antisymmetric-gated``, ``unitary``, ``ctrnn``;
* their discrete cells (``DiscreteRNN(field.discretize(method, eps))``, one step of ``method`` per
  sample): the same names with ``-discrete`` appended;
* torch.nn baselines: ``lstm``, ``gru`` (time-blind: they step once per observation);
* irregular-series baselines (``neuralode_rnn.baselines``, kind "baseline", they read the times):
  ``gru-dt``, ``gru-d``, ``ode-rnn``, ``ncde``; their eps (1) scales the times they are fed.

Every family has a *time scale* ``eps``: sample k sits at time eps * k, so a fixed-step solver
with one step per gap takes steps of eps and computes exactly the discrete cell of its paper.
The defaults below are the papers' values; ``neuralode-rnn train`` and ``TrainConfig`` take the
preset of the task first (``neuralode_rnn.data.presets``: the eps chosen on validation in the
documented runs), so these apply to ``build_model`` and to a run without a preset.  The
defaults, and why:

=======================  =====  ======================================================================
family                   eps    reason
=======================  =====  ======================================================================
lipschitz                0.03   Erichson et al. (2021), reference code: eps = 0.03 on (permuted) MNIST
antisymmetric(-gated)    0.1    Chang et al. (2019) search eps in {0.01, 0.1, 1}; with 0.01 and the
                                short sequences here (40-784 steps) the state moves by at most
                                T * eps <= 0.4 per unit, too little to separate classes, and 1 is
                                the least stable; 0.1 is the middle of their grid
unitary                  1.0    Wisdom et al. (2016): one Euler step of size 1 *is* the uRNN cell
                                h_k = modReLU(W h_{k-1} + V x_k, b)
ctrnn                    1.0    one Euler step of size 1 is the Elman RNN h_k = tanh(W h_{k-1} + U x_k + b)
=======================  =====  ======================================================================

``gamma`` defaults to the paper value of each field (Lipschitz 0.001, Antisymmetric 0.01) and
``beta`` to 0.75 (Lipschitz).

Noise training (the Noisy RNN, ``neuralode_rnn.noise``): ``noise_sigma > 0`` wraps a continuous
model's field in a :class:`~neuralode_rnn.noise.StochasticRNN`, an SDE with ``noise`` ("additive"
or "multiplicative") diffusion while training and exactly the deterministic ContinuousRNN in
``eval()`` mode.  Only real continuous families take it (not ``unitary``, discrete cells, lstm/gru).  Model names are data: a new family is one :class:`ModelSpec`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

import solvers

from .baselines import BASELINES, build_baseline
from .fields import AntisymmetricField, CTRNNField, LipschitzField, UnitaryField
from .fields.base import Field
from .models import ContinuousRNN, DiscreteRNN, TorchRNN
from .paths import INTERPOLATIONS

__all__ = [
    "MODELS",
    "ModelSpec",
    "build_from_config",
    "build_model",
    "check_cell_method",
    "count_parameters",
    "evaluations_per_sequence",
    "is_continuous",
    "model_spec",
    "uses_times",
]


@dataclass(frozen=True)
class ModelSpec:
    """What a model name means.

    Attributes:
        kind: "continuous" (ContinuousRNN), "discrete" (DiscreteRNN of the field's cell), "torch"
            or "baseline" (``neuralode_rnn.baselines``).
        family: the field family ("lipschitz", ...), the torch.nn class ("lstm", "gru") or the
            baseline's name.
        eps: default time scale (step per sample; for baselines the factor on the times they
            read, 1: the data's own times); None for torch baselines.
        lr: default Adam learning rate (0.003 for all: the Lipschitz RNN reference value, used for
            every model so that the comparison changes one thing at a time).
        description: one line for ``neuralode-rnn list``.
        recipe: the default training recipe (``neuralode_rnn.training.recipes``): "cycle" for the
            continuous models (trained under a cycle of solvers and evaluated with RK4, they stay
            the ODE: the same weights lose 0-4 points under other solvers instead of 75-90,
            docs/CONTINUOUS.md), "fixed" for the others (they have no solver to switch).  A run
            takes its preset's recipe first (``data.presets``: "fixed", the documented cells,
            which score higher at the same epochs), so this applies only where no preset names one.
    """

    kind: str
    family: str
    eps: float | None
    lr: float
    description: str
    recipe: str = "fixed"


def _field(family: str, input_size: int, hidden_size: int, beta: float | None, gamma: float | None,
           stable_margin: float | None = None, init_std: float | None = None) -> Field:
    if stable_margin is not None and family != "lipschitz":
        raise ValueError(f"stable_margin is a Lipschitz field option (its contraction condition); family {family!r} "
                         f"has none: leave it None")
    if family == "lipschitz":
        kw = {} if beta is None else {"beta": beta}
        if stable_margin is not None:
            kw["stable_margin"] = stable_margin
        if init_std is not None:
            kw["init_std"] = init_std
        if gamma is not None:
            kw.update(gamma_A=gamma, gamma_W=gamma)  # one gamma for both, as in the reference code
        return LipschitzField(input_size, hidden_size, **kw)
    if family in ("antisymmetric", "antisymmetric-gated"):
        kw = {} if gamma is None else {"gamma": gamma}
        return AntisymmetricField(input_size, hidden_size, gated=family.endswith("gated"), **kw)
    if family == "unitary":
        # a learned h0: with modReLU's b > 0, h = 0 is unstable and long blank prefixes (permuted
        # MNIST) overflow the gradient from h0 = 0 (see UnitaryField)
        return UnitaryField(input_size, hidden_size, learn_initial_state=True)
    if family == "ctrnn":
        return CTRNNField(input_size, hidden_size)
    raise ValueError(f"unknown field family {family!r}")  # unreachable through MODELS


_FAMILIES: dict[str, tuple[float, str]] = {
    "lipschitz": (0.03, "Lipschitz RNN, h' = A h + tanh(W h + U x + b) (Erichson et al. 2021)"),
    "antisymmetric": (0.1, "AntisymmetricRNN, h' = tanh((W - W^T - gamma I) h + V x + b) (Chang et al. 2019)"),
    "antisymmetric-gated": (0.1, "gated AntisymmetricRNN (Chang et al. 2019, eq. 7)"),
    "unitary": (1.0, "full-capacity unitary RNN, complex h' = -h + modReLU(W h + V x, b) (Wisdom et al. 2016)"),
    "ctrnn": (1.0, "plain continuous-time RNN, h' = -h + tanh(W h + U x + b)"),
}

MODELS: dict[str, ModelSpec] = {}
for _family, (_eps, _text) in _FAMILIES.items():
    MODELS[_family] = ModelSpec("continuous", _family, _eps, 0.003, _text + "; integrated by --method", "cycle")
    MODELS[_family + "-discrete"] = ModelSpec("discrete", _family, _eps, 0.003,
                                              "discrete cell: one --method step of size eps per sample")
MODELS["lstm"] = ModelSpec("torch", "lstm", None, 0.003, "torch.nn.LSTM baseline")
MODELS["gru"] = ModelSpec("torch", "gru", None, 0.003, "torch.nn.GRU baseline")
for _name, (_cls, _text) in BASELINES.items():
    MODELS[_name] = ModelSpec("baseline", _name, 1.0, 0.003, _text)


def model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; an unknown name lists the valid ones."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}") from None


def check_cell_method(method: str) -> None:
    """A discrete cell of the zoo takes one step of a fixed-step tableau of ``solvers.TABLEAUX``
    per sample; anything else is a ValueError listing those methods."""
    if method not in solvers.TABLEAUX or solvers.TABLEAUX[method].adaptive:
        fixed = [k for k, t in solvers.TABLEAUX.items() if not t.adaptive]
        raise ValueError(f"a discrete cell needs an explicit tableau method of fixed step; got {method!r}, expected "
                         f"one of {', '.join(fixed)}")


def build_model(name: str, input_size: int, output_size: int, hidden_size: int = 64, *,
                method: str = "euler", eps: float | None = None, step_size: float | None = None,
                interpolation: str | None = None, gradient: str = "backprop", rtol: float = 1e-3,
                atol: float = 1e-5, beta: float | None = None, gamma: float | None = None,
                noise_sigma: float = 0.0, noise: str = "additive", stable_margin: float | None = None,
                init_std: float | None = None, field_width: int | None = None,
                field_depth: int | None = None) -> nn.Module:
    """Build model ``name`` (see ``MODELS``).

    Args:
        input_size, output_size, hidden_size: D, the readout width, N.
        method: solver (continuous) or the cell's one-step scheme (discrete); ignored by lstm/gru.
        eps: time scale; None for the family default.  Continuous models are fed times eps * t,
            discrete cells take steps of eps.
        step_size: continuous fixed-step models only: split each gap into steps no longer than this
            (in scaled time); None for one step per gap.
        interpolation, gradient, rtol, atol: passed to :class:`ContinuousRNN` (interpolation None:
            "hold", the discrete cell's input) or to a baseline that takes them (None: its default,
            "cubic" for ncde).
        beta, gamma: field hyper-parameters; None for the paper defaults.
        noise_sigma, noise: continuous models only: sigma > 0 gives a StochasticRNN trained with
            ``noise`` diffusion of level sigma (Euler-Maruyama on the solver's grid); 0 (default)
            the plain ContinuousRNN.
        stable_margin: Lipschitz fields only: None (default, the paper's field) or m > 0, a field
            contracting at rate >= m for every parameter value (``LipschitzField``).
        init_std: Lipschitz fields only: M_A, M_W ~ N(0, (init_std / N)^2); None for the field's
            default (1, the reference code's class default; see ``data.presets``).
        field_width, field_depth: baselines with an MLP vector field (ncde: both; ode-rnn: the
            width): its hidden width and number of hidden layers; None for the class default.
    """
    spec = model_spec(name)
    if not (isinstance(noise_sigma, (int, float)) and noise_sigma >= 0):
        raise ValueError(f"noise_sigma must be a number >= 0; got {noise_sigma!r}")
    if noise_sigma > 0 and spec.kind != "continuous":
        raise ValueError(f"noise_sigma > 0 needs a continuous model (an SDE); {name!r} is {spec.kind}")
    for arg, v in (("input_size", input_size), ("output_size", output_size), ("hidden_size", hidden_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{arg} must be a positive int; got {v!r}")
    if stable_margin is not None and spec.kind not in ("continuous", "discrete"):
        raise ValueError(f"stable_margin is a Lipschitz field option; {name!r} is {spec.kind}: leave it None")
    if spec.kind == "torch":
        return TorchRNN(spec.family, input_size, hidden_size, output_size)
    if spec.kind == "baseline":
        return build_baseline(spec.family, input_size, output_size, hidden_size, method=method,
                              step_size=step_size, interpolation=interpolation, gradient=gradient, rtol=rtol,
                              atol=atol, hidden_hidden_size=field_width, num_layers=field_depth)
    interpolation = "hold" if interpolation is None else interpolation
    # method, step_size, rtol, atol, gradient: checked by the solve specification the model makes
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interpolation!r}; expected one of {', '.join(INTERPOLATIONS)}")
    eps = spec.eps if eps is None else eps
    if not (isinstance(eps, (int, float)) and eps > 0):
        raise ValueError(f"eps must be a positive number (the time between samples); got {eps!r}")
    if init_std is not None and spec.family != "lipschitz":
        raise ValueError(f"init_std is a Lipschitz field option; {name!r} has none: leave it None")
    field = _field(spec.family, input_size, hidden_size, beta, gamma, stable_margin, init_std)
    if spec.kind == "discrete":
        check_cell_method(method)
        return DiscreteRNN(field.discretize(method, eps), output_size)
    if noise_sigma > 0:
        from .noise import StochasticRNN

        return StochasticRNN(field, output_size, sigma=noise_sigma, noise=noise, method=method, step_size=step_size,
                             interpolation=interpolation, rtol=rtol, atol=atol, gradient=gradient)
    return ContinuousRNN(field, output_size, method=method, step_size=step_size, interpolation=interpolation,
                         rtol=rtol, atol=atol, gradient=gradient)


def build_from_config(config: Any, input_size: int, output_size: int,
                      train_values: torch.Tensor | None = None) -> nn.Module:
    """The model a training config describes, in its dtype: the one place a run's settings become a model.

    ``config`` is anything with the attributes of ``neuralode_rnn.training.TrainConfig`` (model,
    hidden_size, method, eps, step_size, interpolation, gradient, rtol, atol, beta, gamma,
    noise_sigma, noise, stable_margin, dtype), resolved; a new model setting is a new config field read here.
    Complex parameters take the complex twin of ``dtype`` (see ``parametrizations.keep_complex``).

    ``train_values`` (N, T, D), the training split's values (NaN = missing): a model that keeps
    statistics of its training data is fitted on them here (GRU-D's empirical mean, ``fit_mean``:
    the value a missing input decays to).  None leaves such statistics at their defaults (a
    checkpoint restores them: they are buffers).
    """
    model = build_model(config.model, input_size, output_size, config.hidden_size, method=config.method,
                        eps=config.eps, step_size=config.step_size, interpolation=config.interpolation,
                        gradient=config.gradient, rtol=config.rtol, atol=config.atol, beta=config.beta,
                        gamma=config.gamma, noise_sigma=config.noise_sigma, noise=config.noise,
                        stable_margin=getattr(config, "stable_margin", None),
                        init_std=getattr(config, "init_std", None),
                        field_width=getattr(config, "field_width", None), field_depth=getattr(config, "field_depth", None))
    if train_values is not None and hasattr(model, "fit_mean"):
        model.fit_mean(train_values)
    return model.to(getattr(torch, config.dtype))


def count_parameters(model: nn.Module) -> int:
    """Trainable real parameters; a complex entry counts as two (its real and imaginary parts)."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters() if p.requires_grad)


def is_continuous(model: nn.Module) -> bool:
    """A ContinuousRNN, or a StochasticRNN (a ContinuousRNN with noise while training)."""
    from .noise import StochasticRNN

    return isinstance(model, (ContinuousRNN, StochasticRNN))


def uses_times(model: nn.Module) -> bool:
    """Whether the model reads sample times: continuous models and the baselines that declare
    ``reads_times`` (gru-dt, gru-d, ode-rnn, ncde); discrete cells and LSTM/GRU step once per sample."""
    return is_continuous(model) or bool(getattr(model, "reads_times", False))


def evaluations_per_sequence(model: nn.Module, length: int) -> int:
    """Cell evaluations of a discrete model over ``length`` steps (stages x steps; 1 per step for
    LSTM/GRU).  Continuous models report their solver's count in ``model.nfe`` instead."""
    cell = getattr(model, "cell", None)
    tab = getattr(cell, "tableau", None)
    return length * (len(tab.b) if tab is not None else 1)


def step_features(model: nn.Module) -> Callable:
    """The map from hidden states to the readout's input for ``model`` (identity for LSTM/GRU)."""
    field = getattr(model, "field", None) or getattr(getattr(model, "cell", None), "field", None)
    return field.features if field is not None else (lambda h: h)
