"""A heartbeat for long commands: a line on stderr at least every ``interval`` seconds.

Commands that run one long computation (a solve, a Hessian) cannot print between its steps; a
:class:`Heartbeat` prints what the command is doing from a daemon thread whenever nothing else
was reported for ``interval`` seconds, so no command goes silent for a minute:

    with Heartbeat("evaluate runs/x", interval=30) as beat:
        for i, batch in enumerate(batches):
            beat.update(f"batch {i + 1}/{n}")      # what a line would say now; resets the timer
            ...
"""

from __future__ import annotations

import sys
import threading
import time

__all__ = ["Heartbeat"]


class Heartbeat:
    """Prints ``"<name>: <status> (<elapsed> s)"`` to ``stream`` (stderr) whenever ``interval``
    seconds pass without :meth:`update` or :meth:`say`; :meth:`say` prints at once."""

    def __init__(self, name: str, interval: float = 30.0, stream=None):
        if not interval > 0:
            raise ValueError(f"interval must be a positive number of seconds; got {interval!r}")
        self.name = name
        self.interval = float(interval)
        self.stream = stream
        self.status = "working"
        self.start = time.monotonic()
        self._last = self.start
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _print(self, text: str) -> None:
        print(f"{self.name}: {text} ({time.monotonic() - self.start:.0f} s)", file=self.stream or sys.stderr,
              flush=True)

    def update(self, status: str) -> None:
        """Set what the command is doing now (printed at the next beat)."""
        with self._lock:
            self.status = status

    def touch(self) -> None:
        """Restart the interval without printing (progress shown some other way, e.g. a bar)."""
        with self._lock:
            self._last = time.monotonic()

    def say(self, text: str) -> None:
        """Print ``text`` now (a progress line) and restart the interval."""
        with self._lock:
            self._last = time.monotonic()
            self._print(text)

    def _run(self) -> None:
        while not self._stop.wait(min(1.0, self.interval)):
            with self._lock:
                if time.monotonic() - self._last >= self.interval:
                    self._last = time.monotonic()
                    self._print(f"still {self.status}")

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
