"""Sequence models: a continuous-time RNN (field + path + solver + readout), its discrete twin,
and the torch.nn LSTM/GRU baselines, all with the same call signature.

    model(values, times=None) -> (B, output_size)       readout of the last observed state
    model.trajectory(values, times=None) -> (B, T, N)   hidden states at the sample times

``values`` is (B, T, D), batch-first with time on axis 1; NaN marks a missing observation.  A
sample whose last rows are all NaN (a shorter sequence padded at the end) is read out at its last
observed step.  As in ``torch.nn.RNN``, unbatched values (T, D) (with times None or (T,), h0 (N,))
give unbatched results ((output_size,) and (T, N)).  Values of another floating dtype are cast to
the model's dtype (its input map's); times are not: they are checked and differenced in float64 and
the solve runs on a clock that starts at the first sample (``paths.solve_clock``), so absolute
timestamps (epoch seconds) give the logits of the same series shifted to start at 0.  An empty batch
(B = 0) gives empty results.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

import solvers
from solvers.gradients import resolve_gradient

from .cells import FieldCell
from .fields.base import Field
from .paths import (
    INTERPOLATIONS,
    Path,
    as_times,
    check_values,
    fill_missing,
    interpolate,
    solve_clock,
)

__all__ = ["ContinuousRNN", "DiscreteRNN", "TorchRNN", "batch_inputs", "check_finite_states",
           "HoldsSolveSpec", "check_spec", "gather_time", "integrate_path", "last_observed_index", "share_modules",
           "solver_setting", "unbatched_state"]

def last_observed_index(values: torch.Tensor) -> torch.Tensor:
    """(B,) index of each sample's last time step with any observed channel (T-1 if none)."""
    observed = ~torch.isnan(values).all(-1)  # (B, T)
    T = values.shape[1]
    ar = torch.arange(T, device=values.device).expand_as(observed)
    idx = torch.where(observed, ar, torch.full_like(ar, -1)).max(1).values
    return torch.where(idx < 0, torch.full_like(idx, T - 1), idx)


def gather_time(states: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """states (B, T, F), idx (B,) -> (B, F): each sample's state at its own time index."""
    return states[torch.arange(states.shape[0], device=states.device), idx]


def batch_inputs(values, times, dtype: torch.dtype):
    """(values (B, T, D) in ``dtype``, times, unbatched): the models' one entry check.

    Unbatched values (T, D) become a batch of one, as ``torch.nn.RNN`` reads them; floating values
    of another dtype are cast to the model's ``dtype`` (an integer or complex tensor is refused by
    ``check_values``)."""
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"values must be a torch.Tensor of shape (batch, time, channels) or unbatched (time, "
                        f"channels); got {type(values).__name__}")
    unbatched = values.dim() == 2
    if unbatched:
        values = values.unsqueeze(0)
        if times is not None and as_times(times).dim() != 1:
            raise ValueError(f"unbatched values (T, D) = {tuple(values.shape[1:])} take times of shape (T,); got "
                             f"{tuple(as_times(times).shape)}")
    elif values.dim() != 3:
        raise ValueError(f"values must have shape (batch, time, channels) or unbatched (time, channels); got shape "
                         f"{tuple(values.shape)}")
    check_values(values)
    if values.dtype != dtype:
        values = values.to(dtype)
    return values, times, unbatched


def unbatched_state(h0, unbatched: bool):
    """An unbatched state (N,) as a batch of one (1, N)."""
    if h0 is None or not unbatched:
        return h0
    if not isinstance(h0, torch.Tensor) or h0.dim() != 1:
        raise ValueError(f"with unbatched values (T, D), h0 must be unbatched too, shape (hidden_size,); got "
                         f"{tuple(h0.shape) if isinstance(h0, torch.Tensor) else type(h0).__name__}")
    return h0.unsqueeze(0)


def check_finite_states(states: torch.Tensor, model: nn.Module, cause: Callable[[], str],
                        at: list[int] | None = None) -> None:
    """Raise ``solvers.NonFiniteStateError`` if ``states`` (B, S, N) holds NaN or inf.

    One host sync, once per forward call after the solve (never inside the step loop).  The message
    names the first (sample, time step), ``cause()`` (what the model suspects: the step it took and what
    to try; called only on failure) or, when some of ``model``'s parameters are not finite, those (a
    diverged optimiser step).
    ``at``: the time step indices of the S states (all steps when None)."""
    bad = ~torch.isfinite(states.detach())
    if not bool(bad.any()):
        return
    b, k, _ = torch.nonzero(bad)[0].tolist()
    k = at[k] if at is not None else k
    broken = [name for name, p in model.named_parameters() if not bool(torch.isfinite(p.detach()).all())]
    if broken:
        why = (f"the parameters {', '.join(broken[:4])}{' ...' if len(broken) > 4 else ''} are not finite (a "
               f"diverged optimiser step: lower the learning rate or clip the gradients)")
    else:
        why = cause()
    raise solvers.NonFiniteStateError(f"{type(model).__name__}: the hidden state is not finite (NaN or inf) at sample "
                                      f"{b}, time step {k}: {why}")


def check_output_size(output_size) -> None:
    """A clear error unless ``output_size`` (the readout's width) is a positive int."""
    if isinstance(output_size, bool) or not isinstance(output_size, int) or output_size < 1:
        raise ValueError(f"output_size must be a positive int (the readout's width); got {output_size!r}")


def check_plain_state(h0, shape: tuple[int, int], dtype: torch.dtype) -> None:
    """A clear error for an ``h0`` of a cell without a field: not a tensor, wrong shape or dtype, NaN."""
    if not isinstance(h0, torch.Tensor):
        raise TypeError(f"h0 must be a torch.Tensor; got {type(h0).__name__}")
    if tuple(h0.shape) != shape:
        raise ValueError(f"h0 must have shape (batch, hidden_size) = {shape}; got {tuple(h0.shape)}")
    if h0.dtype != dtype:
        raise TypeError(f"h0 must have the model's dtype {dtype}; got {h0.dtype} (cast it with h0.to({dtype}), or "
                        f"the model with model.to({h0.dtype}))")
    bad = ~torch.isfinite(h0.detach())
    if bool(bad.any()):
        b, n = torch.nonzero(bad)[0].tolist()
        raise ValueError(f"h0 must be finite; got h0[{b}, {n}] = {h0.detach()[b, n].item()}")


def _check_channels(values: torch.Tensor, input_size: int) -> None:
    if values.shape[-1] != input_size:
        raise ValueError(f"values must have {input_size} channels (the model's input_size) on the last axis; "
                         f"got shape {tuple(values.shape)}")


def integrate_path(field: Field, path: Path, h0: torch.Tensor, at: list[int], spec: solvers.SolveSpec, *,
                   knots: torch.Tensor | None = None, first_gap: float | None = None) -> tuple[torch.Tensor, solvers.problem.Stats]:
    """``field`` driven by ``path``, integrated from one first gap before the first knot as ``spec`` says.

    Returns the states (len(at), B, N) at the knots ``at`` and the solve's :class:`solvers.problem.Stats`
    (its evaluations and steps; its ``reconstruction_error`` set by an adjoint's backward pass).

    ``spec``: the :class:`solvers.SolveSpec` of the solve (method, step_size or rtol/atol, gradient,
    max_steps), validated when it was made; this function only builds the term and
    the clock and hands them to ``spec.solve``.

    The clock (``paths.solve_clock``, float64): shared times (T,) are real time relative to the first
    knot (``path.knots``, or ``knots`` given instead), starting at t0 = 2 t_1 - t_2 (t_1 -
    ``first_gap`` when given, t_1 - 1 for a single sample).  Per-sample times (B, T) run on an *index clock*: knot
    k at s = k, the start at s = -1, and on piece j each sample's field is multiplied by its own
    dt/ds (the piece's real length), so every sample steps through its own gaps; with one fixed step
    per gap it gets what it would get alone (to rounding); with ``step_size`` a gap gets the steps that
    its longest sample needs (at least as many as alone, so not the same states), and an adaptive
    method takes one step sequence for the batch.
    The term: the structured kernel when the field declares the linear-plus-activation form, else the
    field's ``rhs`` driven through the engine's cursor (the input map applied per evaluation under
    the adjoint, so its memory stays flat and its gradients reach the map).
    """
    if not path.per_sample:
        clock = "time"
        knots, t_out = solve_clock(path, at, knots=knots, first_gap=first_gap)
    else:
        clock = "index"
        knots, t_out = solve_clock(path, at, clock="index")
    structure = field.structure()
    params = tuple(p for p in field.parameters() if p.requires_grad)
    sources = None
    if structure is not None:
        term = solvers.LinearActivationTerm(structure, path.input(clock, knots), time_dtype=knots.dtype)
    elif spec.gradient in ("adjoint", "reversible"):
        # the adjoint (and the reversible mode) differentiates the input's tensors one by one: give it detached leaves
        # of them
        # (the coefficients of a spline are functions of one another), tied back to the originals
        sources = params + path.tensors()
        leaves = [x.detach().requires_grad_(x.requires_grad) for x in path.tensors()]
        n = len(path.coeffs)
        leaf_path = Path(path.method, path.knots, leaves[:n], leaves[n], leaves[n + 1])
        term = field.driven_term(leaf_path, clock, knots, project=False)
        params = params + tuple(leaves)
    else:
        # checkpoint recomputes segments with grad: a projection cached by its no-grad first pass would
        # hold no graph, so the input map is applied per evaluation there
        term = field.driven_term(path, clock, knots, project=spec.gradient != "checkpoint")
    rates = term.inputs.rates
    gap_scale = None if rates is None else rates.max(0).values
    sol = spec.solve_with_stats(term, h0, t_out, gap_scale=gap_scale, jump_t=knots, params=params,
                                param_sources=sources)
    return torch.stack(sol.ys[1:]), sol.stats


