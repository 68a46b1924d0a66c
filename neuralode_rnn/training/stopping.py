"""When a run with ``TrainConfig.stop_on="training"`` stops: the reference's rule (Kidger et al.'s
``experiments/common.py``, ``_train_loop``).

At each reading of the metrics (epochs 1, 1 + n, 1 + 2n, ... with ``validate_every`` n; the
reference's 0, 10, 20, ...) the training split is evaluated with the model in eval mode; the run
stops at a reading more than ``patience`` epochs after the last one that set a new lowest training
loss (lower by a relative 1e-4) or more than ``patience`` epochs after the last one that set a new
highest training accuracy (higher by a relative 1e-3); the reference's ``plateau_terminate`` is 50.
So a model that still fits its training data keeps training however flat its validation accuracy
is (on a validation split of 10-70 samples it is flat from the first epochs), and a run that
stops has stopped learning, not merely stopped generalising better.  The kept weights are still
those of the best validation reading (``loop``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["STOP_ON", "TrainingPlateau"]

STOP_ON = ("validation", "training")
"""What early stopping reads: the validation metric (``patience`` epochs without a better one), or
the training loss and accuracy (:class:`TrainingPlateau`, the reference's rule)."""

LOSS_MARGIN = 1.0001
ACCURACY_MARGIN = 1.001


@dataclass
class TrainingPlateau:
    """The reference's record of the best training loss and accuracy and the epochs that set them.

    ``update(epoch, loss, accuracy)`` at each reading (accuracy None for regression: the loss alone);
    ``stale(epoch, patience)``: the reference's break condition after that reading."""

    loss: float = math.inf
    loss_epoch: int = 0
    accuracy: float = 0.0
    accuracy_epoch: int = 0

    def update(self, epoch: int, loss: float, accuracy: float | None) -> None:
        if loss * LOSS_MARGIN < self.loss:
            self.loss, self.loss_epoch = loss, epoch
        if accuracy is None:
            self.accuracy_epoch = self.loss_epoch
        elif accuracy > self.accuracy * ACCURACY_MARGIN:
            self.accuracy, self.accuracy_epoch = accuracy, epoch

    def stale(self, epoch: int, patience: int) -> str | None:
        """Why the run stops after ``epoch`` (a reading), or None to go on."""
        why = [what for what, last in (("training loss", self.loss_epoch), ("training accuracy", self.accuracy_epoch))
               if epoch > last + patience]
        return " and ".join(why) or None

    def state_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict | None) -> TrainingPlateau:
        return cls(**state) if state else cls()
