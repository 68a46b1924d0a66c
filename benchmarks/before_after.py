"""The batch sweep of this checkout against another commit, in one process, rows interleaved.

    PYTHONPATH=. python benchmarks/before_after.py BASE [--repeats 9] [--out before_after.json]

BASE (a commit of this repository) is exported with ``git archive`` to a temporary directory and its
packages are renamed (``solvers`` -> ``solvers_base``, ``neuralode_rnn`` -> ``neuralode_rnn_base``, their
imports rewritten) so both versions load side by side; every shape's rows (this checkout's row,
BASE's row and the peers: the three-op hand loop, torch.nn.GRU, the plain complex loop) then run in
turn, ``repeats`` rounds (``--others``: the rows that must not regress too), and the medians of CPU time (``time.process_time``: on a machine shared with
other jobs it moves far less than wall time) and of wall time are reported, ratios within one shape.
Rows as in ``benchmarks/run.py`` (its builders, run once with BASE's packages).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RENAMES = (("solvers", "solvers_base"), ("neuralode_rnn", "neuralode_rnn_base"))


def export_base(commit: str, into: Path) -> None:
    """BASE's two packages under their new names in ``into``, imports rewritten."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "solvers", "neuralode_rnn"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    for old, new in RENAMES:
        (into / old).rename(into / new)
    for path in into.rglob("*.py"):
        text = path.read_text()
        for old, new in RENAMES:
            text = re.sub(rf"^(\s*)import {old}\.(\w+) as", rf"\1import {new}.\2 as", text, flags=re.M)
            text = re.sub(rf"^(\s*)import {old}\b", rf"\1import {new} as {old}", text, flags=re.M)
            text = re.sub(rf"\bfrom {old}\b", f"from {new}", text)
        path.write_text(text)


def load_rows(name: str, nr, solvers):
    """benchmarks/run.py as a module whose rows build with the given packages."""
    spec = importlib.util.spec_from_file_location(name, HERE / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.nr, module.solvers = nr, solvers
    module.modrelu = nr.modrelu  # the plain complex loop calls the given package's modrelu
    return module


def main(base: str, repeats: int, out: Path, others: bool = False, kinds: tuple[str, ...] = ("lipschitz", "unitary")) -> dict:
    import neuralode_rnn
    import solvers

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="before_after_"))
    export_base(base, tmp)
    sys.path.insert(0, str(tmp))
    import neuralode_rnn_base
    import solvers_base

    now, then = load_rows("run_now", neuralode_rnn, solvers), load_rows("run_base", neuralode_rnn_base, solvers_base)
    plan = []
    for B, T in now.SUITES["batch"]["shapes"]["lipschitz"] if "lipschitz" in kinds else ():
        plan.append((B, T, {"this checkout: Euler fast path": now.batch_rows("lipschitz")[now.EULER],
                            f"{base}: Euler fast path": then.batch_rows("lipschitz")[now.EULER],
                            now.THREE: now.batch_rows("lipschitz")[now.THREE], "torch.nn.GRU": now._torch_rnn("gru")}))
    for B, T in now.SUITES["batch"]["shapes"]["unitary"] if "unitary" in kinds else ():
        # the plain loop calls the library's modrelu: BASE's loop too, so a change of modrelu shows in both
        plan.append((B, T, {"this checkout: uRNN": now._unitary_library, f"{base}: uRNN": then._unitary_library,
                            now.UNITARY_LOOP: now._unitary_loop, f"{base}: {now.UNITARY_LOOP}": then._unitary_loop}))
    if others:
        for B in (8, 128):
            rows = {}
            for name, args in [("euler", ("lipschitz", "euler", "backprop")),
                               ("midpoint", ("lipschitz", "midpoint", "backprop")),
                               ("rk4", ("lipschitz", "rk4", "backprop")), ("euler adjoint", ("lipschitz", "euler", "adjoint")),
                               ("euler checkpoint", ("lipschitz", "euler", "checkpoint")),
                               ("antisymmetric euler", ("antisymmetric", "euler", "backprop"))]:
                rows[f"this checkout: {name}"] = now._library(*args)
                rows[f"{base}: {name}"] = then._library(*args)
            rows["this checkout: euler inference"] = now._library("lipschitz", "euler", "backprop", inference=True)
            rows[f"{base}: euler inference"] = then._library("lipschitz", "euler", "backprop", inference=True)
            plan.append((B, 196, rows))
        rows = {}
        for name, gradient in (("dopri5 hold", "backprop"), ("dopri5 adjoint hold", "adjoint")):
            rows[f"this checkout: {name}"] = now._library("lipschitz", "dopri5", gradient)
            rows[f"{base}: {name}"] = then._library("lipschitz", "dopri5", gradient)
        plan.append((64, 100, rows))
    res = {"base": base, "cpu": solvers.kernels.cpu_model(), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "kernel": solvers.tanh_kernel(torch.float32), "repeats": repeats, "shapes": {}}
    for B, T, builders in plan:
        s = dict(now.SUITES["batch"], B=B)
        runs = {k: build(s, T) for k, build in builders.items()}
        for run in runs.values():
            run()
        cpu: dict[str, list[float]] = {k: [] for k in runs}
        wall: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(repeats):
            for k, run in runs.items():
                c0, w0 = time.process_time(), time.perf_counter()
                run()
                cpu[k].append(time.process_time() - c0)
                wall[k].append(time.perf_counter() - w0)
        label = now.shape_label(B, T)
        res["shapes"][label] = {"cpu_ms": {k: statistics.median(v) * 1e3 for k, v in cpu.items()},
                                "wall_ms": {k: statistics.median(v) * 1e3 for k, v in wall.items()}}
        out.write_text(json.dumps(res, indent=1))  # after every shape: a partial run keeps what it measured
        print(label, {k: round(v, 1) for k, v in res["shapes"][label]["cpu_ms"].items()}, flush=True)
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base", help="the commit to compare against (e.g. main, a hash)")
    ap.add_argument("--repeats", type=int, default=9, help="interleaved rounds (medians reported)")
    ap.add_argument("--others", action="store_true",
                    help="also midpoint, RK4, the adjoint, checkpoint, the antisymmetric field and inference at B = 8 "
                         "and 128 (T = 196), dopri5 backprop and adjoint at B = 64 (T = 100): the rows that must not regress")
    ap.add_argument("--out", type=Path, default=Path("before_after.json"), help="where the medians go (JSON)")
    ap.add_argument("--kinds", default="lipschitz,unitary",
                    help="the batch sweep's shapes to time: a comma-separated subset of lipschitz, unitary")
    args = ap.parse_args()
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    if not kinds or set(kinds) - {"lipschitz", "unitary"}:
        raise SystemExit(f"--kinds: expected a comma-separated subset of lipschitz, unitary; got {args.kinds!r}")
    if args.repeats < 5:
        raise SystemExit(f"--repeats must be at least 5 (medians of >= 5); got {args.repeats}")
    main(args.base, args.repeats, args.out, args.others, kinds)
