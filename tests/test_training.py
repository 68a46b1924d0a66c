"""The training stack: a smoke epoch per model family, exact resume (also from the fallback
checkpoint), extension, the NaN guard, the writer lock, and settings refused by name."""

import math
import os
import subprocess
import sys

import pytest
import torch

import solvers
from neuralode_rnn.training import (
    Callback,
    CheckpointError,
    NonFiniteLossError,
    PerStepReadout,
    RunDir,
    RunDirBusyError,
    default_callbacks,
    load_data,
    model_times,
    train,
    validation_split,
)
from neuralode_rnn.training import rundir as rundir_module
from neuralode_rnn.zoo import MODELS, build_model, count_parameters


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("model", ["lipschitz", "antisymmetric", "antisymmetric-gated", "unitary", "ctrnn",
                                   "lipschitz-discrete", "unitary-discrete", "lstm", "gru"])
def test_one_epoch_smoke_trains_every_family(model, tiny_config):
    torch.manual_seed(0)
    before = _params(build_model(model, 1, 10, 8))  # the same seed-0 initialisation train() draws
    result = train(tiny_config(model=model))
    (row,) = result.rows
    assert math.isfinite(row["train_loss"]) and math.isfinite(row["test_loss"])
    assert 0.0 <= row["test_accuracy"] <= 1.0
    assert row["nfe"] >= 64  # at least one evaluation per sample
    assert row["model"] == model and row["task"] == "digits"
    assert result.parameters == count_parameters(result.model)
    after = result.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "no parameter moved"


@pytest.mark.parametrize("model", ["gru-dt", "gru-d", "ode-rnn"])
def test_the_irregular_series_baselines_train_on_their_times(model, tiny_config):
    result = train(tiny_config(model=model, drop=0.5, task_options={"n_train": 32, "n_test": 16}))
    (row,) = result.rows
    assert math.isfinite(row["train_loss"]) and row["model"] == model
    times = torch.arange(1.0, 6.0).expand(2, -1)
    assert torch.equal(model_times(result.model, torch.zeros(2, 5, 1), times, 1.0), times)  # they read the times


def test_a_baseline_resolves_its_own_defaults_and_refuses_what_it_ignores(tiny_config):
    c = tiny_config(model="ncde").resolved()
    assert (c.interpolation, c.method) == ("natural", "rk4")  # the class defaults (the reference's), stored as such
    assert tiny_config(model="lipschitz").resolved().interpolation == "hold"
    assert tiny_config(model="gru").resolved().interpolation is None
    with pytest.raises(ValueError, match="method='dopri5' would be ignored: the baseline 'gru-dt' takes"):
        tiny_config(model="gru-dt", method="dopri5").resolved()
    with pytest.raises(ValueError, match="held .* path"):
        train(tiny_config(model="ncde", interpolation="hold"))


def test_midpoint_cell_counts_two_evaluations_per_step(tiny_config):
    result = train(tiny_config(model="lipschitz-discrete", method="midpoint"))
    assert result.rows[0]["nfe"] == 2 * 64


def test_sequence_task_reads_out_every_step(tiny_config):
    result = train(tiny_config(task="copy", model="lipschitz-discrete", task_options={"T": 5, "n_train": 32,
                                                                                       "n_test": 16}))
    net = PerStepReadout(result.model)
    values = torch.zeros(3, 25, 10)
    assert net(values).shape == (3, 25, 9)
    assert math.isfinite(result.rows[0]["test_loss"])


def test_regression_task_has_no_accuracy(tiny_config):
    result = train(tiny_config(task="adding", model="gru", task_options={"T": 10, "n_train": 32, "n_test": 16}))
    assert result.rows[0]["test_accuracy"] is None and result.rows[0]["train_accuracy"] is None


def test_irregular_task_feeds_scaled_sample_times_to_continuous_models(tiny_config):
    result = train(tiny_config(drop=0.5, model="lipschitz", recipe="fixed", method="euler",
                               task_options={"n_train": 32, "n_test": 16}))
    assert result.rows[0]["nfe"] <= 33  # one step per remaining observation (plus the first call)
    values = torch.zeros(2, 20, 1)
    times = torch.arange(1.0, 21.0).expand(2, -1) * torch.tensor([[1.0], [2.0]])
    t = model_times(result.model, values, times, 0.03)
    assert t.dtype == torch.float64 and torch.allclose(t, 0.03 * times.double())  # float64 clock (issue 16 item 4)
    assert model_times(build_model("gru", 1, 10, 4), values, times, 0.03) is None


