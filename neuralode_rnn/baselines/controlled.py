"""The seed fields in controlled (CDE) form: time-aware continuous variants of this library's own models.

The seed fields read their input as a level, h' = f(h, x(t)) (``fields``): over a gap of length dt
between observations the held or interpolated level x acts for the whole gap, so a long gap means
the same sample is read for longer.  Written as a controlled differential equation in the form
issue 19 names, dz = f(z) dt + g(z) dX, the field's own dynamics run for the elapsed time and the
input enters by its *increments*: over any gap the control adds g dX, whatever the gap's length.
With X = [t, x] (time as the first channel) the two parts are one CDE dz = F(z) dX, and with
U = [u_0, U_x] the weights of the field's input map (``field.input_map``, the paper's U or V, on
the C = 1 + D channels of X), b its bias and W_a = W - W^T - gamma I:

=======================  ==================================================================================
name                     dz
=======================  ==================================================================================
lipschitz-cde            (A z + tanh(W z + b)) dt + U dX                        (Erichson et al.'s field)
antisymmetric-cde        tanh(W_a z + b) dt + V dX                              (Chang et al.'s)
antisymmetric-gated-cde  s * (tanh(W_a z + b) dt + V dX),  s = sigmoid(W_a z + V_z X(t) + b_z)
ctrnn-cde                (-z + tanh(W z + b)) dt + U dX
=======================  ==================================================================================

The drift is exactly the seed field with its input switched off (``field.rhs(z, b)``, the same
parameters and parametrisation of A and W); the control is linear in dX, so a CDE, whose response
to the input is reparametrisation-invariant (the tests: with the drift off the state moves by
exactly U (X(t) - X(t_1)) whatever the times).  The gated field keeps its gate on everything, as
eq. 7 of Chang et al. gates the whole update; the gate reads the current level X(t), the only place
a level enters.  The time channel's weights u_0 act as a constant drift.

Everything else is the Neural CDE's (``ncde``, this model's base class): z(t_1) = zeta(X(t_1))
linear, the natural cubic spline in time through each channel's observations (so missing values
per channel are interpolated, the time channel is always observed), torchcde's ``cdeint`` with
torchdiffeq's rk4 at the smallest gap of the batch's time grid, the readout at each sample's last
observation.  The eps of a run scales the times (``training.objective.model_times``), so the
drift acts for eps per unit of the data's time, as the seed field does; the control does not
depend on it.  No weight penalty by default (the seed fields train without one).

Why it lives beside the baselines: it is built on the Neural CDE's path, grid and solve, and the
zoo's "baseline" kind is what that needs (a model that reads its times through its own path); the
field is the seed paper's, unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ..fields import AntisymmetricField, CTRNNField, LipschitzField
from ..fields.base import Field
from .ncde import NeuralCDE

if TYPE_CHECKING:
    import torchcde

__all__ = ["CONTROLLED", "ControlledField", "ControlledRNN"]


class ControlledField(nn.Module):
    """F(z) dX/dt for a seed ``field`` in controlled form (module docstring), as torchcde's ``prod``.

    ``path``: the control X (a torchcde path), read only by the gated field's gate (None otherwise).
    ``forward(t, z)`` gives the matrix F(z) (B, N, C) itself, for checks; the solve uses ``prod``."""

    def __init__(self, field: Field, path: torchcde.InterpolationBase | None = None):
        super().__init__()
        self.field = field
        self.path = path

    def bound(self, path: torchcde.InterpolationBase) -> ControlledField:
        """The same field (shared parameters) reading the control ``path``."""
        return ControlledField(self.field, path)

    @property
    def gated(self) -> bool:
        return bool(getattr(self.field, "gated", False))

    def _parts(self, t, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(drift (B, N), control weights U (N, C), gate (B, N) or None)."""
        f, lin = self.field, self.field.input_map
        n = f.hidden_size
        if not self.gated:
            return f.rhs(z, lin.bias), lin.weight, None
        if self.path is None:
            raise ValueError("the gated controlled field reads the level X(t) in its gate: bind it to a path "
                             "first (ControlledField.bound(path))")
        level = self.path.evaluate(t) @ lin.weight[n:].transpose(0, 1) + lin.bias[n:]
        Wz = z @ f.W.transpose(0, 1)
        return torch.tanh(Wz + lin.bias[:n]), lin.weight[:n], torch.sigmoid(Wz + level)

    def prod(self, t, z: torch.Tensor, dXdt: torch.Tensor) -> torch.Tensor:
        """dz/dt = F(z) dX/dt (B, N): the drift times dt/dt (the time channel's rate) plus U dX/dt."""
        drift, U, gate = self._parts(t, z)
        out = drift * dXdt[..., :1] + dXdt @ U.transpose(0, 1)
        return out if gate is None else gate * out

    def forward(self, t, z: torch.Tensor) -> torch.Tensor:
        drift, U, gate = self._parts(t, z)
        F = U.expand(*z.shape[:-1], *U.shape).clone()
        F[..., 0] = F[..., 0] + drift
        return F if gate is None else gate.unsqueeze(-1) * F


class ControlledRNN(NeuralCDE):
    """A seed field in controlled form on the Neural CDE's path and solve (module docstring).

    Subclasses fix the family (``FAMILY``); the arguments are :class:`NeuralCDE`'s but the MLP's
    size, which this field does not have.
    """

    FAMILY = ""
    WEIGHT_PENALTY = 0.0
    """No weight penalty by default: the seed fields train without one (``--weight-penalty`` sets it)."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int, interpolation: str = "natural",
                 method: str = "rk4", step_size: float | None = None, rtol: float = 1e-4, atol: float = 1e-6,
                 gradient: str = "backprop"):
        if type(self) is ControlledRNN:
            raise TypeError("ControlledRNN is built through a family's subclass (CONTROLLED: "
                            f"{', '.join(CONTROLLED)})")
        super().__init__(input_size, hidden_size, output_size, interpolation=interpolation, method=method,
                         step_size=step_size, rtol=rtol, atol=atol, gradient=gradient)

    def vector_field(self, channels: int, hidden_size: int, hidden_hidden_size: int, num_layers: int) -> nn.Module:
        family = self.FAMILY
        if family == "lipschitz":
            field = LipschitzField(channels, hidden_size)
        elif family in ("antisymmetric", "antisymmetric-gated"):
            field = AntisymmetricField(channels, hidden_size, gated=family.endswith("gated"))
        else:
            field = CTRNNField(channels, hidden_size)
        return ControlledField(field)

    def driving(self, X: torchcde.InterpolationBase) -> nn.Module:
        return self.func.bound(X) if self.func.gated else self.func

    @property
    def field(self) -> Field:
        """The seed field (its parameters are the model's)."""
        return self.func.field


def _family_class(family: str) -> type[ControlledRNN]:
    name = "".join(part.title() for part in family.split("-")) + "CDE"
    return type(name, (ControlledRNN,), {"FAMILY": family, "__module__": __name__,
                                         "__doc__": f"The {family} field in controlled form (``{family}-cde``)."})


CONTROLLED: dict[str, type[ControlledRNN]] = {
    f"{family}-cde": _family_class(family) for family in ("lipschitz", "antisymmetric", "antisymmetric-gated", "ctrnn")}
"""model name -> class (``baselines.BASELINES`` lists them)."""
