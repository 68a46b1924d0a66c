"""The structured kernel (solvers.LinearActivationTerm: fused stages, hand-written discrete adjoint)
against the same field integrated by the engine with plain autograd through its own equations
(the field's ``rhs`` on a solvers.DrivenTerm): same states to 1e-12 and same gradients (float64)
for every family, fixed and adaptive tableau, interpolation, shared and per-sample times and
substeps; both tanh kernels; gradcheck; checkpoint equals backprop (adaptive steps included);
memory of checkpoint; double backward against finite differences; the input cursor."""

from __future__ import annotations

import contextlib
import json
import warnings

import pytest
import torch

import neuralode_rnn as nr
import solvers
from solvers import LinearActivation

DT = torch.float64
B, T, D, N = 3, 6, 2, 5

FAMILIES = {
    "lipschitz": lambda: nr.LipschitzField(D, N, beta=0.7, gamma_A=0.05, gamma_W=0.02, init_std=3.0),
    "antisymmetric": lambda: nr.AntisymmetricField(D, N, gamma=0.1),
    "antisymmetric-gated": lambda: nr.AntisymmetricField(D, N, gamma=0.1, gated=True),
    "ctrnn": lambda: nr.CTRNNField(D, N),
}


def _times(kind):
    g = torch.Generator(torch.get_default_device()).manual_seed(5)
    if kind == "regular":
        return None
    if kind == "shared":
        return torch.cumsum(torch.rand(T, generator=g, dtype=DT) * 0.3 + 0.05, 0)
    return torch.cumsum(torch.rand(B, T, generator=g, dtype=DT) * 0.3 + 0.05, 1)


@contextlib.contextmanager
def _unstructured(field):
    """The same field without its declared structure: the engine runs its rhs with autograd."""
    field.structure = lambda: None
    try:
        yield
    finally:
        del field.structure


def _run(model, x, times):
    out = model.trajectory(x, times)
    w = torch.linspace(-1, 1, out.numel(), dtype=DT).reshape(out.shape)
    loss = (out * w).sum() + (out ** 2).sum()
    params = list(model.field.parameters()) + [x]
    return out.detach(), torch.autograd.grad(loss, params, allow_unused=True), model.nfe


def _both(model, x, times):
    fast = _run(model, x, times)
    with _unstructured(model.field):
        slow = _run(model, x, times)
    return fast, slow


def _assert_same(fast, slow, tol=1e-12, gtol=1e-9):
    torch.testing.assert_close(fast[0], slow[0], rtol=0, atol=tol)
    for a, b in zip(fast[1], slow[1]):
        torch.testing.assert_close(a, b, rtol=gtol, atol=gtol)
    assert fast[2] == slow[2]  # the same steps: the same number of evaluations


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4", "rk4_classic", "ralston", "dopri5", "bosh3", "tsit5"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_structured_equals_autograd_every_family_and_tableau(family, method):
    torch.manual_seed(0)
    model = nr.ContinuousRNN(FAMILIES[family]().double(), 2, method=method, rtol=1e-7, atol=1e-9).double()
    x = torch.randn(B, T, D, dtype=DT, requires_grad=True)
    _assert_same(*_both(model, x, _times("shared")))


@pytest.mark.parametrize("method, step_size", [("euler", None), ("midpoint", 0.07), ("dopri5", None)])
@pytest.mark.parametrize("times", ["regular", "shared", "per-sample"])
@pytest.mark.parametrize("interpolation", list(nr.INTERPOLATIONS))
def test_structured_equals_autograd_every_interpolation_and_clock(interpolation, times, method, step_size):
    torch.manual_seed(1)
    field = nr.LipschitzField(D, N, init_std=3.0).double()
    model = nr.ContinuousRNN(field, 2, method=method, step_size=step_size, interpolation=interpolation,
                             rtol=1e-7, atol=1e-9).double()
    x = torch.randn(B, T, D, dtype=DT, requires_grad=True)
    _assert_same(*_both(model, x, _times(times)))