class _Kill(Exception):
    pass


class KillAt(Callback):
    """Raises _Kill after ``epoch``'s checkpoint, or in the middle of it at training batch ``batch``."""

    def __init__(self, epoch, batch=None):
        self.epoch, self.batch = epoch, batch

    def on_batch(self, run, info):
        if self.batch is not None and (info["epoch"], info["batch"]) == (self.epoch, self.batch):
            raise _Kill

    def on_epoch(self, run, row):
        if self.batch is None and row["epoch"] == self.epoch:
            raise _Kill


def _strip_time(rows):
    return [{k: v for k, v in r.items() if k not in ("epoch_seconds", "wall_seconds")} for r in rows]


def _same_run(a, b):
    assert _strip_time(a.rows) == _strip_time(b.rows)
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k


# the discrete twin of the Lipschitz RK2 model: the loop is the same, the solve ~10x cheaper
RESUME = dict(model="lipschitz-discrete", method="midpoint", epochs=3, batch_size=16, seed=3)


@pytest.fixture
def full_run(tiny_config, tmp_path):
    """An uninterrupted 3-epoch run (RESUME) to compare resumed ones with."""
    return train(tiny_config(run_dir=str(tmp_path / "full"), **RESUME))


def _killed(tiny_config, run_dir, kill, **kw):
    cfg = tiny_config(run_dir=str(run_dir), **{**RESUME, **kw})
    with pytest.raises(_Kill):
        train(cfg, callbacks=[*default_callbacks(cfg), kill])


def test_resume_after_a_kill_between_epochs_equals_an_uninterrupted_run(tiny_config, tmp_path, full_run):
    _killed(tiny_config, tmp_path / "cut", KillAt(1))
    assert RunDir(tmp_path / "cut").load_checkpoint()["epoch"] == 1
    torch.manual_seed(123)  # a resumed process starts from arbitrary global RNG states
    resumed = train(tiny_config(run_dir=str(tmp_path / "cut"), resume=True, **RESUME))
    _same_run(resumed, full_run)
    a, b = RunDir(tmp_path / "full").read_metrics(), RunDir(tmp_path / "cut").read_metrics()
    assert [r["test_loss"] for r in a] == [r["test_loss"] for r in b] and len(b) == 3


def test_resume_after_a_kill_in_the_middle_of_an_epoch(tiny_config, tmp_path, full_run):
    _killed(tiny_config, tmp_path / "cut", KillAt(2, batch=2))
    resumed = train(tiny_config(run_dir=str(tmp_path / "cut"), resume=True, **RESUME))
    _same_run(resumed, full_run)


