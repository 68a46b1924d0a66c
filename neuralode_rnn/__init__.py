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
from .noise import NoisyField, StochasticRNN
from .optim import CayleyOptimizer, FullCapacityOptimizer, parametrize_unitary
from .paths import INTERPOLATIONS, Path, interpolate

__all__ = [
    "INTERPOLATIONS",
    "AntisymmetricField",
    "CTRNNField",
    "CayleyOptimizer",
    "ContinuousRNN",
    "DiscreteRNN",
    "DrivenField",
    "Field",
    "FieldCell",
    "FullCapacityOptimizer",
    "LipschitzField",
    "NoisyField",
    "Path",
    "RestrictedUnitaryField",
    "StochasticRNN",
    "TorchRNN",
    "UnitaryField",
    "__version__",
    "interpolate",
    "modrelu",
    "optim",
    "parametrize_unitary",
]
