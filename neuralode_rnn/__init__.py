"""neuralode_rnn: recurrent networks as continuous-time dynamical systems.

Data flows one way: samples -> path (:func:`interpolate`) -> field (:mod:`.fields`) ->
solver (:mod:`solvers`) -> states -> readout (:mod:`.models`).
"""

from . import optim
from ._version import __version__
from .cells import FieldCell
from .fields import (
    AntisymmetricField,
    CTRNNField,
    DrivenField,
    Field,
    LipschitzField,
    RestrictedUnitaryField,
    UnitaryField,
    modrelu,
)
from .models import ContinuousRNN, DiscreteRNN, TorchRNN
from .optim import CayleyOptimizer, FullCapacityOptimizer, parametrize_unitary
from .paths import INTERPOLATIONS, Path, interpolate

__all__ = [
    "__version__",
    "interpolate", "Path", "INTERPOLATIONS",
    "Field", "DrivenField", "LipschitzField", "AntisymmetricField", "UnitaryField", "CTRNNField", "modrelu",
    "FieldCell", "ContinuousRNN", "DiscreteRNN", "TorchRNN",
    "optim", "RestrictedUnitaryField", "CayleyOptimizer", "FullCapacityOptimizer", "parametrize_unitary",
]
