"""The ``neuralode-rnn`` command line: ``train``, ``evaluate``, ``list``.

    neuralode-rnn list [tasks|models|solvers]
    neuralode-rnn train --task digits --model lipschitz --method midpoint --run-dir runs/lip
    neuralode-rnn train --resume runs/lip                 # continue a stopped or killed run
    neuralode-rnn train --resume runs/lip --epochs 40     # extend a run
    neuralode-rnn evaluate runs/lip [--checkpoint last|previous|best] [--method rk4 --step-size 0.01]
    torchrun --nproc_per_node=2 -m neuralode_rnn.cli train ...   # data-parallel (DDP)

Errors are one line, ``neuralode-rnn COMMAND: error: ...``: exit status 2 for bad input (flags,
settings, files that are not what they should be), 1 for a run that could not go on (a busy run
directory, no usable checkpoint, a diverged loss, a solver that hit its limits).

Subcommands live in ``COMMANDS`` (name -> (add_arguments, run)); other modules add theirs with
:func:`register_command`, and ``neuralode_rnn.analysis.commands.register(subparsers)`` is called
when that module exists (its sub-parsers set ``_run`` or ``func`` via ``set_defaults``, a callable
``(args) -> exit code``).  Arguments are parsed only in :func:`main`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable

from .argtypes import nonnegative, output_file, positive, share, unit_interval
from .commandline import run_command

__all__ = ["COMMANDS", "build_parser", "device_name", "input_features", "main", "model_methods", "register_command", "run_command", "task_name"]

Command = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]
COMMANDS: dict[str, Command] = {}


def register_command(name: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                     run: Callable[[argparse.Namespace], int], help: str) -> None:
    """Add a subcommand: ``add_arguments(parser)`` declares its flags, ``run(args)`` returns the exit code."""
    COMMANDS[name] = (add_arguments, run, help)


# ------------------------------------------------------------------------------- train
def _add_train(p: argparse.ArgumentParser) -> None:
    import solvers

    from .data import TASKS
    from .paths import INTERPOLATIONS
    from .training import OPTIMIZERS, SCHEDULES, TASK_DEFAULTS
    from .training.recipes import DEFAULT_RECIPE_SOLVERS, RECIPES
    from .zoo import MODELS

    g = p.add_argument_group("task")
    g.add_argument("--task", type=task_name, default="digits", metavar="TASK",
                   help=f"task (default digits): {', '.join(sorted(TASKS))}, or uea:NAME, a UEA/UCR archive such as "
                        "uea:BasicMotions; see `list tasks`")
    g.add_argument("--permute", action="store_true", help="permuted variant (digits, mnist1d, mnist5k, fashion)")
    g.add_argument("--n-train", type=positive(int, "--n-train"), help="cap the training set (default: all)")
    g.add_argument("--n-test", type=positive(int, "--n-test"), help="cap the test set (default: all)")
    g.add_argument("--seq-len", type=positive(int, "--seq-len"),
                   help="T of the synthetic tasks (adding, copy; their default 100)")
    g.add_argument("--drop", type=share("--drop", "a share of observations"), default=0.0,
                   help="drop this share of each sample's observations: an irregularly sampled task (default 0)")
    g.add_argument("--drop-channels", type=share("--drop-channels", "a probability"), default=0.0,
                   metavar="P", help="mark each (sample, step, channel) value missing independently with "
                                     "probability P in [0, 1): missing values per channel (default 0)")
    g.add_argument("--inputs", type=input_features, metavar="FEATURES",
                   help="append time-aware input channels: a comma-separated subset of time, intensity "
                        "(observations so far per channel), mask (default: the values only)")

    g = p.add_argument_group("model")
    g.add_argument("--model", choices=list(MODELS), default="lipschitz",
                   help="model (default lipschitz); X-discrete is the discrete cell of X; see `list models`")
    g.add_argument("--hidden-size", type=positive(int, "--hidden-size"),
                   help="hidden units N (default: the preset, 64; the papers use 128 on MNIST)")
    g.add_argument("--method", choices=model_methods(), default=None,
                   help="solver of a continuous model, one-step scheme of a discrete cell (default: the preset of "
                        "the task and family, see `list presets`; without one rk4 for a continuous model under "
                        "--recipe cycle/random, else euler; midpoint is the Lipschitz RNN's RK2)")
    g.add_argument("--eps", type=positive(float, "--eps"),
                   help="time between samples (default: the preset of the task and family, see `list presets`; "
                        "without one the family's paper value: Lipschitz 0.03, Antisymmetric 0.1, unitary and CTRNN 1)")
    g.add_argument("--step-size", type=positive(float, "--step-size"),
                   help="fixed-step solvers: split each sample gap into steps no longer than this (scaled "
                        "time); default one step per gap")
    g.add_argument("--rtol", type=positive(float, "--rtol"), default=1e-3,
                   help="adaptive solvers' relative tolerance (default 1e-3: loose, enough for training)")
    g.add_argument("--atol", type=positive(float, "--atol"), default=1e-5,
                   help="adaptive solvers' absolute tolerance (default 1e-5)")
    g.add_argument("--gradient", choices=sorted(solvers.GRADIENT_MODES), default="backprop",
                   help="gradient mode of continuous models (default backprop: fastest; adjoint: memory flat in T, "
                        "approximate; reversible: exact, memory flat in T, with a reversible_<method>; "
                        "docs/GRADIENTS.md)")
    g.add_argument("--interpolation", choices=INTERPOLATIONS, default=None,
                   help="input path of continuous models (default hold: what a discrete RNN reads; ncde: natural)")
    g.add_argument("--beta", type=unit_interval("--beta"), help="Lipschitz beta (default 0.75, the paper's)")
    g.add_argument("--gamma", type=nonnegative("--gamma"),
                   help="Lipschitz gamma (default 0.001) / Antisymmetric diffusion (default 0.01)")
    g.add_argument("--noise-sigma", type=nonnegative("--noise-sigma"), default=0.0,
                   help="continuous real models: train as an SDE with this noise level (the Noisy RNN; "
                        "evaluated without noise); default 0, no noise")
    g.add_argument("--noise", choices=("additive", "multiplicative"), default="additive",
                   help="diffusion of --noise-sigma: sigma dB or sigma diag(h) dB (default additive)")

    g.add_argument("--init-std", type=positive(float, "--init-std"),
                   help="Lipschitz: M_A, M_W ~ N(0, (init_std/N)^2) at initialisation (default: the preset, 1)")
    g.add_argument("--stable-margin", type=positive(float, "--stable-margin"),
                   help="Lipschitz: a field contracting at rate >= this for every parameter value (default off)")
    g.add_argument("--recipe", choices=RECIPES, default=None,
                   help="training recipe of a continuous model (default: the preset, fixed; without one the "
                        "zoo's, cycle for continuous models, fixed for the others): fixed = the model's own solver; cycle/random = each batch with "
                        "the next/a random solver of --recipe-solvers, evaluated with --method; penalty = own "
                        "solver plus --penalty x a local-error estimate")
    g.add_argument("--recipe-solvers", metavar="LIST", type=_recipe_solvers_type,
                   help=f"cycle/random: method[:substeps] entries (default {DEFAULT_RECIPE_SOLVERS})")
    g.add_argument("--penalty", type=positive(float, "--penalty"),
                   help="recipe penalty: weight of the Heun-Euler local-error term (required with --recipe penalty)")

    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", choices=list(OPTIMIZERS), default="adam",
                   help="default adam (the Lipschitz RNN's); cayley steps the unitary W on the unitary group "
                        "(unitary models; Wisdom et al. 2016)")
    g.add_argument("--lr", type=positive(float, "--lr"),
                   help="learning rate (default: the preset, 0.003, the Lipschitz RNN's)")
    g.add_argument("--weight-decay", type=nonnegative("--weight-decay"), default=0.0)
    g.add_argument("--schedule", choices=SCHEDULES,
                   help="default step: lr x 0.1 after 90%% of the epochs (Lipschitz RNN reference); plateau: "
                        "ReduceLROnPlateau on the validation metric (needs --validation; ncde's default, the "
                        "reference's)")
    g.add_argument("--clip", type=positive(float, "--clip"), help="max gradient norm (default: no clipping)")
    epochs = ", ".join(f"{k} {v['epochs']}" for k, v in TASK_DEFAULTS.items() if ":" not in k) + \
        ", uea:NAME 30-50 (see `list tasks`)"
    g.add_argument("--epochs", type=positive(int, "--epochs"),
                   help=f"default: the preset of the task and family (`list presets`), else per task: {epochs}")
    g.add_argument("--batch-size", type=positive(int, "--batch-size"),
                   help="global batch (split across DDP ranks); default: the preset, else per task, 128 for the "
                        "MNIST-like ones")
    g.add_argument("--seed", type=int, default=0, help="seeds initialisation and shuffling (default 0)")
    g.add_argument("--validation", type=share("--validation"),
                   help="hold out this share of the training samples (fixed seeded choice) and report metrics "
                        "on them instead of the test split: for choosing settings (default 0: off; ncde: "
                        "15/85, the reference's 70/15/15 split)")

    # ---- issue 19: the references' protocol (Kidger et al.) and the MLP vector field's size
    g = p.add_argument_group("protocol (with --validation: early stopping, plateau schedule, best weights on test)")
    g.add_argument("--patience", type=positive(int, "--patience"),
                   help="stop after this many epochs without a better validation metric (--epochs is the cap); "
                        "needs --validation (default: off; ncde: 50, the reference's).  A run with --validation ends by restoring its best validation "
                        "epoch's weights and scoring them on the test split (printed, summary.json)")
    g.add_argument("--plateau-factor", type=positive(float, "--plateau-factor"), default=0.1,
                   help="--schedule plateau: lr multiplier (default 0.1, torch's)")
    g.add_argument("--plateau-patience", type=positive(int, "--plateau-patience"),
                   help="--schedule plateau: epochs (readings, with --validate-every) without improvement "
                        "before lr is cut (default 10, torch's; ncde: 1 reading of 10 epochs, the reference's)")
    g.add_argument("--validate-every", type=positive(int, "--validate-every"),
                   help="the best weights, --patience and --schedule plateau read the validation metric of "
                        "epochs 1, 1+N, 1+2N, ... and the last only; --plateau-patience then counts those "
                        "readings (default 1; ncde: 10, the reference's)")
    g.add_argument("--tie-break", choices=("none", "loss"), default="none",
                   help="loss: keep, of the epochs with the best validation accuracy, the one with the lowest "
                        "validation loss, for small validation splits (default none: the first, the reference's "
                        "rule); early stopping reads the accuracy either way")
    g.add_argument("--stop-on", choices=("validation", "training"),
                   help="what --patience counts: validation, epochs without a better validation metric "
                        "(default); training, the reference's rule: stop at a reading more than --patience "
                        "epochs after the last lower training loss or higher training accuracy, so a model "
                        "that still fits its training data is never stopped (ncde's default, 50 epochs)")
    g.add_argument("--weight-penalty", type=nonnegative("--weight-penalty"),
                   help="add this x the sum of the parameters' L2 norms to the loss (Kidger et al.'s 0.03; "
                        "ncde: its vector field's); default 0.03 for ncde, else 0")
    g.add_argument("--field-width", type=positive(int, "--field-width"),
                   help="width of the MLP vector field of ncde (default 32) and ode-rnn (default its hidden size)")
    g.add_argument("--field-depth", type=positive(int, "--field-depth"),
                   help="hidden layers of the ncde vector field (default 3, the reference's)")

    g = p.add_argument_group("run")
    g.add_argument("--run-dir", help="where config.json, metrics.csv, checkpoints and curves.png go "
                                     "(default: nothing is written)")
    g.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its last good checkpoint, with its stored config; "
                        "with --epochs N, extend it to N epochs")
    g.add_argument("--fresh", action="store_true",
                   help="with --run-dir: start again from epoch 1 in a run directory that already holds a run "
                        "(replaces it; refused with --resume)")
    g.add_argument("--stop-after", type=positive(int, "--stop-after"),
                   help="run at most this many epochs now, then exit (continue later with --resume)")
    g.add_argument("--threads", type=positive(int, "--threads"),
                   help="torch threads (default: torch's choice, which follows OMP_NUM_THREADS)")
    g.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    g.add_argument("--device", type=device_name, default="auto",
                   help="cpu, cuda, cuda:N, or auto (default: CUDA when available, else cpu); the device used is "
                        "printed and recorded in config.json")
    g.add_argument("--memory-limit", type=positive(float, "--memory-limit"), metavar="GB",
                   help="refuse the run when its estimated peak memory exceeds GB (default: the memory available "
                        "now, MemAvailable)")
    g.add_argument("--no-memory-check", action="store_true",
                   help="start even when the memory estimate exceeds the limit")
    g.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")


def model_methods() -> list[str]:
    """``--method`` choices: the solvers a model of the zoo accepts (``ContinuousRNN`` takes the
    Runge-Kutta tableaux of ``solvers.TABLEAUX``, fixed and adaptive, and their reversible versions;
    a discrete cell the fixed ones), not every name of ``solvers.METHODS`` (the Adams methods and
    scipy_solver are odeint's)."""
    import solvers
    from solvers.tableaux import REVERSIBLE_TABLEAUX

    return sorted(solvers.TABLEAUX) + sorted(REVERSIBLE_TABLEAUX)


def device_name(text: str) -> str:
    """``--device``: auto, cpu, cuda or cuda:N, checked against this machine when the flag is parsed."""
    from .distributed import resolve_device

    try:
        resolve_device(text, name="--device")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _recipe_solvers_type(text: str) -> str:
    """--recipe-solvers: checked when parsed, so a bad entry names the flag."""
    from .training.recipes import parse_recipe_solvers

    try:
        parse_recipe_solvers(text, "--recipe-solvers")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def task_name(text: str) -> str:
    """``--task``: a name in ``data.TASKS`` or ``PREFIX:NAME`` (``uea:BasicMotions``); the loader
    says which archives exist when the name is not found."""
    from .data import PREFIXES, TASKS

    prefix, sep, rest = text.partition(":")
    if text in TASKS or (sep and prefix in PREFIXES and rest):
        return text
    raise argparse.ArgumentTypeError(
        f"--task expects one of {', '.join(sorted(TASKS))} or {', '.join(p + ':NAME' for p in PREFIXES)} (e.g. "
        f"uea:BasicMotions; `neuralode-rnn list tasks` lists the archives found offline); got {text!r}")


def input_features(text: str) -> str:
    """``--inputs``: a comma-separated subset of ``inputs.FEATURES``, returned in canonical order."""
    from .inputs import FEATURES, parse_features

    try:
        names = parse_features(text)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not names:
        raise argparse.ArgumentTypeError(f"--inputs expects a comma-separated subset of {', '.join(FEATURES)}; "
                                         f"got {text!r}")
    return ",".join(names)


def _train_config(args: argparse.Namespace):
    from .training import TrainConfig

    options = {}
    if args.permute:
        options["permute"] = True
    for flag, key in (("n_train", "n_train"), ("n_test", "n_test"), ("seq_len", "T")):
        if getattr(args, flag) is not None:
            options[key] = getattr(args, flag)
    return TrainConfig(
        task=args.task, model=args.model, task_options=options, drop=args.drop, drop_channels=args.drop_channels,
        inputs=args.inputs, hidden_size=args.hidden_size,
        method=args.method, eps=args.eps, step_size=args.step_size, rtol=args.rtol, atol=args.atol,
        gradient=args.gradient, interpolation=args.interpolation, beta=args.beta, gamma=args.gamma,
        noise_sigma=args.noise_sigma, noise=args.noise, stable_margin=args.stable_margin, init_std=args.init_std, recipe=args.recipe,
        recipe_solvers=args.recipe_solvers, penalty=args.penalty or 0.0,
        optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay, schedule=args.schedule,
        clip=args.clip, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
        validation=args.validation,
        patience=args.patience, plateau_factor=args.plateau_factor, plateau_patience=args.plateau_patience,
        validate_every=args.validate_every,
        tie_break=args.tie_break, stop_on=args.stop_on,
        weight_penalty=args.weight_penalty, field_width=args.field_width, field_depth=args.field_depth,
        run_dir=args.resume or args.run_dir, resume=args.resume is not None, fresh=args.fresh,
        stop_after=args.stop_after, quiet=args.quiet, threads=args.threads, dtype=args.dtype, device=args.device,
        memory_limit=math.inf if args.no_memory_check else args.memory_limit)


def _refuse_contradictions(args: argparse.Namespace) -> None:
    """Flags that contradict ``--resume`` (which continues a run with its stored settings), refused
    before anything is read or written: ``--fresh`` (start again, replacing the run) and a
    ``--run-dir`` naming another directory.  Changed run settings are refused by
    ``TrainConfig.continued`` (it knows the stored values)."""
    if args.resume is None:
        return
    if args.fresh:
        raise ValueError(f"--resume {args.resume} continues the run there, --fresh replaces it: pass one of them "
                         f"(to start again, `train --run-dir {args.resume} --fresh` with the run's settings)")
    if args.run_dir is not None and os.path.abspath(args.run_dir) != os.path.abspath(args.resume):
        raise ValueError(f"--resume {args.resume} and --run-dir {args.run_dir} name different runs; pass only --resume")


def _run_train(args: argparse.Namespace) -> int:
    from .distributed import init_from_env, shutdown
    from .training import train

    _refuse_contradictions(args)
    config = _train_config(args)
    if args.no_memory_check and args.memory_limit is not None:
        raise ValueError(f"--memory-limit {args.memory_limit:g} and --no-memory-check contradict: pass one of them")
    env = init_from_env(device=args.device)
    try:
        result = train(config, env=env)
    finally:
        shutdown(env)
    if env.is_main and not args.quiet:
        last = result.rows[-1] if result.rows else {}
        acc = last.get("test_accuracy")
        on = last.get("evaluated_on", "test")
        # the run's own config: with --resume the flags' defaults say nothing about the run
        print(f"{result.status}: {result.config.label}, {result.parameters} parameters"
              + (f", {on} accuracy {acc:.4f}" if acc is not None else
                 f", {on} loss {last['test_loss']:.4g}" if last else "")
              + f", on {result.config.device}"
              + (f", run directory {result.run_dir}" if result.run_dir else ""))
    return 0


# ------------------------------------------------------------------------------- evaluate
def _add_evaluate(p: argparse.ArgumentParser) -> None:

    p.add_argument("run_dir", help="a run directory written by `train --run-dir`")
    p.add_argument("--checkpoint", choices=("last", "previous", "best"), default="last",
                   help="which checkpoint (default last: falls back to previous.pt if last.pt is damaged; best "
                        "only for a run trained with --validation, chosen on its validation split)")
    p.add_argument("--method", choices=model_methods(),
                   help="evaluate a continuous model with another solver (default: the training one)")
    p.add_argument("--step-size", type=positive(float, "--step-size"),
                   help="fixed-step solvers: the step (default: the run's; with an adaptive --method, none)")
    p.add_argument("--rtol", type=positive(float, "--rtol"))
    p.add_argument("--atol", type=positive(float, "--atol"))
    p.add_argument("--batch-size", type=positive(int, "--batch-size"), help="default: the run's eval batch size")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--device", type=device_name, default="auto",
                   help="cpu, cuda, cuda:N, or auto (default: CUDA when available, else cpu)")
    p.add_argument("--robustness", action=argparse.BooleanOptionalAction, default=True,
                   help="continuous classifiers: also the solver-robustness score (accuracy of the same weights "
                        "under euler h/4, midpoint h, rk4 h, dopri5 rtol 1e-6, and the largest drop; default on)")
    p.add_argument("--out", metavar="FILE", type=output_file("--out"),
                   help="also write the results as JSON to FILE (its directory must exist)")


