"""Presets: per task and model family, the settings that train well, as data (issue 17, item 5).

``neuralode-rnn train --task digits --model lipschitz`` with no other flag trains with the preset
of (digits, lipschitz); ``TrainConfig.resolved`` fills every preset setting the caller left at
None from it, an explicit flag or argument always wins, and the run's ``config.json`` records in
``sources`` where each value came from ("flag", "preset:<source>" or "default").
``neuralode-rnn list presets`` prints this table.

Where the entries come from.  Every entry names the documented run it copies:

* docs/RESULTS.md (``scripts/results.py``; rows of docs/results/selection.csv and results.csv): N =
  64, Adam lr 0.003, lr x 0.1 after 90% of the epochs, epochs and batch per task (digits 50/64,
  MNIST-1D 40/128, Japanese vowels 50/32).  For the families with a time scale, eps *and* the
  one-step scheme were chosen on a validation split (80/20 of the training set, seed 0; the test
  split never read): the rule of that page, best final validation accuracy, ties broken by the
  lower validation loss, applied over the family's documented variants (Lipschitz: Euler and
  midpoint x eps in {0.03, 0.1, 0.3, 1}; Antisymmetric: eps).  The continuous model of a family
  takes the same scheme with the ``fixed`` recipe, one solver step per sample gap: exactly the
  discrete cell those rows trained (the identity tested in tests/test_models.py).
* ``vowels`` and ``uea:JapaneseVowels`` are the same data (``data.vowels``): one entry serves both.
* ``ncde`` on every task: the reference Neural CDE's training (patrick-kidger/NeuralCDE, cited line by
  line at ``FAMILY_DEFAULTS["ncde"]``), protocol included: a validation split, early stopping, the
  plateau schedule, the epochs as their cap.  Its model settings are ``baselines.NeuralCDE``'s defaults.

A task without an entry gets the family's default (``FAMILY_DEFAULTS``: solver settings only;
epochs and batch size then come from ``training.TASK_DEFAULTS``).  Presets are keyed by the task,
its permutation and its drop rate (``preset_key``): a drop rate other than the documented ones
(MNIST-1D 0.3, 0.5, 0.7) falls back to the family default, not to the fully observed task's entry.

The Lipschitz field's initial scale (``init_std``; M_A, M_W ~ N(0, (init_std / N)^2)).  Every
preset uses ``init_std = 1``, the field's default: it is the value every documented run trained
with, and the class default of the reference code (``rnn_models(init_std=1)`` in
erichson/LipschitzRNN's models.py).  The reference *drivers* pass larger values (driver.py
default 6, driver_MNIST.py 12, the README's MNIST commands 32) with SGD at lr 0.01-0.1 on 784-step
MNIST; no documented run of this library tried them on these tasks, so no preset adopts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FAMILY_DEFAULTS", "PRESETS", "PRESET_KEYS", "Preset", "find_preset", "preset_key"]

PRESET_KEYS = ("hidden_size", "method", "eps", "init_std", "recipe", "lr", "epochs", "batch_size",
               "validation", "patience", "schedule", "plateau_patience", "validate_every", "stop_on")
"""The ``TrainConfig`` settings a preset may fill (each only when the caller left it None)."""

PROTOCOL_KEYS = ("patience", "schedule", "plateau_patience", "validate_every", "stop_on")
"""Preset settings that choose on a validation split (issue 19's protocol): filled only with the
preset's own validation split, so a caller who sets ``validation`` (0 or a share) sets the protocol
(these keys then keep ``TrainConfig``'s plain defaults unless given)."""

SOLVER_KEYS = ("method", "eps", "init_std", "recipe")
"""Preset settings of the fields' integration: applied only to models that have them (a
continuous model or a discrete cell; ``recipe`` to continuous models only)."""


@dataclass(frozen=True)
class Preset:
    """Settings of one (task, family), a subset of ``PRESET_KEYS``, and the documented run they copy.

    ``source`` is short ("RESULTS.md digits/lipschitz-euler eps 1") and goes into ``config.json``
    as ``preset:<source>``; ``reference`` is the documented test accuracy (%) of that
    configuration, mean over its seeds, or None for a family default.
    """

    settings: Mapping[str, Any]
    source: str
    reference: float | None = None

    def __post_init__(self):
        unknown = sorted(set(self.settings) - set(PRESET_KEYS))
        if unknown:
            raise ValueError(f"preset settings {unknown} are not preset keys; expected some of {PRESET_KEYS}")


# task key -> (epochs, batch): the documented budget of each task (docs/RESULTS.md, "Epochs per task")
_TASKS = {
    "digits": (50, 64),
    "digits-permuted": (50, 64),
    "mnist1d": (40, 128),
    "vowels": (50, 32),
    "mnist1d-drop30": (40, 128),
    "mnist1d-drop50": (40, 128),
    "mnist1d-drop70": (40, 128),
}

# (task key, family) -> (method, eps, documented test accuracy % mean of 3 seeds): the validation
# choice over docs/results/selection.csv (see the module docstring; the row named in the source)
_SELECTED = {
    ("digits", "lipschitz"): ("euler", 1.0, 94.1),
    ("digits-permuted", "lipschitz"): ("midpoint", 1.0, 90.6),
    ("mnist1d", "lipschitz"): ("midpoint", 1.0, 87.9),
    ("vowels", "lipschitz"): ("euler", 1.0, 95.5),
    ("mnist1d-drop30", "lipschitz"): ("midpoint", 0.3, 53.8),
    ("mnist1d-drop50", "lipschitz"): ("euler", 0.1, 39.4),
    ("mnist1d-drop70", "lipschitz"): ("euler", 0.1, 30.1),
    ("digits", "antisymmetric"): ("euler", 0.3, 93.3),
    ("digits-permuted", "antisymmetric"): ("euler", 0.3, 85.7),
    ("mnist1d", "antisymmetric"): ("euler", 0.1, 53.1),
    ("vowels", "antisymmetric"): ("euler", 0.1, 97.5),
    ("mnist1d-drop30", "antisymmetric"): ("euler", 0.1, 40.5),
    ("mnist1d-drop50", "antisymmetric"): ("euler", 0.03, 35.0),
    ("mnist1d-drop70", "antisymmetric"): ("euler", 0.03, 25.5),
    ("digits", "antisymmetric-gated"): ("euler", 0.3, 91.4),
    ("digits-permuted", "antisymmetric-gated"): ("euler", 0.3, 85.7),
    ("mnist1d", "antisymmetric-gated"): ("euler", 0.3, 69.4),
    ("vowels", "antisymmetric-gated"): ("euler", 0.1, 97.8),
    ("mnist1d-drop30", "antisymmetric-gated"): ("euler", 0.1, 51.6),
    ("mnist1d-drop50", "antisymmetric-gated"): ("euler", 0.1, 42.9),
    ("mnist1d-drop70", "antisymmetric-gated"): ("euler", 0.03, 29.6),
}

# (task key, family) -> documented test accuracy % (mean of 3 seeds) of the torch baselines, which
# have no time scale to choose: the one configuration of docs/RESULTS.md
_BASELINES = {
    ("digits", "lstm"): 90.0, ("digits-permuted", "lstm"): 87.5, ("mnist1d", "lstm"): 90.7,
    ("vowels", "lstm"): 96.2, ("mnist1d-drop30", "lstm"): 67.2, ("mnist1d-drop50", "lstm"): 50.2,
    ("mnist1d-drop70", "lstm"): 31.7,
    ("digits", "gru"): 86.6, ("digits-permuted", "gru"): 85.9, ("mnist1d", "gru"): 95.8,
    ("vowels", "gru"): 96.9, ("mnist1d-drop30", "gru"): 72.9, ("mnist1d-drop50", "gru"): 54.6,
    ("mnist1d-drop70", "gru"): 32.9,
}

_RESULTS_MODEL = {"lipschitz": "lipschitz-{method}", "antisymmetric": "antisymmetric",
                  "antisymmetric-gated": "antisymmetric-gated"}


def _build() -> dict[tuple[str, str], Preset]:
    table: dict[tuple[str, str], Preset] = {}
    for (task, family), (method, eps, acc) in _SELECTED.items():
        epochs, batch = _TASKS[task]
        row = _RESULTS_MODEL[family].format(method=method)
        settings = {"hidden_size": 64, "method": method, "eps": eps, "recipe": "fixed", "lr": 0.003,
                    "epochs": epochs, "batch_size": batch}
        if family == "lipschitz":
            settings["init_std"] = 1.0
        table[task, family] = Preset(settings, f"RESULTS.md {task}/{row} eps {eps:g}", acc)
    for (task, family), acc in _BASELINES.items():
        epochs, batch = _TASKS[task]
        table[task, family] = Preset({"hidden_size": 64, "lr": 0.003, "epochs": epochs, "batch_size": batch},
                                     f"RESULTS.md {task}/{family}", acc)
    return table


PRESETS: dict[tuple[str, str], Preset] = _build()
"""(task key, family) -> :class:`Preset`; the task keys are those of :func:`preset_key`."""

FAMILY_DEFAULTS: dict[str, Preset] = {
    # eps: the median of the eps chosen on validation over the documented tasks (RESULTS.md's 7
    # selections and IRREGULAR.md's JapaneseVowels/BasicMotions ones); midpoint: where Euler and
    # midpoint were chosen on different tasks, midpoint lost at most 1.5 points and won 19 (MNIST-1D)
    "lipschitz": Preset({"hidden_size": 64, "method": "midpoint", "eps": 0.3, "init_std": 1.0, "recipe": "fixed",
                         "lr": 0.003}, "family default lipschitz (median selected eps, RESULTS.md/IRREGULAR.md)"),
    "antisymmetric": Preset({"hidden_size": 64, "method": "euler", "eps": 0.1, "recipe": "fixed", "lr": 0.003},
                            "family default antisymmetric (median selected eps, RESULTS.md/IRREGULAR.md)"),
    "antisymmetric-gated": Preset({"hidden_size": 64, "method": "euler", "eps": 0.1, "recipe": "fixed", "lr": 0.003},
                                  "family default antisymmetric-gated (median selected eps, RESULTS.md/IRREGULAR.md)"),
    # the papers' cells: one Euler step of size 1 per sample, as every documented run of these families
    "unitary": Preset({"hidden_size": 64, "method": "euler", "eps": 1.0, "recipe": "fixed", "lr": 0.003},
                      "family default unitary (the uRNN cell, RESULTS.md)"),
    "ctrnn": Preset({"hidden_size": 64, "method": "euler", "eps": 1.0, "recipe": "fixed", "lr": 0.003},
                    "family default ctrnn (the Elman cell, RESULTS.md)"),
    "lstm": Preset({"hidden_size": 64, "lr": 0.003}, "family default lstm (RESULTS.md)"),
    "gru": Preset({"hidden_size": 64, "lr": 0.003}, "family default gru (RESULTS.md)"),
    # the reference Neural CDE's UEA runs (patrick-kidger/NeuralCDE): experiments/uea.py:11-12 (batch 32;
    # lr 0.001 there, 0.003 here: chosen on validation, docs/PRESETS.md "The Neural CDE's learning rate"), :6 (at most 1000 epochs), :48 (32 hidden channels); experiments/datasets/common.py:26-40
    # (70/15/15 train/validation/test: validation is 15/85 of what is not test); experiments/common.py:
    # 120-126, 145 (the validation metric read after epochs 0, 10, 20, ... and the last: validate_every
    # 10; ReduceLROnPlateau(patience=1, mode='max') on that accuracy: plateau_patience 1 reading),
    # :150-156, 174-181 (stop at a reading more than 50 epochs after the last lower training loss or higher
    # training accuracy: stop_on "training", training.stopping), :159-162/183-184 (the first best validation
    # weights kept).  The field (3 x 32), spline, solver and penalty are the class's defaults.
    "ncde": Preset({"hidden_size": 32, "lr": 0.003, "epochs": 1000, "batch_size": 32, "validation": 15 / 85,
                    "patience": 50, "schedule": "plateau", "plateau_patience": 1, "validate_every": 10,
                    "stop_on": "training"},
                   "reference ncde (patrick-kidger/NeuralCDE experiments/uea.py, common.py; lr on validation)"),
}
"""family -> the preset of a task without an entry (no epochs or batch size: the task's defaults)."""

_ALIASES = {"uea:JapaneseVowels": "vowels"}  # the same data (data/vowels.py)
_DROPS = {0.3: "drop30", 0.5: "drop50", 0.7: "drop70"}


def preset_key(task: str, task_options: Mapping[str, Any] | None = None, drop: float = 0.0) -> str:
    """The key of ``task`` in ``PRESETS``: its name (``uea:JapaneseVowels`` -> ``vowels``), then
    ``-permuted`` when ``task_options["permute"]``, then ``-drop30`` etc. for a drop rate."""
    key = _ALIASES.get(task, task)
    if (task_options or {}).get("permute"):
        key += "-permuted"
    if drop:
        key += "-" + _DROPS.get(round(float(drop), 6), f"drop{100 * float(drop):g}")
    return key


def find_preset(task: str, family: str, task_options: Mapping[str, Any] | None = None,
                drop: float = 0.0) -> Preset | None:
    """The preset of ``family`` on ``task`` (with its options and drop rate), else the family
    default, else None (a family without presets, e.g. the irregular-series baselines)."""
    return PRESETS.get((preset_key(task, task_options, drop), family), FAMILY_DEFAULTS.get(family))


def fill(values: dict[str, Any], *, task: str, family: str, kind: str, task_options: Mapping[str, Any] | None = None,
         drop: float = 0.0) -> dict[str, str]:
    """Fill the preset keys of ``values`` that are None from the preset of (task, family), in place,
    and return where each preset key's value came from: "flag" (given), "preset:<source>" or
    "default" (neither: the code's default fills it later).

    ``kind`` is the model's kind (``zoo.ModelSpec.kind``): the solver settings (``SOLVER_KEYS``)
    go only to continuous models and discrete cells, ``recipe`` only to continuous models.  When
    the caller chose a recipe other than the preset's, the preset's method is not used (the pair
    was documented together).
    """
    preset = find_preset(task, family, task_options, drop)
    sources = {}
    # the validation split, then what chooses on it, then the rest (a preset's epochs under early stopping
    # are a cap: without its patience they are not used)
    keys = sorted(PRESET_KEYS, key=lambda k: (k != "validation", k not in PROTOCOL_KEYS))
    for key in keys:
        if values.get(key) is not None:
            sources[key] = "flag"
            continue
        sources[key] = "default"
        if preset is None or key not in preset.settings:
            continue
        if key in SOLVER_KEYS and kind not in ("continuous", "discrete"):
            continue
        if key == "recipe" and kind != "continuous":
            continue
        if key == "method" and values.get("recipe") not in (None, preset.settings.get("recipe")):
            continue
        if key in PROTOCOL_KEYS and not sources["validation"].startswith("preset:"):
            continue  # the preset's protocol comes with its own validation split, or not at all
        if key == "plateau_patience" and values.get("schedule") != "plateau":
            continue  # the caller chose another schedule
        if key == "epochs" and "patience" in preset.settings and values.get("patience") is None:
            continue  # a cap for early stopping, which this run does not have
        values[key] = preset.settings[key]
        sources[key] = "preset:" + preset.source
    return sources
