"""neuralode_rnn.analysis: stable steps, the Lipschitz condition and contraction, Hessian tools,
robustness curves, the solver comparison, and the two commands end to end."""

import json
import math

import numpy as np
import pytest
import torch

import neuralode_rnn as nr
import solvers
from neuralode_rnn.analysis import (
    HessianOperator,
    compare_solvers,
    dense_hessian,
    hutchinson_trace,
    lanczos,
    lipschitz_stability_condition,
    max_stable_steps,
    measure_contraction,
    parameter_noise_curve,
    power_iteration,
)
from neuralode_rnn.analysis.hessian import MatrixOperator, classification_loss
from neuralode_rnn.analysis.robustness import accuracy

D64 = torch.float64


# ----------------------------------------------------------------------------- stable steps
def _real_axis_bound(poly):
    """Largest x with |R(-x)| <= 1 on [0, x], by a scan and bisection (independent of solvers)."""
    xs = np.linspace(1e-6, 10, 100001)
    bad = np.flatnonzero(np.abs(poly(-xs)) > 1 + 1e-12)
    lo, hi = xs[bad[0] - 1], xs[bad[0]]
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if abs(poly(-mid)) <= 1 else (lo, mid)
    return lo


def test_max_stable_step_on_a_diagonal_system_is_analytic():
    a = np.array([0.5, 3.0, 8.0])
    assert solvers.max_stable_step("euler", -a) == pytest.approx(2 / a.max(), rel=1e-9)
    rk4 = _real_axis_bound(lambda z: 1 + z + z ** 2 / 2 + z ** 3 / 6 + z ** 4 / 24)
    assert rk4 == pytest.approx(2.785293563, rel=1e-8)
    steps = max_stable_steps(-a, ["euler", "rk4"])
    assert steps["rk4"] == pytest.approx(rk4 / a.max(), rel=1e-8)
    # and it is the step where y' = -a y stops decaying under the method
    y0 = torch.ones(1, 3, dtype=D64)

    def f(t, y):
        return -torch.as_tensor(a) * y

    for method, h in steps.items():
        t = torch.tensor([0.0, 60 * h], dtype=D64)
        below = solvers.odeint(f, y0, t, method=method, step_size=0.99 * h)[-1].abs().max()
        above = solvers.odeint(f, y0, t, method=method, step_size=h * 60 / 59.0 * 1.02)[-1].abs().max()
        assert below < 1 < above


# ----------------------------------------------------------------------------- Lipschitz condition
def _lipschitz(gamma_A, w_scale, n=6, seed=0):
    torch.manual_seed(seed)
    f = nr.LipschitzField(2, n, beta=0.75, gamma_A=gamma_A, gamma_W=0.0).double()
    with torch.no_grad():
        f.M_W.mul_(w_scale)
    return f


def test_condition_holds_and_trajectories_contract_at_the_predicted_rate():
    f = _lipschitz(gamma_A=2.0, w_scale=1.5)
    cond = lipschitz_stability_condition(f)
    assert cond.satisfied and cond.rate < 0
    assert cond.norm_W > 0.5  # the nonlinearity matters, it is not only A
    values = torch.randn(4, 30, 2, dtype=D64)
    c = measure_contraction(f, values, 0.2 * torch.arange(1, 31, dtype=D64), scale=3.0)
    assert c.bound_holds
    assert c.measured_rate >= c.predicted_rate > 0
    assert c.distance[-1] < 0.1


def test_condition_fails_for_an_expanding_parameter_set():
    f = _lipschitz(gamma_A=-0.5, w_scale=5.0)  # A_sym has a positive eigenvalue
    cond = lipschitz_stability_condition(f)
    assert not cond.satisfied and cond.rate > 0
    assert not lipschitz_stability_condition(nr.AntisymmetricField(1, 4).double()).satisfied  # A = 0
    with pytest.raises(ValueError, match="not of the form"):
        lipschitz_stability_condition(nr.AntisymmetricField(1, 4, gated=True))
    with pytest.raises(ValueError, match="complex"):
        lipschitz_stability_condition(nr.UnitaryField(1, 4))


# ----------------------------------------------------------------------------- Hessian
def _small_problem(hidden=3, T=5, B=6, classes=3):
    torch.manual_seed(0)
    model = nr.ContinuousRNN(nr.LipschitzField(1, hidden), classes, step_size=0.5).double()
    values = torch.randn(B, T, 1, dtype=D64)
    targets = torch.randint(0, classes, (B,))
    return model, classification_loss(model, values, None, targets)


def test_hvp_equals_finite_differences_of_the_gradient():
    model, loss = _small_problem()
    params = list(model.parameters())
    op = HessianOperator(loss, params)
    v = torch.randn(op.size, dtype=D64)
    hv = op(v)

    def grad_at(shift):
        with torch.no_grad():
            start = 0
            for p in params:
                p.add_(shift[start:start + p.numel()].view_as(p))
                start += p.numel()
        g = torch.cat([x.reshape(-1) for x in torch.autograd.grad(loss(), params)])
        with torch.no_grad():
            start = 0
            for p in params:
                p.sub_(shift[start:start + p.numel()].view_as(p))
                start += p.numel()
        return g

    eps = 1e-5
    fd = (grad_at(eps * v) - grad_at(-eps * v)) / (2 * eps)
    torch.testing.assert_close(hv, fd, rtol=1e-6, atol=1e-6 * float(hv.abs().max()))


def test_hutchinson_trace_within_five_percent_and_lanczos_finds_the_extremes():
    model, loss = _small_problem()
    op = HessianOperator(loss, list(model.parameters()))
    H = dense_hessian(op)
    exact = float(torch.trace(H))
    eig = torch.linalg.eigvalsh(H)
    # Rademacher Hutchinson has variance 2 sum_{i != j} H_ij^2 per probe: for this Hessian about
    # 10^4 probes make 5% a 3-sigma event.  They run on the exact Hessian (MatrixOperator, cheap);
    # through the HVP path 60 probes must land within 4 of their own standard errors.
    var = 2 * float(H.pow(2).sum() - H.diag().pow(2).sum())
    probes = math.ceil(9 * var / (0.05 * exact) ** 2)
    est, se = hutchinson_trace(MatrixOperator(H), probes=probes, seed=0)
    assert abs(est - exact) < 0.05 * abs(exact)
    est, se = hutchinson_trace(op, probes=60, seed=0)
    assert abs(est - exact) < 4 * se
    ritz = lanczos(op, steps=op.size, seed=0)
    assert ritz[-1] == pytest.approx(float(eig[-1]), rel=1e-6)
    assert ritz[0] == pytest.approx(float(eig[0]), rel=1e-6, abs=1e-9)
    top, _ = power_iteration(MatrixOperator(H), iters=2000, tol=1e-12)
    assert abs(top) == pytest.approx(float(eig.abs().max()), rel=1e-6)


# ----------------------------------------------------------------------------- robustness
def test_parameter_noise_restores_the_model_and_level_zero_is_plain_accuracy():
    model, _ = _small_problem(B=20)
    values = torch.randn(20, 5, 1, dtype=D64)
    targets = torch.randint(0, 3, (20,))
    before = [p.detach().clone() for p in model.parameters()]
    curve = parameter_noise_curve(model, values, None, targets, levels=[0.0, 1.0], repeats=2)
    assert curve.mean[0] == accuracy(model, values, None, targets)
    for p, q in zip(model.parameters(), before):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="levels"):
        parameter_noise_curve(model, values, None, targets, levels=[-1.0])


# ----------------------------------------------------------------------------- solver comparison
def test_solver_comparison_covers_every_fixed_method_at_its_order():
    torch.manual_seed(0)
    model = nr.ContinuousRNN(nr.LipschitzField(1, 8), 4)
    values = torch.randn(4, 12, 1)
    times = 0.2 * torch.arange(1, 13, dtype=D64)  # float32 times would round the gaps unevenly
    cmp = compare_solvers(model, values, times, torch.randint(0, 4, (4,)), step_sizes=[0.2, 0.1, 0.05],
                          adaptive_methods=["dopri5"], rtols=[1e-5])
    assert {r.method for r in cmp.runs if r.kind == "fixed"} == set(solvers.FIXED_TABLEAUX)
    assert cmp.reference["check"] < 1e-11
    for name in solvers.FIXED_TABLEAUX:
        tab = solvers.TABLEAUX[name]
        errs = [r.trajectory_error for r in cmp.runs if r.method == name]
        assert all(e1 < e0 for e0, e1 in zip(errs, errs[1:])), name
        assert abs(cmp.orders[name] - tab.order) < 0.3, (name, cmp.orders[name])
    nfe = {r.step_size: r.nfe for r in cmp.runs if r.method == "rk4"}
    assert nfe[0.05] > nfe[0.1] > nfe[0.2]


