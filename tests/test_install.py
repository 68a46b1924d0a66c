"""What a user who installs only the base dependencies and the extras the README names can run."""

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parent.parent


def requirement_name(requirement: str) -> str:
    """'torch>=2.1,<2.15' -> 'torch' (normalised as in PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)).lower()


def optional_import_names() -> list[str]:
    """Top-level import names of the packages only an extra (dev, data) installs: every requirement of
    an extra that is neither a base dependency nor required by an installed base dependency (scipy
    comes with torchdiffeq and scikit-learn, so it is there whatever the extras)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {requirement_name(r) for r in project["dependencies"]}
    always = set(base)
    for name in base:
        try:
            always |= {requirement_name(r) for r in importlib.metadata.requires(name) or ()
                       if "extra ==" not in r}
        except importlib.metadata.PackageNotFoundError:
            pass
    extras = {requirement_name(r) for group in project["optional-dependencies"].values() for r in group}
    by_distribution: dict[str, set[str]] = {}
    for module, distributions in importlib.metadata.packages_distributions().items():
        for dist in distributions:
            by_distribution.setdefault(requirement_name(dist), set()).add(module)
    names = set()
    for dist in extras - always:
        names |= by_distribution.get(dist, {dist.replace("-", "_")})
    return sorted(names)


BLOCKER = """
import sys
for name in {names!r}:
    sys.modules[name] = None   # as if not installed: import fails, importlib.util.find_spec gives None
"""


def run_blocked(code: str, names: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", BLOCKER.format(names=names) + code], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)


def test_optional_packages_are_the_ones_the_readme_extras_add():
    names = optional_import_names()
    # the dev and data extras' own packages; torchcde is a base dependency (the CLI lists ncde)
    assert {"pytest", "hypothesis", "sktime", "mnist1d", "mlxtend"} <= set(names)
    assert "torchcde" not in names and "torch" not in names and "sklearn" not in names


def test_package_help_and_list_work_without_the_optional_packages():
    """Edge (issue 16 item 1): `pip install -e ".[data]"` then the main job or `neuralode-rnn --help`
    died with ModuleNotFoundError: torchcde, imported at import time by baselines/ncde.py while it
    was only in the dev extra.  Here every dev/data-only package, and torchcde too, is unimportable:
    every module of neuralode_rnn and solvers still imports, and --help and list run."""
    names = optional_import_names() + ["torchcde"]
    code = """
import contextlib, importlib, io, pkgutil
import neuralode_rnn, solvers
assert neuralode_rnn.__file__.startswith({root!r}), neuralode_rnn.__file__
for package in (neuralode_rnn, solvers):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
from neuralode_rnn.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0, exc.code
    assert main(["list"]) == 0
print(out.getvalue())
from neuralode_rnn.baselines import NeuralCDE
try:
    NeuralCDE(2, 4, 3)
except ImportError as exc:
    print("NCDE:", exc)
""".format(root=str(ROOT))
    proc = run_blocked(code, names)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "usage: neuralode-rnn" in proc.stdout and "compare-solvers" in proc.stdout
    assert "lipschitz" in proc.stdout and "digits" in proc.stdout  # list's models and tasks
    # the one model that needs torchcde says so when built, not when the package is imported
    assert "NCDE: the Neural CDE baseline (model 'ncde') needs torchcde" in proc.stdout
    # the blocker works: a blocked package really is unimportable in that process
    probe = run_blocked("import sktime", names)
    assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr
