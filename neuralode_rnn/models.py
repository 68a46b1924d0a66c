"""Sequence models: a continuous-time RNN (field + path + solver + readout), its discrete twin,
and the torch.nn LSTM/GRU baselines, all with the same call signature.

    model(values, times=None) -> (B, output_size)       readout of the last observed state
    model.trajectory(values, times=None) -> (B, T, N)   hidden states at the sample times

``values`` is (B, T, D), batch-first with time on axis 1; NaN marks a missing observation.  A
sample whose last rows are all NaN (a shorter sequence padded at the end) is read out at its last
observed step.  As in ``torch.nn.RNN``, unbatched values (T, D) (with times None or (T,), h0 (N,))
give unbatched results ((output_size,) and (T, N)).  Values (and times) of another floating dtype
are cast to the model's dtype (its input map's); an empty batch (B = 0) gives empty results.
"""

from __future__ import annotations

import math

import torch
from torch import nn

import solvers
from solvers.fixed import knot_grid

from .cells import FieldCell
from .fields.base import Field
from .parametrizations import keep_complex
from .paths import INTERPOLATIONS, Path, check_values, fill_missing, interpolate

__all__ = ["GRADIENTS", "ContinuousRNN", "DiscreteRNN", "TorchRNN", "batch_inputs", "gather_time", "last_observed_index",
           "unbatched_state"]

GRADIENTS = ("backprop", "adjoint", "checkpoint")


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
        if times is not None and torch.as_tensor(times).dim() != 1:
            raise ValueError(f"unbatched values (T, D) = {tuple(values.shape[1:])} take times of shape (T,); got "
                             f"{tuple(torch.as_tensor(times).shape)}")
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


def _check_channels(values: torch.Tensor, input_size: int) -> None:
    if values.shape[-1] != input_size:
        raise ValueError(f"values must have {input_size} channels (the model's input_size) on the last axis; "
                         f"got shape {tuple(values.shape)}")


def resolve_gradient(gradient: str | None, adjoint: bool) -> str:
    """The gradient mode from ``gradient`` and the ``adjoint=True`` shorthand."""
    if gradient is None:
        return "adjoint" if adjoint else "backprop"
    if gradient not in GRADIENTS:
        raise ValueError(f"unknown gradient mode {gradient!r}; expected one of {', '.join(map(repr, GRADIENTS))}")
    if adjoint and gradient != "adjoint":
        raise ValueError(f"adjoint=True contradicts gradient={gradient!r}; pass only one of them")
    return gradient