@pytest.mark.parametrize("family", ["antisymmetric-gated", "ctrnn"])
def test_structured_equals_autograd_per_sample_with_missing_values(family):
    torch.manual_seed(2)
    model = nr.ContinuousRNN(FAMILIES[family]().double(), 2, method="bosh3", interpolation="cubic",
                             rtol=1e-6, atol=1e-8).double()
    x = torch.randn(B, T, D, dtype=DT)
    x[0, 2:4, 0] = float("nan")
    x[1, -2:] = float("nan")  # a shorter sequence, padded at the end
    x.requires_grad_(True)
    _assert_same(*_both(model, x, _times("per-sample")))


@pytest.mark.parametrize("kernel", ["tanh", "sigmoid"])
@pytest.mark.parametrize("gated", [False, True])
def test_both_tanh_kernels_compute_the_same_field(kernel, gated, monkeypatch):
    monkeypatch.setenv("SOLVERS_TANH_KERNEL", kernel)
    torch.manual_seed(3)
    field = (nr.AntisymmetricField(D, N, gated=True) if gated else nr.LipschitzField(D, N, init_std=3.0)).double()
    model = nr.ContinuousRNN(field, 2, method="rk4", step_size=0.1).double()
    x = torch.randn(B, T, D, dtype=DT, requires_grad=True)
    _assert_same(*_both(model, x, None))


