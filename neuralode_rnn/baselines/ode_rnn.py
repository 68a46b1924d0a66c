"""ODE-RNN (Rubanova, Chen and Duvenaud 2019, "Latent ODEs for irregularly-sampled time series", Alg. 1).

Between observations the hidden state follows a neural ODE, at an observation a GRU cell reads it:

    h'_k = ODESolve(f, h_{k-1}, (t_{k-1}, t_k)),   h_k = GRUCell(x_k, h'_k),   h_0 = 0,

with f(h) = W_2 tanh(W_1 h + b_1) + b_2 autonomous (as in the paper).  No time passes before the
first observation (t_0 = t_1).  Per-sample times (B, T) are handled on a normalised clock: the
gap (t_{k-1}, t_k) of every sample is the interval s in [0, 1] with dh/ds = (t_k - t_{k-1}) f(h),
an exact change of variable, so one solve per step serves the whole batch.
Missing channels are carried forward causally (0 before the first observation); a step with no
observed channel only evolves the state (no GRU update), as the reference's masked update
(``GRU_unit`` of YuliaRubanova/latent_ode: ``new_y = mask * new_y + (1 - mask) * y``).

Solver: a frozen ``solvers.SolveSpec`` (``model.spec``; any Runge-Kutta method of ``solvers.TABLEAUX``),
``spec.solve_with_stats`` once per gap (its statistics are ``model.stats``); fixed-step methods take ``step_size`` in time units
(each gap split into ceil(longest gap in the batch / step_size) equal steps; None: one step per
gap), adaptive ones ``rtol``/``atol``.  The default "euler", one step per gap, is
h'_k = h_{k-1} + (t_k - t_{k-1}) f(h_{k-1}).  ``model.with_solver(method="rk4")`` is the same
model (shared parameters) with another solver.
"""

from __future__ import annotations

import math

import torch
from torch import nn

import solvers
from solvers.terms import FuncTerm

from ..inputs import check_inputs, forward_fill, step_gaps, step_observed
from ..models import HoldsSolveSpec, check_plain_state, last_observed_index

__all__ = ["ODERNN"]


class GapScaled(nn.Module):
    """dh/ds = gaps * f(h) on s in [0, 1]: the ODE of one observation gap per sample."""

    def __init__(self, dynamics: nn.Module, gaps: torch.Tensor):
        super().__init__()
        self.dynamics = dynamics
        self.gaps = gaps.unsqueeze(-1)  # (B, 1)

    def forward(self, s: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.gaps * self.dynamics(h)


class ODERNN(HoldsSolveSpec, nn.Module):
    """ODE-RNN with a linear readout of the state at each sample's last observation.

    Args:
        input_size, hidden_size, output_size: D, H and the readout width.
        hidden_hidden_size: width of f's hidden layer (default H).
        method, step_size, rtol, atol, gradient: the ODE solve (module docstring), checked by the
            ``solvers.SolveSpec`` they make (``model.spec``; read-only, see ``with_solver``).

    ``stats``: the :class:`solvers.problem.Stats` of the last forward pass's solves (one per gap);
    ``nfe``: their function evaluations.
    """

    reads_times = True
    SOLVE = solvers.SolveSpec
    """The type of ``spec``: what the solver settings are checked as (``TrainConfig`` too, before data loads)."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int, hidden_hidden_size: int | None = None,
                 method: str = "euler", step_size: float | None = None, rtol: float = 1e-3, atol: float = 1e-5,
                 gradient: str = "backprop"):
        super().__init__()
        self._spec = solvers.SolveSpec(method=method, step_size=step_size, rtol=rtol, atol=atol, gradient=gradient)
        hh = hidden_size if hidden_hidden_size is None else hidden_hidden_size
        self.input_size, self.hidden_size = input_size, hidden_size
        self.cell = nn.GRUCell(input_size, hidden_size)
        self.dynamics = nn.Sequential(nn.Linear(hidden_size, hh), nn.Tanh(), nn.Linear(hh, hidden_size))
        self.readout = nn.Linear(hidden_size, output_size)
        self.stats: list = []

    @property
    def nfe(self) -> int:
        """Function evaluations of the last forward pass (summed over its solves' ``stats``)."""
        return sum(s.nfe for s in self.stats)


    def evolve(self, h: torch.Tensor, gaps: torch.Tensor) -> torch.Tensor:
        """The ODE part: h (B, H) carried over per-sample time ``gaps`` (B,) by dh/dt = f(h)."""
        spec = self._spec
        func = GapScaled(self.dynamics, gaps.to(h.dtype))
        s = torch.tensor([0.0, 1.0], dtype=h.dtype, device=h.device)
        if spec.step_size is not None and not spec.adaptive:  # the step in time units, on the [0, 1] clock
            longest = float(gaps.detach().abs().max())
            spec = spec.replace(step_size=1.0 / max(1, math.ceil(longest / spec.step_size - 1e-9)))
        params = tuple(p for p in func.parameters() if p.requires_grad)
        sol = spec.solve_with_stats(FuncTerm(func, h.dtype, h.device), h, s, params=params, dense_output=True,
                                    state_scale=0.0)
        self.stats.append(sol.stats)
        return sol.ys[-1]

    def trajectory(self, values: torch.Tensor, times: torch.Tensor | None = None,
                   h0: torch.Tensor | None = None, steps: int | None = None) -> torch.Tensor:
        """Hidden states (B, steps, hidden) after each of the first ``steps`` (default all T) observations."""
        check_inputs(values, times, self.input_size)
        x = forward_fill(values)
        gaps = step_gaps(values, times)
        seen = step_observed(values).unsqueeze(-1)  # (B, T, 1)
        B, T, _ = values.shape
        if h0 is not None:
            check_plain_state(h0, (B, self.hidden_size), values.dtype)
        h = values.new_zeros(B, self.hidden_size) if h0 is None else h0
        self.stats = []
        states = []
        for k in range(T if steps is None else steps):
            if k > 0:
                h = self.evolve(h, gaps[:, k])
            # Rubanova et al.'s masked update: a step with no observed channel leaves the evolved state
            h = torch.where(seen[:, k], self.cell(x[:, k], h), h)
            states.append(h)
        return torch.stack(states, dim=1)

    def forward(self, values: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        last = last_observed_index(values)
        states = self.trajectory(values, times, steps=int(last.max()) + 1)
        return self.readout(states[torch.arange(states.shape[0], device=states.device), last])
