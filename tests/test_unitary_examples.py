"""Smoke tests: the unitary examples run end to end with tiny configs, and every option reaches the code."""

import importlib.util
from pathlib import Path

import pytest
import torch

import neuralode_rnn as nr
from neuralode_rnn.data.sysid import load_sysid, teacher_recurrence

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)  # the examples set threads=1


def test_copy_memory_tiny_run_writes_results(tmp_path):
    ex = _load("copy_memory")
    rows = ex.main(delays=(3,), models=("full", "restricted", "orthogonal", "lstm"), hidden=4, lstm_hidden=4,
                   iterations=3, batch_size=2, eval_every=2, n_test=4, results=True, out_dir=str(tmp_path),
                   verbose=False)
    assert [r["model"] for r in rows] == ["full", "restricted", "orthogonal", "lstm"]
    assert all(len(r["train"]) == 3 and [it for it, _ in r["test"]] == [0, 2, 3] for r in rows)
    assert (tmp_path / "figures" / "copy_memory_T3.png").exists()
    text = (tmp_path / "RESULTS_unitary.md").read_text()
    assert "<!-- copy_memory_T3:start -->" in text and "--delays 3" in text
    ex.main(delays=(3,), models=("lstm",), iterations=1, eval_every=1, n_test=2, results=True,
            out_dir=str(tmp_path), verbose=False)
    assert (tmp_path / "RESULTS_unitary.md").read_text().count("copy_memory_T3:start") == 1  # replaced


def test_copy_memory_rejects_unknown_options():
    ex = _load("copy_memory")
    with pytest.raises(TypeError, match="unknown option"):
        ex.main(delay=3)
    with pytest.raises(ValueError, match="unknown model 'gru'"):
        ex.main(models=("gru",))


def test_system_identification_tiny_run_writes_results(tmp_path):
    ex = _load("system_identification")
    rows = ex.main(sizes=(2, 3), kinds=("full", "restricted", "orthogonal"), T=4, n_train=8, n_test=4,
                   iterations=2, batch_size=4, eval_every=1, results=True, out_dir=str(tmp_path), verbose=False)
    assert [(r["N"], r["kind"]) for r in rows] == [(n, k) for n in (2, 3) for k in ("full", "restricted", "orthogonal")]
    assert all(r["unitarity"] < 1e-5 for r in rows)
    assert (tmp_path / "figures" / "sysid.png").exists()
    assert "<!-- system_identification:start -->" in (tmp_path / "RESULTS_unitary.md").read_text()