@pytest.fixture
def fresh_kernel_cache(tmp_path, monkeypatch):
    """No pin, no SOLVERS_TANH_KERNEL, an empty cache directory and no answer remembered by this process."""
    from solvers import kernels

    monkeypatch.delenv("SOLVERS_TANH_KERNEL", raising=False)
    monkeypatch.setenv("SOLVERS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(kernels, "_PIN", None)
    monkeypatch.setattr(kernels, "_KERNELS", {})
    monkeypatch.setattr(kernels, "_WARNED", False)
    return kernels


def _faster(kernels, monkeypatch, name, during=None):
    """Make this process's measurement find ``name`` faster (and run ``during`` while measuring)."""
    def measure(dtype, device):
        if during is not None:
            during()
        return {"tanh": 1.0, "sigmoid": 2.0} if name == "tanh" else {"tanh": 2.0, "sigmoid": 1.0}
    monkeypatch.setattr(kernels, "_measure", measure)


def test_tanh_kernel_is_measured_once_and_can_be_forced(fresh_kernel_cache, monkeypatch):
    first = solvers.tanh_kernel(torch.float32)
    assert first in ("tanh", "sigmoid") and solvers.tanh_kernel(torch.float32) == first
    monkeypatch.setenv("SOLVERS_TANH_KERNEL", "sigmoid")
    assert solvers.tanh_kernel(torch.float32) == "sigmoid"
    assert solvers.pin_tanh_kernel("tanh") is None
    assert solvers.tanh_kernel(torch.float32) == "tanh"  # the pin wins over the environment
    assert solvers.pin_tanh_kernel(None) == "tanh" and solvers.tanh_kernel(torch.float32) == "sigmoid"
    with pytest.raises(ValueError, match="pin_tanh_kernel's name must be 'tanh' or 'sigmoid'; got 'relu'"):
        solvers.pin_tanh_kernel("relu")
    monkeypatch.setenv("SOLVERS_TANH_KERNEL", "relu")
    with pytest.raises(ValueError, match="SOLVERS_TANH_KERNEL must be 'tanh' or 'sigmoid'; got 'relu'"):
        solvers.tanh_kernel(torch.float32)


def test_tanh_kernel_is_kept_per_machine_not_measured_again_per_process(fresh_kernel_cache, monkeypatch):
    """Issue 16 item 2: each process measured afresh, so under load the same seed gave other numbers."""
    kernels = fresh_kernel_cache
    _faster(kernels, monkeypatch, "sigmoid")
    assert solvers.tanh_kernel(torch.float32) == "sigmoid"
    (path,) = kernels.kernel_cache_dir().glob("tanh_kernel-*.json")
    record = json.loads(path.read_text())
    assert record["kernel"] == "sigmoid" and record["dtype"] == "float32" and record["torch"] == torch.__version__
    # a later process whose own measurement (e.g. under load) finds tanh faster still uses the file's choice
    monkeypatch.setattr(kernels, "_KERNELS", {})
    _faster(kernels, monkeypatch, "tanh")
    assert solvers.tanh_kernel(torch.float32) == "sigmoid"
    assert solvers.tanh_kernel(torch.float64) == "tanh"  # another dtype is another key: measured, its own file
    assert len(list(kernels.kernel_cache_dir().glob("tanh_kernel-*.json"))) == 2


def test_racing_processes_all_take_the_first_writers_kernel(fresh_kernel_cache, monkeypatch):
    """Process B measures "tanh" while process A writes "sigmoid": B must use A's "sigmoid"."""
    kernels = fresh_kernel_cache

    def other_process_writes_first():
        with monkeypatch.context() as m:
            m.setattr(kernels, "_KERNELS", {})
            _faster(kernels, m, "sigmoid")
            assert kernels.tanh_kernel(torch.float32) == "sigmoid"

    _faster(kernels, monkeypatch, "tanh", during=other_process_writes_first)
    assert solvers.tanh_kernel(torch.float32) == "sigmoid"
    assert not list(kernels.kernel_cache_dir().glob(".*tmp"))  # no temporary file left behind


def test_unwritable_cache_measures_and_warns_once(fresh_kernel_cache, monkeypatch, tmp_path):
    kernels = fresh_kernel_cache
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("SOLVERS_CACHE_DIR", str(blocker / "cache"))  # cannot be created under a file
    _faster(kernels, monkeypatch, "tanh")
    with pytest.warns(RuntimeWarning, match="could not be cached in .*a-file/cache.*measured 'tanh' for this process"):
        assert solvers.tanh_kernel(torch.float32) == "tanh"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert solvers.tanh_kernel(torch.float64) == "tanh"  # warned once only


def test_a_damaged_cache_file_is_measured_again_and_replaced(fresh_kernel_cache, monkeypatch):
    kernels = fresh_kernel_cache
    _faster(kernels, monkeypatch, "tanh")
    solvers.tanh_kernel(torch.float32)
    (path,) = kernels.kernel_cache_dir().glob("tanh_kernel-*.json")
    path.write_text("{not json")
    monkeypatch.setattr(kernels, "_KERNELS", {})
    _faster(kernels, monkeypatch, "sigmoid")
    assert solvers.tanh_kernel(torch.float32) == "sigmoid" and json.loads(path.read_text())["kernel"] == "sigmoid"


@pytest.mark.parametrize("kernel", ["tanh", "sigmoid"])
def test_structured_term_reads_an_already_projected_input_with_its_bias(kernel):
    """U = None (the input is already u): the kernel's scale and the bias b apply to the one input type
    (no wrapper reader): f equals the structure's own equations on u(t) + b, in both kernels.  (The
    term reads one shared clock: per-sample clocks reach the kernel as an index clock with rates.)"""
    torch.manual_seed(2)
    W, A, b = torch.randn(N, N, dtype=DT) * 0.5, torch.randn(N, N, dtype=DT) * 0.5, torch.randn(N, dtype=DT)
    structure = LinearActivation(W=W, A=A, U=None, b=b)
    t = torch.cumsum(torch.rand(T, dtype=DT) + 0.1, 0)
    path = nr.interpolate(torch.randn(B, T, N, dtype=DT), t, "cubic")
    term = solvers.LinearActivationTerm(structure, path.input(), kernel=kernel)
    y = torch.randn(B, N, dtype=DT)
    for s in (t[0] - 0.5, 0.5 * (t[1] + t[2]), t[-1] + 1.0):
        want = structure.rhs(y, path.evaluate(s) + b)
        torch.testing.assert_close(term.f(float(s), y), want, rtol=0, atol=1e-12)


def test_unitary_runs_the_generic_driven_term():
    field = nr.UnitaryField(D, N, bias_init=-0.1).double()
    field.U.data = field.U.data.to(torch.complex128)
    assert field.structure() is None
    model = nr.ContinuousRNN(field, 2, method="dopri5", rtol=1e-8, atol=1e-10).double()
    x = torch.randn(B, T, D, dtype=DT)
    out = model.trajectory(x)
    ref = nr.ContinuousRNN(field, 2, method="rk4", step_size=0.01).double().trajectory(x)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)  # modReLU has a kink: both solvers lose order there


