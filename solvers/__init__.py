"""Model-agnostic ODE integration: one Runge-Kutta engine for every explicit tableau (fixed and
embedded), one registry of gradient modes, ``odeint`` as a drop-in superset of torchdiffeq's, and
stability / accuracy tools.

This package knows nothing of RNNs and imports nothing from ``neuralode_rnn``.
"""

from .accuracy import CountingFunc, WorkPrecisionRecord, observed_order, work_precision
from .controller import Controller
from .driven import DrivenTerm
from .engine import DEFAULT_MAX_STEPS, Tape
from .errors import NonFiniteStateError, SolverError, StepLimitError, StepSizeUnderflowError, TimeLimitError
from .gradients import GRADIENT_MODES, register_gradient_mode, resolve_gradient
from .grids import knot_grid
from .inputs import PiecewiseInput
from .kernels import TANH_KERNELS, pin_tanh_kernel, pinned_tanh_kernel, tanh_kernel
from .linear_activation import LinearActivation, LinearActivationTerm
from .methods import METHODS, MethodInfo
from .odeint import odeint, odeint_adjoint, odeint_event
from .problem import Problem
from .solve import make_problem, solve
from .spec import ERROR_CONTROLS, SolveSpec
from .stability import max_stable_step, stability_function
from .stepper import Plan, rk_step
from .tableaux import ADAPTIVE_TABLEAUX, FIXED_TABLEAUX, TABLEAUX, Tableau, tableau
from .terms import FuncTerm, Term

__all__ = [
    "ADAPTIVE_TABLEAUX",
    "DEFAULT_MAX_STEPS",
    "FIXED_TABLEAUX",
    "GRADIENT_MODES",
    "METHODS",
    "TABLEAUX",
    "TANH_KERNELS",
    "Controller",
    "CountingFunc",
    "DrivenTerm",
    "ERROR_CONTROLS",
    "FuncTerm",
    "LinearActivation",
    "LinearActivationTerm",
    "MethodInfo",
    "NonFiniteStateError",
    "PiecewiseInput",
    "Plan",
    "Problem",
    "SolveSpec",
    "SolverError",
    "StepLimitError",
    "StepSizeUnderflowError",
    "Tableau",
    "Tape",
    "Term",
    "TimeLimitError",
    "WorkPrecisionRecord",
    "knot_grid",
    "make_problem",
    "max_stable_step",
    "observed_order",
    "pin_tanh_kernel",
    "pinned_tanh_kernel",
    "odeint",
    "odeint_adjoint",
    "odeint_event",
    "register_gradient_mode",
    "resolve_gradient",
    "rk_step",
    "solve",
    "stability_function",
    "tableau",
    "tanh_kernel",
    "work_precision",
]

from .sde import SDE_METHODS, sdeint  # noqa: E402

__all__ += ["sdeint", "SDE_METHODS"]
