"""Explicit Runge-Kutta methods as data: Butcher tableaux, a registry, and a lookup.

A tableau (a, b, c) defines one step of size dt from (t0, y0):

    k_i = f(t0 + c_i dt, y0 + dt * sum_{j<i} a_ij k_j),    i = 0 .. s-1
    y1  = y0 + dt * sum_i b_i k_i

Only explicit methods are represented, so ``a`` is strictly lower triangular and stored as
its rows below the diagonal: row ``i`` holds the ``i`` weights a_i0 .. a_i,i-1 (row 0 is
empty).  A new method is one ``Tableau(...)`` entry; one generic loop (``solvers.fixed``)
steps every table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["TABLEAUX", "Tableau", "tableau"]

# Consistency is checked to this absolute tolerance: the tables below are written with
# float literals such as 2/3, whose row sums are exact only to rounding.
_TOL = 1e-12


@dataclass(frozen=True)
class Tableau:
    """Butcher tableau of an explicit Runge-Kutta method.

    Args:
        name: method name, as used in ``odeint(method=...)``.
        a: strictly lower-triangular stage weights as a tuple of rows; row ``i`` has ``i``
            entries (a_i0, ..., a_i,i-1).
        b: the ``s`` output weights, summing to 1.
        c: the ``s`` stage nodes (fractions of the step), ``c[0] == 0`` and
            ``c[i] == sum(a[i])`` (the usual row-sum condition, which makes a method
            exact on y' = 1 in every stage).
        order: classical order of accuracy p (global error O(dt^p)).

    Raises:
        ValueError: naming the inconsistent field, what it holds and what was expected.
    """

    name: str
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    c: tuple[float, ...]
    order: int

    def __post_init__(self) -> None:
        # Accept lists from users but store tuples, so instances stay hashable and immutable.
        object.__setattr__(self, "a", tuple(tuple(float(x) for x in row) for row in self.a))
        object.__setattr__(self, "b", tuple(float(x) for x in self.b))
        object.__setattr__(self, "c", tuple(float(x) for x in self.c))
        s = len(self.b)
        if s == 0:
            raise ValueError(f"tableau {self.name!r}: b must hold at least one weight; got b = ()")
        if len(self.c) != s:
            raise ValueError(
                f"tableau {self.name!r}: c must have one node per stage (len(b) = {s}); "
                f"got len(c) = {len(self.c)}"
            )
        if len(self.a) != s:
            raise ValueError(
                f"tableau {self.name!r}: a must have one row per stage (len(b) = {s}); "
                f"got {len(self.a)} rows"
            )
        if self.c[0] != 0.0:
            raise ValueError(
                f"tableau {self.name!r}: c[0] must be 0 for an explicit method; got c[0] = {self.c[0]}"
            )
        for i, row in enumerate(self.a):
            if len(row) != i:
                raise ValueError(
                    f"tableau {self.name!r}: row {i} of a must hold {i} weights (explicit, strictly "
                    f"lower-triangular); got {len(row)}: {row}"
                )
            if abs(sum(row) - self.c[i]) > _TOL:
                raise ValueError(
                    f"tableau {self.name!r}: row {i} of a must sum to c[{i}] = {self.c[i]}; "
                    f"got sum = {sum(row)}"
                )
        if abs(sum(self.b) - 1.0) > _TOL:
            raise ValueError(f"tableau {self.name!r}: b must sum to 1; got sum(b) = {sum(self.b)}")
        if not isinstance(self.order, int) or self.order < 1:
            raise ValueError(f"tableau {self.name!r}: order must be a positive int; got {self.order!r}")
        if not all(math.isfinite(x) for x in (*self.b, *self.c, *(x for r in self.a for x in r))):
            raise ValueError(f"tableau {self.name!r}: every coefficient must be finite")

    @property
    def stages(self) -> int:
        """Number of function evaluations per step, ``s``."""
        return len(self.b)


_EULER = Tableau("euler", a=((),), b=(1.0,), c=(0.0,), order=1)

_MIDPOINT = Tableau("midpoint", a=((), (0.5,)), b=(0.0, 1.0), c=(0.0, 0.5), order=2)

# Heun's method: the explicit trapezoidal rule (torchdiffeq calls it "heun2").
_HEUN = Tableau("heun", a=((), (1.0,)), b=(0.5, 0.5), c=(0.0, 1.0), order=2)

# Ralston's RK2: the second-order two-stage method with minimal truncation-error bound.
_RALSTON = Tableau("ralston", a=((), (2 / 3,)), b=(0.25, 0.75), c=(0.0, 2 / 3), order=2)

_RK4 = Tableau(
    "rk4",
    a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
    b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
    c=(0.0, 0.5, 0.5, 1.0),
    order=4,
)

# Kutta's 3/8 rule; torchdiffeq's "rk4" is this method (rk_common.rk4_alt_step_func).
_RK38 = Tableau(
    "rk38",
    a=((), (1 / 3,), (-1 / 3, 1.0), (1.0, -1.0, 1.0)),
    b=(1 / 8, 3 / 8, 3 / 8, 1 / 8),
    c=(0.0, 1 / 3, 2 / 3, 1.0),
    order=4,
)

TABLEAUX: dict[str, Tableau] = {
    tab.name: tab for tab in (_EULER, _MIDPOINT, _HEUN, _RALSTON, _RK4, _RK38)
}
"""Registry of the built-in explicit tableaux, by name."""


def tableau(method: str | Tableau) -> Tableau:
    """Return the tableau for ``method``: a registered name or a ``Tableau`` instance.

    Raises:
        ValueError: for an unknown name, listing the known ones.
        TypeError: for anything that is neither a str nor a Tableau.
    """
    if isinstance(method, Tableau):
        return method
    if not isinstance(method, str):
        raise TypeError(f"method must be a str or a Tableau; got {type(method).__name__}")
    try:
        return TABLEAUX[method]
    except KeyError:
        raise ValueError(
            f"unknown method {method!r}; expected one of {', '.join(sorted(TABLEAUX))}"
        ) from None