def check_spec(spec) -> solvers.SolveSpec:
    """``spec`` if it is a :class:`solvers.SolveSpec`, else a TypeError naming what it got."""
    if not isinstance(spec, solvers.SolveSpec):
        raise TypeError(f"spec must be a solvers.SolveSpec (e.g. model.spec.replace(method='rk4')); got "
                        f"{type(spec).__name__}")
    return spec


def solver_setting(name: str) -> property:
    """A read-only view of ``model.spec.<name>``: a model's solver settings are its frozen
    specification, so assigning one is an AttributeError pointing to ``with_solver``."""

    def get(self):
        return getattr(self.spec, name)

    def refuse(self, value):
        raise AttributeError(f"{type(self).__name__}.{name} is part of the model's frozen solve specification; use "
                             f"model.with_solver({name}={value!r}) for a model that shares these parameters")

    return property(get, refuse, doc=f"The solve specification's ``{name}`` (read-only; see ``with_solver``).")


def share_modules(model: nn.Module, **attributes) -> nn.Module:
    """A new module of ``model``'s class holding the same submodules and parameters (not copies),
    with ``attributes`` set on it: the model of ``with_solver``.

    The instance's own tables (submodules, parameters, buffers, hooks) are new dicts holding the
    same objects, so replacing a submodule of one does not replace it in the other."""
    new = type(model).__new__(type(model))
    new.__dict__.update({k: (v.copy() if isinstance(v, (dict, set)) else v) for k, v in model.__dict__.items()})
    for name, value in attributes.items():
        if isinstance(value, nn.Module):
            setattr(new, name, value)  # registered in the new instance's own table of submodules
        else:
            object.__setattr__(new, name, value)
    return new


class HoldsSolveSpec:
    """The part of a model that holds its solve settings as one frozen specification in ``_spec``
    (a :class:`solvers.SolveSpec`, or a baseline's own frozen settings with ``replace``): read-only
    views of the settings every such specification has, and ``with_solver``."""

    @property
    def spec(self):
        """How this model solves (frozen); ``with_solver`` changes it."""
        return self._spec

    def with_solver(self, **changes):
        """This model with ``spec.replace(**changes)`` (e.g. ``method="rk4", step_size=None``).

        The result shares this model's modules (the same modules and parameters, not copies):
        training one trains the other.  The settings are validated by the specification; an unknown
        name is a TypeError naming the settings there are."""
        return share_modules(self, _spec=self._spec.replace(**changes))

    method = solver_setting("method")
    step_size = solver_setting("step_size")
    rtol = solver_setting("rtol")
    atol = solver_setting("atol")
    gradient = solver_setting("gradient")