def test_truncated_last_checkpoint_falls_back_to_the_previous_one(tiny_config, tmp_path, full_run):
    """Edge (issue 12): a truncated last.pt gave a 23-line unpickling traceback and no fallback."""
    rd = RunDir(tmp_path / "cut")
    _killed(tiny_config, rd.path, KillAt(2))
    assert rd.load_checkpoint("previous")["epoch"] == 1 and rd.load_checkpoint()["epoch"] == 2
    data = rd.last.read_bytes()
    rd.last.write_bytes(data[: len(data) // 2])
    with pytest.warns(RuntimeWarning, match=r"last\.pt is damaged.*using previous\.pt \(epoch 1\)"):
        resumed = train(tiny_config(run_dir=str(rd.path), resume=True, **RESUME))
    _same_run(resumed, full_run)  # epoch 2 replayed from epoch 1's checkpoint, bit for bit


def test_a_flipped_byte_is_caught_by_the_checksum(tiny_config, tmp_path):
    rd = RunDir(tmp_path / "cut")
    _killed(tiny_config, rd.path, KillAt(2))
    data = bytearray(rd.last.read_bytes())
    data[len(data) // 2] ^= 0xFF  # torch.load would read this file without complaint
    rd.last.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match=r"last\.pt is damaged: its SHA-256 matches no checkpoint"):
        assert rd.load_checkpoint()["epoch"] == 1
    with pytest.raises(CheckpointError, match="damaged"):
        rd.load_checkpoint("last", fallback=False)


def test_deleted_last_checkpoint_falls_back_and_no_checkpoint_is_an_error(tiny_config, tmp_path, full_run):
    """Edge (issue 12): with last.pt deleted --resume silently started again at epoch 1."""
    rd = RunDir(tmp_path / "cut")
    _killed(tiny_config, rd.path, KillAt(2))
    rd.last.unlink()
    with pytest.warns(RuntimeWarning, match=r"last\.pt is missing; using previous\.pt"):
        _same_run(train(tiny_config(run_dir=str(rd.path), resume=True, **RESUME)), full_run)
    for p in (rd.last, rd.previous):
        p.unlink()
    metrics = rd.metrics_path.read_text()
    with pytest.raises(CheckpointError, match=r"no usable last checkpoint.*3 in metrics\.csv.*--fresh"):
        train(tiny_config(run_dir=str(rd.path), resume=True, **RESUME))
    assert rd.metrics_path.read_text() == metrics  # nothing overwritten
    again = train(tiny_config(run_dir=str(rd.path), fresh=True, **RESUME))  # a new run there (with its settings)
    _same_run(again, full_run)


def test_a_run_killed_before_its_first_checkpoint_resumes_from_epoch_one(tiny_config, tmp_path, full_run):
    _killed(tiny_config, tmp_path / "cut", KillAt(1, batch=1))
    assert not RunDir(tmp_path / "cut").last.exists()
    _same_run(train(tiny_config(run_dir=str(tmp_path / "cut"), resume=True, **RESUME)), full_run)


def test_resume_with_more_epochs_extends_the_run_on_its_schedule(tiny_config, tmp_path):
    """Edge (issue 12): --resume RUN --epochs 8 on a finished 6-epoch run ignored --epochs."""
    kw = dict(RESUME, epochs=2)
    short = train(tiny_config(run_dir=str(tmp_path / "r"), **kw))
    assert len(short.rows) == 2 and short.status == "finished"
    longer = train(tiny_config(run_dir=str(tmp_path / "r"), resume=True, **dict(kw, epochs=3)))
    assert [r["epoch"] for r in longer.rows] == [1, 2, 3] and longer.config.epochs == 3
    stored = RunDir(tmp_path / "r").read_config()
    assert stored["epochs"] == 3 and stored["schedule_epochs"] == 2
    # the same as a run planned for 3 epochs on a 2-epoch schedule, bit for bit
    planned = train(tiny_config(run_dir=str(tmp_path / "p"), **dict(kw, epochs=3), schedule_epochs=2))
    _same_run(longer, planned)
    with pytest.raises(ValueError, match="has finished 3 epochs; epochs=2 cannot shorten it"):
        train(tiny_config(run_dir=str(tmp_path / "r"), resume=True, **kw))


def test_resume_keeps_the_stored_configuration(tiny_config, tmp_path):
    train(tiny_config(run_dir=str(tmp_path / "r"), **dict(RESUME, epochs=1)))
    with pytest.raises(ValueError, match=r"cannot change lr=0\.1 \(stored 0\.003\)"):
        train(tiny_config(run_dir=str(tmp_path / "r"), resume=True, lr=0.1, **dict(RESUME, epochs=1)))


def test_stop_after_then_resume(tiny_config, tmp_path):
    first = train(tiny_config(run_dir=str(tmp_path / "r"), stop_after=1, **RESUME))
    assert len(first.rows) == 1 and first.status.startswith("stopped after epoch 1")
    second = train(tiny_config(run_dir=str(tmp_path / "r"), resume=True, **RESUME))
    assert [r["epoch"] for r in second.rows] == [1, 2, 3] and second.status == "finished"


# ------------------------------------------------------------------ determinism across processes (issue 16, item 2)
# the continuous Lipschitz model runs the structured kernel, whose tanh is one of two kernels
KERNEL_RUN = dict(model="lipschitz", method="midpoint", epochs=2, seed=1)

_TRAIN_IN_A_PROCESS = """
import sys
from neuralode_rnn.training import TrainConfig, train
train(TrainConfig(task="digits", task_options={"n_train": 64, "n_test": 32}, hidden_size=8, batch_size=32,
                  quiet=True, threads=1, run_dir=sys.argv[1], **%r))
""" % KERNEL_RUN


def test_the_tanh_kernels_differ_so_the_choice_must_be_kept(tiny_config, tmp_path):
    """The difference is real: the same seed trained with each kernel writes different metrics."""
    for kernel in ("tanh", "sigmoid"):
        train(tiny_config(run_dir=str(tmp_path / kernel), tanh_kernel=kernel, **KERNEL_RUN))
        assert RunDir(tmp_path / kernel).read_config()["tanh_kernel"] == kernel
    assert RunDir(tmp_path / "tanh").metrics_path.read_bytes() != RunDir(tmp_path / "sigmoid").metrics_path.read_bytes()
    with pytest.raises(ValueError, match="tanh_kernel must be None, 'tanh' or 'sigmoid'; got 'relu'"):
        train(tiny_config(tanh_kernel="relu", **KERNEL_RUN))


def test_two_processes_with_the_same_seed_write_identical_metrics_under_load(tmp_path):
    """Issue 16 item 2: under load a process measured another kernel (91.1% against 92.5%).  Two
    processes start together on a machine with no cached choice, one beside a busy-spinning
    process; their metrics.csv must be the same bytes (timing.csv holds the wall-clock times)."""
    env = {k: v for k, v in os.environ.items() if k != "SOLVERS_TANH_KERNEL"}
    env.update(SOLVERS_CACHE_DIR=str(tmp_path / "cache"), OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")])))
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        runs = [subprocess.Popen([sys.executable, "-c", _TRAIN_IN_A_PROCESS, str(tmp_path / f"run{i}")], env=env,
                                 stderr=subprocess.PIPE, text=True) for i in range(2)]
        for p in runs:
            assert p.wait(timeout=120) == 0, p.stderr.read()
    finally:
        spinner.kill()
        spinner.wait()
    a, b = RunDir(tmp_path / "run0"), RunDir(tmp_path / "run1")
    assert a.metrics_path.read_bytes() == b.metrics_path.read_bytes()
    assert len(a.read_metrics()) == 2 and "wall_seconds" not in a.read_metrics()[0]
    assert [r["epoch"] for r in a.read_timing()] == ["1", "2"]
    assert a.read_config()["tanh_kernel"] == b.read_config()["tanh_kernel"]
    assert len(list((tmp_path / "cache").glob("tanh_kernel-*.json"))) == 1


def test_a_resumed_run_computes_with_its_recorded_kernel(tiny_config, tmp_path, monkeypatch):
    """A resumed process that would choose the other kernel continues exactly as the uninterrupted run."""
    monkeypatch.setenv("SOLVERS_TANH_KERNEL", "sigmoid")
    train(tiny_config(run_dir=str(tmp_path / "full"), **KERNEL_RUN))
    train(tiny_config(run_dir=str(tmp_path / "cut"), stop_after=1, **KERNEL_RUN))
    assert RunDir(tmp_path / "cut").read_config()["tanh_kernel"] == "sigmoid"
    monkeypatch.setenv("SOLVERS_TANH_KERNEL", "tanh")
    with pytest.warns(UserWarning, match="SOLVERS_TANH_KERNEL=tanh is not used: .* recorded in its config .'sigmoid'"):
        train(tiny_config(run_dir=str(tmp_path / "cut"), resume=True, **KERNEL_RUN))
    assert RunDir(tmp_path / "cut").metrics_path.read_bytes() == RunDir(tmp_path / "full").metrics_path.read_bytes()
    assert solvers.kernels.pinned_tanh_kernel() is None  # the run's pin ends with the run
    assert solvers.tanh_kernel() == "tanh"


def test_a_used_run_directory_needs_resume_or_fresh(tiny_config, tmp_path):
    train(tiny_config(model="gru", run_dir=str(tmp_path)))
    with pytest.raises(FileExistsError, match=r"already holds a run of gru on digits \(1 epoch finished\).*--resume"):
        train(tiny_config(model="gru", run_dir=str(tmp_path)))
    assert train(tiny_config(model="lstm", run_dir=str(tmp_path), fresh=True)).rows[0]["model"] == "lstm"
    assert RunDir(tmp_path).read_metrics()[0]["model"] == "lstm"


def test_a_second_writer_gets_a_clear_error_naming_the_holder(tiny_config, tmp_path):
    """Edge (issue 12): two train runs on one --run-dir both exited 0 and mixed their files."""
    rd = RunDir(tmp_path)
    with rd.lock(command="the first run"):
        with pytest.raises(RunDirBusyError, match=rf"is being written by pid {os.getpid()} on .*the first run"):
            train(tiny_config(model="gru", run_dir=str(tmp_path)))
        assert not rd.config_path.exists()
    train(tiny_config(model="gru", run_dir=str(tmp_path)))  # the lock is free again


def test_the_lock_dies_with_its_process(tmp_path):
    code = ("import sys, time; from neuralode_rnn.training import RunDir; RunDir(sys.argv[1]).lock(); "
            "print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirBusyError, match=f"pid {proc.pid}"):
            RunDir(tmp_path).lock()
    finally:
        proc.kill()  # SIGKILL: no clean-up runs in the holder
        proc.wait()
    RunDir(tmp_path).lock().release()


def test_the_lock_is_released_when_a_run_fails(tiny_config, tmp_path):
    _killed(tiny_config, tmp_path, KillAt(1))
    RunDir(tmp_path).lock().release()


def test_files_take_the_users_umask(tiny_config, tmp_path):
    """Edge (issue 12): files were written 0600 whatever the umask (tempfile.mkstemp)."""
    old = os.umask(0o027)
    try:
        train(tiny_config(model="gru", run_dir=str(tmp_path / "r")))
    finally:
        os.umask(old)
    names = ("config.json", "metrics.csv", "last.pt", "checkpoints.json", "curves.png", "status.txt",
             "writer.lock")
    modes = {n: (tmp_path / "r" / n).stat().st_mode & 0o777 for n in names}
    assert modes == {n: 0o640 for n in names}


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tiny_config, tmp_path):
    class Poison(Callback):  # after epoch 1's checkpoint, a NaN weight: epoch 2's first loss is NaN
        def on_epoch(self, run, row):
            with torch.no_grad():
                next(run.model.parameters()).fill_(float("nan"))

    cfg = tiny_config(model="lipschitz-discrete", eps=0.03, epochs=3, run_dir=str(tmp_path))
    rd = RunDir(tmp_path)
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at epoch 2, batch 1.*last good checkpoint"):
        train(cfg, callbacks=[*default_callbacks(cfg), Poison()])
    state = rd.load_checkpoint()
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    status = rd.status_path.read_text()
    assert status.startswith("failed at epoch 2 (NonFiniteLossError: the training loss became nan")
    assert status.rstrip().endswith("lipschitz-discrete (euler, eps 0.03) on digits")
    assert len(rd.read_metrics()) == 1


def test_huge_learning_rate_is_caught_by_the_guard(tiny_config):
    with pytest.raises(NonFiniteLossError, match="smaller --lr"):
        train(tiny_config(model="lipschitz-discrete", lr=1e30, epochs=3, batch_size=8))


def test_atomic_save_leaves_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "last.pt"
    rundir_module.atomic_save({"epoch": 1}, target)

    def broken_save(obj, f):
        f.write(b"PARTIAL")
        raise OSError("disk full")

    monkeypatch.setattr(rundir_module.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        rundir_module.atomic_save({"epoch": 2}, target)
    assert os.listdir(tmp_path) == ["last.pt"]  # no temporary file left behind
    monkeypatch.undo()
    assert torch.load(target)["epoch"] == 1


def test_callbacks_can_be_left_out(tiny_config, tmp_path):
    cfg = tiny_config(model="gru", run_dir=str(tmp_path))
    calls = []
    result = train(cfg, callbacks=[*default_callbacks(cfg, curves=False, status=False), lambda e, row: calls.append(e)])
    assert calls == [1] and result.rows[0]["epoch"] == 1
    assert not (tmp_path / "curves.png").exists() and not (tmp_path / "status.txt").exists()
    assert (tmp_path / "last.pt").exists() and (tmp_path / "metrics.csv").exists()


def test_progress_prints_lines_when_not_on_a_terminal(tiny_config, capsys):
    from neuralode_rnn.training import EpochLog, Progress

    train(tiny_config(model="gru", epochs=2), callbacks=[Progress(interval=1e-9), EpochLog()])
    out, err = capsys.readouterr()
    assert "train gru on digits: epoch 1/2: batch 1/2, loss" in err
    assert out.splitlines()[0].startswith("training gru on digits for 2 epochs: ")
    assert "epoch 2/2 (gru on digits) train_loss" in out


@pytest.mark.parametrize("kw, match", [
    ({"model": "lstmx"}, "unknown model 'lstmx'; expected one of lipschitz"),
    ({"schedule": "exp"}, "unknown schedule 'exp'"),
    ({"optimizer": "adamw2"}, "unknown optimizer 'adamw2'"),
    ({"epochs": 0}, "epochs must be a positive int; got 0"),
    ({"lr": -1.0}, "lr must be a positive number"),
    ({"model": "gru", "noise_sigma": 0.1}, "noise_sigma > 0 needs a continuous model; 'gru' is torch"),
    ({"noise_sigma": -0.1}, "noise_sigma must be a number >= 0"),
    ({"noise_sigma": 0.1, "noise": "pink"}, "noise must be 'additive' or 'multiplicative'"),
    # Edge (issue 12): settings the model would ignore were accepted and mislabelled the run
    ({"optimizer": "cayley"}, "optimizer 'cayley' moves a unitary W .* model 'lipschitz' has none"),
    ({"model": "lstm", "method": "dopri5"}, r"method='dopri5' would be ignored: 'lstm' is a torch.nn baseline"),
    ({"model": "gru", "eps": 0.1}, "eps=0.1 would be ignored"),
    ({"model": "lipschitz-discrete", "step_size": 0.01}, "step_size=0.01 would be ignored: .* discrete cell"),
    ({"model": "lipschitz-discrete", "method": "dopri5"}, "a discrete cell needs an explicit tableau method"),
    ({"rtol": 1e-6, "method": "euler"}, r"rtol=1e-06 would be ignored: method 'euler' is a fixed-step solver"),
    ({"method": "dopri5", "step_size": 0.1}, "step_size=0.1 would be ignored: method 'dopri5' is an adaptive"),
    ({"model": "unitary", "gamma": 0.1}, "gamma=0.1 would be ignored"),
    ({"model": "antisymmetric", "beta": 0.5}, "beta=0.5 would be ignored"),
    ({"threads": 0}, "threads must be None or a positive int"),
    ({"noise": "multiplicative"}, "noise='multiplicative' would be ignored: noise_sigma is 0"),
])
def test_bad_settings_name_the_setting(kw, match, tiny_config):
    with pytest.raises(ValueError, match=match):
        tiny_config(**kw).resolved()


@pytest.mark.parametrize("kw", [{"method": "rk5"}, {"method": "scipy_solver"}, {"gradient": "adjoin"},
                                {"method": "rk4", "step_size": -0.5}, {"method": "dopri5", "rtol": -1.0}])
def test_a_bad_solver_setting_is_refused_by_the_solve_specification_alone(kw, tiny_config, monkeypatch):
    """Issue 17: method was checked in five places (cli, config, zoo, models, solve), gradient in five,
    step_size in three.  The config, the zoo and the models now ask solvers.SolveSpec: with its check
    replaced by a marker, every one of them fails with the marker (none checks first), and with the
    real check the config refuses before any data is loaded, with the registry's message."""
    import neuralode_rnn as nr
    from neuralode_rnn.baselines import ODERNN
    from neuralode_rnn.noise import StochasticRNN
    from neuralode_rnn.training import runs

    real = solvers.SolveSpec.__post_init__
    with pytest.raises(ValueError) as exc:
        solvers.SolveSpec(**kw)
    message = str(exc.value)  # the registry's own words, e.g. "unknown method 'rk5'; expected one of ..."

    def marker(spec):
        if (spec.method, spec.gradient, spec.step_size, spec.rtol) != ("euler", "backprop", None, 1e-3):
            raise ValueError("checked by the specification")
        real(spec)

    monkeypatch.setattr(solvers.SolveSpec, "__post_init__", marker)
    field = nr.LipschitzField(2, 3)
    makers = [lambda: tiny_config(model="lipschitz", recipe="fixed", **kw).resolved(),
              lambda: build_model("lipschitz", 2, 3, 4, **kw),
              lambda: nr.ContinuousRNN(field, 3, **kw),
              lambda: StochasticRNN(field, 3, **kw),
              lambda: ODERNN(2, 3, 3, **kw)]
    for make in makers:
        with pytest.raises(ValueError, match="^checked by the specification$"):
            make()
    monkeypatch.setattr(solvers.SolveSpec, "__post_init__", real)
    monkeypatch.setattr(runs, "load_data", lambda *a, **k: pytest.fail("data loaded before the check"))
    with pytest.raises(ValueError) as exc:
        train(tiny_config(model="lipschitz", recipe="fixed", **kw))
    assert str(exc.value) == message


def test_cayley_optimizer_refuses_a_model_without_a_unitary_w():
    from neuralode_rnn.training import make_optimizer

    with pytest.raises(ValueError, match="no parameter marked unitary"):
        make_optimizer("cayley", build_model("lipschitz", 1, 2, 4), 0.01)


def test_cayley_optimizer_keeps_w_unitary_and_resumes_exactly(tiny_config, tmp_path):
    from neuralode_rnn.parametrizations import is_unitary_parameter, unitarity_error

    kw = dict(RESUME, model="unitary", method="euler", optimizer="cayley")
    full = train(tiny_config(run_dir=str(tmp_path / "full"), **kw))
    (W,) = [p for p in full.model.parameters() if is_unitary_parameter(p)]
    assert unitarity_error(W.detach()) < 1e-5
    torch.manual_seed(kw["seed"])  # the initialisation train() draws
    before = build_model("unitary", 1, 10, 8)
    assert not torch.equal(W.detach(), [p for p in before.parameters() if is_unitary_parameter(p)][0].detach())
    _killed(tiny_config, tmp_path / "cut", KillAt(1), model="unitary", method="euler", optimizer="cayley")
    resumed = train(tiny_config(run_dir=str(tmp_path / "cut"), resume=True, **kw))
    _same_run(resumed, full)


def test_a_float64_unitary_run_keeps_w_complex(tiny_config):
    result = train(tiny_config(model="unitary", dtype="float64"))
    assert result.model.field.U.dtype == torch.complex128
    assert float(result.model.field.U.detach().imag.abs().max()) > 0.01


def test_every_model_name_builds():
    for name in MODELS:
        m = build_model(name, 2, 3, 4)
        assert m(torch.zeros(1, 5, 2)).shape == (1, 3)


def test_validation_holds_out_a_fixed_share_of_the_training_set_and_never_reads_test(tiny_config):
    full = load_data(tiny_config().resolved())
    data = load_data(tiny_config(validation=0.25, seed=5).resolved())
    assert data.train.n_samples == 48 and data.test.n_samples == 16
    # held-out and kept samples partition the training set; the test split is not among them
    rows = {tuple(v.flatten().tolist()) for v in full.train.values}
    kept = {tuple(v.flatten().tolist()) for v in data.train.values}
    held = {tuple(v.flatten().tolist()) for v in data.test.values}
    assert kept | held == rows and not kept & held
    assert not held & {tuple(v.flatten().tolist()) for v in full.test.values}
    # the same held-out samples for every run seed (one validation set per task)
    again = validation_split(full, 0.25)
    assert torch.equal(again.test.values, data.test.values)
    result = train(tiny_config(validation=0.25))
    assert result.rows[-1]["evaluated_on"] == "validation"
    assert train(tiny_config()).rows[-1]["evaluated_on"] == "test"
    with pytest.raises(ValueError, match="validation"):
        train(tiny_config(validation=1.0))


def test_no_module_imports_a_private_name():
    """No module imports an underscore name from another module or another library's internals
    (solvers/sde.py's torchsde stepping is listed, and tests that compare method lists with torchdiffeq's
    registry)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    allowed = {("solvers/sde.py", "torchsde._core"), ("solvers/sde.py", "torchsde._core.sdeint"),
               ("tests/test_solvers.py", "torchdiffeq._impl.odeint"),
               ("tests/test_odeint_compat.py", "torchdiffeq._impl.odeint")}
    found = []
    for path in sorted(p for d in ("neuralode_rnn", "solvers", "examples", "scripts", "benchmarks", "tests")
                       for p in (root / d).rglob("*.py")):
        rel = str(path.relative_to(root))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                private_module = any(part.startswith("_") and not part.startswith("__") and part != "_version"
                                     for part in module.split("."))
                names = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if (private_module and (rel, module) not in allowed) or names:
                    found.append(f"{rel}:{node.lineno} from {module} import {', '.join(a.name for a in node.names)}")
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if any(part.startswith("_") and not part.startswith("__") for part in a.name.split(".")):
                        found.append(f"{rel}:{node.lineno} import {a.name}")
    assert not found, "\n".join(found)



def test_best_checkpoint_is_kept_only_when_chosen_on_a_validation_split(tiny_config, tmp_path):
    """Issue 16 item 3: best.pt was the epoch with the best *test* accuracy and `analyze` defaulted to
    it.  Now a run without a validation split keeps no best.pt, and an old best.pt in such a run
    (written before the rule) is refused as "best" and never picked by default."""
    import shutil

    from neuralode_rnn.analysis.runs import load_run as analysis_run
    from neuralode_rnn.training import TrainConfig, checkpoint_choice, load_run

    plain, held = tmp_path / "plain", tmp_path / "held"
    train(tiny_config(model="gru", epochs=2, run_dir=str(plain)))
    assert (plain / "last.pt").exists() and not (plain / "best.pt").exists()
    train(tiny_config(model="gru", epochs=2, validation=0.25, run_dir=str(held)))
    assert (held / "best.pt").exists()
    stored = TrainConfig.from_dict(RunDir(held).read_config())
    assert checkpoint_choice(stored, RunDir(held), None) == "best"
    assert analysis_run(held).checkpoint == "best.pt"

    shutil.copy(plain / "last.pt", plain / "best.pt")  # an old run directory: best.pt chosen on the test split
    stored = TrainConfig.from_dict(RunDir(plain).read_config())
    assert checkpoint_choice(stored, RunDir(plain), None) == "last"
    assert analysis_run(plain).checkpoint == "last.pt"
    with pytest.raises(ValueError, match="validation split.*validation=0.0.*--checkpoint last"):
        load_run(str(plain), "best")
    # resume keeps working on both
    assert len(train(tiny_config(model="gru", epochs=3, run_dir=str(plain), resume=True)).rows) == 3
    assert len(train(tiny_config(model="gru", epochs=3, validation=0.25, run_dir=str(held), resume=True)).rows) == 3


def test_resume_with_fresh_is_refused_before_anything_is_touched(tiny_config, tmp_path):
    """Issue 16 item 6: resume=True with fresh=True wiped a finished run and started it again."""
    run = tmp_path / "r"
    train(tiny_config(model="gru", run_dir=str(run)))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(ValueError, match="resume=True continues .* fresh=True replaces it"):
        train(tiny_config(model="gru", epochs=2, run_dir=str(run), resume=True, fresh=True))
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_memory_estimate_scales_with_the_solve_and_refuses_before_the_model_exists(tiny_config, tmp_path,
                                                                                    monkeypatch):
    """Issue 16 item 7: the estimate grows with steps x batch x hidden, the checkpoint mode needs
    less, and a run over its budget stops before the model is built."""
    from neuralode_rnn.training import budget, runs

    c = tiny_config(model="lipschitz", recipe="fixed", method="rk4", batch_size=32).resolved()
    one = budget.estimate_memory(c, 1000)
    assert one.activations == pytest.approx(1000 * 5 * 32 * 8 * 4 + 4 * 32 * 1000 * 4)  # (stages + 1) tensors a gap
    assert budget.estimate_memory(c, 2000).activations == pytest.approx(2 * one.activations)
    lighter = budget.estimate_memory(tiny_config(model="lipschitz", recipe="fixed", method="rk4", batch_size=32,
                                                 gradient="checkpoint").resolved(), 1000)
    assert lighter.activations < one.activations / 3
    assert budget.available_memory()[0] > 0
    monkeypatch.setattr(runs, "build_model_for", lambda *a: pytest.fail("the model was built"))
    with pytest.raises(budget.MemoryBudgetError, match="needs about .* more than the 1e-06 GB available"):
        train(tiny_config(memory_limit=1e-6, run_dir=str(tmp_path / "r")))
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match="memory_limit must be"):
        train(tiny_config(memory_limit=-1.0))


def test_curves_are_drawn_after_the_first_epoch_then_at_most_every_interval_and_at_the_end(tiny_config, tmp_path,
                                                                                          monkeypatch):
    """Drawing curves.png took as long as an epoch of the main job and doubled its time."""
    from neuralode_rnn import plots
    from neuralode_rnn.training import Checkpoints, Curves, Metrics

    drawn = []
    real = plots.curves_png
    monkeypatch.setattr(plots, "curves_png", lambda rows, **kw: drawn.append(len(rows)) or real(rows, **kw))
    result = train(tiny_config(model="gru", epochs=4, run_dir=str(tmp_path / "r")),
                   callbacks=[Checkpoints(), Metrics(), Curves(every=3600)])
    assert drawn == [1, 4]  # the first epoch, then the end: every epoch is in the final drawing
    assert (tmp_path / "r" / "curves.png").read_bytes() == real(result.rows, title=result.config.label)
    drawn.clear()
    train(tiny_config(model="gru", epochs=3, run_dir=str(tmp_path / "s")), callbacks=[Curves(every=0)])
    assert drawn == [1, 2, 3]  # every epoch when the interval allows it, and no second drawing at the end
