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

import solvers

from .robustness import RobustnessCurve
from .solver_comparison import SolverComparison
from .stability import Contraction

__all__ = [
    "contraction_plot",
    "convergence_plot",
    "robustness_plot",
    "stability_region_plot",
    "work_precision_plot",
]


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _by_method(comparison: SolverComparison):
    methods: dict[str, list] = {}
    for r in comparison.runs:
        methods.setdefault(r.method, []).append(r)
    return methods


def work_precision_plot(comparison: SolverComparison, path, title: str = "") -> Path:
    """Trajectory error against NFE and against wall time, log-log, one line per method."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for method, runs in _by_method(comparison).items():
        style = "-o" if runs[0].kind == "fixed" else "--s"
        err = np.maximum([r.trajectory_error for r in runs], 1e-16)
        axes[0].loglog([r.nfe for r in runs], err, style, ms=4, label=method)
        axes[1].loglog([r.seconds for r in runs], err, style, ms=4, label=method)
    axes[0].set_xlabel("function evaluations")
    axes[1].set_xlabel("wall time (s)")
    for ax in axes:
        ax.set_ylabel("max |h - h_ref| over all sample times")
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=8, ncol=2)
    fig.suptitle(title or "work-precision (fixed: solid, adaptive: dashed)")
    return _save(fig, path)


def convergence_plot(comparison: SolverComparison, path, title: str = "") -> Path:
    """Trajectory error against step size for the fixed methods, with the fitted orders."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for method, runs in _by_method(comparison).items():
        if runs[0].kind != "fixed":
            continue
        order = comparison.orders.get(method)
        label = method + (f" (observed {order:.2f})" if order is not None else "")
        ax.loglog([r.step_size for r in runs], np.maximum([r.trajectory_error for r in runs], 1e-16), "-o",
                  ms=4, label=label)
    ax.set_xlabel("step size")
    ax.set_ylabel("max |h - h_ref|")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
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
                    label=f"{step_size:g} * eig({label})")
        ax.axhline(0, color="k", lw=0.5)
        ax.axvline(0, color="k", lw=0.5)
        ax.set_aspect("equal")
        ax.set_xlim(x[0], x[-1])
        ax.set_ylim(y[0], y[-1])
        ax.set_title(f"{method}: |R(z)| <= 1")
        ax.set_xlabel("Re z")
    axes[0][0].set_ylabel("Im z")
    axes[0][-1].legend(fontsize=7, loc="lower right")
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


def contraction_plot(contraction: Contraction, path, title: str = "") -> Path:
    """Distance of two trajectories (relative to the start) and the bound exp(c t), log scale."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    t = contraction.times - contraction.times[0]
    ax.semilogy(t, np.maximum(contraction.distance, 1e-300), "-", label="measured (max over batch)")
    ax.semilogy(t, np.exp(-contraction.predicted_rate * t), "--",
                label=f"bound exp(c t), c = {-contraction.predicted_rate:.3g}")
    ax.set_xlabel("t - t0")
    ax.set_ylabel("|h_a - h_b| / |h_a(t0) - h_b(t0)|")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or f"contraction: measured rate {contraction.measured_rate:.3g}")
    return _save(fig, path)
