"""Recurrent vector fields, one family per file; :mod:`.base` holds the contract."""

from .antisymmetric import AntisymmetricField
from .base import DrivenField, Field
from .ctrnn import CTRNNField
from .lipschitz import LipschitzField
from .restricted_unitary import RestrictedUnitaryField
from .unitary import UnitaryField, modrelu

__all__ = ["AntisymmetricField", "CTRNNField", "DrivenField", "Field", "LipschitzField", "RestrictedUnitaryField",
           "UnitaryField", "modrelu"]