# ----------------------------------------------------------------------------- complex Hessian and Jacobian
def test_hessian_of_complex_parameters_is_the_hessian_in_real_coordinates():
    torch.manual_seed(0)
    A = torch.randn(3, 3, dtype=torch.complex128)
    p = torch.randn(3, dtype=torch.complex128, requires_grad=True)
    q = torch.randn(2, dtype=D64, requires_grad=True)

    def loss_of(re, im, q):
        z = A @ torch.complex(re, im)
        return (z.abs() ** 4).sum() + (q ** 3).sum() * z.real.sum()

    op = HessianOperator(lambda: loss_of(p.real, p.imag, q), [p, q])
    assert op.size == 8 and op.dtype == D64
    H = dense_hessian(op)
    x = torch.cat([p.real.detach(), p.imag.detach(), q.detach()])
    want = torch.autograd.functional.hessian(lambda v: loss_of(v[:3], v[3:6], v[6:]), x)
    torch.testing.assert_close(H, want, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(op.gradient(), torch.autograd.functional.jacobian(
        lambda v: loss_of(v[:3], v[3:6], v[6:]), x), rtol=1e-10, atol=1e-10)


def test_jacobian_of_a_complex_field_is_that_of_the_real_system():
    from neuralode_rnn.analysis import jacobian_eigenvalues

    torch.manual_seed(0)
    model = nr.ContinuousRNN(nr.UnitaryField(1, 3), 2).to(D64)
    values = torch.randn(1, 1, 1, dtype=D64)
    eig = jacobian_eigenvalues(model, values, max_points=1)  # at (h(t_1), u(t_1))
    assert eig.shape == (1, 6)
    # the same Jacobian by central differences of rhs in (Re h, Im h)
    path = model.path(values)
    h = model.solve_path(path)[0, 0]
    u = model.field.driven_by(path).input_at(path.knots[0])[0]

    def f(x):
        out = model.field.rhs(torch.complex(x[:3], x[3:]).unsqueeze(0), u.unsqueeze(0))[0]
        return torch.cat([out.real, out.imag])

    x0 = torch.cat([h.real, h.imag]).detach()
    J = torch.stack([(f(x0 + 1e-6 * e) - f(x0 - 1e-6 * e)) / 2e-6 for e in torch.eye(6, dtype=D64)], 1)
    want = np.linalg.eigvals(J.detach().numpy())
    # conjugate pairs share a real part up to rounding: match each eigenvalue to its nearest
    assert max(np.abs(eig[0] - w).min() for w in want) < 1e-6
    assert max(np.abs(want - e).min() for e in eig[0]) < 1e-6


# ----------------------------------------------------------------------------- commands
TINY = ["--task", "digits", "--n-train", "32", "--n-test", "16", "--hidden-size", "6", "--batch-size", "16",
        "--epochs", "1", "--eps", "0.5", "--quiet", "--threads", "1"]


def test_random_compare_solvers(tmp_path, capsys):
    from neuralode_rnn.cli import main

    assert main(["compare-solvers", "--random", "--hidden", "6", "--batch", "3", "--step-sizes", "0.1,0.05",
                 "--rtols", "1e-4", "--repeats", "1", "--out", str(tmp_path / "cs")]) == 0
    out = capsys.readouterr().out
    for name in solvers.FIXED_TABLEAUX:
        assert f"\n{name} " in out
    saved = json.loads((tmp_path / "cs" / "solver_comparison.json").read_text())
    assert set(saved["orders"]) == set(solvers.FIXED_TABLEAUX)
    assert saved["config"]["model"] == "lipschitz" and saved["config"]["eps"] == 0.1
    assert (tmp_path / "cs" / "work_precision.png").stat().st_size > 0


ANALYZE = ["--n-eval", "8", "--hessian-batch", "8", "--lanczos", "3", "--probes", "2", "--repeats", "1",
           "--input-levels", "0,0.5", "--param-levels", "0,0.5", "--jacobian-points", "16"]

RUN_TYPES = {
    # name: (train flags, what analyze cannot compute and says so, the robustness measure)
    "adding": (["--task", "adding", "--seq-len", "12"], (), "mse"),
    "copy": (["--task", "copy", "--seq-len", "4"], (), "accuracy"),
    "drop": (["--drop", "0.5"], ("contraction",), "accuracy"),
    # a short regression task keeps the general (unstructured) solves of the complex field cheap
    "unitary": (["--model", "unitary", "--optimizer", "cayley", "--task", "adding", "--seq-len", "12"],
                ("global_stability", "contraction"), "mse"),
    "noisy": (["--noise-sigma", "0.1"], (), "accuracy"),
    "gru": (["--model", "gru"], ("stability",), "accuracy"),
}


@pytest.mark.parametrize("name", list(RUN_TYPES))
def test_every_run_type_train_writes_can_be_analysed(name, trained_run, tmp_path, capsys):
    """Edge (issue 12): analyze reported zeros for a regression run (Hessian, trace, accuracy) and
    crashed on copy, --drop 0.5 and unitary runs; compare-solvers crashed on the same."""
    from neuralode_rnn.cli import main

    flags, not_applicable, metric = RUN_TYPES[name]
    model = [] if "--model" in flags else ["--model", "lipschitz", "--eps", "0.5"]
    run = trained_run(*model, *flags)
    assert main(["analyze", str(run), *ANALYZE, "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / run.name / "analysis.json").read_text())
    h = result["hessian"]
    for key in ("max_eigenvalue", "min_eigenvalue", "trace", "loss"):
        assert math.isfinite(h[key]), key
    assert h["max_eigenvalue"] > 0 and h["trace"] != 0 and h["loss"] > 0  # not zeros
    for curve in result["robustness"]:
        assert curve["metric"] == metric and all(math.isfinite(m) for m in curve["mean"])
        assert curve["mean"][0] > 0 if metric == "mse" else 0 <= curve["mean"][0] <= 1
    stab = result["stability"]
    if "stability" in not_applicable:
        assert "needs a continuous model" in stab["not_applicable"]
    else:
        assert stab["growing_modes"]["Jacobian"] >= 0 and stab["step_size"] > 0
        for part in ("global_stability", "contraction"):
            assert ("not_applicable" in stab[part]) == (part in not_applicable), part
            if part in not_applicable:
                assert len(stab[part]["not_applicable"]) > 20  # a reason, not a flag
    capsys.readouterr()
    if "stability" in not_applicable:
        with pytest.raises(SystemExit) as exc:
            main(["compare-solvers", str(run), "--batch", "2", "--out", str(tmp_path / "cs")])
        assert exc.value.code == 2 and "needs a continuous model" in capsys.readouterr().err
        return
    assert main(["compare-solvers", str(run), "--batch", "3", "--step-sizes", "0.5,0.25", "--rtols", "1e-4",
                 "--methods", "euler,rk4,dopri5", "--reference-rtol", "1e-6", "--cross", "3",
                 "--out", str(tmp_path / "cs")]) == 0
    saved = json.loads((tmp_path / "cs" / "solver_comparison.json").read_text())
    assert set(saved["orders"]) == {"euler", "rk4"} and {r["method"] for r in saved["runs"]} == {"euler", "rk4", "dopri5"}
    for r in saved["runs"]:
        assert math.isfinite(r["readout_error"])
        assert (r["accuracy"] is None) == (metric == "mse")
    assert saved["cross_solver"][0]["metric"] == metric


def test_train_then_analyze_and_compare_solvers(tmp_path, capsys):
    """Runs written by `neuralode-rnn train` (plain and noise-trained) are what the analysis reads."""
    from neuralode_rnn.analysis.runs import load_run
    from neuralode_rnn.cli import main

    lip, noisy = tmp_path / "lip", tmp_path / "noisy"
    assert main(["train", *TINY, "--model", "lipschitz", "--run-dir", str(lip)]) == 0
    assert main(["train", *TINY, "--model", "lipschitz", "--noise-sigma", "0.1", "--run-dir", str(noisy)]) == 0
    run = load_run(noisy)
    assert isinstance(run.model, nr.StochasticRNN) and not run.model.training
    # no validation split: no best.pt, and the analysis reads last.pt (never a test-selected epoch)
    assert run.checkpoint == "last.pt" and run.metrics["epoch"] == 1 and not (noisy / "best.pt").exists()
    values, times, targets = run.batch("test", 5)
    assert values.shape == (5, 64, 1) and targets.shape == (5,)
    # training.model_times: the clock stays float64 whatever the model's dtype (issue 16 item 4)
    torch.testing.assert_close(times, 0.5 * torch.arange(1, 65, dtype=torch.float64))
    assert type(load_run(lip).model) is nr.ContinuousRNN

    capsys.readouterr()
    assert main(["analyze", str(lip), str(noisy), *ANALYZE, "--out", str(tmp_path / "sum")]) == 0
    result = json.loads((tmp_path / "sum" / "lip" / "analysis.json").read_text())
    assert {"stability", "hessian", "robustness"} <= set(result)
    assert "global_stability" in result["stability"] and result["stability"]["step_size"] == 0.5
    assert result["config"]["model"] == "lipschitz" and result["checkpoint"] == "last.pt"
    noisy_result = json.loads((tmp_path / "sum" / "noisy" / "analysis.json").read_text())
    assert noisy_result["config"]["noise_sigma"] == 0.1
    assert "| noisy |" in (tmp_path / "sum" / "summary.md").read_text()

    assert main(["compare-solvers", str(lip), "--batch", "3", "--step-sizes", "0.5,0.25", "--rtols", "1e-4",
                 "--reference-rtol", "1e-9", "--cross", "4"]) == 0
    saved = json.loads((lip / "analysis" / "solver_comparison.json").read_text())
    assert saved["run"] == "lip" and set(saved["orders"]) == set(solvers.FIXED_TABLEAUX)
    # trained with the digits preset (the Euler cell, recipe fixed): the as-trained solver comes first
    assert saved["cross_solver"][0]["trained"] and saved["cross_solver"][0]["method"] == "euler"


def test_the_analysis_entry_point_reports_bad_input_in_one_line_without_the_cli_module(tmp_path, capsys):
    """``python -m neuralode_rnn.analysis``: the same one-line errors and exit status 2 as the package
    CLI, through neuralode_rnn.commandline (analysis/commands.py no longer imports cli.py, issue 17 item 6)."""
    import ast
    import inspect

    from neuralode_rnn.analysis import commands

    with pytest.raises(SystemExit) as info:
        commands.main(["analyze", str(tmp_path / "missing")])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1:] == [f"python -m neuralode_rnn.analysis analyze: error: {tmp_path / 'missing'}/config.json not found: "
                   f"is {tmp_path / 'missing'} a run directory?"]
    imported = {node.module for node in ast.walk(ast.parse(inspect.getsource(commands)))
                if isinstance(node, ast.ImportFrom)}
    assert "cli" not in imported and "commandline" in imported
    assert not any("Traceback" in line for line in err)
