"""Training recipes that keep a continuous model's learned field an ODE (issue 11).

A continuous model trained with one solver at one step is often its discrete cell in disguise:
the same weights lose 75-90 points of test accuracy under another solver (docs/ANALYSIS.md).  A
*recipe* says which solver each training batch is computed with, and what is added to the loss:

===========  ==========================================================================================
``fixed``    every batch with the model's own ``method`` and ``step_size`` (what training always did)
``cycle``    batch k with solver k mod K of ``recipe_solvers`` (K entries), in an order shuffled anew
             for every round of K batches: every solver equally often, none twice in a row by design
``random``   every batch with a solver drawn uniformly from ``recipe_solvers``
``penalty``  the model's own solver, plus ``penalty`` x the Heun-Euler local-error estimate (below)
===========  ==========================================================================================

Why switching solvers works: a loss that is low under Euler at h/3, Heun, RK4 and RK 3/8 at once
can only be low for a field whose solutions these schemes agree on, i.e. a field that their
discretisation errors do not change much.  A batch's solver is a solve specification passed to the
model's forward call (``model(values, times, spec=...)``, :func:`recipe_specs`); the model's own
specification is frozen, so it is evaluated (every epoch, and after training) with its own
``method`` / ``step_size``, which a recipe never changes; for ``cycle`` and
``random`` that is the "as-trained" solver, best one of the higher-order entries of the set (RK4
with one step per sample gap in the issue 11 study, docs/CONTINUOUS.md).

``recipe_solvers`` is text, e.g. ``"euler:3,euler:5,heun,midpoint,ralston,rk4,rk38"``: entries
``method[:substeps]`` with a fixed-step Runge-Kutta method (``solvers.TABLEAUX``, not adaptive)
and ``substeps`` steps per training step h (default 1).  h is the model's ``step_size`` when it
has one, else the time between samples ``eps``, so ``euler:3`` takes steps of eps / 3 on a regular
task (on an irregular one, steps no longer than that).

The solver of a batch depends only on the seed and the batch's index in the whole run
(:func:`recipe_solver`), never on a generator's state: a run resumed from a checkpoint continues
with exactly the solvers an uninterrupted run would have used.

``penalty``: the embedded Heun-Euler pair estimates the local error of one Euler step of size dt
as e = dt/2 (f(h + dt f(h, u), u) - f(h, u)) (Hairer, Norsett and Wanner, *Solving ODEs I*,
II.4).  :func:`local_error_penalty` takes that step with the solvers' own stepper and its
``adaptive_heun`` tableau (the same pair, b_err = (1/2, -1/2): the estimate up to its sign) from
every state the training solve passes through at a sample time, with the next sample's input held
(the "hold" path), and sums |e|^2 over the sequence; the loss adds ``penalty`` x its batch mean.  It pushes the field towards one
that a step of dt resolves.  Written here because no library offers a local-error term as a
differentiable training loss (torchdiffeq and diffrax expose error estimates only to their
step-size controllers).
"""

from __future__ import annotations

import math

import torch
from torch import nn

import solvers
from solvers.stepper import Plan, rk_step
from solvers.terms import Term

__all__ = ["DEFAULT_RECIPE_SOLVERS", "RECIPES", "local_error_penalty", "parse_recipe_solvers", "recipe_solver",
           "recipe_specs", "substep_size"]

RECIPES = ("fixed", "cycle", "random", "penalty")
"""The training recipes (see the module docstring)."""

DEFAULT_RECIPE_SOLVERS = "euler:3,euler:5,heun,midpoint,ralston,rk4,rk38"
"""The solver set of ``cycle`` and ``random``, the one measured in docs/CONTINUOUS.md.  Euler at h/3
and h/5 make the model hold under Euler at finer steps (in the research runs, a set without Euler
lost 25-30 points under Euler at h/4); second- to fourth-order schemes at h keep the higher-order
solvers close.  Since the solver engine (issue 9) ``rk38`` is an alias of ``rk4`` (Kutta's 3/8
rule, as in torchdiffeq), so this set takes the 3/8 rule twice per round; the research runs
before it took the classical RK4 (now ``rk4_classic``) and the 3/8 rule once each."""


