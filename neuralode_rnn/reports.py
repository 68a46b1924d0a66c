"""Helpers for results files: the command that reproduces a run, and replaceable markdown sections.

Results scripts (examples with ``--results``) write their tables into marked blocks of a shared
markdown file, so rerunning one script replaces its own block and leaves the others alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["command_line", "write_section"]


def command_line(script: str, config: Mapping[str, Any], defaults: Mapping[str, Any], keys: Iterable[str]) -> str:
    """``script`` followed by a ``--flag value`` for each of ``keys`` whose value differs from its default."""
    parts = [script]
    for key in keys:
        if config[key] != defaults[key]:
            v = config[key]
            text = " ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
            parts.append(f"--{key.replace('_', '-')} {text}")
    return " ".join(parts)


def write_section(path: Path, key: str, text: str, title: str) -> None:
    """Replace (or append) the block between ``<!-- key:start -->`` and ``<!-- key:end -->`` in
    ``path``; a new file starts with ``title``."""
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    old = path.read_text() if path.exists() else f"{title}\n\n"
    if start in old and end in old:
        head, rest = old.split(start, 1)
        new = head + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        new = old.rstrip("\n") + "\n\n" + block
    path.write_text(new)
