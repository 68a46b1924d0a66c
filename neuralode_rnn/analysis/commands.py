"""The ``compare-solvers`` and ``analyze`` subcommands.

``register(subparsers)`` adds both to an ``argparse`` subparsers object; each sets
``func(args) -> int``.  The package CLI calls it (``neuralode-rnn compare-solvers|analyze``, or
``python -m neuralode_rnn.cli ...``); ``python -m neuralode_rnn.analysis ...`` runs the same commands.

    compare-solvers RUN_DIR | --random   one model, one test batch, every solver (table, JSON, plots)
    analyze RUN_DIR [RUN_DIR ...]        stability, Hessian, robustness per run, and a side-by-side table

RUN_DIR is a run directory written by ``neuralode-rnn train --run-dir`` (read through
:mod:`.runs`).  Every run type ``train`` writes can be analysed: classification, per-step sequence
(copy memory) and regression (adding) tasks, irregular samples (``--drop``), the complex unitary
RNN, noise-trained models.  A part that does not apply to a run is not computed: ``analysis.json``
says ``{"not_applicable": reason}`` in its place (never zeros), and ``compare-solvers`` refuses a
run that has no field to integrate (discrete cells, LSTM/GRU).  Both commands print a line at
least every 30 seconds while they work.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..argtypes import at_least, numbers, output_dir, positive

__all__ = ["analyze_command", "compare_solvers_command", "main", "register"]

HEARTBEAT = 30.0
"""Seconds between progress lines of a long computation (a commands' output is never silent for a minute)."""


CHECKPOINT_HELP = ("which checkpoint (default: best for a run trained with --validation, chosen on its validation "
                   "split; else last; best of a run without a validation split is refused: it would be chosen on "
                   "the test set)")


def register(subparsers) -> None:
    """Add ``compare-solvers`` and ``analyze`` to an argparse subparsers object."""
    p = subparsers.add_parser("compare-solvers", help="every solver on one model and one batch: error, NFE, time",
                              description=compare_solvers_command.__doc__)
    p.add_argument("run_dir", nargs="?", help="a run directory written by `neuralode-rnn train --run-dir`")
    p.add_argument("--checkpoint", choices=("best", "last", "previous"), default=None,
                   help=CHECKPOINT_HELP)
    p.add_argument("--random", action="store_true", help="an untrained seeded model instead of a run")
    p.add_argument("--model", "--field", dest="model", default="lipschitz",
                   help="with --random: a continuous zoo model (lipschitz, antisymmetric, ctrnn, ...)")
    p.add_argument("--task", default="digits", help="with --random: the task giving the batch")
    p.add_argument("--hidden", type=positive(int, "--hidden"), default=32, help="with --random: hidden size")
    p.add_argument("--eps", "--time-step", dest="eps", type=positive(float, "--eps"), default=0.1,
                   help="with --random: sample spacing (the model's eps)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=positive(int, "--batch"), default=32, help="test samples in the batch")
    p.add_argument("--step-sizes", type=numbers("--step-sizes"), default=None,
                   help="fixed steps, comma-separated, > 0 (default gap * 2^-k, k=0..4)")
    p.add_argument("--rtols", type=numbers("--rtols"), default=[1e-3, 1e-4, 1e-5, 1e-6],
                   help="adaptive solvers' relative tolerances, comma-separated, > 0 (atol = rtol * 1e-3)")
    p.add_argument("--methods", type=_methods,
                   help="comma-separated solvers to compare (default: every fixed tableau and adaptive RK method)")
    p.add_argument("--reference-rtol", type=positive(float, "--reference-rtol"), default=1e-12,
                   help="tolerance of the dopri5 reference solve (default 1e-12; atol = rtol * 1e-3)")
    p.add_argument("--repeats", type=positive(int, "--repeats"), default=1, help="wall time = median of this many solves")
    p.add_argument("--cross", type=at_least(0, "--cross"), default=0,
                   help="also evaluate the test accuracy with other solvers on this many samples")
    p.add_argument("--robustness", type=at_least(0, "--robustness"), default=360,
                   help="test samples for the solver-robustness score (accuracy under euler h/4, midpoint h, rk4 h, "
                        "dopri5 rtol 1e-6 and the largest drop; classification runs; default 360, 0: off)")
    p.add_argument("--threads", type=positive(int, "--threads"),
                   help="torch threads (default: torch's choice, which follows OMP_NUM_THREADS)")
    p.add_argument("--out", default=None, type=output_dir("--out"),
                   help="output directory (default RUN_DIR/analysis or ./analysis-random)")
    p.set_defaults(func=compare_solvers_command)

    a = subparsers.add_parser("analyze", help="stability, Hessian and robustness of trained runs",
                              description=analyze_command.__doc__)
    a.add_argument("run_dirs", nargs="+", help="one or more run directories written by `neuralode-rnn train`")
    a.add_argument("--checkpoint", choices=("best", "last", "previous"), default=None,
                   help=CHECKPOINT_HELP)
    a.add_argument("--out", default=None, type=output_dir("--out"), help="output directory: the summary there and each run's results in "
                   "OUT/<run name> (default: RUN_DIR/analysis, the summary in the first run's)")
    a.add_argument("--n-eval", type=positive(int, "--n-eval"), default=360, help="test samples for robustness")
    a.add_argument("--hessian-batch", type=positive(int, "--hessian-batch"), default=256,
                   help="training samples in the Hessian's loss")
    a.add_argument("--jacobian-points", type=positive(int, "--jacobian-points"), default=256,
                   help="(sample, time) points where the Jacobian's eigenvalues are taken (default 256)")
    a.add_argument("--lanczos", type=positive(int, "--lanczos"), default=20, help="Lanczos steps (>= 1)")
    a.add_argument("--probes", type=at_least(2, "--probes"), default=50, help="Hutchinson probes (>= 2)")
    a.add_argument("--input-levels", type=numbers("--input-levels", strict=False), default=[0.0, 0.1, 0.2, 0.4, 0.8],
                   help="input noise levels (std / data std), comma-separated, >= 0")
    a.add_argument("--param-levels", type=numbers("--param-levels", strict=False),
                   default=[0.0, 0.05, 0.1, 0.2, 0.4],
                   help="parameter noise levels (std / rms), comma-separated, >= 0")
    a.add_argument("--repeats", type=positive(int, "--repeats"), default=3, help="noise draws per level")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--threads", type=positive(int, "--threads"),
                   help="torch threads (default: torch's choice, which follows OMP_NUM_THREADS)")
    a.set_defaults(func=analyze_command)


def _methods(text: str) -> list[str]:
    """--methods: names of fixed tableaux or adaptive Runge-Kutta methods, comma-separated."""
    import solvers

    from .solver_comparison import ADAPTIVE_METHODS

    valid = sorted(solvers.TABLEAUX) + list(ADAPTIVE_METHODS)
    names = [x.strip() for x in text.split(",") if x.strip()]
    bad = [n for n in names if n not in valid]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"--methods expects comma-separated names among {', '.join(valid)}; got "
                                         f"{bad[0] if bad else text!r}")
    return names


