"""What a training run is: :class:`TrainConfig`, its defaults and its checks.

A config is plain data (a dataclass of numbers and strings, stored as config.json in the run
directory).  :meth:`TrainConfig.resolved` fills every default from the model and the task and
checks every setting, so a run never starts with a setting it would ignore or mislabel: options
that do not apply to the chosen model (``--method`` for an LSTM, ``--step-size`` for a discrete
cell, ``rtol`` for a fixed-step solver, ``--optimizer cayley`` without a unitary W) are refused
with the reason.  New options are new fields with a default: old config.json files still load.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
from dataclasses import dataclass, field
from typing import Any

import solvers

from ..data.irregular import check_rate
from ..inputs import parse_features
from ..zoo import check_cell_method, model_spec
from .optimizers import OPTIMIZERS, SCHEDULES
from .recipes import DEFAULT_RECIPE_SOLVERS, RECIPES, parse_recipe_solvers
from .stopping import STOP_ON

__all__ = ["RUN_CONTROLS", "TASK_DEFAULTS", "TrainConfig", "task_defaults"]

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
    "timing": {"epochs": 20, "batch_size": 64},     # 2000 x 32 steps; time-aware models reach ~100% in 10
    # sktime's bundled UEA/UCR sets: batches of about a tenth of the (small) training sets, so an
    # epoch has 5-17 steps; long series (ACSF1 1460, PLAID <= 1344 steps) get fewer epochs
    "uea:ACSF1": {"epochs": 30, "batch_size": 16},          # 100 train x 1460 steps, 10 classes
    "uea:ArrowHead": {"epochs": 50, "batch_size": 8},       # 36 x 251, 3 classes
    "uea:BasicMotions": {"epochs": 50, "batch_size": 8},    # 40 x 100 x 6 channels, 4 classes
    "uea:GunPoint": {"epochs": 50, "batch_size": 8},        # 50 x 150, 2 classes
    "uea:ItalyPowerDemand": {"epochs": 50, "batch_size": 8},  # 67 x 24, 2 classes
    "uea:JapaneseVowels": {"epochs": 50, "batch_size": 32},   # 270 x 7..29 x 12, 9 classes (= vowels)
    "uea:OSULeaf": {"epochs": 50, "batch_size": 16},        # 200 x 427, 6 classes
    "uea:PLAID": {"epochs": 30, "batch_size": 32},          # 537 x 100..1344, 11 classes
    "uea:UnitTest": {"epochs": 20, "batch_size": 4},        # 20 x 24, sktime's test fixture
}
FALLBACK_DEFAULTS = {"epochs": 20, "batch_size": 128}
UEA_DEFAULTS = {"epochs": 50, "batch_size": 16}
"""Any other ``uea:NAME`` set (read from ``$NEURALODE_RNN_UEA_DIR``): the archives are small."""


def task_defaults(task: str) -> dict[str, int]:
    """Default epochs and batch size of ``task``: ``TASK_DEFAULTS``, else ``UEA_DEFAULTS`` for a
    ``uea:NAME`` set, else ``FALLBACK_DEFAULTS``."""
    if task in TASK_DEFAULTS:
        return TASK_DEFAULTS[task]
    return UEA_DEFAULTS if isinstance(task, str) and task.startswith("uea:") else FALLBACK_DEFAULTS

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
"""The forms of ``TrainConfig.device`` (whether the device exists is checked when a run starts)."""

RUN_CONTROLS = ("run_dir", "resume", "fresh", "stop_after", "quiet", "threads", "device", "memory_limit")
"""Settings of one invocation, not of the run: they may differ when a run is resumed (and
``epochs``, which extends or shortens the run; see :meth:`TrainConfig.continued`)."""


@dataclass
class TrainConfig:
    """Everything a run needs; what is None is filled from the preset of the task and the model's
    family (``neuralode_rnn.data.presets``: hidden_size, method, eps, init_std, recipe, lr, epochs,
    batch_size, the settings of the library's documented runs), then from the model and task
    defaults described below.  ``sources`` (filled by :meth:`resolved`, stored in config.json)
    says where each setting's value came from: "flag" (given: a CLI flag, or an argument other
    than the field default), "preset:<source>" or "default".

    Task: ``task`` (a name in ``neuralode_rnn.data.TASKS`` or ``uea:NAME``, a UEA/UCR archive),
    ``task_options`` (keyword arguments of its loader: permute, n_train, n_test, T, seed, ...),
    ``drop`` (share of observations removed per sample, making an irregular task),
    ``drop_channels`` (probability that each value is missing, drawn independently), ``inputs``
    (time-aware input channels appended to the values: "time", "intensity", "mask" or a
    comma-separated subset such as "time,intensity"; None: the values only; see
    ``neuralode_rnn.inputs``).

    Model: ``model`` (a name in ``neuralode_rnn.zoo.MODELS``), ``hidden_size`` (None: the preset's,
    else 64, the results' size; the papers use 128), ``init_std`` (Lipschitz: M_A, M_W ~
    N(0, (init_std / N)^2); None: the preset's, 1, the field default), ``method`` (None: "rk4" for a continuous model trained with the
    ``cycle`` or ``random`` recipe, the as-trained solver of the issue 11 study; else "euler", the
    papers' cells; continuous models and discrete cells only), ``eps`` (time between samples; None for the family's paper value, see
    ``zoo``), ``step_size`` (fixed-step continuous models; None: one solver step per sample gap),
    ``rtol``/``atol`` (1e-3/1e-5: loose, adaptive solvers only), ``gradient``, ``interpolation``
    (None: "hold" for the fields, what a discrete RNN reads; a baseline's own default, e.g.
    "cubic" for ncde), ``beta``/``gamma`` (None: paper values), ``noise_sigma``/``noise`` (0:
    none; > 0: a continuous model trained as an SDE with that diffusion, a ``noise.StochasticRNN``,
    evaluated without noise), ``stable_margin`` (None: off; m > 0: a Lipschitz field whose
    contraction condition lambda_max(A_sym) + ||W||_2 <= -m holds for every parameter value,
    ``LipschitzField``).

    Training recipe (``recipes``, issue 11: a continuous model that stays an ODE): ``recipe``
    (None: the model's zoo default, ``ModelSpec.recipe``: "cycle" for continuous models without
    noise, "fixed" for the others; "fixed", "cycle", "random", "penalty"), ``recipe_solvers`` (the
    solver set of cycle/random, None: ``recipes.DEFAULT_RECIPE_SOLVERS``), ``penalty`` (the weight of
    the Heun-Euler local-error term, recipe "penalty" only).

    Optimisation: ``optimizer`` ("adam"; "cayley": the unitary W on the unitary group, unitary
    models only), ``lr`` (None: 0.003, the Lipschitz RNN value), ``weight_decay``, ``schedule``
    (None: the preset's, else "step": lr x 0.1 after 90% of the schedule's epochs, as the Lipschitz
    RNN reference; "cosine"; "none"; "plateau", below), ``schedule_epochs`` (None: ``epochs``; a run extended with ``--resume
    --epochs`` keeps the schedule it was planned with), ``clip`` (max gradient norm or None),
    ``epochs``/``batch_size`` (None: ``TASK_DEFAULTS``), ``seed``.

    Model selection: ``validation`` (None: the preset's, else 0: off; ``ncde``'s preset is the
    reference's training, 15/85 with early stopping and the plateau schedule, ``data.presets``;
    what chooses on validation, ``patience``, ``schedule`` and ``plateau_patience``, comes from a
    preset only when the run has a validation split) holds out this share of the training samples (a fixed
    seeded choice, the same for every run seed and model: ``runs.validation_split``); the run trains
    on the rest and its per-epoch ``test_*`` metrics are measured on the held-out samples, never on
    the test split (the metrics rows say which: ``evaluated_on``).

    Run (``RUN_CONTROLS``): ``run_dir`` (None: nothing written), ``resume`` (continue the run in
    ``run_dir`` with its stored config), ``fresh`` (start again from epoch 1 in a run directory
    that holds a run, replacing it), ``stop_after`` (run at most this many epochs in this
    invocation, then exit cleanly; continue with resume), ``quiet``, ``threads`` (torch intra-op
    threads; None leaves torch's choice, i.e. OMP_NUM_THREADS), ``device`` ("auto": CUDA when
    available, else the CPU; "cpu", "cuda", "cuda:N"; config.json records the device the run used),
    ``memory_limit`` (None: refuse a run whose estimated peak memory exceeds the memory available,
    ``budget.check_memory``; a number: that budget in GB instead; ``math.inf``: no check), and
    ``dtype`` ("float32" or "float64").

    The references' protocol (issue 19; Kidger et al.'s ``experiments/common.py``), with a validation
    split only (none of it may read the test split): ``patience`` (None: off; n: stop when the
    validation metric has not improved for n epochs, ``epochs`` being the cap), ``schedule="plateau"``
    (lr x ``plateau_factor`` after ``plateau_patience`` epochs without improvement,
    ReduceLROnPlateau), ``validate_every`` (None: the preset's, else 1; n: the kept weights, early
    stopping and the plateau schedule read the validation metric of epochs 1, 1 + n, 1 + 2n, ... only,
    the reference's every 10th epoch; ``plateau_patience`` then counts those readings; every epoch's
    metric is still recorded), ``tie_break`` ("none": the kept weights are those of the first epoch with the best validation
    accuracy, the reference's rule; "loss": of the epochs with the best validation accuracy, the one
    with the lowest validation loss, for small validation splits whose accuracy saturates while the
    fit improves; early stopping and the plateau schedule read the accuracy alone either way),
    ``stop_on`` (None: the preset's, else "validation"; what ``patience`` counts: "validation", epochs without a better validation metric;
    "training", the reference's rule: the run stops at a reading more than ``patience`` epochs after
    the last new best training loss or training accuracy, the training split evaluated at each
    reading, ``stopping``; it reads no held-out split, so it needs no validation split).  With a validation split, the run ends by restoring the weights of its best
    validation epoch and scoring them on the task's test split (``TrainResult.summary``,
    summary.json).  ``weight_penalty`` (None: the model's default, 0.03 for ``ncde`` as in the
    reference, else 0): the loss adds this x the sum of the L2 norms of the model's penalised
    parameters (``objective.weight_penalty_term``).  ``field_width``/``field_depth`` (None: the
    model's default): width and number of hidden layers of an MLP vector field (``ncde``: 32 and 3,
    the reference's; ``ode-rnn`` takes the width).

    ``tanh_kernel``: how the structured kernel computes tanh ("tanh" or "sigmoid", which differ in
    the last bits; ``solvers.tanh_kernel``).  None: this machine's choice, which the run records
    in config.json when it starts, so a resumed run computes exactly what it computed before.
    """

    task: str = "digits"
    model: str = "lipschitz"
    task_options: dict[str, Any] = field(default_factory=dict)
    drop: float = 0.0
    drop_channels: float = 0.0
    inputs: str | None = None
    hidden_size: int | None = None
    method: str | None = None
    eps: float | None = None
    init_std: float | None = None
    step_size: float | None = None
    rtol: float = 1e-3
    atol: float = 1e-5
    gradient: str = "backprop"
    interpolation: str | None = None
    beta: float | None = None
    gamma: float | None = None
    noise_sigma: float = 0.0
    noise: str = "additive"
    stable_margin: float | None = None
    recipe: str | None = None
    recipe_solvers: str | None = None
    penalty: float = 0.0
    optimizer: str = "adam"
    lr: float | None = None
    weight_decay: float = 0.0
    schedule: str | None = None
    schedule_epochs: int | None = None
    clip: float | None = None
    epochs: int | None = None
    batch_size: int | None = None
    eval_batch_size: int = 512
    seed: int = 0
    validation: float | None = None
    run_dir: str | None = None
    resume: bool = False
    fresh: bool = False
    stop_after: int | None = None
    quiet: bool = False
    threads: int | None = None
    dtype: str = "float32"
    tanh_kernel: str | None = None
    device: str = "auto"
    memory_limit: float | None = None
    sources: dict[str, str] = field(default_factory=dict)
    # ---- issue 19: the references' training protocol and model options (``_resolve_protocol``)
    patience: int | None = None
    plateau_factor: float = 0.1
    plateau_patience: int | None = None
    validate_every: int | None = None
    tie_break: str = "none"
    stop_on: str | None = None
    weight_penalty: float | None = None
    field_width: int | None = None
    field_depth: int | None = None

    # ------------------------------------------------------------------ describing
    @property
    def label(self) -> str:
        """The run in words, e.g. "lipschitz (midpoint, eps 0.03) on digits, 50% dropped"."""
        spec = model_spec(self.model)
        parts = []
        if spec.kind != "torch":
            parts.append(self.method if self.method is not None else "default solver")
            if self.eps is not None:
                parts.append(f"eps {self.eps:g}")
            if self.noise_sigma:
                parts.append(f"{self.noise} noise {self.noise_sigma:g}")
            if self.recipe not in (None, "fixed"):
                parts.append(f"{self.recipe} recipe")
        model = f"{self.model} ({', '.join(parts)})" if parts else self.model
        task = self.task + (" permuted" if self.task_options.get("permute") else "")
        if self.inputs:
            model += f" + {self.inputs}"
        drop = f", {100 * self.drop:g}% dropped" if self.drop else ""
        if self.drop_channels:
            drop += f", {100 * self.drop_channels:g}% of values dropped per channel"
        return f"{model} on {task}{drop}"

    # ------------------------------------------------------------------ checking
    def resolved(self) -> TrainConfig:
        """A copy with every default filled in and every setting checked."""
        spec = model_spec(self.model)
        task_def = task_defaults(self.task)
        c = dataclasses.replace(self, task_options=dict(self.task_options), sources=dict(self.sources))
        if not c.sources:  # a stored (resumed) config keeps the sources it was resolved with
            c.sources = c._fill_presets(spec)
        c._resolve_recipe(spec)
        for name in ("drop", "drop_channels"):
            check_rate(getattr(c, name), name)
        # canonical order and spelling ("mask,time" -> "time,mask"); None for none
        c.inputs = ",".join(parse_features(c.inputs)) or None
        c._check_applies(spec)
        # left None and not filled by a preset: no validation split, the step schedule, torch's patience
        for name, plain in (("validation", 0.0), ("schedule", "step"), ("plateau_patience", 10),
                            ("validate_every", 1), ("stop_on", "validation")):
            if getattr(c, name) is None:
                setattr(c, name, plain)
        c._resolve_protocol(spec)
        c.interpolation = c.interpolation or _kind_default("interpolation", spec)
        if c.eps is None and spec.eps is not None:
            c.eps = spec.eps
        if c.lr is None:
            c.lr = spec.lr
        if c.hidden_size is None:
            c.hidden_size = 64  # the documented runs' size (a family without presets)
        if c.epochs is None:
            c.epochs = task_def["epochs"]
        if c.batch_size is None:
            c.batch_size = task_def["batch_size"]
        for name in ("epochs", "batch_size", "eval_batch_size", "hidden_size"):
            v = getattr(c, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int; got {v!r}")
        # method, step_size, rtol, atol and gradient: checked once, by the solve specification the model
        # will hold (_check_applies), or refused as ignored by models without a solver
        v = c.lr
        if isinstance(v, bool) or not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
            raise ValueError(f"lr must be a positive number; got {v!r}")
        v = c.eps
        if v is not None and (isinstance(v, bool) or not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v))):
            raise ValueError(f"eps must be None or a positive number; got {v!r}")
        v = c.init_std
        if v is not None and (isinstance(v, bool) or not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v))):
            raise ValueError(f"init_std must be None or a positive number; got {v!r}")
        if c.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {c.schedule!r}; expected one of {', '.join(SCHEDULES)}")
        if c.schedule_epochs is not None and (isinstance(c.schedule_epochs, bool) or
                                              not isinstance(c.schedule_epochs, int) or c.schedule_epochs < 1):
            raise ValueError(f"schedule_epochs must be None or a positive int; got {c.schedule_epochs!r}")
        if c.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {c.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
        if c.optimizer == "cayley" and spec.family != "unitary":
            raise ValueError(f"optimizer 'cayley' moves a unitary W on the unitary group (Wisdom et al. 2016); model "
                             f"{c.model!r} has none: use it with unitary or unitary-discrete, or choose "
                             f"{', '.join(o for o in OPTIMIZERS if o != 'cayley')}")
        if c.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {c.dtype!r}")
        if isinstance(c.noise_sigma, bool) or not (isinstance(c.noise_sigma, (int, float)) and c.noise_sigma >= 0):
            raise ValueError(f"noise_sigma must be a number >= 0; got {c.noise_sigma!r}")
        if c.noise_sigma > 0 and spec.kind != "continuous":
            raise ValueError(f"noise_sigma > 0 needs a continuous model; {c.model!r} is {spec.kind}")
        if c.noise not in ("additive", "multiplicative"):
            raise ValueError(f"noise must be 'additive' or 'multiplicative'; got {c.noise!r}")
        if c.noise != "additive" and not c.noise_sigma:
            raise ValueError(f"noise={c.noise!r} would be ignored: noise_sigma is 0 (no noise); set noise_sigma > 0")
        if isinstance(c.validation, bool) or not (isinstance(c.validation, (int, float)) and
                                                  0.0 <= c.validation < 1.0):
            raise ValueError(f"validation must be a share in [0, 1) of the training samples; got {c.validation!r}")
        if c.clip is not None and not c.clip > 0:
            raise ValueError(f"clip must be None or a positive max gradient norm; got {c.clip!r}")
        if c.stop_after is not None and (not isinstance(c.stop_after, int) or c.stop_after < 1):
            raise ValueError(f"stop_after must be None or a positive int; got {c.stop_after!r}")
        if c.threads is not None and (isinstance(c.threads, bool) or not isinstance(c.threads, int) or c.threads < 1):
            raise ValueError(f"threads must be None or a positive int; got {c.threads!r}")
        if c.tanh_kernel is not None and c.tanh_kernel not in solvers.TANH_KERNELS:
            raise ValueError(f"tanh_kernel must be None, 'tanh' or 'sigmoid'; got {c.tanh_kernel!r}")
        if not (isinstance(c.device, str) and DEVICE_PATTERN.fullmatch(c.device)):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {c.device!r}")
        if c.memory_limit is not None and (isinstance(c.memory_limit, bool) or not (
                isinstance(c.memory_limit, (int, float)) and c.memory_limit > 0)):
            raise ValueError(f"memory_limit must be None (the memory available), a positive number of GB, or "
                             f"math.inf (no check); got {c.memory_limit!r}")
        if c.resume and c.fresh:
            raise ValueError("resume=True continues the run in run_dir, fresh=True replaces it: set one of them")
        if (c.resume or c.fresh) and c.run_dir is None:
            raise ValueError(f"{'resume' if c.resume else 'fresh'}=True needs run_dir (the run directory)")
        return c

    # ------------------------------------------------------------------ presets (issue 17, item 5)
    def _fill_presets(self, spec) -> dict[str, str]:
        """Fill the settings left None from the preset of (task, family) (``data.presets``) and
        return where every setting's value came from: "flag" (set by the caller: a CLI flag or a
        TrainConfig argument other than the field default), "preset:<source>" or "default"."""
        from ..data.presets import PRESET_KEYS, fill

        values = {k: getattr(self, k) for k in PRESET_KEYS}
        sources = fill(values, task=self.task, family=spec.family, kind=spec.kind, task_options=self.task_options,
                       drop=self.drop)
        for k in PRESET_KEYS:
            setattr(self, k, values[k])
        for f in dataclasses.fields(self):
            if f.name not in sources and f.name not in RUN_CONTROLS and f.name != "sources":
                default = f.default_factory() if f.default is dataclasses.MISSING else f.default
                sources[f.name] = "default" if getattr(self, f.name) == default else "flag"
        return sources

    def _resolve_protocol(self, spec) -> None:
        """Fill and check the issue 19 settings (early stopping, plateau schedule, weight penalty, the
        vector field's size); kept apart from the other defaults."""
        from ..baselines import BASELINES

        cls = BASELINES[spec.family][0] if spec.kind == "baseline" else None
        if self.weight_penalty is None:
            self.weight_penalty = float(getattr(cls, "WEIGHT_PENALTY", 0.0))
        v = self.weight_penalty
        if isinstance(v, bool) or not (isinstance(v, (int, float)) and v >= 0 and math.isfinite(v)):
            raise ValueError(f"weight_penalty must be a number >= 0 (weight of the parameters' norms); got {v!r}")
        for name in ("patience", "plateau_patience", "validate_every"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be {'None or ' if name == 'patience' else ''}a positive int of epochs; "
                                 f"got {v!r}")
        if self.stop_on not in STOP_ON:
            raise ValueError(f"stop_on must be one of {', '.join(STOP_ON)} (what early stopping reads); "
                             f"got {self.stop_on!r}")
        if self.stop_on != "validation" and self.patience is None:
            raise ValueError(f"stop_on={self.stop_on!r} would be ignored: early stopping is off (set patience, "
                             f"--patience EPOCHS)")
        if self.tie_break not in ("none", "loss"):
            raise ValueError(f"tie_break must be 'none' or 'loss' (ties of the validation accuracy broken by the "
                             f"lower validation loss); got {self.tie_break!r}")
        v = self.plateau_factor
        if isinstance(v, bool) or not (isinstance(v, (int, float)) and 0 < v < 1):
            raise ValueError(f"plateau_factor must be a number in (0, 1) (the lr multiplier); got {v!r}")
        if not self.validation:
            used = [f"patience={self.patience!r}"] * (self.patience is not None and self.stop_on == "validation") + \
                   [f"schedule={self.schedule!r}"] * (self.schedule == "plateau") + \
                   [f"validate_every={self.validate_every!r}"] * (self.validate_every != 1)
            if used:
                raise ValueError(f"{' and '.join(used)} choose on the per-epoch metric, which without a validation "
                                 f"split is measured on the test split (selection on the test set): set validation "
                                 f"> 0 (--validation SHARE)")
        if self.schedule != "plateau" and (self.plateau_factor, self.plateau_patience) != (0.1, 10):
            raise ValueError(f"plateau_factor/plateau_patience would be ignored: schedule is {self.schedule!r} "
                             f"(use schedule 'plateau')")
        takes = set(inspect.signature(cls).parameters) if cls is not None else set()
        for name, arg in (("field_width", "hidden_hidden_size"), ("field_depth", "num_layers")):
            v = getattr(self, name)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be None or a positive int; got {v!r}")
            if arg not in takes:
                raise ValueError(f"{name}={v!r} would be ignored: {self.model!r} has no MLP vector field of that "
                                 f"setting ({name} applies to "
                                 f"{', '.join(k for k, (c, _) in BASELINES.items() if arg in inspect.signature(c).parameters)})")

    def _resolve_recipe(self, spec) -> None:
        """Fill ``recipe`` (the zoo default) and ``method`` (rk4 under cycle/random, else euler),
        and check the recipe settings."""
        if self.recipe is None:
            adaptive = self.method is not None and solvers.METHODS.get(self.method) is not None \
                and solvers.METHODS[self.method].kind != "fixed"
            # the zoo default is for ODE models with a fixed-step solver; an SDE or an adaptive solver trains as set
            self.recipe = spec.recipe if not (self.noise_sigma or adaptive) else "fixed"
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {', '.join(RECIPES)}; got {self.recipe!r}")
        if self.recipe != "fixed" and spec.kind != "continuous":
            raise ValueError(f"recipe={self.recipe!r} switches or checks the solver of a continuous model; "
                             f"{self.model!r} is {spec.kind}: use recipe 'fixed'")
        if self.recipe != "fixed" and self.noise_sigma:
            raise ValueError(f"recipe={self.recipe!r} is for ODE models; noise_sigma={self.noise_sigma!r} makes an "
                             f"SDE: use recipe 'fixed' or noise_sigma 0")
        if self.method is None:
            self.method = "rk4" if self.recipe in ("cycle", "random") else "euler"
            if spec.kind == "baseline" and "method" in _baseline_options(spec.family):
                # a baseline with a solver keeps its class default (ncde: the reference's rk4), not euler
                self.method = _class_default(spec.family, "method")
        if self.recipe in ("cycle", "random"):
            if self.recipe_solvers is None:
                self.recipe_solvers = DEFAULT_RECIPE_SOLVERS
            parse_recipe_solvers(self.recipe_solvers, "recipe_solvers")
        elif self.recipe_solvers is not None:
            raise ValueError(f"recipe_solvers={self.recipe_solvers!r} would be ignored: recipe {self.recipe!r} "
                             f"trains with the model's own solver (recipe_solvers is for cycle and random)")
        if isinstance(self.penalty, bool) or not (isinstance(self.penalty, (int, float)) and self.penalty >= 0
                                                  and math.isfinite(self.penalty)):
            raise ValueError(f"penalty must be a number >= 0 (weight of the local-error term); got {self.penalty!r}")
        if self.recipe == "penalty":
            if not self.penalty > 0:
                raise ValueError(f"recipe 'penalty' needs penalty > 0 (the weight of the local-error term); got "
                                 f"{self.penalty!r}")
            # an unknown method is left to the solve specification's check (_check_applies)
            if self.method in solvers.METHODS and solvers.METHODS[self.method].kind != "fixed":
                raise ValueError(f"recipe 'penalty' estimates the local error of the training step: it needs a "
                                 f"fixed-step method; got {self.method!r}")
            if self.drop or self.drop_channels or (self.interpolation not in (None, "hold")):
                raise ValueError(f"recipe 'penalty' reads held, fully observed inputs; got drop={self.drop!r}, "
                                 f"drop_channels={self.drop_channels!r}, "
                                 f"interpolation={self.interpolation!r} (use drop 0 and interpolation 'hold')")
        elif self.penalty:
            raise ValueError(f"penalty={self.penalty!r} would be ignored: recipe is {self.recipe!r}; set "
                             f"recipe 'penalty'")

    def _check_applies(self, spec) -> None:
        """Refuse settings the model would ignore (the run would be labelled with them)."""
        given = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                 if f.name in _MODEL_OPTIONS and getattr(self, f.name) not in (f.default, _kind_default(f.name, spec))}
        if spec.kind == "torch":
            ignored = sorted(given)
            why = f"{self.model!r} is a torch.nn baseline: it steps once per sample and has no solver"
        elif spec.kind == "baseline":
            takes = _baseline_options(spec.family)
            ignored = sorted(k for k in given if k != "eps" and k not in takes)
            why = f"the baseline {self.model!r} takes {', '.join(sorted(takes)) or 'no solver settings'} (and eps)"
            _baseline_solve(spec.family, {k: getattr(self, k) for k in takes if getattr(self, k) is not None})
        elif spec.kind == "discrete":
            ignored = sorted(k for k in given if k in ("step_size", "rtol", "atol", "gradient", "interpolation"))
            why = f"{self.model!r} is a discrete cell: one step of eps per sample, no solver"
            check_cell_method(self.method)
        else:
            # the one check of the solver settings (against solvers' method and gradient registries),
            # before any data is loaded: the specification the model will hold
            solve = solvers.SolveSpec(method=self.method, step_size=self.step_size, rtol=self.rtol, atol=self.atol,
                                      gradient=self.gradient)
            fixed = not solve.adaptive
            ignored = sorted(k for k in given if (k in ("rtol", "atol") and fixed)
                             or (k == "step_size" and not fixed))
            why = (f"method {self.method!r} is {'a fixed-step' if fixed else 'an adaptive'} solver "
                   f"({'rtol/atol apply to adaptive ones' if fixed else 'step_size applies to fixed-step ones'})")
        family_options = {"beta": ("lipschitz",), "gamma": ("lipschitz", "antisymmetric", "antisymmetric-gated"),
                          "stable_margin": ("lipschitz",), "init_std": ("lipschitz",)}
        if spec.kind != "torch":
            ignored += sorted(k for k in given if k in family_options and spec.family not in family_options[k])
            if any(k in family_options for k in ignored):
                why += f"; beta, stable_margin and init_std are Lipschitz settings, gamma a Lipschitz/Antisymmetric one ({spec.family!r} has " \
                       f"neither or not this one)"
        if ignored:
            shown = ", ".join(f"{k}={given[k]!r}" for k in ignored)
            raise ValueError(f"{shown} would be ignored: {why}; leave {'it' if len(ignored) == 1 else 'them'} "
                             f"at the default")

    # ------------------------------------------------------------------ resume
    def continued(self, stored: TrainConfig) -> TrainConfig:
        """The config of a resumed run: ``stored`` (the run's config.json) with this invocation's
        run controls and, if set, its ``epochs`` (extending or shortening the run).

        Any other setting that differs from both its default and the stored value is an error:
        a resumed run keeps its configuration (change it by starting a new run).
        """
        defaults = {f.name: (f.default_factory() if f.default is dataclasses.MISSING else f.default)
                    for f in dataclasses.fields(self)}
        changed = [f"{k}={getattr(self, k)!r} (stored {getattr(stored, k)!r})" for k in defaults
                   if k not in RUN_CONTROLS and k != "epochs"
                   and getattr(self, k) != defaults[k] and getattr(self, k) != getattr(stored, k)]
        if changed:
            raise ValueError(f"a resumed run keeps its stored configuration; cannot change {', '.join(changed)}; "
                             f"only epochs and the run controls ({', '.join(RUN_CONTROLS)}) may change: start a "
                             f"new run for other settings")
        c = dataclasses.replace(stored, **{k: getattr(self, k) for k in RUN_CONTROLS})
        if self.epochs is not None and self.epochs != stored.epochs:
            # the learning-rate schedule stays the one the run was planned with
            c.schedule_epochs = stored.schedule_epochs or stored.epochs
            c.epochs = self.epochs
        return c

    # ------------------------------------------------------------------ storage
    def stored(self) -> dict:
        """The dict written as config.json: the run's settings, with the run controls of this
        invocation reset (a stored config describes the run, not how it was last started)."""
        d = self.to_dict()
        d.update(resume=False, fresh=False, stop_after=None, memory_limit=None)
        return d

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; expected some of {sorted(known)}")
        if "recipe" not in d:
            # written before recipes existed: those runs trained with their own solver only
            d = dict(d, recipe="fixed")
        if "weight_penalty" not in d:
            # written before issue 19: no weight penalty; an ncde then had one hidden layer as wide as its state
            d = dict(d, weight_penalty=0.0)
            if d.get("model") == "ncde":
                d.update(field_width=d.get("hidden_size", 64), field_depth=1)
        return cls(**d)


