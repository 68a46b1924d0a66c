"""Neural CDE (Kidger, Morrill, Foster and Lyons 2020) through torchcde, the peer library itself.

    z(t_1) = zeta(X(t_1)),   dz = f(z) dX(t),   output = readout(z at the last observation),

with X the interpolated path of [time, x] (time as the first channel, as in the paper: it is what
makes the model see irregular sampling, since a CDE is otherwise blind to reparametrisation),
zeta and the readout linear, and f the reference's vector field (``FinalTanh`` of
patrick-kidger/NeuralCDE ``experiments/models/vector_fields.py``):

    f(z) = tanh(W_out relu(W_{L-1} ... relu(W_1 relu(W_in z + b_in) + b_1) ... ) + b_out),

an MLP with ``num_layers`` hidden layers of width ``hidden_hidden_size``, reshaped to (hidden,
channels).  The defaults are the reference's UEA configuration (``experiments/uea.py``): 3 hidden
layers of 32, a natural cubic spline in time (``experiments/datasets/common.py``:
``natural_cubic_spline_coeffs(times, X)``), torchdiffeq's "rk4" with ``step_size`` the smallest
gap between the grid's times (``experiments/models/metamodel.py``: ``options['step_size'] =
time_diffs.min()``), and a weight penalty of 0.03 x the sum of the L2 norms of the vector field's
parameters (``experiments/common.py``, ``_add_weight_regularisation``; here the training option
``weight_penalty``, which the reference also applies to its other baselines' parameters, all of
them: ``penalized_parameters``).  ``train --model ncde`` also trains it as the reference does
(``data.presets``, ``FAMILY_DEFAULTS["ncde"]``: 32 hidden channels, batch 32, lr 0.003 chosen on validation where the reference has 0.001, a validation
split, early stopping, the plateau schedule).  Coefficients come from torchcde (``natural_cubic_coeffs``;
``hermite_cubic_coefficients_with_backward_differences`` for "cubic", the causal choice;
``linear_interpolation_coeffs``) and the solve from ``torchcde.cdeint``; nothing of either is
rewritten, except the natural spline's missing-value rule, which torchcde computes in a Python loop
per sample, channel and step (``spline``: the same numbers, vectorised).

Clock.  torchcde takes one time grid for the batch: the grid is the union of the batch's
observation times (``grid``), each sample's values placed at its own times and NaN at the others.
On a task whose samples were thinned from one regular grid (``--drop``), that union is, for a batch
of a few dozen samples, the full original grid, which is the reference's exact setting (it keeps
every series on the full grid with NaN at the dropped steps).  With shared times (or none: t_k = k)
the grid is those times.  A step with no observed value before a sample's last observation
(missing values per channel) is a knot too: its time channel is observed, as in the reference.

Missing values.  "natural" (the default): torchcde's natural spline through each channel's
observations, the reference's rule (``spline.natural_cubic_coeffs``, vectorised, when there are any).  "cubic" and "linear": torchcde's documented rule for those,
NaN entries filled by linear interpolation (in the grid's time) between the channel's neighbouring
observations, held constant before the first and after the last.  torchcde applies it with a
Python loop per sample and channel (it warns to cache the result); the same rule is applied here vectorised by ``paths.fill_missing(..., "linear")``
before the coefficients are built (the tests check the coefficients equal torchcde's on data with
NaN).  The readout takes z at each sample's last observed time.

Solver: ``method`` is a torchdiffeq name (cdeint calls torchdiffeq; note torchdiffeq's "rk4" is
the 3/8 rule, as in the reference), ``step_size`` in the time units of the grid (None: the smallest
gap of the batch's grid, the reference's rule), ``rtol``/``atol`` for adaptive methods, which are
told the knots (``jump_t``).  ``gradient`` "adjoint" uses torchcde's adjoint, "backprop"
differentiates through the solver.  These settings are one frozen :class:`CDESolve` (``model.spec``,
validated when made against torchdiffeq's names, the library that solves);
``model.with_solver(method="dopri5")`` is the same model (shared parameters) with another solver.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

import solvers

from ..inputs import check_inputs, trailing_padding
from ..models import HoldsSolveSpec, last_observed_index
from ..paths import fill_missing
from .spline import natural_cubic_coeffs

if TYPE_CHECKING:
    import torchcde

__all__ = ["CDE_INTERPOLATIONS", "CDESolve", "CDEVectorField", "NeuralCDE"]

CDE_INTERPOLATIONS = ("cubic", "linear", "natural")

TORCHDIFFEQ_METHODS = ("adaptive_heun", "bosh3", "dopri5", "dopri8", "euler", "explicit_adams", "fehlberg2", "fixed_adams",
                       "heun2", "heun3", "implicit_adams", "midpoint", "rk4", "scipy_solver")
"""torchdiffeq 0.2.5's method names (torchcde solves with torchdiffeq; ``solvers.METHODS`` gives them
the same meaning and tells fixed from adaptive)."""


@dataclass(frozen=True)
class CDESolve:
    """How a Neural CDE is solved by ``torchcde.cdeint`` (torchdiffeq underneath): frozen, checked
    when made.  ``method`` a torchdiffeq name, ``step_size`` in time units (None: the smallest gap
    of the batch's time grid, the reference's rule), ``rtol``/``atol`` for adaptive methods, ``gradient`` "backprop" or "adjoint" (torchcde's)."""

    method: str = "rk4"
    step_size: float | None = None
    rtol: float = 1e-4
    atol: float = 1e-6
    gradient: str = "backprop"

    def __post_init__(self) -> None:
        if self.method not in TORCHDIFFEQ_METHODS:
            raise ValueError(f"method {self.method!r} is not a torchdiffeq method (torchcde solves with torchdiffeq); "
                             f"expected one of {', '.join(sorted(TORCHDIFFEQ_METHODS))}")
        if self.gradient not in ("backprop", "adjoint"):
            raise ValueError(f"gradient must be 'backprop' or 'adjoint' for a Neural CDE; got {self.gradient!r}")
        if self.step_size is not None and (isinstance(self.step_size, bool) or
                                           not (isinstance(self.step_size, (int, float)) and self.step_size > 0)):
            raise ValueError(f"step_size must be None or a positive number of time units; got {self.step_size!r}")
        for name in ("rtol", "atol"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and v >= 0):
                raise ValueError(f"{name} must be a number >= 0; got {v!r}")

    def replace(self, **changes) -> CDESolve:
        """A new, re-checked specification with ``changes``."""
        return dataclasses.replace(self, **changes)


def load_torchcde():
    """The torchcde module, imported on first use: a missing optional package must never break
    ``import neuralode_rnn`` (the CLI lists ``ncde`` beside models that need nothing more than torch)."""
    try:
        import torchcde
    except ImportError as exc:
        raise ImportError("the Neural CDE baseline (model 'ncde') needs torchcde, a base dependency of "
                          "neuralode-rnn that is not importable here; install it with "
                          "`pip install 'torchcde>=0.2.5'`") from exc
    return torchcde


class CDEVectorField(nn.Module):
    """f(z) = tanh(MLP(z)) as a (B, hidden, channels) matrix: ``num_layers`` ReLU hidden layers of
    width ``hidden_hidden_size``, tanh at the end to keep the CDE's vector field bounded: the
    reference's ``FinalTanh`` (module docstring), layer for layer (``linear_in``, ``linears``,
    ``linear_out``)."""

    def __init__(self, channels: int, hidden_size: int, hidden_hidden_size: int, num_layers: int = 3):
        super().__init__()
        self.channels, self.hidden_size = channels, hidden_size
        self.linear_in = nn.Linear(hidden_size, hidden_hidden_size)
        self.linears = nn.ModuleList(nn.Linear(hidden_hidden_size, hidden_hidden_size) for _ in range(num_layers - 1))
        self.linear_out = nn.Linear(hidden_hidden_size, hidden_size * channels)

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        z = self.linear_in(z).relu()
        for linear in self.linears:
            z = linear(z).relu()
        return self.linear_out(z).view(*z.shape[:-1], self.hidden_size, self.channels).tanh()


class NeuralCDE(HoldsSolveSpec, nn.Module):
    """Neural CDE classifier/regressor on [time, values] (module docstring).

    Args:
        input_size, hidden_size, output_size: D (the time channel is added), H, readout width.
        hidden_hidden_size: width of f's hidden layers (32, the reference's); num_layers: their
            number (3, the reference's).
        interpolation: one of CDE_INTERPOLATIONS ("natural": the reference's natural cubic spline
            in time; "cubic": Hermite with backward differences, causal; "linear").
        method, step_size, rtol, atol, gradient: the solve (module docstring).  The defaults are
            the reference's: torchdiffeq's "rk4" with a step of the smallest gap of the time grid.
    """

    reads_times = True
    SOLVE = CDESolve
    """The type of ``spec``: what the solver settings are checked as (``TrainConfig`` too, before data loads)."""
    WEIGHT_PENALTY = 0.03
    """The reference's weight penalty (``experiments/common.py``): the training default of ``ncde``
    (``TrainConfig.weight_penalty``)."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int, hidden_hidden_size: int | None = 32,
                 num_layers: int = 3, interpolation: str = "natural", method: str = "rk4",
                 step_size: float | None = None, rtol: float = 1e-4, atol: float = 1e-6,
                 gradient: str = "backprop"):
        super().__init__()
        load_torchcde()  # refuse here, not at the first forward call, when torchcde is missing
        if interpolation not in CDE_INTERPOLATIONS:
            raise ValueError(f"a Neural CDE needs a path with a derivative: interpolation must be one of "
                             f"{', '.join(CDE_INTERPOLATIONS)}; got {interpolation!r}")
        self._spec = CDESolve(method=method, step_size=step_size, rtol=rtol, atol=atol, gradient=gradient)
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers must be a positive int; got {num_layers!r}")
        hh = 32 if hidden_hidden_size is None else hidden_hidden_size
        if isinstance(hh, bool) or not isinstance(hh, int) or hh < 1:
            raise ValueError(f"hidden_hidden_size must be a positive int; got {hidden_hidden_size!r}")
        channels = input_size + 1
        self.input_size, self.hidden_size = input_size, hidden_size
        self.interpolation = interpolation
        self.initial = nn.Linear(channels, hidden_size)
        self.func = self.vector_field(channels, hidden_size, hh, num_layers)
        self.readout = nn.Linear(hidden_size, output_size)

    def vector_field(self, channels: int, hidden_size: int, hidden_hidden_size: int, num_layers: int) -> nn.Module:
        """The CDE's vector field f (``self.func``): the reference's :class:`CDEVectorField`.  A subclass
        that keeps this model's path, grid and solve but another f overrides it (``controlled``)."""
        return CDEVectorField(channels, hidden_size, hidden_hidden_size, num_layers)

    def driving(self, X: torchcde.InterpolationBase) -> nn.Module:
        """What ``torchcde.cdeint`` integrates for the path ``X``: ``self.func`` (its f reads z only)."""
        return self.func

    def penalized_parameters(self):
        """The parameters the weight penalty reads: the vector field's, as the reference's
        ``make_model('ncde')`` returns ``vector_field`` as its ``regularise_parameters``."""
        return self.func.parameters()

    def on_grid(self, values: torch.Tensor, times: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The batch on one time grid: (x (B, G, 1 + D) [time, values] with NaN where a sample has
        no observation, grid (G,) the sorted union of the batch's observation times, last (B,) the
        grid index of each sample's last observation)."""
        t = check_inputs(values, times, self.input_size)
        if values.shape[1] < 2:
            raise ValueError(f"a Neural CDE needs at least two time steps; got values of shape {tuple(values.shape)}")
        B, T, _ = values.shape
        t = t.to(values.dtype).expand(B, T)
        # every real step is a knot, one with no observed value too (its time channel is observed, as
        # in the reference, which keeps the full grid); only the padding after the last observation is not
        seen = ~trailing_padding(values)
        grid = torch.unique(t[seen])  # sorted
        if grid.numel() < 2:
            raise ValueError(f"a Neural CDE needs at least two observation times in a batch; got {grid.numel()}")
        where = torch.searchsorted(grid, t.contiguous()).clamp(max=grid.numel() - 1)
        x = torch.full((B, grid.numel(), 1 + self.input_size), float("nan"), dtype=values.dtype, device=values.device)
        rows = torch.arange(B, device=values.device).unsqueeze(1).expand(B, T)
        x[rows[seen], where[seen]] = torch.cat([t.unsqueeze(-1), values], dim=-1)[seen]
        last = where.gather(1, last_observed_index(values).unsqueeze(1)).squeeze(1)
        return x, grid, last

    def coefficients(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """torchcde coefficients of the path ``x`` (B, G, C) on ``grid`` with NaN where unobserved.

        "natural": torchcde's (and the reference's) own rule, the natural cubic spline in time through
        each channel's observations, with the grid's first and last time given the first/last observed
        value (so the path still depends on the batch's grid at its ends); torchcde computes it with a
        Python loop per sample and channel, so with missing values ``spline.natural_cubic_coeffs``
        computes the same, vectorised.  "cubic"/"linear": NaN filled linearly in time
        first (``paths.fill_missing``, torchcde's rule for those, vectorised)."""
        torchcde = load_torchcde()
        if self.interpolation == "natural":
            # with missing values torchcde loops in Python over samples, channels and steps; the same
            # rule vectorised (``spline``, checked against torchcde in the tests)
            return natural_cubic_coeffs(x, grid) if bool(torch.isnan(x).any()) else torchcde.natural_cubic_coeffs(x, grid)
        x = fill_missing(x, grid, "linear")
        if self.interpolation == "cubic":
            return torchcde.hermite_cubic_coefficients_with_backward_differences(x, grid)
        return torchcde.linear_interpolation_coeffs(x, grid)

    def control(self, coeffs: torch.Tensor, grid: torch.Tensor) -> torchcde.InterpolationBase:
        """The torchcde path of ``coeffs`` on ``grid``."""
        torchcde = load_torchcde()
        if self.interpolation == "linear":
            return torchcde.LinearInterpolation(coeffs, grid)
        return torchcde.CubicSpline(coeffs, grid)  # natural or Hermite: both are cubic coefficients

    def solve_options(self, grid: torch.Tensor) -> dict:
        """Keyword arguments of torchcde.cdeint beyond X, func, z0 and t: a fixed-step method steps by
        ``step_size``, else by the grid's smallest gap (the reference's rule)."""
        kwargs: dict = {"method": self.method, "adjoint": self.gradient == "adjoint"}
        if solvers.METHODS[self.method].kind == "fixed":
            step = self.step_size if self.step_size is not None else float((grid[1:] - grid[:-1]).min())
            kwargs["options"] = {"step_size": step}
        else:
            kwargs.update(rtol=self.rtol, atol=self.atol, options={"jump_t": grid})
        return kwargs

    def solve(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """Hidden states z (B, G, hidden) at the grid's times of the path ``x`` (:meth:`on_grid`)."""
        X = self.control(self.coefficients(x, grid), grid)
        z0 = self.initial(X.evaluate(grid[0]))
        return load_torchcde().cdeint(X=X, func=self.driving(X), z0=z0, t=grid, **self.solve_options(grid))

    def trajectory(self, values: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states z (B, T, hidden) at each sample's own steps (the grid's states at its times)."""
        t = check_inputs(values, times, self.input_size).to(values.dtype).expand(values.shape[0], values.shape[1])
        x, grid, _ = self.on_grid(values, times)
        states = self.solve(x, grid)
        where = torch.searchsorted(grid, t.contiguous()).clamp(max=grid.numel() - 1)
        return states.gather(1, where.unsqueeze(-1).expand(*where.shape, states.shape[-1]))

    def forward(self, values: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        x, grid, last = self.on_grid(values, times)
        states = self.solve(x, grid)
        return self.readout(states[torch.arange(states.shape[0], device=states.device), last])