def parse_recipe_solvers(text: str, flag: str = "recipe_solvers") -> tuple[tuple[str, int], ...]:
    """``"euler:3,heun,rk4"`` -> (("euler", 3), ("heun", 1), ("rk4", 1)); a bad entry is a
    ValueError naming ``flag``, the entry and what was expected."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{flag} must be a comma-separated list of method[:substeps] entries, e.g. "
                         f"{DEFAULT_RECIPE_SOLVERS!r}; got {text!r}")
    fixed = [k for k, t in solvers.TABLEAUX.items() if not t.adaptive]
    out = []
    for entry in text.split(","):
        entry = entry.strip()
        method, _, sub = entry.partition(":")
        if method not in fixed:
            raise ValueError(f"{flag}: entry {entry!r} names no fixed-step method; expected method[:substeps] with "
                             f"method one of {', '.join(fixed)} (adaptive solvers take no fixed step)")
        try:
            substeps = int(sub) if sub else 1
        except ValueError:
            substeps = 0
        if substeps < 1:
            raise ValueError(f"{flag}: entry {entry!r} has substeps {sub!r}; expected a positive int (steps per "
                             f"training step), e.g. euler:3")
        out.append((method, substeps))
    return tuple(out)


def recipe_solver(recipe: str, choices: tuple[tuple[str, int], ...], seed: int, step: int) -> tuple[str, int] | None:
    """The (method, substeps) that batch ``step`` (0-based index over the whole run) of a ``recipe``
    run trains with, or None for the model's own solver (``fixed``, ``penalty``).

    ``cycle``: round r = step // K uses a permutation of the K choices drawn from (seed, r), and
    the batch takes entry step mod K of it.  ``random``: one uniform draw from (seed, step).
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; expected one of {', '.join(RECIPES)}")
    if recipe in ("fixed", "penalty"):
        return None
    if not choices:
        raise ValueError(f"recipe {recipe!r} needs at least one solver in its choices; got {choices!r}")
    K = len(choices)
    if recipe == "cycle":
        r, i = divmod(step, K)
        order = torch.randperm(K, generator=torch.Generator().manual_seed(_mix(seed, r)))
        return choices[int(order[i])]
    j = torch.randint(K, (1,), generator=torch.Generator().manual_seed(_mix(seed, step))).item()
    return choices[int(j)]


def _mix(seed: int, k: int) -> int:
    # distinct generator seeds for (seed, k) pairs, as loop.epoch_seed does for epochs
    return (seed * 1_000_003 + k + 7_919) % (2 ** 63)


def recipe_specs(model: nn.Module, choices: tuple[tuple[str, int], ...], base_step: float | None,
                 eps: float) -> dict[tuple[str, int], solvers.SolveSpec]:
    """The solve specification of each (method, substeps) of ``choices``: the model's own ``spec``
    with that method and :func:`substep_size`, made (and validated) once per run; a batch passes
    its entry to the model's forward call, so the model's own specification never changes."""
    return {(m, s): model.spec.replace(method=m, step_size=substep_size(base_step, eps, s)) for m, s in choices}


def substep_size(base_step: float | None, eps: float, substeps: int) -> float | None:
    """The step of ``substeps`` steps per training step: None (one step per sample gap) for
    substeps 1 without a fixed ``base_step``, else (base_step or eps) / substeps."""
    if substeps == 1:
        return base_step
    return (base_step if base_step is not None else eps) / substeps


def local_error_penalty(model: nn.Module, values: torch.Tensor, states: torch.Tensor, dt: float) -> torch.Tensor:
    """Per-sample sum over time of |dt/2 (k2 - k1)|^2, the Heun-Euler local error estimate of a
    step of size ``dt`` from the state before each sample (module docstring).

    Args:
        model: a ContinuousRNN (its ``field``: ``input_map``, ``rhs``, ``initial_state``).
        values: (B, T, D) the samples (time on axis 1), no missing values; sample k's input is
            held over the step that reads it, as on the "hold" path.
        states: (B, T, N) the training solve's states at the sample times (``trajectory``).
        dt: the training solver's step.

    Returns:
        (B,) the estimate's squared norm summed over the T steps, differentiable in the parameters.
    """
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number (the training step); got {dt!r}")
    field = model.field
    B, T, N = states.shape
    h0 = field.initial_state(B, states.dtype, states.device).unsqueeze(1)
    before = torch.cat([h0, states[:, :-1]], 1).reshape(B * T, N)
    u = field.input_map(values.to(states.dtype)).reshape(B * T, -1)
    step = rk_step(_HeldInput(field, u), Plan.of(solvers.TABLEAUX["adaptive_heun"]), 0.0, float(dt), before)
    return step.err.abs().pow(2).sum(-1).reshape(B, T).sum(1)


class _HeldInput(Term):
    """dh/dt = field.rhs(h, u) with the projected input ``u`` (B * T, P) held over the step: the
    term the penalty's one Heun-Euler step integrates (every (sample, time) pair a row)."""

    def __init__(self, field: nn.Module, u: torch.Tensor) -> None:
        self.field = field
        self.u = u

    def f(self, t: float, y: torch.Tensor) -> torch.Tensor:
        return self.field.rhs(y, self.u)
