"""Analysis of continuous-time RNNs: solver comparison, stability, curvature, robustness.

One concept per module: :mod:`.solver_comparison`, :mod:`.solver_robustness`, :mod:`.stability`, :mod:`.hessian`,
:mod:`.robustness`, :mod:`.plots` (matplotlib, Agg), :mod:`.runs` (run directories) and
:mod:`.commands` (the ``compare-solvers`` and ``analyze`` subcommands, also runnable as
``python -m neuralode_rnn.analysis``).
"""

from .hessian import (
                      HessianOperator,
                      HessianSummary,
                      dense_hessian,
                      hessian_summary,
                      hutchinson_trace,
                      lanczos,
                      power_iteration,
)
from .robustness import RobustnessCurve, accuracy, input_noise_curve, parameter_noise_curve
from .solver_comparison import (
                      SolverComparison,
                      SolverRun,
                      compare_solvers,
                      cross_solver_accuracy,
                      format_table,
)
from .solver_robustness import (
                      ROBUSTNESS_SETTINGS,
                      RobustnessSetting,
                      SolverRobustness,
                      solver_robustness,
)
from .stability import (
                      Contraction,
                      GlobalStability,
                      jacobian_eigenvalues,
                      lipschitz_stability_condition,
                      matrix_eigenvalues,
                      max_stable_steps,
                      measure_contraction,
)

__all__ = [
                      "ROBUSTNESS_SETTINGS",
                      "Contraction",
                      "GlobalStability",
                      "HessianOperator",
                      "HessianSummary",
                      "RobustnessCurve",
                      "RobustnessSetting",
                      "SolverComparison",
                      "SolverRobustness",
                      "SolverRun",
                      "accuracy",
                      "compare_solvers",
                      "cross_solver_accuracy",
                      "dense_hessian",
                      "format_table",
                      "hessian_summary",
                      "hutchinson_trace",
                      "input_noise_curve",
                      "jacobian_eigenvalues",
                      "lanczos",
                      "lipschitz_stability_condition",
                      "matrix_eigenvalues",
                      "max_stable_steps",
                      "measure_contraction",
                      "parameter_noise_curve",
                      "power_iteration",
                      "solver_robustness",
]
