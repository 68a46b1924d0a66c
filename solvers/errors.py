"""The errors a solve can end with, each saying what happened and what to change."""

from __future__ import annotations

__all__ = ["NonFiniteStateError", "SolverError", "StepLimitError", "StepSizeUnderflowError", "TimeLimitError"]


class SolverError(RuntimeError):
    """Base of the errors raised by a solve that started with valid arguments."""


class StepLimitError(SolverError):
    """The solve needed more than ``max_steps`` steps (attempted steps, rejected ones included)."""


class TimeLimitError(SolverError):
    """The adaptive solve ran longer than its ``max_time`` seconds (``options={"max_time": ...}``)."""


class StepSizeUnderflowError(SolverError):
    """The adaptive step became too small to advance time (t + dt == t)."""


class NonFiniteStateError(SolverError, FloatingPointError):
    """The state or its derivative became NaN or infinite and no smaller step recovers it."""
