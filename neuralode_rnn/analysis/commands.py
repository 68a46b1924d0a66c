"""The ``compare-solvers`` and ``analyze`` subcommands.

``register(subparsers)`` adds both to an ``argparse`` subparsers object; each sets
``func(args) -> int``.  The package CLI calls it (``neuralode-rnn compare-solvers|analyze``, or
``python -m neuralode_rnn.cli ...``); ``python -m neuralode_rnn.analysis ...`` runs the same commands.

    compare-solvers RUN_DIR | --random   one model, one test batch, every solver (table, JSON, plots)
    analyze RUN_DIR [RUN_DIR ...]        stability, Hessian, robustness per run, and a side-by-side table

RUN_DIR is a run directory written by ``neuralode-rnn train --run-dir`` of a continuous model
(read through :mod:`.runs`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

__all__ = ["analyze_command", "compare_solvers_command", "main", "register"]


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers; got {text!r}") from None


def register(subparsers) -> None:
    """Add ``compare-solvers`` and ``analyze`` to an argparse subparsers object."""
    p = subparsers.add_parser("compare-solvers", help="every solver on one model and one batch: error, NFE, time",
                              description=compare_solvers_command.__doc__)
    p.add_argument("run_dir", nargs="?", help="a run directory written by `neuralode-rnn train --run-dir`")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="which checkpoint of RUN_DIR (default best, else last)")
    p.add_argument("--random", action="store_true", help="an untrained seeded model instead of a run")
    p.add_argument("--model", "--field", dest="model", default="lipschitz",
                   help="with --random: a continuous zoo model (lipschitz, antisymmetric, ctrnn, ...)")
    p.add_argument("--task", default="digits", help="with --random: the task giving the batch")
    p.add_argument("--hidden", type=int, default=32, help="with --random: hidden size")
    p.add_argument("--eps", "--time-step", dest="eps", type=float, default=0.1,
                   help="with --random: sample spacing (the model's eps)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=32, help="test samples in the batch")
    p.add_argument("--step-sizes", type=_floats, default=None, help="fixed steps (default gap * 2^-k, k=0..4)")
    p.add_argument("--rtols", type=_floats, default=[1e-3, 1e-4, 1e-5, 1e-6])
    p.add_argument("--repeats", type=int, default=1, help="wall time = median of this many solves")
    p.add_argument("--cross", type=int, default=0,
                   help="also evaluate the test accuracy with other solvers on this many samples")
    p.add_argument("--out", default=None, help="output directory (default RUN_DIR/analysis or ./analysis-random)")
    p.set_defaults(func=compare_solvers_command)

    a = subparsers.add_parser("analyze", help="stability, Hessian and robustness of trained runs",
                              description=analyze_command.__doc__)
    a.add_argument("run_dirs", nargs="+", help="one or more run directories written by `neuralode-rnn train`")
    a.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="which checkpoint of each run (default best, else last)")
    a.add_argument("--out", default=None, help="output directory: the summary there and each run's results in "
                   "OUT/<run name> (default: RUN_DIR/analysis, the summary in the first run's)")
    a.add_argument("--n-eval", type=int, default=360, help="test samples for robustness")
    a.add_argument("--hessian-batch", type=int, default=256, help="training samples in the Hessian's loss")
    a.add_argument("--lanczos", type=int, default=20, help="Lanczos steps")
    a.add_argument("--probes", type=int, default=50, help="Hutchinson probes")
    a.add_argument("--input-levels", type=_floats, default=[0.0, 0.1, 0.2, 0.4, 0.8])
    a.add_argument("--param-levels", type=_floats, default=[0.0, 0.05, 0.1, 0.2, 0.4])
    a.add_argument("--repeats", type=int, default=3, help="noise draws per level")
    a.add_argument("--seed", type=int, default=0)
    a.set_defaults(func=analyze_command)


def _json(path: Path, obj) -> None:
    def default(x):
        if isinstance(x, (np.floating, np.integer)):
            return x.item()
        if isinstance(x, np.ndarray):
            return x.tolist()
        if isinstance(x, complex):
            return [x.real, x.imag]
        raise TypeError(type(x).__name__)

    path.write_text(json.dumps(obj, indent=2, default=default, allow_nan=True))


def compare_solvers_command(args) -> int:
    """Integrate one model on one test batch with every fixed method at several steps and every
    adaptive Runge-Kutta method at several tolerances; print the table; write
    solver_comparison.json, work_precision.png and convergence.png (and, with --cross N,
    cross_solver.json: the test accuracy with other solvers than the one trained with)."""
    from . import plots
    from .runs import load_run, random_run
    from .solver_comparison import compare_solvers, cross_solver_accuracy, format_table

    torch.set_num_threads(1)
    if bool(args.random) == bool(args.run_dir):
        raise SystemExit("compare-solvers: give exactly one of RUN_DIR or --random")
    if args.random:
        run = random_run(args.model, args.task, args.hidden, args.seed, eps=args.eps)
        out = Path(args.out or "analysis-random")
    else:
        run = load_run(args.run_dir, args.checkpoint)
        out = Path(args.out or Path(args.run_dir) / "analysis")
    out.mkdir(parents=True, exist_ok=True)
    values, times, targets = run.batch("test", args.batch)
    start = time.perf_counter()
    def progress(r):
        print(f"  {r.method} {r.step_size or r.rtol:g}: nfe {r.nfe}, {r.seconds:.2f} s", file=sys.stderr, flush=True)

    comparison = compare_solvers(run.model, values, times, targets, step_sizes=args.step_sizes, rtols=args.rtols,
                                 repeats=args.repeats, callback=progress)
    print(f"{run.name}: batch {values.shape[0]} x {values.shape[1]} steps, hidden {run.config.hidden_size}")
    print(format_table(comparison))
    result = {"run": run.name, "config": run.config.to_dict(), **comparison.as_dict()}
    plots.work_precision_plot(comparison, out / "work_precision.png", title=f"work-precision: {run.name}")
    plots.convergence_plot(comparison, out / "convergence.png", title=f"convergence: {run.name}")
    if args.cross:
        v, t, y = run.batch("test", args.cross)
        gap = 1.0 if t is None else float(t[..., 1] - t[..., 0]) if t.shape[-1] > 1 else 1.0
        settings = [("euler", gap / 4), ("midpoint", None), ("midpoint", gap / 4), ("rk4", None),
                    ("rk4", gap / 4), ("dopri5", 1e-6)]
        rows = cross_solver_accuracy(run.model, v, t, y, settings)
        result["cross_solver"] = rows
        print("\ntrained with one solver, tested with another (test accuracy):")
        for r in rows:
            print(f"  {r['method']:<10}{'' if r['setting'] is None else r['setting']!s:>10}"
                  f"{r['accuracy']:>8.3f}{r['change']:>+9.3f}{'  (as trained)' if r['trained'] else ''}")
    _json(out / "solver_comparison.json", result)
    print(f"\nwrote {out}/solver_comparison.json, work_precision.png, convergence.png "
          f"({time.perf_counter() - start:.1f} s)")
    return 0


def _analyze_one(run, args, out: Path) -> dict:
    from . import plots
    from .hessian import hessian_summary
    from .robustness import input_noise_curve, parameter_noise_curve
    from .stability import (
        jacobian_eigenvalues,
        lipschitz_stability_condition,
        matrix_eigenvalues,
        max_stable_steps,
        measure_contraction,
    )

    out.mkdir(parents=True, exist_ok=True)
    model = run.model
    base = getattr(model, "base", model)
    values, times, targets = run.batch("test", args.n_eval)
    result: dict = {"run": run.name, "config": run.config.to_dict(), "checkpoint": run.checkpoint, "metrics": run.metrics}
    t0 = time.perf_counter()

    # --- stability
    eig = matrix_eigenvalues(base.field)
    jac = jacobian_eigenvalues(base, values[:16], None if times is None else times, max_points=256)
    eig["Jacobian"] = jac.reshape(-1)
    gap = 1.0 if times is None else float(times[..., 1] - times[..., 0])
    step = base.step_size or gap
    stab = {"step_size": step,
            "max_stable_step": {k: max_stable_steps(v) for k, v in eig.items()},
            # growing modes (Re > 0) make every explicit step "unstable" (bound 0); the bound over the
            # decaying and neutral modes is the one a step size can actually respect
            "max_stable_step_non_growing": {k: max_stable_steps(v[v.real <= 0]) for k, v in eig.items()},
            "growing_modes": {k: int(np.sum(v.real > 0)) for k, v in eig.items()},
            "spectral_abscissa": {k: float(np.max(v.real)) for k, v in eig.items()},
            "spectral_radius": {k: float(np.max(np.abs(v))) for k, v in eig.items()}}
    plots.stability_region_plot(eig, step, out / "stability_regions.png",
                                title=f"{run.name}: step * eigenvalues over stability regions")
    try:
        cond = lipschitz_stability_condition(base.field)
        stab["global_stability"] = cond.as_dict()
        contraction = measure_contraction(base.field, values[:16], times)
        stab["contraction"] = {k: v for k, v in contraction.as_dict().items() if k not in ("times", "distance")}
        plots.contraction_plot(contraction, out / "contraction.png",
                               title=f"{run.name}: measured rate {contraction.measured_rate:.3g}, "
                                     f"predicted >= {contraction.predicted_rate:.3g}")
    except ValueError as e:  # a field not of the form A h + tanh(W h + u)
        stab["global_stability"] = {"not_applicable": str(e)}
    result["stability"] = stab
    t1 = time.perf_counter()

    # --- Hessian on a training batch
    hv, ht, hy = run.batch("train", args.hessian_batch)
    hs = hessian_summary(model, hv, ht, hy, lanczos_steps=args.lanczos, probes=args.probes, seed=args.seed)
    result["hessian"] = hs.as_dict()
    t2 = time.perf_counter()

    # --- robustness on the test set
    curves = [input_noise_curve(model, values, times, targets, args.input_levels, args.repeats, args.seed),
              parameter_noise_curve(model, values, times, targets, args.param_levels, args.repeats, args.seed)]
    result["robustness"] = [c.as_dict() for c in curves]
    plots.robustness_plot({run.name: curves}, out / "robustness.png", title=run.name)
    t3 = time.perf_counter()
    result["seconds"] = {"stability": t1 - t0, "hessian": t2 - t1, "robustness": t3 - t2}
    _json(out / "analysis.json", result)
    return result


def _summary_table(results: list[dict]) -> str:
    lines = [("| run | test acc. | Hessian lambda_max | lambda_min | trace (+- s.e.) | loss | "
              "lambda_max(A_sym) + ||W||_2 | measured contraction rate |"),
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        h = r["hessian"]
        g = r["stability"].get("global_stability", {})
        c = r["stability"].get("contraction", {})
        acc = r["robustness"][0]["mean"][0]
        cond = f"{g['rate']:.3g} ({'holds' if g['satisfied'] else 'fails'})" if "rate" in g else "n/a"
        lines.append(f"| {r['run']} | {acc:.3f} | {h['max_eigenvalue']:.4g} | {h['min_eigenvalue']:.3g} | "
                     f"{h['trace']:.4g} +- {h['trace_se']:.2g} | {h['loss']:.3f} | {cond} | "
                     f"{c.get('measured_rate', math.nan):.3g} |")
    return "\n".join(lines)


def analyze_command(args) -> int:
    """For each run: eigenvalues of A, W and of the Jacobian along a test trajectory over the
    stability regions (stability_regions.png), largest stable steps, the Lipschitz RNN's global
    stability condition and the measured contraction (contraction.png), the Hessian's extreme
    eigenvalues (Lanczos) and trace (Hutchinson) on a training batch, and the test accuracy under
    input and parameter noise (robustness.png); written to analysis.json in RUN_DIR/analysis (or
    OUT/<run name>); summary.md / summary.json and robustness.png of all runs side by side in OUT."""
    from . import plots
    from .robustness import RobustnessCurve
    from .runs import load_run

    torch.set_num_threads(1)
    results = []
    for run_dir in args.run_dirs:
        start = time.perf_counter()
        print(f"analysing {run_dir} ...", file=sys.stderr, flush=True)
        run = load_run(run_dir, args.checkpoint)
        torch.manual_seed(args.seed)
        where = Path(args.out) / run.name if args.out else Path(run_dir) / "analysis"
        results.append(_analyze_one(run, args, where))
        print(f"{run.name}: analysed in {time.perf_counter() - start:.1f} s -> {where}/analysis.json")
    out = Path(args.out or Path(args.run_dirs[0]) / "analysis")
    out.mkdir(parents=True, exist_ok=True)
    table = _summary_table(results)
    print(table)
    (out / "summary.md").write_text(table + "\n")
    _json(out / "summary.json", results)
    curves = {r["run"]: [RobustnessCurve(**c) for c in r["robustness"]] for r in results}
    plots.robustness_plot(curves, out / "robustness.png", title="test accuracy under noise")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neuralode_rnn.analysis",
                                     description="Solver comparison and stability/robustness analysis.")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return args.func(args)