class ContinuousRNN(HoldsSolveSpec, nn.Module):
    """A recurrent field integrated through an interpolated input, then a linear readout.

    The hidden state starts at h0 (zeros by default) one first gap before the first sample,
    t0 = 2 t_1 - t_2 (0 when ``times`` is None, i.e. t_k = k), and is integrated by ``method``
    (any Runge-Kutta method of ``solvers.TABLEAUX``, fixed or adaptive).  Fixed-step methods step
    on a grid aligned with the sample times: one step per gap when ``step_size`` is None, else
    each gap split into equal steps no longer than ``step_size``.  Adaptive methods end a step on
    every sample time (the input's knots are jump times).  With times eps*k, step eps and a
    "hold" input this is exactly ``DiscreteRNN(field.discretize(method, eps))``.

    Shared times (T,) are integrated in real time.  Per-sample times (B, T) are integrated on an
    index clock (see :func:`integrate_path`), so each sample steps through its own gaps and gets
    what it would get alone with one fixed step per gap; with
    ``step_size`` a gap gets the number of steps that the longest gap at that position in the batch
    needs, and adaptive batch error control one step sequence for the batch (not the same states).

    Args:
        field: a :class:`Field`.
        output_size: width of the linear readout of the last state's features.
        method: solver name; "euler" (the papers' discretisation) by default.
        step_size: fixed-step size in time units; None for one step per sample gap.
        interpolation: "hold" (a discrete RNN's input), "linear", "cubic" or "natural".
        adjoint: shorthand for gradient="adjoint".
        rtol, atol: adaptive solvers' tolerances (loose defaults suit training).
        gradient: a mode of ``solvers.GRADIENT_MODES``: "backprop" (default), "checkpoint" (the
            same gradients, memory ~sqrt(steps)) or "adjoint" (memory flat in T, gradients exact up
            to the backward solve's error).
        max_steps: the solve's step limit (``solvers.StepLimitError`` beyond it).

    ``stats``: the last solve's :class:`solvers.problem.Stats` (None before one); ``nfe``: its
    evaluations of the field.
    """

    def __init__(self, field: Field, output_size: int, method: str = "euler", step_size: float | None = None,
                 interpolation: str = "hold", adjoint: bool = False, rtol: float = 1e-3, atol: float = 1e-5,
                 gradient: str | None = None, max_steps: int = solvers.DEFAULT_MAX_STEPS):
        super().__init__()
        if not isinstance(field, Field):
            raise TypeError(f"field must be a neuralode_rnn Field (e.g. nr.LipschitzField); got {type(field).__name__}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {interpolation!r}; expected one of "
                             f"{', '.join(map(repr, INTERPOLATIONS))}")
        check_output_size(output_size)
        # the solver settings are checked once, by the specification (against solvers' registries)
        self._spec = solvers.SolveSpec(method=method, step_size=step_size, rtol=rtol, atol=atol,
                                       gradient=resolve_gradient(gradient, adjoint), max_steps=max_steps)
        self.field = field
        self.interpolation = interpolation
        self.readout = nn.Linear(field.feature_size, output_size)
        self.stats = None  # the last solve's solvers.problem.Stats (an adjoint's reconstruction_error after backward)

    @property
    def nfe(self) -> int:
        """Evaluations of the field in the last solve (``stats.nfe``; 0 before one)."""
        return 0 if self.stats is None else self.stats.nfe

    # -------------------------------------------------------------- the solve specification
    max_steps = solver_setting("max_steps")

    @property
    def adjoint(self) -> bool:
        return self.gradient == "adjoint"

    @adjoint.setter
    def adjoint(self, value) -> None:
        raise AttributeError(f"{type(self).__name__}.adjoint is part of the model's frozen solve specification; use "
                             f"model.with_solver(gradient='adjoint') for a model that shares these parameters")

    @property
    def dtype(self) -> torch.dtype:
        """The real dtype the values enter in (the field's input map's); inputs are cast to it."""
        return self.field.input_map.weight.dtype

    @property
    def fixed_step(self) -> bool:
        return not self._spec.adaptive

    # -------------------------------------------------------------- integration
    def _h0(self, h0, B: int, dtype: torch.dtype, device) -> torch.Tensor:
        if h0 is None:
            return self.field.initial_state(B, dtype, device)
        self.field.check_state(h0, B, name="h0", dtype=dtype)
        return h0

    def instability(self, path: Path, spec: solvers.SolveSpec | None = None) -> str:
        """What a non-finite state most likely means for this model on ``path`` solved by ``spec``
        (default its own), and what to try."""
        spec = self._spec if spec is None else spec
        if spec.adaptive:
            return (f"the adaptive method {spec.method!r} (rtol={spec.rtol:g}, atol={spec.atol:g}) ended with a "
                    f"non-finite state: the field overflowed on these inputs or times; check the values and h0 for "
                    f"extreme entries, or tighten rtol/atol")
        gaps = path.gaps().detach().to(torch.float64).reshape(-1)
        gap = float(gaps.max()) if gaps.numel() else 1.0
        step = gap if spec.step_size is None else float((gaps / torch.ceil(gaps / spec.step_size)).max()) \
            if gaps.numel() else spec.step_size
        how = "one step per gap (step_size=None)" if spec.step_size is None else f"step_size={spec.step_size:g}"
        return (f"the fixed-step method {spec.method!r} took steps up to {step:g} ({how}; largest gap between "
                f"samples {gap:g}), most likely beyond its stability limit (solvers.max_stable_step); try a smaller "
                f"step_size (e.g. step_size={step / 10:g}), an adaptive method (method='dopri5'), or times in "
                f"larger units so the gaps are shorter")

    @property
    def structured(self) -> bool:
        """True when the field declares the linear-plus-activation form (the structured kernel runs it)."""
        return self.field.structure() is not None

    def solve_path(self, path: Path, h0: torch.Tensor | None = None, at: list[int] | None = None,
                   check_finite: bool = True, *, spec: solvers.SolveSpec | None = None) -> torch.Tensor:
        """Hidden states (B, T, N) at the path's knots, starting one first gap before them.

        ``at``: knot indices (increasing) to return, (B, len(at), N); the solve stops at the last.
        ``check_finite``: raise ``solvers.NonFiniteStateError`` on a NaN or inf state (one check after
        the solve); False returns them, for a study that measures a divergence (compare_solvers).
        ``spec``: solve this call with another :class:`solvers.SolveSpec` (default ``self.spec``).
        """
        spec = self._spec if spec is None else check_spec(spec)
        B, T = path.batch_size, path.length
        h0 = self._h0(h0, B, path.dtype, path.device)
        at = list(range(T)) if at is None else [int(k) for k in at]
        states, self.stats = integrate_path(self.field, path, h0, at, spec)
        states = states.transpose(0, 1)
        if check_finite:
            check_finite_states(states, self, lambda: self.instability(path, spec), at)
        return states

    def path(self, values: torch.Tensor, times: torch.Tensor | None = None) -> Path:
        """The input path this model integrates (validates the values; unbatched (T, D) values
        give a path of one sample; values are cast to the model's dtype)."""
        values, times, _ = batch_inputs(values, times, self.dtype)
        return self._path(values, times)

    def _path(self, values: torch.Tensor, times) -> Path:
        _check_channels(values, self.field.input_size)
        return interpolate(values, times, self.interpolation)

    def _empty(self, values: torch.Tensor) -> torch.Tensor:
        """The (0, N) state of an empty batch (connected to h0's parameters, if any)."""
        self.stats = None
        return self.field.initial_state(0, values.dtype, values.device)

    def trajectory(self, values: torch.Tensor, times: torch.Tensor | None = None,
                   h0: torch.Tensor | None = None, *, spec: solvers.SolveSpec | None = None) -> torch.Tensor:
        """Hidden states (B, T, N) at the sample times (complex for complex fields); ``spec``: solve
        this call with another :class:`solvers.SolveSpec` (default ``self.spec``)."""
        values, times, unbatched = batch_inputs(values, times, self.dtype)
        h0 = unbatched_state(h0, unbatched)
        if values.shape[0] == 0:
            _check_channels(values, self.field.input_size)
            return self._empty(values).unsqueeze(1).expand(0, values.shape[1], -1)
        states = self.solve_path(self._path(values, times), h0, spec=spec)
        return states[0] if unbatched else states

    def forward(self, values: torch.Tensor, times: torch.Tensor | None = None,
                h0: torch.Tensor | None = None, *, spec: solvers.SolveSpec | None = None) -> torch.Tensor:
        """Readout (B, output_size) of the state at each sample's last observed time; ``spec``: solve
        this call with another :class:`solvers.SolveSpec` (default ``self.spec``; a training recipe
        switches the solver per batch with it).

        Only the states at the distinct last observed steps are requested from the solver (one,
        usually), so checkpoint and adjoint memory does not hold a (B, T, N) trajectory."""
        values, times, unbatched = batch_inputs(values, times, self.dtype)
        h0 = unbatched_state(h0, unbatched)
        if values.shape[0] == 0:
            _check_channels(values, self.field.input_size)
            return self.readout(self.field.features(self._empty(values)))
        last = last_observed_index(values)
        at = sorted(set(last.tolist()))
        states = self.solve_path(self._path(values, times), h0, at, spec=spec)  # (B, len(at), N)
        pos = torch.searchsorted(torch.tensor(at, device=last.device), last)
        out = self.readout(self.field.features(gather_time(states, pos)))
        return out[0] if unbatched else out