_MODEL_OPTIONS = ("method", "eps", "step_size", "rtol", "atol", "gradient", "interpolation", "beta", "gamma",
                  "stable_margin", "init_std")
"""Settings of the integration and the field, which only some models read (see ``_check_applies``)."""


def _baseline_options(name: str) -> set[str]:
    """The settings of ``_MODEL_OPTIONS`` that the irregular-series baseline ``name`` takes (its
    class's keyword arguments; ``zoo.build_model`` passes it only those)."""
    import inspect

    from ..baselines import BASELINES

    return set(inspect.signature(BASELINES[name][0]).parameters) & set(_MODEL_OPTIONS)


def _baseline_solve(name: str, settings: dict[str, Any]) -> None:
    """Check the solver ``settings`` of the baseline ``name`` as the model will (its class's
    ``SOLVE``, the type of its ``spec``), before any data is loaded; nothing for baselines without one."""
    from ..baselines import BASELINES

    make = getattr(BASELINES[name][0], "SOLVE", None)
    if make is not None:
        make(**{k: v for k, v in settings.items() if k in ("method", "step_size", "rtol", "atol", "gradient")})


def _kind_default(name: str, spec) -> Any:
    """What a model of ``spec`` uses when the setting ``name`` is left at None/its default: the
    interpolation is "hold" for the fields (a discrete RNN's input) and the class default of a
    baseline that takes one; the method "euler" (what models without a solver are labelled with);
    None where it does not apply."""
    if name == "method":
        return "euler"
    if name != "interpolation":
        return None
    if spec.kind in ("continuous", "discrete"):
        return "hold"
    if spec.kind == "baseline" and "interpolation" in _baseline_options(spec.family):
        import inspect

        from ..baselines import BASELINES

        return inspect.signature(BASELINES[spec.family][0]).parameters["interpolation"].default
    return None


def _class_default(name: str, argument: str) -> Any:
    """The default of ``argument`` in the class of the irregular-series baseline ``name``."""
    from ..baselines import BASELINES

    return inspect.signature(BASELINES[name][0]).parameters[argument].default
