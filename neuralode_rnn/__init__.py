"""neuralode_rnn: recurrent networks as continuous-time dynamical systems.

Data flows one way: samples -> path (:func:`interpolate`) -> field (:mod:`.fields`) ->
solver (:mod:`solvers`) -> states -> readout (:mod:`.models`).
"""

from ._version import __version__
from .cells import FieldCell
from .fields import AntisymmetricField, CTRNNField, DrivenField, Field, LipschitzField, UnitaryField, modrelu
from .models import ContinuousRNN, DiscreteRNN, TorchRNN
from .paths import INTERPOLATIONS, Path, interpolate

__all__ = [
    "INTERPOLATIONS",
    "AntisymmetricField",
    "CTRNNField",
    "ContinuousRNN",
    "DiscreteRNN",
    "DrivenField",
    "Field",
    "FieldCell",
    "LipschitzField",
    "Path",
    "TorchRNN",
    "UnitaryField",
    "__version__",
    "interpolate",
    "modrelu",
]

from .noise import NoisyField, StochasticRNN  # noqa: E402

__all__ += ["NoisyField", "StochasticRNN"]
