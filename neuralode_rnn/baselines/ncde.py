"""Neural CDE (Kidger, Morrill, Foster and Lyons 2020) through torchcde, the peer library itself.

    z(t_1) = zeta(X(t_1)),   dz = f(z) dX(t),   output = readout(z at the last observation),

with X the interpolated path of [time, x] (time as the first channel, as in the paper: it is what
makes the model see irregular sampling, since a CDE is otherwise blind to reparametrisation),
f(z) = tanh(MLP(z)) reshaped to (hidden, channels), zeta and the readout linear.  Coefficients come
from torchcde (``hermite_cubic_coefficients_with_backward_differences`` for "cubic", the causal
default; ``linear_interpolation_coeffs``; ``natural_cubic_coeffs`` for "natural", the paper's
original, non-causal choice) and the solve from ``torchcde.cdeint``; nothing of either is rewritten.

Clock.  torchcde takes one time grid for the batch, so the path is parametrised by the step index
(knot k at s = k, torchcde's default t) and the real times, shared or per sample, enter through
the time channel, which is exactly the paper's use: a CDE's solution does not depend on how the
path is parametrised, only on the path.

Missing values.  torchcde's documented rule: NaN entries are filled by linear interpolation (in
the grid's time) between the channel's neighbouring observations, held constant before the first
and after the last.  torchcde applies it with a Python loop per sample and channel (it warns to
cache the result); the same rule is applied here vectorised by ``paths.fill_missing(..., "linear")``
before the coefficients are built (the tests check the coefficients equal torchcde's on data with
NaN).  Padding at the end of a shorter sample (and its time channel) is therefore held at the last
observation; the readout takes z at each sample's last observed knot.

Solver: ``method`` is a torchdiffeq name (cdeint calls torchdiffeq; note torchdiffeq's "rk4" is
the 3/8 rule), ``step_size`` in index units (None: one step per knot), ``rtol``/``atol`` for
adaptive methods, which are told the knots (``jump_t``).  ``gradient`` "adjoint" uses torchcde's
adjoint, "backprop" differentiates through the solver.  These settings are one frozen
:class:`CDESolve` (``model.spec``, validated when made against torchdiffeq's names, the library
that solves); ``model.with_solver(method="dopri5")`` is the same model (shared parameters) with
another solver.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

import solvers

from ..inputs import check_inputs, step_observed
from ..models import last_observed_index, share_modules, solver_setting
from ..paths import fill_missing

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
    when made.  ``method`` a torchdiffeq name, ``step_size`` in index units (None: one step per
    knot), ``rtol``/``atol`` for adaptive methods, ``gradient`` "backprop" or "adjoint" (torchcde's)."""

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
            raise ValueError(f"step_size must be None or a positive number of index units; got {self.step_size!r}")
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
    """f(z) = tanh(MLP(z)) as a (B, hidden, channels) matrix: ReLU hidden layers of width
    ``hidden_hidden_size``, tanh at the end to keep the CDE's vector field bounded (Kidger et al.)."""

    def __init__(self, channels: int, hidden_size: int, hidden_hidden_size: int, num_layers: int = 1):
        super().__init__()
        self.channels, self.hidden_size = channels, hidden_size
        layers: list[nn.Module] = [nn.Linear(hidden_size, hidden_hidden_size), nn.ReLU()]
        for _ in range(num_layers - 1):
            layers += [nn.Linear(hidden_hidden_size, hidden_hidden_size), nn.ReLU()]
        layers += [nn.Linear(hidden_hidden_size, hidden_size * channels), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(*z.shape[:-1], self.hidden_size, self.channels)


class NeuralCDE(nn.Module):
    """Neural CDE classifier/regressor on [time, values] (module docstring).

    Args:
        input_size, hidden_size, output_size: D (the time channel is added), H, readout width.
        hidden_hidden_size: width of f's hidden layers (default H); num_layers: their number (1).
        interpolation: one of CDE_INTERPOLATIONS ("cubic": Hermite with backward differences).
        method, step_size, rtol, atol, gradient: the solve (module docstring).  The defaults,
            "rk4" with one step per knot, are torchcde's examples' choice and cheap on a CPU.
    """

    reads_times = True
    SOLVE = CDESolve
    """The type of ``spec``: what the solver settings are checked as (``TrainConfig`` too, before data loads)."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int, hidden_hidden_size: int | None = None,
                 num_layers: int = 1, interpolation: str = "cubic", method: str = "rk4",
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
        hh = hidden_size if hidden_hidden_size is None else hidden_hidden_size
        channels = input_size + 1
        self.input_size, self.hidden_size = input_size, hidden_size
        self.interpolation = interpolation
        self.initial = nn.Linear(channels, hidden_size)
        self.func = CDEVectorField(channels, hidden_size, hh, num_layers)
        self.readout = nn.Linear(hidden_size, output_size)

    @property
    def spec(self) -> CDESolve:
        """The frozen solve settings; ``with_solver`` changes them."""
        return self._spec

    def with_solver(self, **changes) -> NeuralCDE:
        """This model with ``spec.replace(**changes)``, sharing its modules and parameters (not copies)."""
        return share_modules(self, _spec=self._spec.replace(**changes))

    method = solver_setting("method")
    step_size = solver_setting("step_size")
    rtol = solver_setting("rtol")
    atol = solver_setting("atol")
    gradient = solver_setting("gradient")

    def path_values(self, values: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, 1 + D): [time, values] with NaN kept (time NaN on steps with no observation)."""
        t = check_inputs(values, times, self.input_size)
        if values.shape[1] < 2:
            raise ValueError(f"a Neural CDE needs at least two time steps; got values of shape {tuple(values.shape)}")
        time = t.to(values.dtype).masked_fill(~step_observed(values), float("nan")).unsqueeze(-1)
        return torch.cat([time, values], dim=-1)

    def grid(self, values: torch.Tensor) -> torch.Tensor:
        """The path's parameter: the step index 0..T-1 (torchcde's default t)."""
        return torch.arange(values.shape[1], dtype=values.dtype, device=values.device)

    def coefficients(self, values: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        """torchcde coefficients of the [time, values] path, NaN filled by torchcde's rule."""
        x = self.path_values(values, times)
        grid = self.grid(values)
        x = fill_missing(x, grid, "linear")
        torchcde = load_torchcde()
        if self.interpolation == "cubic":
            return torchcde.hermite_cubic_coefficients_with_backward_differences(x, grid)
        if self.interpolation == "linear":
            return torchcde.linear_interpolation_coeffs(x, grid)
        return torchcde.natural_cubic_coeffs(x, grid)

    def control(self, coeffs: torch.Tensor, grid: torch.Tensor) -> torchcde.InterpolationBase:
        """The torchcde path of ``coeffs`` on ``grid``."""
        torchcde = load_torchcde()
        if self.interpolation == "linear":
            return torchcde.LinearInterpolation(coeffs, grid)
        return torchcde.CubicSpline(coeffs, grid)

    def solve_options(self, grid: torch.Tensor) -> dict:
        """Keyword arguments of torchcde.cdeint beyond X, func, z0 and t."""
        kwargs: dict = {"method": self.method, "adjoint": self.gradient == "adjoint"}
        if solvers.METHODS[self.method].kind == "fixed":
            if self.step_size is not None:
                kwargs["options"] = {"step_size": self.step_size}
        else:
            kwargs.update(rtol=self.rtol, atol=self.atol, options={"jump_t": grid})
        return kwargs

    def trajectory(self, values: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states z (B, T, hidden) at the knots."""
        grid = self.grid(values)
        X = self.control(self.coefficients(values, times), grid)
        z0 = self.initial(X.evaluate(grid[0]))
        return load_torchcde().cdeint(X=X, func=self.func, z0=z0, t=grid, **self.solve_options(grid))

    def forward(self, values: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        last = last_observed_index(values)
        # no solve past the batch's last observation (at least two knots: torchcde needs an interval)
        stop = max(int(last.max()) + 1, 2)
        if stop < values.shape[1]:
            values = values[:, :stop]
            if times is not None and torch.as_tensor(times).dim() >= 1:
                times = torch.as_tensor(times)[..., :stop]
        states = self.trajectory(values, times)
        return self.readout(states[torch.arange(states.shape[0], device=states.device), last])
