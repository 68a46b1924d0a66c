"""PNG plots of training curves, drawn with matplotlib's Agg canvas.

The figure is built on ``matplotlib.figure.Figure`` with an explicit Agg canvas, so no display is
needed and the caller's global backend (``matplotlib.use``) is left untouched.  This module draws the
rows it is given and imports nothing of the training layer: a run directory writes the PNG
bytes of :func:`curves_png` itself (``RunDir.write_plot``, atomically).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["curves_png", "plot_curves"]


def _floats(rows: Sequence[dict], key: str) -> list[float]:
    out = []
    for row in rows:
        v = row.get(key)
        out.append(float("nan") if v in (None, "") else float(v))
    return out


def plot_curves(rows: Sequence[dict], path: str | os.PathLike, title: str = "") -> None:
    """Loss (train/test) and accuracy (train/test, if any) against epoch, saved as PNG at ``path``
    (the bytes of :func:`curves_png`; a run directory's curves.png goes through ``RunDir.write_plot``,
    which replaces it atomically)."""
    Path(path).write_bytes(curves_png(rows, title))


def curves_png(rows: Sequence[dict], title: str = "") -> bytes:
    """Loss (train/test) and accuracy (train/test, if any) against epoch, as the bytes of a PNG.

    ``rows`` are metrics rows (dicts with the keys of ``neuralode_rnn.training.rundir.METRIC_FIELDS``; values
    may be strings as read back from metrics.csv).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = _floats(rows, "epoch")
    has_acc = any(row.get("test_accuracy") not in (None, "") for row in rows)
    fig = Figure(figsize=(9 if has_acc else 5, 3.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2 if has_acc else 1, squeeze=False)[0]
    for key, style in (("train_loss", "-"), ("test_loss", "--")):
        axes[0].plot(epochs, _floats(rows, key), style, marker="o", ms=3, label=key.replace("_", " "))
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss")
    axes[0].legend()
    if has_acc:
        for key, style in (("train_accuracy", "-"), ("test_accuracy", "--")):
            axes[1].plot(epochs, _floats(rows, key), style, marker="o", ms=3, label=key.replace("_", " "))
        axes[1].set_xlabel("epoch")
        axes[1].set_ylabel("accuracy")
        axes[1].legend()
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no 1.2, 1.4 ticks
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
