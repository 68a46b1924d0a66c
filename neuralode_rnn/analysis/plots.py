"""Figures of the analysis (matplotlib with the Agg backend: files only, no display).

Each function takes the result objects of the other analysis modules and a file path, draws one
figure, saves it (format from the suffix) and returns the path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullLocator

import solvers

from .robustness import RobustnessCurve
from .solver_comparison import SolverComparison
from .stability import Contraction

__all__ = [
    "contraction_plot",
    "contraction_title",
    "convergence_plot",
    "robustness_plot",
    "stability_region_plot",
    "work_precision_plot",
]


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*", "h", "p", "d", "H", "8")


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    # "tight": legends placed outside the axes are kept in the file
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _method_styles(methods: Sequence[str]) -> dict[str, tuple]:
    """A (colour, marker) per method, no two alike: tab20's dark shades first, then its light ones
    (20 colours), each with its own marker, so methods stay apart in print and for colour-blind readers."""
    tab20 = plt.get_cmap("tab20").colors
    colours = list(tab20[0::2]) + list(tab20[1::2])
    return {m: (colours[i % len(colours)], MARKERS[i % len(MARKERS)]) for i, m in enumerate(methods)}


def _by_method(comparison: SolverComparison):
    methods: dict[str, list] = {}
    for r in comparison.runs:
        methods.setdefault(r.method, []).append(r)
    return methods


def work_precision_plot(comparison: SolverComparison, path, title: str = "") -> Path:
    """Trajectory error against NFE and against wall time, log-log, one line per method."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    methods = _by_method(comparison)
    styles = _method_styles(list(methods))
    for method, runs in methods.items():
        colour, marker = styles[method]
        style = dict(color=colour, marker=marker, ms=5, ls="-" if runs[0].kind == "fixed" else "--", label=method)
        err = np.maximum([r.trajectory_error for r in runs], 1e-16)
        axes[0].loglog([r.nfe for r in runs], err, **style)
        axes[1].loglog([r.seconds for r in runs], err, **style)
    axes[0].set_xlabel("function evaluations")
    axes[1].set_xlabel("wall time (s)")
    for ax in axes:
        ax.set_ylabel("max |h - h_ref| over all sample times")
        ax.grid(True, which="both", alpha=0.3)
    # outside the axes, right of the second panel: inside, it covered points whatever its corner
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    fig.suptitle(title or "work-precision (fixed: solid, adaptive: dashed)")
    return _save(fig, path)


def convergence_plot(comparison: SolverComparison, path, title: str = "") -> Path:
    """Trajectory error against step size for the fixed methods, with the fitted orders."""
    fig, ax = plt.subplots(figsize=(8.5, 4.2))  # room for the legend right of the axes
    methods = _by_method(comparison)
    styles = _method_styles(list(methods))  # the same look per method as in work_precision_plot
    steps: set[float] = set()
    for method, runs in methods.items():
        if runs[0].kind != "fixed":
            continue
        order = comparison.orders.get(method)
        label = method + (f" (observed {order:.2f})" if order is not None else "")
        colour, marker = styles[method]
        ax.loglog([r.step_size for r in runs], np.maximum([r.trajectory_error for r in runs], 1e-16), "-",
                  color=colour, marker=marker, ms=5, label=label)
        steps.update(r.step_size for r in runs)
    # ticks at the step sizes measured, as plain numbers: log minor-tick labels ("3 x 10^-3")
    # ran into each other on a span of one decade
    ax.xaxis.set_major_locator(FixedLocator(sorted(steps)))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.set_xlabel("step size")
    ax.set_ylabel("max |h - h_ref|")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    ax.set_title(title or "convergence of the fixed-step methods")
    return _save(fig, path)


