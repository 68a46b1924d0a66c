"""The wall clock of an adaptive solve: it never runs silently for long.  :class:`SolveClock` logs
where the solve is (time reached, steps, step size and the likely cause) every ``PROGRESS_SECONDS``
on the ``solvers`` logger, and stops it with :class:`~solvers.errors.TimeLimitError` after
``Controller.max_time`` seconds."""

from __future__ import annotations

import logging
import math
import time

from .errors import TimeLimitError

__all__ = ["PROGRESS_SECONDS", "SolveClock"]

PROGRESS_SECONDS = 20.0
"""Wall-clock seconds between two progress lines of a long adaptive solve (``SolveClock``)."""

logger = logging.getLogger("solvers")


class SolveClock:
    """The wall clock of one adaptive solve: a progress line on the ``solvers`` logger every
    ``PROGRESS_SECONDS`` (shown on stderr even where logging is not configured), and
    ``TimeLimitError`` after ``max_time`` seconds (None: no limit).  :meth:`check` costs one
    ``time.monotonic()`` per attempted step until a deadline passes."""

    def __init__(self, max_time: float | None, t0: float, t_end: float, max_steps: int):
        self.start = time.monotonic()
        self.max_time, self.t0, self.t_end, self.max_steps = max_time, t0, t_end, max_steps
        self._plan(self.start)

    def _plan(self, now: float) -> None:
        self.next_report = now + PROGRESS_SECONDS
        limit = math.inf if self.max_time is None else self.start + self.max_time
        self.deadline = min(self.next_report, limit)

    def check(self, t: float, dt: float, attempts: int, rejected: int) -> None:
        now = time.monotonic()
        if now < self.deadline:
            return
        elapsed = now - self.start
        state = (f"at t = {t:.6g} of [{self.t0:.6g}, {self.t_end:.6g}] after {elapsed:.0f} s, {attempts} steps "
                 f"tried ({rejected} rejected), step size now {dt:.3g}")
        if self.max_time is not None and elapsed >= self.max_time:
            raise TimeLimitError(f"this adaptive solve stopped after max_time = {self.max_time:g} s: {state}. "
                                 f"{self.cause(t, dt, attempts, rejected)}")
        logger.warning("solvers: adaptive solve still running: %s. %s; options={'max_time': seconds} stops it with "
                       "an error", state, self.cause(t, dt, attempts, rejected))
        self._plan(now)

    def cause(self, t: float, dt: float, attempts: int, rejected: int) -> str:
        """The likely reasons for a long solve, from the steps so far, and what to do about each."""
        left = (self.t_end - t) / dt if dt > 0 else math.inf
        causes = []
        if attempts >= 500 and rejected >= 0.1 * attempts:  # (the first steps are often rejected: not a sign)
            causes.append(f"{100 * rejected / attempts:.0f}% of the steps are rejected: the problem is probably stiff "
                          f"(stability, not accuracy, holds an explicit method to small steps); use an implicit "
                          f"method: method='scipy_solver', options={{'solver': 'LSODA'}} (or 'Radau')")
        if left > max(self.max_steps - attempts, 0.1 * self.max_steps):
            causes.append(f"at this step size the rest of the span needs about {left:.3g} more steps, beyond "
                          f"max_steps = {self.max_steps}: integrate over a shorter span or loosen rtol/atol (or lower "
                          f"max_steps to stop sooner)")
        if not causes:
            causes.append(f"about {left:.3g} more steps at this step size: loosen rtol/atol to take larger ones")
        return "; ".join(causes)