def _check_writable(path: Path) -> None:
    """ValueError unless ``path`` is a directory this user can write, or can create (``output_dir``)."""
    try:
        output_dir("the output directory")(str(path))
    except argparse.ArgumentTypeError as exc:
        raise ValueError(str(exc)) from None


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
    cross_solver.json: the test accuracy with other solvers than the one trained with).  The run
    must have a field to integrate (a continuous model, plain or noise-trained)."""
    from ..progress import Heartbeat
    from . import plots
    from .runs import load_run, random_run
    from .solver_comparison import compare_solvers, cross_solver_accuracy, format_table, typical_gap

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if bool(args.random) == bool(args.run_dir):
        raise ValueError("give exactly one of RUN_DIR or --random")
    if args.random:
        run = random_run(args.model, args.task, args.hidden, args.seed, eps=args.eps)
        out = Path(args.out or "analysis-random")
    else:
        out = Path(args.out or Path(args.run_dir) / "analysis")
        _check_writable(out)
        run = load_run(args.run_dir, args.checkpoint)
        run.require_continuous("compare-solvers")
    out.mkdir(parents=True, exist_ok=True)
    values, times, targets = run.batch("test", args.batch)
    start = time.perf_counter()
    with Heartbeat(f"compare-solvers {run.name}", HEARTBEAT) as beat:
        def before(method, step, rtol):
            beat.update(f"solving with {method} " + (f"rtol {rtol:g}" if rtol is not None else
                                                     f"step {step:g}" if step is not None else "(one step per gap)"))

        def progress(r):
            beat.say(f"{r.method} {r.step_size or r.rtol:g}: nfe {r.nfe}, {r.seconds:.2f} s")

        chosen = {}
        if args.methods:
            import solvers

            # an embedded pair (dopri5) is adaptive: its runs are by tolerance, not by step size
            fixed = [m for m in args.methods if not solvers.TABLEAUX[m].adaptive]
            chosen = {"fixed_methods": fixed, "adaptive_methods": [m for m in args.methods if m not in fixed]}
        comparison = compare_solvers(run.model, values, times, targets, step_sizes=args.step_sizes, rtols=args.rtols,
                                     repeats=args.repeats, callback=progress, kind=run.kind, before=before,
                                     reference_rtol=args.reference_rtol, **chosen)
        print(f"{run.name} ({run.config.label}): batch {values.shape[0]} x {values.shape[1]} steps, "
              f"hidden {run.config.hidden_size}")
        print(format_table(comparison))
        result = {"run": run.name, "config": run.config.to_dict(), **comparison.as_dict()}
        plots.work_precision_plot(comparison, out / "work_precision.png", title=f"work-precision: {run.name}")
        plots.convergence_plot(comparison, out / "convergence.png", title=f"convergence: {run.name}")
        if args.cross:
            v, t, y = run.batch("test", args.cross)
            gap = typical_gap(t, v.shape[1])
            settings = [("euler", gap / 4), ("midpoint", None), ("midpoint", gap / 4), ("rk4", None),
                        ("rk4", gap / 4), ("dopri5", 1e-6)]
            beat.update("evaluating the model with other solvers (--cross)")
            rows = cross_solver_accuracy(run.model, v, t, y, settings, kind=run.kind)
            result["cross_solver"] = rows
            measure = "test accuracy" if rows[0]["metric"] == "accuracy" else f"test {rows[0]['metric']}"
            print(f"\ntrained with one solver, tested with another ({measure}):")
            for r in rows:
                print(f"  {r['method']:<10}{'' if r['setting'] is None else r['setting']!s:>10}"
                      f"{r['accuracy']:>8.3f}{r['change']:>+9.3f}{'  (as trained)' if r['trained'] else ''}")
        if args.robustness:
            result["robustness"] = _solver_robustness(run, args.robustness, beat)
    _json(out / "solver_comparison.json", result)
    print(f"\nwrote {out}/solver_comparison.json, work_precision.png, convergence.png "
          f"({time.perf_counter() - start:.1f} s)")
    return 0


def _solver_robustness(run, n: int, beat) -> dict:
    """Issue 11's score on the first ``n`` test samples (printed; the dict for the JSON)."""
    from .solver_robustness import format_robustness, solver_robustness

    if run.kind != "classification":
        why = f"the score is defined for classification (one label per sequence); this is a {run.kind} task"
        print(f"\nsolver robustness: not applicable ({why})")
        return {"not_applicable": why}
    beat.update("solver robustness: the same weights under euler h/4, midpoint, rk4, dopri5")
    values, times, targets = run.batch("test", n)
    with torch.no_grad():
        r = solver_robustness(run.model, values, times, targets)
    print("\n" + format_robustness(r))
    return r.as_dict()


