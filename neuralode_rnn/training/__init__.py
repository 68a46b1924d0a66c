"""Training: configuration, the loop, its callbacks and run directories, one concept per module.

=================  =====================================================================================
``config``         :class:`TrainConfig`: what a run is, its defaults and checks; ``TASK_DEFAULTS``
``optimizers``     optimiser and schedule registries (``--optimizer``, ``--schedule``), the Cayley step
``objective``      where a batch meets a model and becomes a loss (:func:`batch_loss`, :func:`model_times`)
``evaluation``     :func:`evaluate`: loss, accuracy and NFE of a model on a split
``rundir``         :class:`RunDir`: files, writer lock, verified checkpoints (last, previous, best if validated)
``state``          :class:`RunState`: the run as the loop and callbacks see it; the checkpoint format
``budget``         what a run costs before it allocates: solver steps per solve, peak memory (refusals)
``runs``           :func:`build_run`, :func:`load_run`, :func:`start_run` (resume, lock, checks)
``callbacks``      :class:`Callback` and the standard ones: checkpoints, metrics, curves, status, progress
``loop``           :func:`train`: the epochs, the NaN guard
=================  =====================================================================================

>>> from neuralode_rnn.training import TrainConfig, train, default_callbacks
>>> cfg = TrainConfig(task="digits", model="gru", epochs=2, run_dir="runs/gru")
>>> result = train(cfg, callbacks=default_callbacks(cfg, curves=False))   # doctest: +SKIP
"""

from .callbacks import (
    Callback,
    Checkpoints,
    Curves,
    EpochFunction,
    EpochLog,
    Metrics,
    Progress,
    Status,
    default_callbacks,
)
from .config import RUN_CONTROLS, TASK_DEFAULTS, TrainConfig, task_defaults
from .evaluation import evaluate
from .loop import NonFiniteLossError, TrainResult, train
from .objective import PerStepReadout, batch_loss, model_times, network, objective
from .optimizers import OPTIMIZERS, SCHEDULES, make_optimizer, make_schedule, register_optimizer
from .rundir import CheckpointError, RunDir, RunDirBusyError, fresh_run_dir
from .runs import (
    build_model_for,
    build_run,
    checkpoint_choice,
    load_data,
    load_run,
    open_run,
    start_run,
    validation_split,
)
from .state import RunState

__all__ = [
    "OPTIMIZERS",
    "RUN_CONTROLS",
    "SCHEDULES",
    "TASK_DEFAULTS",
    "Callback",
    "CheckpointError",
    "Checkpoints",
    "Curves",
    "EpochFunction",
    "EpochLog",
    "Metrics",
    "NonFiniteLossError",
    "PerStepReadout",
    "Progress",
    "RunDir",
    "RunDirBusyError",
    "RunState",
    "Status",
    "TrainConfig",
    "TrainResult",
    "batch_loss",
    "build_model_for",
    "build_run",
    "checkpoint_choice",
    "default_callbacks",
    "evaluate",
    "fresh_run_dir",
    "load_data",
    "load_run",
    "make_optimizer",
    "make_schedule",
    "model_times",
    "network",
    "objective",
    "open_run",
    "register_optimizer",
    "start_run",
    "task_defaults",
    "train",
    "validation_split",
]