@pytest.mark.parametrize("method, step_size", [("euler", None), ("rk4", 0.3), ("heun3", 0.25)])
@pytest.mark.parametrize("gated", [False, True])
def test_structured_gradcheck(method, step_size, gated):
    # fixed steps only: finite differences of an adaptive solve also move its step sizes, which
    # its gradient treats as constants (compared with autograd on the same steps above instead)
    torch.manual_seed(4)
    field = (nr.AntisymmetricField(1, 3, gated=True) if gated else nr.LipschitzField(1, 3, init_std=2.0)).double()
    model = nr.ContinuousRNN(field, 2, method=method, step_size=step_size, interpolation="linear",
                             rtol=1e-4, atol=1e-6).double()
    x = torch.randn(2, 4, 1, dtype=DT, requires_grad=True)
    # the values' gradient (through the input coefficients); the parameters' are compared with
    # autograd above
    assert torch.autograd.gradcheck(lambda v: model.trajectory(v), (x,), atol=1e-7)


@pytest.mark.parametrize("family", ["lipschitz", "antisymmetric-gated"])
@pytest.mark.parametrize("method", ["euler", "rk4", "dopri5", "tsit5"])
def test_checkpoint_equals_backprop(family, method):
    torch.manual_seed(5)
    field = FAMILIES[family]().double()
    x = torch.randn(B, 40, D, dtype=DT)
    grads = {}
    for gradient in ("backprop", "checkpoint"):
        model = nr.ContinuousRNN(field, 2, method=method, gradient=gradient, rtol=1e-6, atol=1e-8).double()
        out = model.trajectory(x)
        grads[gradient] = (out.detach(), torch.autograd.grad((out ** 2).sum(), list(field.parameters())))
    torch.testing.assert_close(grads["checkpoint"][0], grads["backprop"][0], rtol=0, atol=0)
    for a, b in zip(grads["checkpoint"][1], grads["backprop"][1]):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)  # chunked sums: rounding order only


def _tape(out):
    """The tape recorded by the structured solve under ``out``'s graph."""
    todo, seen = [out.grad_fn], set()
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if "StructuredSolve" in type(fn).__name__:
            return fn.tape
        todo.extend(f for f, _ in fn.next_functions)
    raise AssertionError("no structured solve in the graph")


def _states_kept(tape):
    """The states a recorded tape holds: the engine's (``ys`` of every step, or ``kept`` ones) or the
    fixed-grid loop's (its chunks' steps, or ``kept`` ones)."""
    if getattr(tape, "kept", None):
        return len(tape.kept)
    if hasattr(tape, "chunks"):
        return sum(L for _, L, *_ in tape.chunks)
    return len(tape.ys)


def test_checkpoint_saves_sqrt_memory():
    # What the structured Function saves: its inputs (O(T D) coefficients) plus, in backprop, the
    # recorded tape is held by the Function (O(T N)); checkpoint keeps O(sqrt(T)) states.
    field = nr.LipschitzField(1, 32).double()
    sizes = {}
    for T_ in (64, 576):
        x = torch.randn(2, T_, 1, dtype=DT)
        for gradient in ("backprop", "checkpoint"):
            model = nr.ContinuousRNN(field, 2, method="midpoint", gradient=gradient).double()
            tape = _tape(model(x))
            kept = _states_kept(tape)
            sizes[gradient, T_] = kept
    assert sizes["backprop", 576] == 576 and sizes["backprop", 64] == 64
    assert sizes["checkpoint", 576] <= 2 * (24 + 1) and sizes["checkpoint", 64] <= 2 * (8 + 1)


