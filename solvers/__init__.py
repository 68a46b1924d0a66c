"""Model-agnostic ODE integration: explicit Runge-Kutta tableaux as data, one fixed-step loop
on knot-aligned grids, torchdiffeq for everything else, and stability / accuracy tools.

This package knows nothing of RNNs and imports nothing from ``neuralode_rnn``.
"""

from .accuracy import CountingFunc, WorkPrecisionRecord, observed_order, work_precision
from .driven import integrate_driven, stage_nodes
from .linear_activation import LinearActivation
from .methods import METHODS, MethodInfo
from .odeint import GRADIENT_MODES, Problem, odeint, register_gradient_mode
from .stability import max_stable_step, stability_function
from .tableaux import TABLEAUX, Tableau, tableau

__all__ = [
    "GRADIENT_MODES",
    "METHODS",
    "TABLEAUX",
    "CountingFunc",
    "LinearActivation",
    "MethodInfo",
    "Problem",
    "Tableau",
    "WorkPrecisionRecord",
    "integrate_driven",
    "max_stable_step",
    "observed_order",
    "odeint",
    "register_gradient_mode",
    "stability_function",
    "stage_nodes",
    "tableau",
    "work_precision",
]

from .sde import SDE_METHODS, sdeint  # noqa: E402

__all__ += ["sdeint", "SDE_METHODS"]