def stability_region_plot(eigenvalues: Mapping[str, np.ndarray], step_size: float, path,
                          methods: Sequence[str] = ("euler", "midpoint", "rk4"), title: str = "") -> Path:
    """Each method's region |R(z)| <= 1 (shaded contour), with step_size * eigenvalues on top.

    ``eigenvalues`` maps a label ("A", "W", "Jacobian") to a complex array of any shape.
    """
    scaled = {k: step_size * np.asarray(v).reshape(-1) for k, v in eigenvalues.items()}
    pts = np.concatenate(list(scaled.values())) if scaled else np.zeros(1)
    # zoom on the eigenvalues (their neighbourhood of 0 is where the regions differ for them)
    reach = max(0.3, 1.3 * float(np.abs(pts).max()) if pts.size else 3.2)
    x = np.linspace(-reach, 0.6 * reach, 500)
    y = np.linspace(-reach, reach, 500)
    Z = x[None, :] + 1j * y[:, None]
    fig, axes = plt.subplots(1, len(methods), figsize=(4.3 * len(methods), 4.2), squeeze=False)
    markers = {"A": "s", "W": "^", "Jacobian": "."}
    for ax, method in zip(axes[0], methods):
        R = np.abs(solvers.stability_function(method)(Z))
        ax.contourf(x, y, R, levels=[0, 1], colors=["#cfe3f5"])
        ax.contour(x, y, R, levels=[1], colors=["#1f4e79"], linewidths=1)
        for label, z in scaled.items():
            ax.plot(z.real, z.imag, markers.get(label, "o"), ms=3 if label == "Jacobian" else 5, alpha=0.6,
                    label=f"{step_size:.3g} * eig({label})")
        ax.axhline(0, color="k", lw=0.5)
        ax.axvline(0, color="k", lw=0.5)
        ax.set_aspect("equal")
        ax.set_xlim(x[0], x[-1])
        ax.set_ylim(y[0], y[-1])
        ax.set_title(f"{method}: |R(z)| <= 1")
        ax.set_xlabel("Re z")
    axes[0][0].set_ylabel("Im z")
    if scaled:
        # one legend for every panel (the markers mean the same in each), below them, outside the axes
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(labels), fontsize=9)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def robustness_plot(curves: Mapping[str, Sequence[RobustnessCurve]], path, title: str = "") -> Path:
    """The task's measure (accuracy, or mean squared error for regression) against noise level, one
    panel per kind ("input", "parameter"), one line per model."""
    kinds = ["input", "parameter"]
    metrics = sorted({c.metric for cs in curves.values() for c in cs}) or ["accuracy"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, cs in curves.items():
        for c in cs:
            ax = axes[kinds.index(c.kind)]
            ax.errorbar(c.levels, c.mean, yerr=c.std, marker="o", ms=4, capsize=2, label=label)
    axes[0].set_xlabel("input noise std / data std")
    axes[1].set_xlabel("parameter noise std / rms(parameter)")
    for ax in axes:
        ax.set_ylabel("test " + " / ".join("mean squared error" if m == "mse" else m for m in metrics))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def contraction_title(contraction: Contraction) -> str:
    """The contraction rates in words, signs as in :class:`Contraction` (r > 0: the distance of two
    trajectories decays as exp(-r t)); a negative measured rate is said to be growth, as the curve shows."""
    r = contraction.measured_rate
    trend = ("contracts" if r > 0 else "grows" if r < 0 else "constant") if np.isfinite(r) else "too few points"
    return (f"contraction rate r (distance ~ exp(-r t)): measured r = {r:.3g} ({trend}),\n"
            f"guaranteed r >= {contraction.predicted_rate:.3g}")


def contraction_plot(contraction: Contraction, path, title: str = "") -> Path:
    """Distance of two trajectories (relative to the start), the fitted exp(-r t) and the bound
    exp(-r t) at the guaranteed rate, log scale.  ``title`` names the run; a second line gives the
    rates (:func:`contraction_title`)."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    t = contraction.times - contraction.times[0]
    ax.semilogy(t, np.maximum(contraction.distance, 1e-300), "-", label="measured (max over batch)")
    if np.isfinite(contraction.measured_rate):
        ax.semilogy(t, np.exp(-contraction.measured_rate * t), ":",
                    label=f"fit exp(-r t), measured r = {contraction.measured_rate:.3g}")
    ax.semilogy(t, np.exp(-contraction.predicted_rate * t), "--",
                label=f"bound exp(-r t), guaranteed r = {contraction.predicted_rate:.3g}")
    ax.set_xlabel("t - t0")
    ax.set_ylabel("|h_a - h_b| / |h_a(t0) - h_b(t0)|")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title((f"{title}\n" if title else "") + contraction_title(contraction), fontsize=9)
    return _save(fig, path)
