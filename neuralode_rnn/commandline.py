"""What every ``neuralode-rnn`` command shares: errors as one line and the exit status.

A command is a callable ``run(args) -> exit code``; :func:`run_command` runs it and turns the
errors a user can cause or meet into one line, ``PROG COMMAND: error: ...``, with the exit status
:data:`BAD_INPUT` (2: flags, settings, files that are not what they should be) or :data:`FAILED`
(1: a run that could not go on: a busy run directory, no usable checkpoint, a diverged loss, a
solver at its limits, memory).  Both the package CLI (:mod:`neuralode_rnn.cli`) and
``python -m neuralode_rnn.analysis`` (:mod:`neuralode_rnn.analysis.commands`) import it, so the
analysis commands need nothing from the CLI module (which imports them to register them).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable

__all__ = ["BAD_INPUT", "FAILED", "run_command"]

BAD_INPUT = 2
"""Exit status of a command refused for its input (argparse's own status for a bad flag)."""
FAILED = 1
"""Exit status of a run that could not go on."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _is_solver_error(exc: BaseException) -> bool:
    """An error the integrators raise on purpose (step limit, step underflow, grid too large, ...)."""
    return isinstance(exc, RuntimeError) and type(exc).__module__.split(".")[0] in ("solvers", "torchdiffeq")


def run_command(parser: argparse.ArgumentParser, args: argparse.Namespace,
                run: Callable[[argparse.Namespace], int]) -> int:
    """``run(args)`` with errors as one line on stderr and an exit status (see the module docstring):
    bad input (ValueError, TypeError, missing or existing files) exits with 2; a run that cannot go
    on (busy run directory, no usable checkpoint, a diverged loss, a solver at its limits, memory)
    with 1.  Anything else is a bug and keeps its traceback. Set NEURALODE_RNN_TRACEBACK=1 to see
    the traceback of every error."""
    from .training import CheckpointError, NonFiniteLossError, RunDirBusyError

    prog = f"{parser.prog} {args.command}"
    if os.environ.get("NEURALODE_RNN_TRACEBACK"):
        return int(run(args) or 0)
    with warnings.catch_warnings():
        # a warning (e.g. a damaged last.pt, previous.pt used) is one line too
        warnings.showwarning = lambda message, category, *rest, **kw: print(
            f"{prog}: warning: {message}", file=sys.stderr)
        try:
            return int(run(args) or 0)
        except (ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError) as exc:
            parser.exit(BAD_INPUT, f"{prog}: error: {_one_line(exc)}\n")
        except (RunDirBusyError, CheckpointError, NonFiniteLossError, MemoryError) as exc:
            parser.exit(FAILED, f"{prog}: error: {_one_line(exc)}\n")
        except RuntimeError as exc:
            if not _is_solver_error(exc):
                raise
            parser.exit(FAILED, f"{prog}: error: {_one_line(exc)}\n")