class DiscreteRNN(nn.Module):
    """A discrete cell stepped once per sample, then a linear readout: h_k = cell(h_{k-1}, x_k).

    A :class:`FieldCell` runs on the solver engine with one held input per step (the same kernels as
    :class:`ContinuousRNN`); other cells in a plain loop over ``unbind`` (indexing
    ``x[:, k]`` in the loop would make backward O(T^2)).  Missing values (NaN) are filled by carrying the last observation forward, as the
    "hold" path does.  ``times`` is accepted for a common signature and must be None or evenly
    spaced: a discrete cell has one fixed step.
    """

    def __init__(self, cell: nn.Module, output_size: int):
        super().__init__()
        if isinstance(cell, Field) or not isinstance(cell, nn.Module) or \
                not all(hasattr(cell, a) for a in ("input_size", "hidden_size")):
            raise TypeError(f"cell must be a discrete cell, an nn.Module with input_size and hidden_size (e.g. "
                            f"field.discretize('euler', 0.1) for a field); got {type(cell).__name__}")
        check_output_size(output_size)
        self.cell = cell
        field = getattr(cell, "field", None)
        self._features = field.features if field is not None else (lambda h: h)
        feat = field.feature_size if field is not None else cell.hidden_size
        self.readout = nn.Linear(feat, output_size)

    @property
    def dtype(self) -> torch.dtype:
        """The real dtype the values enter in (the cell's input map's); inputs are cast to it."""
        field = getattr(self.cell, "field", None)
        if field is not None:
            return field.input_map.weight.dtype
        return next((p.dtype for p in self.cell.parameters() if p.is_floating_point()), self.readout.weight.dtype)

    def _h0(self, h0, B: int, dtype, device) -> torch.Tensor:
        field = getattr(self.cell, "field", None)
        if h0 is None:
            if field is None:
                return torch.zeros(B, self.cell.hidden_size, dtype=dtype, device=device)
            return field.initial_state(B, dtype, device)
        if field is not None:
            field.check_state(h0, B, name="h0", dtype=dtype)
        else:
            check_plain_state(h0, (B, self.cell.hidden_size), dtype)
        return h0

    def instability(self) -> str:
        """What a non-finite state most likely means for this cell, and what to try."""
        eps = getattr(self.cell, "step_size", None)
        if eps is None:
            return "check the values and h0 for extreme entries"
        return (f"the cell's step of {self.cell.method!r} with eps = {eps:g} is most likely beyond its stability "
                f"limit (solvers.max_stable_step); try a smaller step_size in field.discretize(method, step_size)")

    def trajectory(self, values: torch.Tensor, times: torch.Tensor | None = None,
                   h0: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states (B, T, N) after each sample (complex for complex fields)."""
        values, times, unbatched = batch_inputs(values, times, self.dtype)
        states = self._trajectory(values, times, unbatched_state(h0, unbatched))
        return states[0] if unbatched else states

    def _trajectory(self, values: torch.Tensor, times: torch.Tensor | None, h0: torch.Tensor | None) -> torch.Tensor:
        _check_channels(values, self.cell.input_size)
        if values.shape[0] == 0:
            return self._h0(None, 0, values.dtype, values.device).unsqueeze(1).expand(0, values.shape[1], -1)
        if times is not None:
            t = as_times(times).to(torch.float64)  # differenced in float64: epoch timestamps keep their gaps
            d = t[..., 1:] - t[..., :-1]
            # rtol 1e-3: float32 times such as 0.03 * k are evenly spaced only up to rounding
            if d.numel() and not torch.allclose(d, d.reshape(-1)[:1].expand_as(d), rtol=1e-3, atol=0.0):
                raise ValueError("a DiscreteRNN steps once per sample and needs evenly spaced times; got uneven "
                                 "times: use ContinuousRNN for irregular samples")
        B, T = values.shape[0], values.shape[1]
        if isinstance(self.cell, FieldCell):
            # One held step of the cell's tableau per sample, on the engine: exactly the cell's
            # recurrence (tests write it out), at the speed of the continuous models.
            cell = self.cell
            eps = cell.step_size
            # the clock in float64 whatever the values' dtype: every step is eps to 1e-16
            knots = eps * torch.arange(1, T + 1, dtype=torch.float64, device=values.device)
            path = interpolate(values, None, "hold")  # a hold path's pieces do not depend on the knots
            h = self._h0(h0, B, values.dtype, values.device)
            states, _ = integrate_path(cell.field, path, h, list(range(T)), solvers.SolveSpec(method=cell.method),
                                       knots=knots, first_gap=eps)
            states = states.transpose(0, 1)
        else:
            x = fill_missing(values, torch.arange(T, dtype=values.dtype, device=values.device), "hold")
            h = self._h0(h0, B, x.dtype, x.device)
            steps = []
            for x_k in x.unbind(1):
                h = self.cell(h, x_k)
                steps.append(h)
            states = torch.stack(steps, 1)
        check_finite_states(states, self, self.instability)
        return states

    def forward(self, values: torch.Tensor, times: torch.Tensor | None = None,
                h0: torch.Tensor | None = None) -> torch.Tensor:
        """Readout (B, output_size) of the state at each sample's last observed step."""
        values, times, unbatched = batch_inputs(values, times, self.dtype)
        states = self._trajectory(values, times, unbatched_state(h0, unbatched))
        out = self.readout(self._features(gather_time(states, last_observed_index(values))))
        return out[0] if unbatched else out


class TorchRNN(nn.Module):
    """torch.nn.LSTM / GRU baseline (batch_first) with the same call signature and readout.

    Missing values are carried forward; the readout reads each sample's last observed step.
    """

    def __init__(self, kind: str, input_size: int, hidden_size: int, output_size: int, num_layers: int = 1):
        super().__init__()
        layers = {"lstm": nn.LSTM, "gru": nn.GRU}
        if kind not in layers:
            raise ValueError(f"unknown baseline {kind!r}; expected 'lstm' or 'gru'")
        self.kind = kind
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.rnn = layers[kind](input_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.readout = nn.Linear(hidden_size, output_size)

    @property
    def dtype(self) -> torch.dtype:
        """The real dtype the values enter in (the LSTM/GRU's input weights'); inputs are cast to it."""
        return self.rnn.weight_ih_l0.dtype

    def trajectory(self, values: torch.Tensor, times: torch.Tensor | None = None, h0=None) -> torch.Tensor:
        """Outputs (B, T, hidden_size) of the LSTM/GRU at every step; ``h0`` as torch.nn.LSTM/GRU take it."""
        values, times, unbatched = batch_inputs(values, times, self.dtype)
        states = self._trajectory(values, self._h0(h0, unbatched))
        return states[0] if unbatched else states

    def _h0(self, h0, unbatched: bool):
        # torch.nn.LSTM/GRU's unbatched state is (num_layers, H): the batch axis is 1
        if h0 is None:
            return h0
        parts = h0 if isinstance(h0, tuple) else (h0,)
        for name, h in zip(("h0", "c0") if len(parts) == 2 else ("h0",), parts):
            if isinstance(h, torch.Tensor) and h.is_floating_point() and not bool(torch.isfinite(h.detach()).all()):
                pos = tuple(torch.nonzero(~torch.isfinite(h.detach()))[0].tolist())
                raise ValueError(f"{name} must be finite; got {name}[{', '.join(map(str, pos))}] = {h.detach()[pos].item()}")
        if not unbatched:
            return h0
        return tuple(h.unsqueeze(1) for h in h0) if isinstance(h0, tuple) else h0.unsqueeze(1)

    def _trajectory(self, values: torch.Tensor, h0) -> torch.Tensor:
        _check_channels(values, self.input_size)
        x = fill_missing(values, torch.arange(values.shape[1], dtype=values.dtype, device=values.device), "hold")
        out, _ = self.rnn(x) if h0 is None else self.rnn(x, h0)
        return out

    def forward(self, values: torch.Tensor, times: torch.Tensor | None = None, h0=None) -> torch.Tensor:
        """Readout (B, output_size) of each sample's last observed step."""
        values, times, unbatched = batch_inputs(values, times, self.dtype)
        states = self._trajectory(values, self._h0(h0, unbatched))
        out = self.readout(gather_time(states, last_observed_index(values)))
        return out[0] if unbatched else out

