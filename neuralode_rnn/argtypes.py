"""Argument types for the command lines: each parses one flag's text or says what it expected.

``argparse`` calls a type with the flag's text; an ``argparse.ArgumentTypeError`` becomes
"argument --x: <message>" and exit status 2.  Every message names the flag, what came and what
was expected, so ``--batch 0`` or ``--step-sizes -0.1`` never reach the code as a bare assert.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable

__all__ = ["at_least", "nonnegative", "numbers", "output_dir", "output_file", "positive", "share", "unit_interval"]


def _number(text: str, kind: type, flag: str, expected: str):
    try:
        v = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{flag} expects {expected}; got {text!r}") from None
    if isinstance(v, float) and not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{flag} expects {expected}; got {text!r}")
    return v


def positive(kind: type, flag: str) -> Callable[[str], float | int]:
    """A number of ``kind`` (int or float) > 0."""
    def parse(text: str):
        v = _number(text, kind, flag, f"a positive {kind.__name__}")
        if not v > 0:
            raise argparse.ArgumentTypeError(f"{flag} expects a positive {kind.__name__}; got {text!r}")
        return v

    return parse


def at_least(minimum: int, flag: str) -> Callable[[str], int]:
    """An int >= ``minimum``."""
    def parse(text: str) -> int:
        v = _number(text, int, flag, f"an int >= {minimum}")
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{flag} expects an int >= {minimum}; got {text!r}")
        return v

    return parse


def nonnegative(flag: str) -> Callable[[str], float]:
    """A float >= 0."""
    def parse(text: str) -> float:
        v = _number(text, float, flag, "a number >= 0")
        if not v >= 0.0:
            raise argparse.ArgumentTypeError(f"{flag} expects a number >= 0; got {text!r}")
        return v

    return parse


def share(flag: str, what: str = "a share") -> Callable[[str], float]:
    """A float in [0, 1)."""
    def parse(text: str) -> float:
        v = _number(text, float, flag, f"{what} in [0, 1)")
        if not 0.0 <= v < 1.0:
            raise argparse.ArgumentTypeError(f"{flag} expects {what} in [0, 1); got {text!r}")
        return v

    return parse


def unit_interval(flag: str) -> Callable[[str], float]:
    """A float in [0, 1]."""
    def parse(text: str) -> float:
        v = _number(text, float, flag, "a number in [0, 1]")
        if not 0.0 <= v <= 1.0:
            raise argparse.ArgumentTypeError(f"{flag} expects a number in [0, 1]; got {text!r}")
        return v

    return parse


def numbers(flag: str, minimum: float = 0.0, strict: bool = True) -> Callable[[str], list[float]]:
    """Comma-separated floats, each > ``minimum`` (``strict``) or >= it; at least one."""
    relation = ">" if strict else ">="

    def parse(text: str) -> list[float]:
        parts = [x.strip() for x in text.split(",") if x.strip()]
        expected = f"comma-separated numbers {relation} {minimum:g}"
        if not parts:
            raise argparse.ArgumentTypeError(f"{flag} expects {expected}; got {text!r}")
        out = [_number(x, float, flag, expected) for x in parts]
        bad = [x for x in out if not (x > minimum if strict else x >= minimum)]
        if bad:
            raise argparse.ArgumentTypeError(f"{flag} expects {expected}; got {bad[0]:g} in {text!r}")
        return out

    return parse


def _writable_dir(path: str) -> bool:
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def output_file(flag: str) -> Callable[[str], str]:
    """A file to write at the end of a command: checked when the flag is parsed (its directory
    exists and is writable, it is not a directory), so a long computation never ends in a failed
    write."""
    def parse(text: str) -> str:
        parent = os.path.dirname(os.path.abspath(text))
        if os.path.isdir(text):
            raise argparse.ArgumentTypeError(f"{flag} expects a file to write; got {text!r}, a directory")
        if not os.path.isdir(parent):
            raise argparse.ArgumentTypeError(f"{flag} expects a file in an existing directory; got {text!r} "
                                             f"({parent} does not exist)")
        if not _writable_dir(parent) or (os.path.exists(text) and not os.access(text, os.W_OK)):
            raise argparse.ArgumentTypeError(f"{flag} expects a file this user can write; got {text!r} "
                                             f"(permission denied)")
        return text

    return parse


def output_dir(flag: str) -> Callable[[str], str]:
    """A directory to write into (created if missing): checked when the flag is parsed (it is a
    writable directory, or its nearest existing parent is), so a long computation never ends in a
    failed write.  Nothing is created here."""
    def parse(text: str) -> str:
        path = os.path.abspath(text)
        if os.path.exists(path) and not os.path.isdir(path):
            raise argparse.ArgumentTypeError(f"{flag} expects a directory; got {text!r}, a file")
        existing = path
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing):
            raise argparse.ArgumentTypeError(f"{flag} expects a directory; got {text!r} ({existing} is a file)")
        if not _writable_dir(existing):
            raise argparse.ArgumentTypeError(f"{flag} expects a directory this user can write or create; got "
                                             f"{text!r} ({existing} is not writable)")
        return text

    return parse