def _not_applicable(exc: Exception) -> dict:
    return {"not_applicable": str(exc)}


def _stability(run, values, times, out: Path, beat, points: int = 256) -> dict:
    """Eigenvalues over the stability regions, the Lipschitz condition, the measured contraction."""
    from . import plots
    from .solver_comparison import typical_gap
    from .stability import (
        jacobian_eigenvalues,
        lipschitz_stability_condition,
        matrix_eigenvalues,
        max_stable_steps,
        measure_contraction,
    )

    run.require_continuous("the stability analysis")
    base = getattr(run.model, "base", run.model)
    beat.update("computing eigenvalues along a test trajectory")
    n = min(16, values.shape[0])
    eig = matrix_eigenvalues(base.field)
    jac = jacobian_eigenvalues(base, values[:n], times[:n] if times is not None and times.dim() == 2 else times,
                               max_points=points)
    eig["Jacobian"] = jac.reshape(-1)
    # per-sample times: each sample steps by its own gaps; the largest one bounds a stable step
    step = base.step_size or typical_gap(times, values.shape[1])
    beat.update(f"largest stable steps for {sum(v.size for v in eig.values())} eigenvalues")
    stab = {"step_size": step,
            "max_stable_step": {k: max_stable_steps(v) for k, v in eig.items()},
            # growing modes (Re > 0) make every explicit step "unstable" (bound 0); the bound over the
            # decaying and neutral modes is the one a step size can actually respect
            "max_stable_step_non_growing": {k: max_stable_steps(v[v.real <= 0]) for k, v in eig.items()},
            "growing_modes": {k: int(np.sum(v.real > 0)) for k, v in eig.items()},
            "spectral_abscissa": {k: float(np.max(v.real)) for k, v in eig.items()},
            "spectral_radius": {k: float(np.max(np.abs(v))) for k, v in eig.items()}}
    if base.field.is_complex:
        stab["jacobian_of"] = "the real system in (Re h, Im h)"
    plots.stability_region_plot(eig, step, out / "stability_regions.png",
                                title=f"{run.name}: step * eigenvalues over stability regions")
    try:
        stab["global_stability"] = lipschitz_stability_condition(base.field).as_dict()
    except ValueError as e:  # a field not of the form A h + tanh(W h + u), or complex
        stab["global_stability"] = _not_applicable(e)
    if "not_applicable" in stab["global_stability"]:
        stab["contraction"] = _not_applicable(ValueError("needs the global stability condition (see "
                                                         "global_stability)"))
    elif times is not None and times.dim() == 2:
        stab["contraction"] = _not_applicable(ValueError("the contraction is measured on shared sample times; "
                                                         "this run's samples have their own times"))
    else:
        beat.update("measuring the contraction of two trajectories")
        contraction = measure_contraction(base.field, values[:n], times)
        stab["contraction"] = {k: v for k, v in contraction.as_dict().items() if k not in ("times", "distance")}
        plots.contraction_plot(contraction, out / "contraction.png", title=run.name)
    return stab