class ContinuousRNN(nn.Module):
    """A recurrent field integrated through an interpolated input, then a linear readout.

    The hidden state starts at h0 (zeros by default) one first gap before the first sample,
    t0 = 2 t_1 - t_2 (0 when ``times`` is None, i.e. t_k = k), and is integrated by ``method``
    (any name in ``solvers.METHODS``).  Fixed-step methods step on a grid aligned with the
    sample times: one step per gap when ``step_size`` is None, else each gap split into equal
    steps no longer than ``step_size``.  With times eps*k, step eps and a "hold" input this is
    exactly ``DiscreteRNN(field.discretize(method, eps))``.

    Shared times (T,) are integrated in real time.  Per-sample times (B, T) are integrated on an
    index clock (sample k at s = k, see :meth:`Field.driven_by`), so each sample steps through its
    own gaps and gets what it would get alone; with ``step_size`` a gap gets the number of steps
    that the longest gap at that position in the batch needs.

    Args:
        field: a :class:`Field`.
        output_size: width of the linear readout of the last state's features.
        method: solver name; "euler" (the papers' discretisation) by default.
        step_size: fixed-step size in time units; None for one step per sample gap.
        interpolation: "hold" (a discrete RNN's input), "linear", "cubic" or "natural".
        adjoint: shorthand for gradient="adjoint".
        rtol, atol: adaptive solvers' tolerances (loose defaults suit training).
        gradient: "backprop" (default), "adjoint" (torchdiffeq's adjoint with the input map
            applied per evaluation: memory flat in T, gradients exact up to the adjoint solve's
            error) or "checkpoint" (segments of ~sqrt(steps) recomputed in backward: the same
            gradients as backprop, memory ~sqrt(T)).  Tableau methods with "backprop" or
            "checkpoint" run on the fast driven path (:meth:`solve_path`).
    """

    def __init__(self, field: Field, output_size: int, method: str = "euler", step_size: float | None = None,
                 interpolation: str = "hold", adjoint: bool = False, rtol: float = 1e-3, atol: float = 1e-5,
                 gradient: str | None = None):
        super().__init__()
        if not isinstance(field, Field):
            raise TypeError(f"field must be a neuralode_rnn Field (e.g. nr.LipschitzField); got {type(field).__name__}")
        if method not in solvers.METHODS:
            raise ValueError(f"unknown method {method!r}; expected one of {', '.join(sorted(solvers.METHODS))}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {interpolation!r}; expected one of "
                             f"{', '.join(map(repr, INTERPOLATIONS))}")
        if step_size is not None and not (isinstance(step_size, (int, float)) and step_size > 0):
            raise ValueError(f"step_size must be None or a positive number; got {step_size!r}")
        if not isinstance(output_size, int) or output_size < 1:
            raise ValueError(f"output_size must be a positive int; got {output_size!r}")
        self.field = field
        self.method = method
        self.step_size = step_size
        self.interpolation = interpolation
        self.rtol = rtol
        self.atol = atol
        self.gradient = resolve_gradient(gradient, adjoint)
        self.readout = nn.Linear(field.feature_size, output_size)
        self.nfe = 0  # function evaluations of the last solve

    @property
    def adjoint(self) -> bool:
        return self.gradient == "adjoint"

    @property
    def dtype(self) -> torch.dtype:
        """The real dtype the values enter in (the field's input map's); inputs are cast to it."""
        return self.field.input_map.weight.dtype

    def _apply(self, fn, recurse: bool = True):
        # .to(torch.float64) / .double() keep a complex W complex (complex128), see keep_complex
        return super()._apply(keep_complex(fn), recurse)

    @property
    def fixed_step(self) -> bool:
        return solvers.METHODS[self.method].kind == "fixed"

    # -------------------------------------------------------------- integration
    def _h0(self, h0, B: int, dtype: torch.dtype, device) -> torch.Tensor:
        if h0 is None:
            return self.field.initial_state(B, dtype, device)
        self.field.check_state(h0, B, name="h0")
        return h0

    @property
    def fast(self) -> bool:
        """True when this model integrates on the fast driven path (see :meth:`solve_path`)."""
        return self.method in solvers.TABLEAUX and self.gradient in ("backprop", "checkpoint")

    def _solve(self, driven, h0: torch.Tensor, t: torch.Tensor, jump_t: torch.Tensor, step_size) -> torch.Tensor:
        counter = _Counter(driven)
        # Adjoint parameters: the field's own, plus whatever tensors the driven field reads besides
        # them (the projected coefficients when it projects, which then stand in for the input map:
        # listing both would count its adjoint gradient twice).
        mapped = {id(p) for p in self.field.input_map.parameters()} if driven.project else set()
        params = tuple(p for p in self.field.parameters() if p.requires_grad and id(p) not in mapped)
        params = params + driven.extra_tensors()
        out = solvers.odeint(counter, h0, t, method=self.method, step_size=step_size, rtol=self.rtol,
                             atol=self.atol, gradient=self.gradient, jump_t=jump_t,
                             adjoint_params=params if self.gradient == "adjoint" else None)
        self.nfe = counter.nfe
        return out

    def _clock_grid(self, path: Path) -> tuple[torch.Tensor, list[int], torch.Tensor | None]:
        """The step grid on the solve's clock: (grid (n+1,), grid index of each knot, rates).

        Shared times: real time, the knot-aligned grid of ``solvers.fixed.knot_grid`` through
        t0 = 2 t_1 - t_2 and the knots.  Per-sample times: the index clock s (knot k at s = k,
        start at s = -1), gap j split into the number of steps its longest sample needs; ``rates``
        (B, T) are the samples' dt/ds per piece (rates[:, j + 1] on piece j).
        """
        T = path.length
        if not path.per_sample:
            knots = path.knots
            t0 = 2 * knots[:1] - knots[1:2] if T > 1 else knots[:1] - 1
            grid, index = knot_grid(torch.cat([t0, knots]), knots, self.step_size)
            return grid, index[1:], None
        rates = _index_rates(path)
        if self.step_size is None:
            grid = torch.arange(-1, T, dtype=path.dtype, device=path.device)
            return grid, list(range(1, T + 1)), rates
        longest = rates.max(0).values.detach().cpu().tolist()
        pieces = [max(1, math.ceil(g / self.step_size - 1e-9)) for g in longest]
        points, keep = [-1.0], []
        for j, n in enumerate(pieces):
            points.extend(j - 1 + i / n for i in range(1, n + 1))
            keep.append(len(points) - 1)
        return torch.tensor(points, dtype=path.dtype, device=path.device), keep[:T], rates

    def _solve_fast(self, path: Path, h0: torch.Tensor, at: list[int]) -> torch.Tensor:
        """States (len(at), B, N) at knots ``at`` by ``solvers.integrate_driven``: the stage inputs
        of every step are evaluated in one batched call and the field's structure, if it declares
        one, takes the structured path (custom autograd Function)."""
        grid, index, rates = self._clock_grid(path)
        outputs = [index[k] for k in at]
        grid = grid[:max(outputs) + 1]  # no step beyond the last wanted state
        g0, g1 = grid[:-1].detach(), grid[1:].detach()
        ds = g1 - g0
        n = ds.shape[0]
        held = self.interpolation == "hold"
        nodes, node_of_stage = solvers.stage_nodes(self.method, held=held)
        T = path.length
        if rates is None:
            # step n lies on piece j_n = (first knot >= its end) - 1; -1 before the first knot
            j = torch.searchsorted(path.knots.detach(), g1.contiguous()) - 1
            dt = ds
            tau0 = g0 - path.knots.detach()[j.clamp(min=0)]
            taus = None if held else torch.stack([tau0 + c * ds for c in nodes], 1)  # (n, m)
        else:
            j = (torch.ceil(g1) - 1).long().clamp(-1, T - 1)
            r = rates.detach().t()[(j + 1).clamp(max=T - 1)]  # (n, B): dt/ds of each sample on the step
            dt = ds.unsqueeze(1) * r
            gaps = r  # piece j >= 0 has length rates[:, j + 1]
            frac0 = g0 - j.to(g0.dtype)
            taus = None if held else torch.stack([(frac0 + c * ds).unsqueeze(1) * gaps for c in nodes], 1)
        m = len(nodes)
        jj = j.repeat_interleave(m) if m > 1 else j
        tt = None if taus is None else taus.reshape(n * m, *taus.shape[2:])
        x = path.evaluate_steps(jj, tt).reshape(n, m, path.batch_size, path.channels)
        structure = self.field.structure()
        self.nfe = n * solvers.tableau(self.method).stages
        if structure is not None:
            return solvers.integrate_driven(structure, h0, x, dt, self.method, node_of_stage, outputs,
                                            self.gradient)
        # the input map: one matmul over all n * m * B rows (per segment under checkpoint)
        return solvers.integrate_driven(self.field.rhs, h0, x, dt, self.method, node_of_stage, outputs,
                                        self.gradient, project=self.field.input_map)

    def _solve_general(self, path: Path, h0: torch.Tensor, at: list[int]) -> torch.Tensor:
        """States (len(at), B, N) at knots ``at`` by ``solvers.odeint`` (any method or gradient)."""
        T = path.length
        project = self.gradient != "adjoint"  # the adjoint keeps memory flat: no (B, T, P) projection
        if not path.per_sample:
            knots = path.knots
            t0 = 2 * knots[:1] - knots[1:2] if T > 1 else knots[:1] - 1
            t = torch.cat([t0, knots[at]])
            return self._solve(self.field.driven_by(path, project=project), h0, t, knots, self.step_size)[1:]
        driven = self.field.driven_by(path, clock="index", project=project)
        s = torch.arange(-1, T, dtype=path.dtype, device=path.device)
        t = torch.cat([s[:1], s[1:][at]])
        if self.step_size is None or not self.fixed_step:
            return self._solve(driven, h0, t, s, None)[1:]
        # per-sample gaps: split gap j into n_j equal index steps, n_j set by the longest gap there
        grid, index, _ = self._clock_grid(path)
        t = torch.cat([grid[:1], grid[[index[k] for k in at]]])
        return self._solve(driven, h0, t, grid, None)[1:]

    def solve_path(self, path: Path, h0: torch.Tensor | None = None, at: list[int] | None = None) -> torch.Tensor:
        """Hidden states (B, T, N) at the path's knots, starting one first gap before them.

        ``at``: knot indices (increasing) to return, (B, len(at), N); the solve stops at the last.

        Fixed-step tableau methods with gradient "backprop" or "checkpoint" (and times that need
        no gradient) run on the fast driven path, :func:`solvers.integrate_driven`; everything
        else on :func:`solvers.odeint`.  Both compute the same steps (tests: 1e-12 in float64).
        """
        B, T = path.batch_size, path.length
        h0 = self._h0(h0, B, path.dtype, path.device)
        at = list(range(T)) if at is None else [int(k) for k in at]
        if self.fast and not path.knots.requires_grad:
            out = self._solve_fast(path, h0, at)
        else:
            out = self._solve_general(path, h0, at)
        return out.transpose(0, 1)

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
        self.nfe = 0
        return self.field.initial_state(0, values.dtype, values.device)

    def trajectory(self, values: torch.Tensor, times: torch.Tensor | None = None,
                   h0: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states (B, T, N) at the sample times (complex for complex fields)."""
        values, times, unbatched = batch_inputs(values, times, self.dtype)
        h0 = unbatched_state(h0, unbatched)
        if values.shape[0] == 0:
            _check_channels(values, self.field.input_size)
            return self._empty(values).unsqueeze(1).expand(0, values.shape[1], -1)
        states = self.solve_path(self._path(values, times), h0)
        return states[0] if unbatched else states

    def forward(self, values: torch.Tensor, times: torch.Tensor | None = None,
                h0: torch.Tensor | None = None) -> torch.Tensor:
        """Readout (B, output_size) of the state at each sample's last observed time.

        Only the states at the distinct last observed steps are requested from the solver (one,
        usually), so checkpoint and adjoint memory does not hold a (B, T, N) trajectory."""
        values, times, unbatched = batch_inputs(values, times, self.dtype)
        h0 = unbatched_state(h0, unbatched)
        if values.shape[0] == 0:
            _check_channels(values, self.field.input_size)
            return self.readout(self.field.features(self._empty(values)))
        last = last_observed_index(values)
        at = sorted(set(last.tolist()))
        states = self.solve_path(self._path(values, times), h0, at)  # (B, len(at), N)
        pos = torch.searchsorted(torch.tensor(at, device=last.device), last)
        out = self.readout(self.field.features(gather_time(states, pos)))
        return out[0] if unbatched else out


class DiscreteRNN(nn.Module):
    """A discrete cell stepped once per sample, then a linear readout: h_k = cell(h_{k-1}, x_k).

    A :class:`FieldCell` runs on :func:`solvers.integrate_driven` with one held input per step (the
    same fast path as :class:`ContinuousRNN`); other cells in a plain loop over ``unbind`` (indexing
    ``x[:, k]`` in the loop would make backward O(T^2)).  Missing values (NaN) are filled by carrying the last observation forward, as the
    "hold" path does.  ``times`` is accepted for a common signature and must be None or evenly
    spaced: a discrete cell has one fixed step.
    """

    def __init__(self, cell: nn.Module, output_size: int):
        super().__init__()
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

    def _apply(self, fn, recurse: bool = True):
        return super()._apply(keep_complex(fn), recurse)  # a complex W stays complex, see keep_complex

    def _h0(self, h0, B: int, dtype, device) -> torch.Tensor:
        field = getattr(self.cell, "field", None)
        if field is None:
            return torch.zeros(B, self.cell.hidden_size, dtype=dtype, device=device) if h0 is None else h0
        if h0 is None:
            return field.initial_state(B, dtype, device)
        field.check_state(h0, B, name="h0")
        return h0

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
            t = torch.as_tensor(times, dtype=values.dtype)
            d = t[..., 1:] - t[..., :-1]
            # rtol 1e-3: float32 times such as 0.03 * k are evenly spaced only up to rounding
            if d.numel() and not torch.allclose(d, d.reshape(-1)[:1].expand_as(d), rtol=1e-3, atol=0.0):
                raise ValueError("a DiscreteRNN steps once per sample and needs evenly spaced times; got uneven "
                                 "times: use ContinuousRNN for irregular samples")
        times_for_fill = torch.arange(values.shape[1], dtype=values.dtype, device=values.device)
        x = fill_missing(values, times_for_fill, "hold")
        B = x.shape[0]
        h = self._h0(h0, B, x.dtype, x.device)
        states = []
        if isinstance(self.cell, FieldCell):
            # One held step of the cell's tableau per sample is exactly what the fast driven
            # integrator does on a "hold" grid: run the cell there (the identity is tested).
            field, cell = self.cell.field, self.cell
            steps = x.transpose(0, 1).unsqueeze(1)  # (T, 1, B, D): one input node per step
            dt = torch.full((x.shape[1],), cell.step_size, dtype=x.dtype, device=x.device)
            nodes = (0,) * cell.tableau.stages
            structure = field.structure()
            if structure is not None:
                out = solvers.integrate_driven(structure, h, steps, dt, cell.tableau, nodes)
            else:
                out = solvers.integrate_driven(field.rhs, h, steps, dt, cell.tableau, nodes,
                                               project=field.input_map)
            return out[1:].transpose(0, 1)
        else:
            for x_k in x.unbind(1):
                h = self.cell(h, x_k)
                states.append(h)
        return torch.stack(states, 1)

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
        if h0 is None or not unbatched:
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


def _index_rates(path: Path) -> torch.Tensor:
    """(B, T) dt/ds of each sample on the index clock: rates[:, j + 1] is the length of piece j and
    rates[:, 0] that of the piece before the first knot (as long as the first one)."""
    gaps = path.gaps().to(path.dtype)
    if gaps.dim() == 1:
        gaps = gaps.unsqueeze(0).expand(path.batch_size, -1)
    first = gaps[:, :1] if gaps.shape[1] else torch.ones(path.batch_size, 1, dtype=path.dtype, device=path.device)
    return torch.cat([first, gaps], 1)


class _Counter(nn.Module):
    """Counts function evaluations of a driven field (NFE), passing everything through."""

    def __init__(self, func: nn.Module):
        super().__init__()
        self.func = func
        self.nfe = 0

    @property
    def project(self) -> bool:
        return self.func.project

    def extra_tensors(self):
        return self.func.extra_tensors()

    def forward(self, t, h):
        self.nfe += 1
        return self.func(t, h)