def test_sysid_student_shares_everything_but_w():
    ex = _load("system_identification")
    data = load_sysid(N=3, T=5, n_train=4, n_test=2, seed=1)
    field, model, opt = ex.make_student(data, "full", 0, 1e-3, 1e-3)
    trainable = [p for group in opt.param_groups for p in group["params"]]
    assert trainable == [field.U]
    assert not field.b.requires_grad and not field.input_map.weight.requires_grad
    # with the teacher's W, the student reproduces the targets
    with torch.no_grad():
        field.U.copy_(data.info["W"].to(field.U.dtype))
        pred = ex.predict(field, model, data.test.values)
    torch.testing.assert_close(pred, data.test.targets, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("teacher", ["haar", "restricted"])
def test_sysid_targets_are_the_teacher_urnn(teacher):
    data = load_sysid(N=4, T=6, n_train=3, n_test=2, seed=2, teacher=teacher)
    W, b = data.info["W"], data.info["b"]
    assert float((W.mH @ W - torch.eye(4, dtype=W.dtype)).abs().max()) < 1e-12
    # the same system as a UnitaryField with V = I, stepped by Euler with eps = 1
    field = nr.UnitaryField(8, 4).double()
    field.U.data = W.clone()
    with torch.no_grad():
        field.input_map.weight.copy_(torch.eye(8))
        field.b.copy_(b)
        states = nr.DiscreteRNN(field.discretize("euler", 1.0), 1).double().trajectory(data.train.values.double())
    torch.testing.assert_close(field.features(states).float(), data.train.targets, rtol=1e-5, atol=1e-5)
    x = data.train.values.double()
    direct = teacher_recurrence(torch.complex(x[..., :4], x[..., 4:]), W, b)
    torch.testing.assert_close(torch.cat([direct.real, direct.imag], -1).float(), data.train.targets)


def test_sysid_bad_arguments():
    with pytest.raises(ValueError, match="unknown teacher 'gaussian'"):
        load_sysid(teacher="gaussian")
    with pytest.raises(ValueError, match="N must be an int >= 1"):
        load_sysid(N=0)


@pytest.mark.parametrize("kind", ["full", "restricted"])
def test_copy_memory_urnn_is_the_fast_path_and_the_paper_cell(kind):
    """The example's uRNNs run through ContinuousRNN (Euler, step 1, hold input), and on copy-memory
    inputs their states equal the discrete cell's h_k = modReLU(W h_{k-1} + V x_k, b)."""
    ex = _load("copy_memory")
    model, features, _, _ = ex.build(kind, 6, 6, 1e-3, 1e-3, seed=0)
    assert isinstance(model, nr.ContinuousRNN) and model.method == "euler" and model.interpolation == "hold"
    model = model.double()
    x, _ = ex.batch(3, 7, torch.Generator().manual_seed(0))
    x = x.double()
    got = model.trajectory(x)
    cell = model.field.discretize("euler", 1.0)
    h = torch.zeros(3, 6, dtype=torch.complex128)
    want = []
    for k in range(x.shape[1]):
        h = cell(h, x[:, k])
        want.append(h)
    want = torch.stack(want, 1)
    assert want.abs().max() > 0.1  # a nonzero trajectory, so the comparison means something
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_copy_memory_resume_continues_the_same_run(tmp_path):
    """A run stopped after 2 of 4 iterations and resumed from its checkpoint has the curves of an
    uninterrupted run (same sequences, optimiser state and weights); report_only reads checkpoints as
    they stand and says where each run stopped."""
    ex = _load("copy_memory")
    small = dict(delays=(3,), models=("full", "lstm"), hidden=4, lstm_hidden=4, batch_size=2, eval_every=1,
                 n_test=4, verbose=False)
    whole = ex.main(iterations=4, **small)
    ckpt = tmp_path / "ckpt"
    ex.main(iterations=2, checkpoint_dir=str(ckpt), **small)
    report = ex.main(iterations=4, checkpoint_dir=str(ckpt), report_only=True, **small)
    assert [(r["model"], r["iterations"], r["status"]) for r in report] == [
        ("full", 2, "stopped at iteration 2 of 4"), ("lstm", 2, "stopped at iteration 2 of 4")]
    assert "(stopped; budget)" in ex.table(report)
    resumed = ex.main(iterations=4, checkpoint_dir=str(ckpt), **small)
    for a, b in zip(whole, resumed):
        assert b["status"] == "finished" and b["iterations"] == 4
        assert [it for it, _ in b["test"]] == [0, 1, 2, 3, 4]
        torch.testing.assert_close(torch.tensor(b["train"]), torch.tensor(a["train"]), rtol=1e-6, atol=0)
        torch.testing.assert_close(torch.tensor(b["test"]), torch.tensor(a["test"]), rtol=1e-6, atol=0)
    status = (ckpt / "status.md").read_text()
    assert "- T = 3 full: finished" in status and "--checkpoint-dir" in status
    # a planned run with no checkpoint is listed, not invented
    partial = ex.main(iterations=4, checkpoint_dir=str(ckpt), report_only=True, **{**small, "delays": (3, 5)})
    assert [(r["T"], r["model"]) for r in partial] == [(3, "full"), (3, "lstm")]
    assert "- T = 5 full: not started" in (ckpt / "status.md").read_text()


def test_copy_memory_report_only_needs_checkpoints():
    ex = _load("copy_memory")
    with pytest.raises(ValueError, match="checkpoint_dir"):
        ex.main(report_only=True)


def test_copy_memory_speed_benchmark_runs_the_example_step():
    """The speed check times the example's own train_step and the fast path on the same shapes."""
    spec = importlib.util.spec_from_file_location("_copy_speed", EXAMPLES.parent / "benchmarks" / "copy_memory_speed.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ratios = bench.main(["--T", "3", "--hidden", "4", "--repeats", "1", "--kinds", "full", "--no-write"])
    assert set(ratios) == {"full"} and ratios["full"] > 0
    with pytest.raises(SystemExit, match="--repeats"):
        bench.main(["--repeats", "0", "--no-write"])