def _analyze_one(run, args, out: Path, beat) -> dict:
    from . import plots
    from .hessian import hessian_summary
    from .robustness import input_noise_curve, parameter_noise_curve

    out.mkdir(parents=True, exist_ok=True)
    model = run.model
    values, times, targets = run.batch("test", args.n_eval)
    result: dict = {"run": run.name, "label": run.config.label, "kind": run.kind, "config": run.config.to_dict(),
                    "checkpoint": run.checkpoint, "metrics": run.metrics}
    t0 = time.perf_counter()

    # --- stability (continuous models: it integrates the field)
    try:
        result["stability"] = _stability(run, values, times, out, beat, args.jacobian_points)
    except ValueError as e:
        result["stability"] = _not_applicable(e)
    t1 = time.perf_counter()

    # --- Hessian of the training loss on a training batch
    beat.update(f"Hessian: {args.lanczos} Lanczos steps and {args.probes} Hutchinson probes")
    hv, ht, hy = run.batch("train", args.hessian_batch)
    hs = hessian_summary(model, hv, ht, hy, lanczos_steps=args.lanczos, probes=args.probes, seed=args.seed,
                         kind=run.kind)
    result["hessian"] = hs.as_dict()
    if any(p.is_complex() for p in model.parameters()):
        result["hessian"]["complex_parameters"] = "as real and imaginary parts (ambient space, no unitary constraint)"
    t2 = time.perf_counter()

    # --- robustness on the test set
    beat.update("robustness under input and parameter noise")
    curves = [input_noise_curve(model, values, times, targets, args.input_levels, args.repeats, args.seed, run.kind),
              parameter_noise_curve(model, values, times, targets, args.param_levels, args.repeats, args.seed,
                                    run.kind)]
    result["robustness"] = [c.as_dict() for c in curves]
    plots.robustness_plot({run.name: curves}, out / "robustness.png", title=run.name)
    t3 = time.perf_counter()
    result["seconds"] = {"stability": t1 - t0, "hessian": t2 - t1, "robustness": t3 - t2}
    _json(out / "analysis.json", result)
    return result


