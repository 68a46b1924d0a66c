"""What happens around the training loop, as small objects a script can include or leave out.

A :class:`Callback` has four hooks, each a no-op unless overridden::

    on_start(run)             after the run is set up (resumed runs: after the checkpoint is loaded)
    on_batch(run, info)       after each optimiser step; ``info``: epoch, batch, batches, loss, accuracy, nfe,
                              spec (the solvers.SolveSpec the batch trained with; None without a solver)
    on_epoch(run, row)        after each epoch's evaluation; ``row`` is its metrics row
    on_end(run, error)        when the run ends: ``error`` is None, or the exception that ends it

``run`` is the :class:`~neuralode_rnn.training.state.RunState`.  The loop calls callbacks in
list order; an exception raised by one stops the run as a crash would (``on_end`` is still
called).  A plain function ``f(epoch, row)`` is accepted as an ``on_epoch`` callback.

The standard set, :func:`default_callbacks`: :class:`Checkpoints`, :class:`Metrics`,
:class:`Curves`, :class:`Status` (files of the run directory, main process only), then
:class:`Progress` and :class:`EpochLog` (output, unless quiet).  ``train(config)`` uses them;
``train(config, callbacks=default_callbacks(config, curves=False))`` leaves the picture out.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .state import RunState

__all__ = ["Callback", "Checkpoints", "Curves", "EpochLog", "EpochFunction", "Metrics", "Progress", "Status",
           "as_callbacks", "default_callbacks"]


class Callback:
    """Hooks of the training loop (see the module docstring); override the ones you need."""

    def on_start(self, run: RunState) -> None:
        pass

    def on_batch(self, run: RunState, info: dict[str, Any]) -> None:
        pass

    def on_epoch(self, run: RunState, row: dict) -> None:
        pass

    def on_end(self, run: RunState, error: BaseException | None) -> None:
        pass


class EpochFunction(Callback):
    """A plain function ``f(epoch, row)`` called after each epoch."""

    def __init__(self, function: Callable[[int, dict], None]):
        self.function = function

    def on_epoch(self, run: RunState, row: dict) -> None:
        self.function(row["epoch"], row)


# ------------------------------------------------------------------------------- run directory files
class Checkpoints(Callback):
    """last.pt (the previous one kept as previous.pt) after every epoch, and best.pt when the
    validation metric improves; each verified after writing (``RunDir.save_checkpoint``).

    best.pt is written only for a run with a validation split (``config.validation > 0``): without
    one the per-epoch metric is measured on the test split, and keeping its best epoch would be
    model selection on the test set (see ``rundir``)."""

    def on_epoch(self, run: RunState, row: dict) -> None:
        if run.writes:
            run.run_dir.save_checkpoint(run.checkpoint(), best=run.improved and run.config.validation > 0)


class Metrics(Callback):
    """metrics.csv rewritten from all rows after every epoch; summary.json when a run with a
    validation split ends (``RunState.summary``)."""

    def on_epoch(self, run: RunState, row: dict) -> None:
        if run.writes:
            run.run_dir.write_metrics(run.rows)

    def on_end(self, run: RunState, error: BaseException | None) -> None:
        if run.writes and error is None and run.summary is not None:
            run.run_dir.write_summary(run.summary)


class Curves(Callback):
    """curves.png (loss and accuracy against epoch, titled with the run): after the first epoch,
    then at most every ``every`` seconds, and when the run ends (however it ends), so the file
    always holds every finished epoch at the end.  Why not after every epoch: drawing takes about
    0.5 s, as long as an epoch of the main job, which it doubled.  A failure to draw is reported
    and never stops the run."""

    def __init__(self, every: float = 15.0):
        self.every = every
        self.drawn_at: float | None = None  # time.monotonic() of the last drawing
        self.drawn_rows = 0

    def on_epoch(self, run: RunState, row: dict) -> None:
        if self.drawn_at is None or time.monotonic() - self.drawn_at >= self.every:
            self._draw(run)

    def on_end(self, run: RunState, error: BaseException | None) -> None:
        if self.drawn_rows != len(run.rows):
            self._draw(run)

    def _draw(self, run: RunState) -> None:
        if not run.writes or not run.rows:
            return
        from ..plots import curves_png

        try:
            run.run_dir.write_plot(curves_png(run.rows, title=run.config.label))
        except Exception as exc:  # noqa: BLE001 - a plot must never kill a training run
            print(f"warning: could not draw {run.run_dir.plot_path}: {exc}", file=sys.stderr)
        self.drawn_at, self.drawn_rows = time.monotonic(), len(run.rows)


class Status(Callback):
    """status.txt: what the run is doing, then how it ended, naming the run."""

    def _write(self, run: RunState, text: str) -> None:
        if run.writes:
            run.run_dir.write_status(f"{text}: {run.config.label}")

    def on_start(self, run: RunState) -> None:
        self._write(run, f"running (epoch {run.epoch + 1} of {run.config.epochs})")

    def on_epoch(self, run: RunState, row: dict) -> None:
        if run.epoch < run.config.epochs:
            self._write(run, f"running (epoch {run.epoch + 1} of {run.config.epochs})")

    def on_end(self, run: RunState, error: BaseException | None) -> None:
        if error is None:
            self._write(run, run.status)
        else:
            message = str(error) or type(error).__name__
            self._write(run, f"failed at epoch {run.epoch + 1} ({type(error).__name__}: {message})")


# ------------------------------------------------------------------------------- output
def _tag(run: RunState) -> str:
    return f"{run.config.model} on {run.config.task}"


class EpochLog(Callback):
    """One line per epoch on stdout, a first line saying what runs and a last one saying how it ended."""

    def __init__(self, stream=None):
        self.stream = stream

    def _print(self, run: RunState, text: str) -> None:
        if run.env.is_main:
            print(text, file=self.stream or sys.stdout, flush=True)

    def on_start(self, run: RunState) -> None:
        c = run.config
        where = f", run directory {run.run_dir.path}" if run.run_dir is not None else ""
        if run.epoch:
            what = f"resuming {c.label} after epoch {run.epoch} of {c.epochs}"
        else:
            what = f"training {c.label} for {c.epochs} epochs"
        self._print(run, f"{what}: {run.parameters} parameters on {run.env.device}{where}")

    def on_end(self, run: RunState, error: BaseException | None) -> None:
        s = run.summary
        if error is not None or s is None:
            return
        metric = (lambda k: f"accuracy {s[k + '_accuracy']:.4f}") if s["validation_accuracy"] is not None else \
            (lambda k: f"loss {s[k + '_loss']:.4g}")
        test = metric("test") if s["test_loss"] is not None else "no test split"
        self._print(run, f"best validation epoch {s['best_epoch']} of {s['epochs_run']} run "
                         f"({'early stopping fired' if s['early_stopped'] else 'no early stopping'}); its weights "
                         f"restored: validation {metric('validation')}, test {test}")

    def on_epoch(self, run: RunState, row: dict) -> None:
        acc = "" if row["test_accuracy"] is None else f" {row['evaluated_on']}_acc {row['test_accuracy']:.4f}"
        self._print(run, f"epoch {row['epoch']}/{run.config.epochs} ({_tag(run)}) train_loss {row['train_loss']:.4f} "
                         f"{row['evaluated_on']}_loss {row['test_loss']:.4f}{acc} nfe {row['nfe']:.0f} "
                         f"{row['epoch_seconds']:.1f}s")


class Progress(Callback):
    """Progress on stderr: a tqdm bar on a terminal; otherwise (logs, pipes) a plain line at most
    every ``interval`` seconds.  A heartbeat (``neuralode_rnn.progress.Heartbeat``) covers what has
    no batches to count (the evaluation after each epoch, a very long batch), so a run never goes
    silent for longer than ``interval``."""

    def __init__(self, interval: float = 30.0, stream=None):
        if not interval > 0:
            raise ValueError(f"interval must be a positive number of seconds; got {interval!r}")
        self.interval = interval
        self.stream = stream
        self.bar = None
        self.beat = None
        self.last = time.monotonic()

    def _stream(self):
        return self.stream or sys.stderr

    def on_start(self, run: RunState) -> None:
        if run.env.is_main:
            from ..progress import Heartbeat

            self.beat = Heartbeat(f"train {_tag(run)}", self.interval, self.stream).__enter__()
            self.beat.update(f"in epoch {run.epoch + 1}/{run.config.epochs}")
        self.last = time.monotonic()

    def on_batch(self, run: RunState, info: dict[str, Any]) -> None:
        if not run.env.is_main:
            return
        where = f"epoch {info['epoch']}/{run.config.epochs}"
        if self.beat is not None:
            # batches are progress: the heartbeat speaks only when none comes (the evaluation, a long batch)
            self.beat.touch()
            done = info["batch"] == info["batches"]
            self.beat.update(f"evaluating {where}" if done else f"in {where}, batch {info['batch'] + 1}/{info['batches']}")
        post = {"loss": f"{info['loss']:.4f}", "nfe": info["nfe"]}
        if info["accuracy"] is not None:
            post["acc"] = f"{info['accuracy']:.3f}"
        if self._stream().isatty():
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=info["batches"], desc=where, leave=False, dynamic_ncols=True,
                                file=self._stream())
            self.bar.set_postfix(post)
            self.bar.update()
            if info["batch"] == info["batches"]:
                self._close()
            return
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            text = f"{where}: batch {info['batch']}/{info['batches']}, " + ", ".join(f"{k} {v}" for k, v in post.items())
            if self.beat is not None:
                self.beat.say(text)
            else:
                print(text, file=self._stream(), flush=True)

    def on_epoch(self, run: RunState, row: dict) -> None:
        self._close()
        self.last = time.monotonic()
        if self.beat is not None:
            self.beat.update(f"in epoch {row['epoch'] + 1}/{run.config.epochs}")

    def on_end(self, run: RunState, error: BaseException | None) -> None:
        self._close()
        if self.beat is not None:
            self.beat.__exit__(None, None, None)
            self.beat = None

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def default_callbacks(config, *, checkpoints: bool = True, metrics: bool = True, curves: bool = True,
                      status: bool = True, progress: bool | None = None, log: bool | None = None) -> list[Callback]:
    """The standard callbacks of a run of ``config``, each switchable (``progress`` and ``log``
    default to ``not config.quiet``).  File writers act only when the run has a directory."""
    progress = not config.quiet if progress is None else progress
    log = not config.quiet if log is None else log
    chosen = [(checkpoints, Checkpoints), (metrics, Metrics), (curves, Curves), (status, Status),
              (progress, Progress), (log, EpochLog)]
    return [cls() for on, cls in chosen if on]


def as_callbacks(callbacks: Iterable[Callback | Callable[[int, dict], None]] | None, config) -> Sequence[Callback]:
    """``callbacks`` as Callback objects (None: :func:`default_callbacks`); a function becomes an
    :class:`EpochFunction`."""
    if callbacks is None:
        return default_callbacks(config)
    out = []
    for cb in callbacks:
        if isinstance(cb, Callback):
            out.append(cb)
        elif callable(cb):
            out.append(EpochFunction(cb))
        else:
            raise TypeError(f"a callback must be a Callback or a function f(epoch, row); got {type(cb).__name__}")
    return out