def test_checkpoint_keeps_sqrt_states_of_an_adaptive_solve():
    field = nr.LipschitzField(1, 8).double()
    x = torch.randn(2, 300, 1, dtype=DT)
    model = nr.ContinuousRNN(field, 2, method="dopri5", gradient="checkpoint", rtol=1e-6, atol=1e-8).double()
    tape = _tape(model(x))
    n = len(tape)
    assert n > 300 and len(tape.kept) <= 2 * (2 * n ** 0.5 + 1)


def test_structure_errors():
    W = torch.zeros(N, N)
    U = torch.zeros(N, D)
    with pytest.raises(ValueError, match="unknown activation 'relu'"):
        LinearActivation(W=W, activation="relu")
    with pytest.raises(ValueError, match=r"U must have shape \(P, D\) with P = 10"):
        LinearActivation(W=W, U=U, activation="gated")
    with pytest.raises(ValueError, match=r"W must be square \(N, N\)"):
        LinearActivation(W=torch.zeros(3, 4))


def test_piecewise_input_cursor_equals_path_evaluation():
    torch.manual_seed(6)
    for method in nr.INTERPOLATIONS:
        times = torch.cumsum(torch.rand(9, dtype=DT) + 0.1, 0)
        path = nr.interpolate(torch.randn(2, 9, 3, dtype=DT), times, method)
        inputs = solvers.PiecewiseInput(path.knots, path.coeffs, path.first, path.last)
        probes = torch.cat([times[:1] - 1, torch.rand(40, dtype=DT) * (times[-1] - times[0] + 2) + times[0] - 1,
                            times[3:4], times[-1:] + 0.5])
        for t in probes.tolist():  # back and forth: the cursor must move both ways
            j = inputs.piece(t)
            torch.testing.assert_close(inputs.raw(j, t), path.evaluate(t), rtol=0, atol=1e-12)


def test_projected_input_chunks_are_bounded_in_bytes_and_read_like_the_projection(monkeypatch):
    """The projected coefficients are cached in chunks of at most CHUNK_BYTES (so a solve's input memory
    stops growing with T at a few (B, P) rows; it held 64 pieces, 12 MB at the benchmark's B = N = 128),
    never more than two at once; reads across chunk boundaries, forward and backward, equal
    x(t) U^T + b."""
    from solvers import inputs as inputs_module

    torch.manual_seed(7)
    U, b = torch.randn(4, 3, dtype=DT), torch.randn(4, dtype=DT)
    # B x P x 8 bytes = 96 per piece and power of tau: 400 bytes give 4 pieces (hold), 2 (linear), 1 (cubic)
    monkeypatch.setattr(inputs_module, "CHUNK_BYTES", 400)
    for method, length in (("hold", 4), ("linear", 2), ("cubic", 1)):
        times = torch.cumsum(torch.rand(20, dtype=DT) + 0.1, 0)
        path = nr.interpolate(torch.randn(3, 20, 3, dtype=DT), times, method)
        inputs = solvers.PiecewiseInput(path.knots, path.coeffs, path.first, path.last, weight=U, bias=b)
        assert inputs.chunk_length() == length, method
        inside = (times[:-1] + 0.5 * (times[1:] - times[:-1])).tolist()
        for t in inside + inside[::-1]:
            u = inputs.projected(inputs.piece(t), t)
            torch.testing.assert_close(u, path.evaluate(t) @ U.T + b, rtol=0, atol=1e-12)
            assert len(inputs._chunks) <= 2
    monkeypatch.setattr(inputs_module, "CHUNK_BYTES", 2 ** 40)
    assert solvers.PiecewiseInput(path.knots, path.coeffs, path.first, path.last, weight=U).chunk_length() == \
        inputs_module.CHUNK