def _summary_table(results: list[dict]) -> str:
    lines = [("| run | model on task | test measure | Hessian lambda_max | lambda_min | trace (+- s.e.) | loss | "
              "lambda_max(A_sym) + ||W||_2 | measured contraction rate (> 0: contracts, < 0: grows) |"),
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        h = r["hessian"]
        stab = r["stability"]
        g = stab.get("global_stability", {})
        c = stab.get("contraction", {})
        first = r["robustness"][0]
        measure = f"{first.get('metric', 'accuracy')} {first['mean'][0]:.3f}"
        cond = f"{g['rate']:.3g} ({'holds' if g['satisfied'] else 'fails'})" if "rate" in g else "n/a"
        rate = f"{c['measured_rate']:.3g}" if "measured_rate" in c else "n/a"
        lines.append(f"| {r['run']} | {r.get('label', '')} | {measure} | {h['max_eigenvalue']:.4g} | "
                     f"{h['min_eigenvalue']:.3g} | {h['trace']:.4g} +- {h['trace_se']:.2g} | {h['loss']:.3f} | "
                     f"{cond} | {rate} |")
    return "\n".join(lines)


def analyze_command(args) -> int:
    """For each run: eigenvalues of A, W and of the Jacobian along a test trajectory over the
    stability regions (stability_regions.png), largest stable steps, the Lipschitz RNN's global
    stability condition and the measured contraction (contraction.png), the Hessian's extreme
    eigenvalues (Lanczos) and trace (Hutchinson) of the training loss on a training batch, and the
    test accuracy (mean squared error for regression) under input and parameter noise
    (robustness.png); written to analysis.json in RUN_DIR/analysis (or OUT/<run name>);
    summary.md / summary.json and robustness.png of all runs side by side in OUT.  Parts that do
    not apply to a run (stability of a discrete cell, the Lipschitz condition of a complex field,
    ...) are recorded as not applicable, with the reason."""
    from ..progress import Heartbeat
    from . import plots
    from .robustness import RobustnessCurve
    from .runs import load_run

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    places = {run_dir: Path(args.out) / Path(run_dir).name if args.out else Path(run_dir) / "analysis"
              for run_dir in args.run_dirs}
    for where in places.values():  # every output place checked before hours of analysis, not after
        _check_writable(where)
    results = []
    for run_dir in args.run_dirs:
        start = time.perf_counter()
        print(f"analysing {run_dir} ...", file=sys.stderr, flush=True)
        run = load_run(run_dir, args.checkpoint)
        torch.manual_seed(args.seed)
        where = places[run_dir]
        with Heartbeat(f"analyze {run.name}", HEARTBEAT) as beat:
            results.append(_analyze_one(run, args, where, beat))
        print(f"{run.name}: analysed in {time.perf_counter() - start:.1f} s -> {where}/analysis.json")
    out = Path(args.out or Path(args.run_dirs[0]) / "analysis")
    out.mkdir(parents=True, exist_ok=True)
    table = _summary_table(results)
    print(table)
    (out / "summary.md").write_text(table + "\n")
    _json(out / "summary.json", results)
    curves = {r["run"]: [RobustnessCurve(**c) for c in r["robustness"]] for r in results}
    metrics = {c.metric for cs in curves.values() for c in cs}
    plots.robustness_plot(curves, out / "robustness.png",
                          title=f"test {' / '.join(sorted(metrics))} under noise")
    return 0


def main(argv=None) -> int:
    """``python -m neuralode_rnn.analysis``: the same commands, with the same one-line errors."""
    from ..commandline import run_command

    parser = argparse.ArgumentParser(prog="python -m neuralode_rnn.analysis",
                                     description="Solver comparison and stability/robustness analysis.")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return run_command(parser, args, args.func)

