"""benchmarks/run.py's goals table reads every shape of the batch sweep (no timing here: synthetic
medians, so the test checks what is compared with what and against which target)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run_module():
    spec = importlib.util.spec_from_file_location("benchmarks_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_batch_sweep_goals_read_each_shape():
    run = _run_module()
    med, shape = {}, {}
    for B, euler, three in ((8, 1.1, 1.0), (32, 0.9, 1.0), (64, 1.05, 1.0), (128, 2.0, 2.1)):
        label = run.shape_label(B, 400)
        med[label] = {run.EULER: euler, run.THREE: three, "torch.nn.GRU": 5.0}
        shape[label] = (B, 400)
    for B, ours, loop in ((8, 0.99, 1.0), (20, 1.2, 1.0)):
        label = run.shape_label(B, 200)
        med[label] = {run.UNITARY: ours, run.UNITARY_LOOP: loop}
        shape[label] = (B, 200)
    goals = run.goals({"batch": {"med": med, "shape": shape}})
    got = {label: (target, reached, ok) for label, target, reached, ok in goals}
    assert len(got) == 6
    assert got["Euler fast path / three-op hand loop (batch sweep, B=8 T=400)"] == ("<= 1.2", "1.10", True)
    assert got["Euler fast path / three-op hand loop (batch sweep, B=32 T=400)"] == ("<= 1.0", "0.90", True)
    assert got["Euler fast path / three-op hand loop (batch sweep, B=64 T=400)"] == ("<= 1.0", "1.05", False)
    assert got["Euler fast path / three-op hand loop (batch sweep, B=128 T=400)"] == ("<= 1.0", "0.95", True)
    assert got["unitary Euler (step 1) / plain complex loop (batch sweep, B=8 T=200)"] == ("<= 1.0", "0.99", True)
    assert got["unitary Euler (step 1) / plain complex loop (batch sweep, B=20 T=200)"] == ("<= 1.0", "1.20", False)
    table = "\n".join(run._batch_table({"med": med}))
    assert "| B=8 T=400 | lipschitz euler backprop | 1,100.0 | 1.10 |  |" in table


def test_batch_sweep_shapes_are_the_issues():
    s = _run_module().SUITES["batch"]
    assert s["shapes"] == {"lipschitz": [(8, 400), (32, 400), (64, 400), (128, 400)],
                           "unitary": [(8, 200), (20, 200)]}


def test_fixed_suite_reads_the_reversible_goals():
    """Issue 18's two goals from the fixed suite's reversible rows (synthetic medians and peaks)."""
    run = _run_module()
    rows = run.rows("fixed", False)
    assert {run.REV, run.REV_BP} <= set(rows)
    med = {r: 1.0 for r in rows}
    med[run.REV] = 2.5
    mem = {98: {r: 1.0 for r in rows}, 784: {**{r: 2.0 for r in rows}, run.REV: 1.2}}
    got = {label: (target, reached, ok) for label, target, reached, ok in
           run.goals({"fixed": {"med": {784: med}, "mem": mem}})}
    assert got["reversible_midpoint: reversible / backprop of the same solve (fixed, T=784)"] == ("<= 2.0", "2.50", False)
    assert got["reversible_midpoint reversible peak memory T=784 / T=98"] == ("<= 1.3", "1.20", True)