def _run_evaluate(args: argparse.Namespace) -> int:
    import time

    import solvers

    from .progress import Heartbeat
    from .training import TrainConfig, evaluate, load_run
    from .training.budget import check_step_count
    from .zoo import count_parameters

    overrides = {k: getattr(args, k) for k in ("method", "step_size", "rtol", "atol") if getattr(args, k) is not None}
    if args.method is not None and solvers.METHODS[args.method].kind != "fixed" and args.step_size is None:
        overrides["step_size"] = None  # the run's fixed step does not apply to an adaptive solver
    if args.method is not None and solvers.METHODS[args.method].kind == "fixed":
        # a fixed-step solver reads no tolerances: the run's (adaptive) ones go back to the defaults
        overrides.setdefault("rtol", TrainConfig.rtol)
        overrides.setdefault("atol", TrainConfig.atol)
    from .distributed import resolve_device

    device = resolve_device(args.device, name="--device")
    config, model, data = load_run(args.run_dir, args.checkpoint, **overrides)
    model = model.to(device)
    split = getattr(data, args.split)
    check_step_count(config, split.values.shape[1], split.times)  # before the evaluation, not after its limit
    batch_size = args.batch_size or config.eval_batch_size
    what = f"{config.label}, {args.split} split"
    t0 = time.perf_counter()
    with Heartbeat(f"evaluate {args.run_dir}") as beat:
        beat.update(f"evaluating {what}")

        def progress(done: int, total: int) -> None:
            beat.update(f"evaluating {what}: batch {done + 1}/{total}" if done < total else "finishing")

        out = evaluate(model, split, data.kind, config.eps, batch_size, device=device,
                       dtype=getattr(__import__("torch"), config.dtype), progress=progress)
        seconds = time.perf_counter() - t0
        acc = "" if out["accuracy"] is None else f" accuracy {out['accuracy']:.4f}"
        print(f"{config.label}, {args.split}: loss {out['loss']:.4f}{acc} nfe/batch {out['nfe']:.0f} "
              f"parameters {count_parameters(model)} {seconds:.1f}s")
        result = {"run_dir": args.run_dir, "checkpoint": args.checkpoint, "split": args.split, "device": device,
                  "config": config.to_dict(), "seconds": seconds, **out}
        if args.robustness:
            result["robustness"] = _robustness(model, config, data, split, beat, device)
    if args.out:
        import json

        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return 0