def test_a_solve_does_not_depend_on_the_input_chunk_length(monkeypatch):
    """Chunks of one piece or of CHUNK pieces: the same states and gradients (reversible mode, float64)."""
    from solvers import inputs as inputs_module

    torch.manual_seed(8)
    field = nr.LipschitzField(2, 5).double()
    x = torch.randn(3, 40, 2, dtype=DT)
    results = []
    for budget in (1, 2 ** 40):
        monkeypatch.setattr(inputs_module, "CHUNK_BYTES", budget)
        model = nr.ContinuousRNN(field, 2, method="reversible_midpoint", gradient="reversible").double()
        torch.manual_seed(9)
        model.readout.reset_parameters()
        field.zero_grad()
        out = model(x)
        out.square().sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in field.parameters()]))
    (o1, g1), (o2, g2) = results
    torch.testing.assert_close(o1, o2, rtol=1e-12, atol=0)
    for a, c in zip(g1, g2):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("method", ["euler", "midpoint", "dopri5"])
@pytest.mark.parametrize("gradient", ["backprop", "checkpoint"])
@pytest.mark.parametrize("gated", [False, True])
def test_double_backward_through_the_fast_path_equals_finite_differences(method, gradient, gated,
                                                                        hessian_vector_and_differences):
    """create_graph=True (Hessian-vector products) replays the steps with autograd: H v is exact."""
    torch.manual_seed(0)
    field = nr.AntisymmetricField(1, 4, gated=True) if gated else nr.LipschitzField(1, 4, init_std=2.0)
    step = None if method == "dopri5" else 0.5
    model = nr.ContinuousRNN(field, 3, method=method, step_size=step, gradient=gradient, rtol=1e-6,
                             atol=1e-8).double()
    x = torch.randn(5, 6, 1, dtype=torch.float64)
    y = torch.randint(0, 3, (5,))
    params = list(model.parameters())
    v = [torch.randn_like(p) for p in params]

    def loss():
        return torch.nn.functional.cross_entropy(model(x), y)

    hv, fd = hessian_vector_and_differences(loss, params, v)
    tol = 1e-5 if method != "dopri5" else 1e-3  # adaptive: the steps move with the weights under finite differences
    for a, b in zip(hv, fd):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * 1e-2)


