"""Model-agnostic ODE integration: one Runge-Kutta engine for every explicit tableau (fixed and
embedded), one solve specification (:class:`SolveSpec`), one registry of gradient modes, ``odeint``
as a drop-in superset of torchdiffeq's, and linear stability.

This package knows nothing of RNNs and imports nothing from ``neuralode_rnn``.  The names below are
its public API (the reversible methods are in ``solvers.METHODS``; their tableaux in
``solvers.tableaux.REVERSIBLE_TABLEAUX``); everything else is importable from its module (``solvers.engine``,
``solvers.stepper``, ``solvers.problem``, ...) for code that extends the engine.
"""

from .driven import DrivenTerm
from .engine import DEFAULT_MAX_STEPS
from .errors import NonFiniteStateError, SolverError, StepLimitError, StepSizeUnderflowError, TimeLimitError
from .gradients import GRADIENT_MODES, register_gradient_mode
from .inputs import PiecewiseInput
from .kernels import TANH_KERNELS, pin_tanh_kernel, tanh_kernel
from .linear_activation import LinearActivation, LinearActivationTerm
from .methods import METHODS
from .odeint import odeint, odeint_adjoint, odeint_event
from .reconstruction import AdjointAccuracyWarning
from .sde import sdeint
from .spec import SolveSpec
from .stability import max_stable_step, stability_function
from .tableaux import ADAPTIVE_TABLEAUX, FIXED_TABLEAUX, TABLEAUX, Tableau, tableau

__all__ = [
    # integration
    "odeint",
    "odeint_adjoint",
    "odeint_event",
    "sdeint",
    "SolveSpec",
    "DEFAULT_MAX_STEPS",
    # methods and gradient modes
    "METHODS",
    "TABLEAUX",
    "FIXED_TABLEAUX",
    "ADAPTIVE_TABLEAUX",
    "Tableau",
    "tableau",
    "GRADIENT_MODES",
    "register_gradient_mode",
    "AdjointAccuracyWarning",
    # errors
    "SolverError",
    "NonFiniteStateError",
    "StepLimitError",
    "StepSizeUnderflowError",
    "TimeLimitError",
    # stability
    "stability_function",
    "max_stable_step",
    # the terms a model layer builds (a field driven by an input path; the structured kernel)
    "PiecewiseInput",
    "DrivenTerm",
    "LinearActivation",
    "LinearActivationTerm",
    # the tanh kernel
    "TANH_KERNELS",
    "tanh_kernel",
    "pin_tanh_kernel",
]