def _robustness(model, config, data, split, beat, device: str = "cpu") -> dict:
    """The solver-robustness score of a continuous classifier on ``split`` (printed), or why not."""
    from .analysis.solver_robustness import format_robustness, solver_robustness
    from .training import model_times
    from .zoo import is_continuous

    if not is_continuous(model) or data.kind != "classification":
        why = ("a discrete model has no solver to change" if not is_continuous(model)
               else f"the score is defined for classification (one label per sequence); this is a {data.kind} task")
        print(f"solver robustness: not applicable ({why})")
        return {"not_applicable": why}
    import torch

    beat.update("solver robustness: the same weights under euler h/4, midpoint, rk4, dopri5")
    values = split.values.to(device=device, dtype=getattr(torch, config.dtype))
    times = None if split.times is None else split.times.to(device)
    with torch.no_grad():
        r = solver_robustness(model.eval(), values, model_times(model, values, times, config.eps),
                              split.targets.to(device))
    print(format_robustness(r))
    return r.as_dict()


# ------------------------------------------------------------------------------- list
def _add_list(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", nargs="?", choices=("tasks", "models", "solvers", "presets", "all"), default="all")


def _run_list(args: argparse.Namespace) -> int:
    import solvers

    from .data import TASKS, uea_datasets
    from .training import task_defaults
    from .zoo import MODELS

    if args.what in ("tasks", "all"):
        print("tasks (epochs and batch where no preset sets them, see `list presets`):")
        rows = [(name, (TASKS[name].__doc__ or "").strip().splitlines()[0]) for name in sorted(TASKS)]
        rows += [(f"uea:{name}", "UEA/UCR archive (sktime's bundled .ts files)") for name in uea_datasets()]
        width = max(len(name) for name, _ in rows)
        for name, doc in rows:
            d = task_defaults(name)
            print(f"  {name:<{width}} epochs {d['epochs']:>3}, batch {d['batch_size']:>3}  {doc}")
    if args.what in ("models", "all"):
        print("models:")
        for name, spec in MODELS.items():
            eps = "" if spec.eps is None else f"eps {spec.eps:g}"
            print(f"  {name:<30} {spec.kind:<10} {eps:<9} {spec.description}")
    if args.what in ("presets", "all"):
        _list_presets()
    if args.what in ("solvers", "all"):
        print("solvers (--method):")
        for name in sorted(solvers.METHODS):
            m = solvers.METHODS[name]
            print(f"  {name:<18} order {m.order if m.order is not None else '?'}, stages "
                  f"{m.stages if m.stages is not None else '?'}, {m.kind}, {m.backend}")
    return 0


def _list_presets() -> None:
    """``list presets``: the settings ``train`` uses for every flag not given (``data.presets``)."""
    from .data.presets import FAMILY_DEFAULTS, PRESET_KEYS, PRESETS

    print("presets (train's defaults per task and family; an explicit flag wins; `--task T --permute` is T-permuted):")
    rows = [(task, family, p) for (task, family), p in PRESETS.items()]
    rows += [("(other tasks)", family, p) for family, p in FAMILY_DEFAULTS.items()]
    for task, family, p in rows:
        settings = " ".join(f"{k.replace('_', '-')} {p.settings[k]:g}" if isinstance(p.settings[k], float)
                            else f"{k.replace('_', '-')} {p.settings[k]}" for k in PRESET_KEYS if k in p.settings)
        ref = "" if p.reference is None else f" ({p.reference:.1f}% test)"
        print(f"  {task:<16} {family:<20} {settings}  [{p.source}{ref}]")


register_command("train", _add_train, _run_train, "train a model on a task")
register_command("evaluate", _add_evaluate, _run_evaluate, "evaluate a trained run")
register_command("list", _add_list, _run_list, "list tasks, models and solvers")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuralode-rnn",
        description="Recurrent networks as continuous-time dynamical systems: train, evaluate, list.")
    from ._version import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add_arguments, run, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(_run=run)
    try:
        from .analysis import commands as analysis_commands
    except ImportError:
        analysis_commands = None
    if analysis_commands is not None and hasattr(analysis_commands, "register"):
        analysis_commands.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``neuralode-rnn``; returns the exit code (0 on success); errors as in
    :func:`neuralode_rnn.commandline.run_command`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # our commands set _run; registered analysis commands may use argparse's usual `func`
    run = getattr(args, "_run", None) or getattr(args, "func", None)
    if run is None:
        parser.error(f"command {args.command!r} has no handler (set_defaults(_run=...) when registering it)")
    return run_command(parser, args, run)


if __name__ == "__main__":
    sys.exit(main())