@pytest.mark.parametrize("method", ["rk4", "dopri5"])
def test_checkpoint_gradients_of_the_generic_term_reach_the_input_map(method):
    """The generic driven term (unitary field) under gradient="checkpoint": every parameter's gradient,
    the input map's included (it was None: the projection cached by the no-grad first pass had no
    graph), equals backprop's."""
    grads = {}
    for gradient in ("backprop", "checkpoint"):
        torch.manual_seed(0)
        model = nr.ContinuousRNN(nr.UnitaryField(D, N), 2, method=method, gradient=gradient,
                                 interpolation="cubic").to(DT)
        model(torch.randn(B, T, D, dtype=DT), _times("shared")).sum().backward()
        grads[gradient] = {n: p.grad for n, p in model.field.named_parameters()}
    for name, g in grads["backprop"].items():
        assert grads["checkpoint"][name] is not None, name
        torch.testing.assert_close(grads["checkpoint"][name], g, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------ no host sync in the loop
HOST_READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy")


@contextlib.contextmanager
def _host_reads(counts: dict):
    """Count reads of a tensor's value by the host (what waits for a GPU) made inside a fixed-step loop
    (the engine's ``solve_fixed``, or a term's own loop, on the stack) in counts["loop"], and all of them in
    counts["all"]; run the backward pass inside it too and the hand-written adjoints are measured."""
    import sys

    from solvers import driven, linear_activation

    # the step loops: the engine's, the structured kernel's fixed-grid loop, the driven term's fused Euler loop
    loops = {solvers.engine.solve_fixed.__code__, linear_activation._grid_solve.__code__,
             driven.DrivenTerm.solve_backprop.__code__}
    originals = {name: getattr(torch.Tensor, name) for name in HOST_READS}

    def counting(name):
        def read(self, *args, **kwargs):
            counts["all"] += 1
            frame = sys._getframe(1)
            while frame is not None and frame.f_code not in loops:
                frame = frame.f_back
            counts["loop"] += frame is not None
            return originals[name](self, *args, **kwargs)
        return read

    for name in HOST_READS:
        setattr(torch.Tensor, name, counting(name))
    try:
        yield counts
    finally:
        for name, fn in originals.items():
            setattr(torch.Tensor, name, fn)


def assert_no_host_reads_in_the_loop(model, times: str) -> None:
    """A trajectory of ``model`` and its backward pass: no host read inside a step loop, none in the backward
    pass, and only the once-per-forward checks (a few, whatever the number of steps) outside the loop."""
    values = torch.randn(B, T, D)
    t = _times(times).to(torch.float32)
    counts = {"all": 0, "loop": 0}
    with _host_reads(counts):
        states = model.trajectory(values, t)
        forward_reads = counts["all"]
        (states.real if states.is_complex() else states).sum().backward()
    assert counts["loop"] == 0
    assert counts["all"] == forward_reads  # the backward pass: no host read
    assert 0 < forward_reads < 40  # the once-per-forward checks, whatever the number of steps


@pytest.mark.parametrize("family", ["lipschitz", "antisymmetric-gated", "unitary"])
@pytest.mark.parametrize("gradient", ["backprop", "checkpoint", "adjoint"])
@pytest.mark.parametrize("times", ["shared", "per_sample"])
def test_fixed_step_solve_reads_no_tensor_on_the_host(family, gradient, times):
    """A fixed-step ContinuousRNN solve (the structured kernel and the generic driven term, forward and
    backward, substeps and the index clock) never reads a tensor's value on the host inside its step
    loop, and its backward pass reads none at all: nothing in them waits for a GPU.  The checks made
    once per forward, after the solve (finite states) or before it (h0, grid), are outside the loop."""
    if family == "unitary" and gradient == "adjoint":
        pytest.skip("the adjoint of a complex state's trajectory: not supported by this backward")
    torch.manual_seed(0)
    field = nr.UnitaryField(D, N) if family == "unitary" else FAMILIES[family]()
    model = nr.ContinuousRNN(field, 2, method="rk4", step_size=0.2, gradient=gradient, interpolation="cubic")
    assert_no_host_reads_in_the_loop(model, times)


def test_host_read_counter_sees_a_read_in_the_loop():
    counts = {"all": 0, "loop": 0}
    with _host_reads(counts):
        solvers.odeint(lambda t, y: -y * float(y.sum()), torch.ones(2), torch.linspace(0, 1, 5), method="euler")
    assert counts["loop"] == 4


# ------------------------------------------------------------------------------------ the fixed-grid loops
@contextlib.contextmanager
def _engine_steps():
    """Every fixed-grid solve on the engine's general loop (the structured kernel's fixed-grid loop and
    the driven term's fused Euler loop switched off)."""
    from solvers import driven, linear_activation

    applies, solve_backprop = linear_activation._grid_applies, driven.DrivenTerm.solve_backprop
    linear_activation._grid_applies = lambda p: False
    del driven.DrivenTerm.solve_backprop
    try:
        yield
    finally:
        linear_activation._grid_applies = applies
        driven.DrivenTerm.solve_backprop = solve_backprop


def _loss_grads(model, x, times):
    out = model.trajectory(x, times)
    real = torch.view_as_real(out) if out.is_complex() else out
    w = torch.linspace(-1, 1, real.numel(), dtype=real.dtype).reshape(real.shape)
    loss = (real * w).sum() + (real ** 2).sum()
    params = [p for p in model.field.parameters() if p.requires_grad] + [x]
    return out.detach(), torch.autograd.grad(loss, params, allow_unused=True), model.nfe


def _assert_takes_the_engines_steps(model, x, times) -> int:
    """The model's solve (a special loop) against the engine's steps: the same bits forward, the
    gradients to rounding, the same count of evaluations (returned)."""
    fast = _loss_grads(model, x, times)
    with _engine_steps():
        slow = _loss_grads(model, x, times)
    torch.testing.assert_close(fast[0], slow[0], rtol=0, atol=0)
    for a, b in zip(fast[1], slow[1]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert fast[2] == slow[2]
    return fast[2]


@pytest.mark.parametrize("kernel", ["tanh", "sigmoid"])
@pytest.mark.parametrize("gradient", ["backprop", "checkpoint"])
@pytest.mark.parametrize("method, step_size, times", [("euler", None, "shared"), ("euler", 0.07, "per-sample"),
                                                      ("midpoint", None, "regular"), ("rk4", 0.11, "shared"),
                                                      ("heun3", None, "per-sample")])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_fixed_grid_loop_equals_the_engine(family, method, step_size, times, gradient, kernel, monkeypatch):
    """The structured kernel's fixed-grid loop takes exactly the engine's steps (the same bits: the same
    kernels in the same order), and its chunked backward sweep over the loop's buffers gives the engine
    tape's gradients (to rounding: the weight gradients are summed over other chunks of steps).  T = 70
    > CHUNK steps: more than one chunk; trajectory outputs: an output gradient at every knot."""
    monkeypatch.setenv("SOLVERS_TANH_KERNEL", kernel)
    torch.manual_seed(7)
    model = nr.ContinuousRNN(FAMILIES[family]().double(), 2, method=method, step_size=step_size,
                             gradient=gradient).double()
    x = torch.randn(B, 70, D, dtype=DT, requires_grad=True)
    t = None if times == "regular" else torch.cumsum(torch.rand(*((B,) if times == "per-sample" else ()), 70,
                                                                  dtype=DT) * 0.3 + 0.05, -1)
    _assert_takes_the_engines_steps(model, x, t)


def test_fixed_grid_loop_runs_and_records_in_chunks():
    """The loop is what runs (a _GridTape of ceil(T / CHUNK) chunks holding every step), its stats are
    the engine's, and without a graph it records nothing."""
    from solvers import linear_activation

    model = nr.ContinuousRNN(nr.LipschitzField(1, 4).double(), 2, method="midpoint").double()
    x = torch.randn(2, 150, 1, dtype=DT)
    tape = _tape(model(x))
    assert isinstance(tape, linear_activation._GridTape)
    assert [L for _, L, *_ in tape.chunks] == [64, 64, 22] and len(tape) == 150
    with _engine_steps():
        model(x)
        engine_stats = (model.stats.nfe, model.stats.accepted)
    with torch.no_grad():
        model(x)
    assert (model.stats.nfe, model.stats.accepted) == engine_stats == (300, 150)


@pytest.mark.parametrize("step_size", [None, 0.5])
def test_unitary_fused_euler_loop_equals_the_engine(step_size):
    """The driven term's fused Euler loop (the field's own loop: the uRNN cell at step 1, a lerp below)
    takes the engine's steps bit for bit, and its hand-written backward gives the engine's gradients
    (autograd through the engine's steps) to rounding."""
    torch.manual_seed(8)
    field = nr.UnitaryField(D, N, bias_init=0.1).double()
    model = nr.ContinuousRNN(field, 2, method="euler", step_size=step_size).double()
    x = torch.randn(B, 20, D, dtype=DT, requires_grad=True)
    assert _assert_takes_the_engines_steps(model, x, None) == (20 if step_size is None else 40)


@pytest.mark.parametrize("times", ["shared", "per_sample"])
def test_unitary_fused_euler_loop_reads_no_tensor_on_the_host(times):
    """The unitary field's fused Euler loop (forward inside the driven term's solve, and its hand-written
    backward) reads no tensor's value on the host."""
    torch.manual_seed(0)
    model = nr.ContinuousRNN(nr.UnitaryField(D, N, bias_init=0.1), 2, method="euler", step_size=0.2)
    assert_no_host_reads_in_the_loop(model, times)
