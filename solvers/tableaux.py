"""Explicit Runge-Kutta methods as data: Butcher tableaux (fixed and embedded pairs), a registry, a lookup.

A tableau (a, b, c) is one step k_i = f(t0 + c_i dt, y0 + dt sum_{j<i} a_ij k_j), y1 = y0 + dt sum_i b_i k_i;
an embedded pair adds error weights ``b_err`` (err = dt sum_i b_err_i k_i, for the step-size controller) and
midpoint weights ``b_mid`` (for the quartic dense output, as torchdiffeq).  ``a`` is stored as its rows below
the diagonal.  A new method is one ``Tableau(...)`` entry; one stepper (:mod:`solvers.stepper`) steps them all.
Names mean what they mean in torchdiffeq: ``"rk4"`` is Kutta's 3/8 rule (also ``"rk38"``), ``"heun2"`` the
explicit trapezoidal rule (also ``"heun"``); the classical method is ``"rk4_classic"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ADAPTIVE_TABLEAUX", "ALIASES", "COUPLING", "FIXED_TABLEAUX", "REVERSIBLE_TABLEAUX", "TABLEAUX",
           "ReversibleTableau", "Tableau", "reversible", "tableau"]

_TOL = 1e-12  # consistency tolerance: the tables are float literals such as 2/3, row sums exact to rounding


def _floats(xs) -> tuple[float, ...]:
    return tuple(float(x) for x in xs)


@dataclass(frozen=True)
class Tableau:
    """Butcher tableau of an explicit Runge-Kutta method, optionally with an embedded error estimate.

    Args:
        name: method name, as used in ``odeint(method=...)``.
        a: strictly lower-triangular stage weights as a tuple of rows; row ``i`` has ``i``
            entries (a_i0, ..., a_i,i-1).
        b: the ``s`` output weights, summing to 1.
        c: the ``s`` stage nodes (fractions of the step), ``c[0] == 0`` and
            ``c[i] == sum(a[i])`` (the usual row-sum condition, which makes a method
            exact on y' = 1 in every stage).
        order: classical order of accuracy p of the propagated solution (global error O(dt^p)).
            For an embedded pair it also sets the controller's exponent 1 / order.
        b_err: for an embedded (adaptive) pair, the ``s`` error weights ``b - b_hat``, summing to 0.
        b_mid: for an embedded pair, the ``s`` weights of the solution at the middle of the step
            (dense output), summing to 1/2; None for fixed methods.

    Raises:
        ValueError: naming the inconsistent field, what it holds and what was expected.
    """

    name: str
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    c: tuple[float, ...]
    order: int
    b_err: tuple[float, ...] | None = None
    b_mid: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        # Accept lists from users but store tuples, so instances stay hashable and immutable.
        object.__setattr__(self, "a", tuple(_floats(row) for row in self.a))
        object.__setattr__(self, "b", _floats(self.b))
        object.__setattr__(self, "c", _floats(self.c))
        for extra in ("b_err", "b_mid"):
            if getattr(self, extra) is not None:
                object.__setattr__(self, extra, _floats(getattr(self, extra)))
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
        for extra, total in (("b_err", 0.0), ("b_mid", 0.5)):
            w = getattr(self, extra)
            if w is None:
                continue
            if len(w) != s:
                raise ValueError(f"tableau {self.name!r}: {extra} must hold one weight per stage ({s}); "
                                 f"got {len(w)}")
            if abs(sum(w) - total) > 1e-9:
                raise ValueError(f"tableau {self.name!r}: {extra} must sum to {total}; got {sum(w)}")
        if (self.b_err is None) != (self.b_mid is None):
            raise ValueError(f"tableau {self.name!r}: an embedded pair needs both b_err and b_mid; got "
                             f"b_err {'set' if self.b_err else 'None'}, b_mid {'set' if self.b_mid else 'None'}")
        if isinstance(self.order, bool) or not isinstance(self.order, int) or self.order < 1:
            raise ValueError(f"tableau {self.name!r}: order must be a positive int; got {self.order!r}")
        every = (*self.b, *self.c, *(x for r in self.a for x in r), *(self.b_err or ()), *(self.b_mid or ()))
        if not all(math.isfinite(x) for x in every):
            raise ValueError(f"tableau {self.name!r}: every coefficient must be finite")

    @property
    def stages(self) -> int:
        """Number of function evaluations per step, ``s`` (one fewer for an FSAL pair after its first step)."""
        return len(self.b)

    @property
    def adaptive(self) -> bool:
        """True for an embedded pair (error-controlled steps)."""
        return self.b_err is not None

    @property
    def fsal(self) -> bool:
        """First same as last: the last stage is f(t1, y1) (c = 1, its row equals b, b_s = 0), so the
        next step can reuse it as its first stage."""
        s = self.stages
        return s > 1 and self.c[-1] == 1.0 and self.b[-1] == 0.0 and self.a[-1] == self.b[:-1]


_EULER = Tableau("euler", a=((),), b=(1.0,), c=(0.0,), order=1)

_MIDPOINT = Tableau("midpoint", a=((), (0.5,)), b=(0.0, 1.0), c=(0.0, 0.5), order=2)

# Heun's method: the explicit trapezoidal rule (torchdiffeq's "heun2").
_HEUN2 = Tableau("heun2", a=((), (1.0,)), b=(0.5, 0.5), c=(0.0, 1.0), order=2)

# Ralston's RK2: the second-order two-stage method with minimal truncation-error bound.
_RALSTON = Tableau("ralston", a=((), (2 / 3,)), b=(0.25, 0.75), c=(0.0, 2 / 3), order=2)

# Heun's third-order method (torchdiffeq's "heun3").
_HEUN3 = Tableau("heun3", a=((), (1 / 3,), (0.0, 2 / 3)), b=(0.25, 0.0, 0.75), c=(0.0, 1 / 3, 2 / 3), order=3)

# Kutta's 3/8 rule: torchdiffeq's "rk4" (rk_common.rk4_alt_step_func), hence ours.
_RK4 = Tableau(
    "rk4",
    a=((), (1 / 3,), (-1 / 3, 1.0), (1.0, -1.0, 1.0)),
    b=(1 / 8, 3 / 8, 3 / 8, 1 / 8),
    c=(0.0, 1 / 3, 2 / 3, 1.0),
    order=4,
)

# The classical fourth-order method (the "RK4" of textbooks).
_RK4_CLASSIC = Tableau(
    "rk4_classic",
    a=((), (0.5,)
       , (0.0, 0.5), (0.0, 0.0, 1.0)),
    b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
    c=(0.0, 0.5, 0.5, 1.0),
    order=4,
)

# ---------------------------------------------------------------------------- embedded pairs
# Heun-Euler 2(1) (torchdiffeq's "adaptive_heun"): error = Heun's step minus an Euler-like one.
_ADAPTIVE_HEUN = Tableau("adaptive_heun", a=((), (1.0,)), b=(0.5, 0.5), c=(0.0, 1.0), order=2,
                         b_err=(0.5, -0.5), b_mid=(0.5, 0.0))

# Fehlberg 2(1) (torchdiffeq's "fehlberg2"); the second-order solution is propagated.
_FEHLBERG2 = Tableau("fehlberg2", a=((), (0.5,), (1 / 256, 255 / 256)), b=(1 / 512, 255 / 256, 1 / 512),
                     c=(0.0, 0.5, 1.0), order=2, b_err=(-1 / 512, 0.0, 1 / 512), b_mid=(0.0, 0.5, 0.0))

# Bogacki-Shampine 3(2), FSAL (torchdiffeq's and MATLAB's ode23 "bosh3").
_BOSH3 = Tableau(
    "bosh3",
    a=((), (0.5,), (0.0, 0.75), (2 / 9, 1 / 3, 4 / 9)),
    b=(2 / 9, 1 / 3, 4 / 9, 0.0),
    c=(0.0, 0.5, 0.75, 1.0),
    order=3,
    b_err=(2 / 9 - 7 / 24, 1 / 3 - 1 / 4, 4 / 9 - 1 / 3, -1 / 8),
    b_mid=(0.0, 0.5, 0.0, 0.0),
)

# Dormand-Prince 5(4), FSAL, with Shampine's dense output at the midpoint (torchdiffeq's "dopri5").
_DOPRI5 = Tableau(
    "dopri5",
    a=((), (1 / 5,), (3 / 40, 9 / 40), (44 / 45, -56 / 15, 32 / 9),
       (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
       (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
       (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)),
    b=(35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0),
    c=(0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0),
    order=5,
    b_err=(35 / 384 - 1951 / 21600, 0.0, 500 / 1113 - 22642 / 50085, 125 / 192 - 451 / 720,
           -2187 / 6784 - -12231 / 42400, 11 / 84 - 649 / 6300, -1 / 60),
    b_mid=(6025192743 / 30085553152 / 2, 0.0, 51252292925 / 65400821598 / 2, -2691868925 / 45128329728 / 2,
           187940372067 / 1594534317056 / 2, -1776094331 / 19743644256 / 2, 11237099 / 235043384 / 2),
)


def _tsit5_mid(theta: float) -> tuple[float, ...]:
    """Tsitouras' continuous extension b_i(theta) (Tsitouras 2011, as in OrdinaryDiffEq and diffrax)."""
    t = theta
    return (
        -1.0530884977290216 * t * (t - 1.3299890189751412) * (t * t - 1.4364028541716351 * t + 0.7139816917074209),
        0.1017 * t * t * (t * t - 2.1966568338249754 * t + 1.2949852507374631),
        2.490627285651252793 * t * t * (t * t - 2.38535645472061657 * t + 1.57803468208092486),
        -16.54810288924490272 * (t - 1.21712927295533244) * (t - 0.61620406037800089) * t * t,
        47.37952196281928122 * (t - 1.203071208372362603) * (t - 0.658047292653547382) * t * t,
        -34.87065786149660974 * (t - 1.2) * (t - 0.666666666666666667) * t * t,
        2.5 * (t - 1.0) * (t - 0.6) * t * t,
    )


# Tsitouras 5(4), FSAL (Tsitouras 2011): smaller error constants than dopri5 at the same cost.
_TSIT5 = Tableau(
    "tsit5",
    a=((), (0.161,), (-0.008480655492356989, 0.335480655492357),
       (2.897153057105493, -6.359448489975075, 4.3622954328695815),
       (5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525),
       (5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401, -0.028269050394068383),
       (0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081,
        2.324710524099774)),
    b=(0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081,
       2.324710524099774, 0.0),
    c=(0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0),
    order=5,
    b_err=(-0.00178001105222577714, -0.0008164344596567469, 0.007880878010261995, -0.1447110071732629,
           0.5823571654525552, -0.45808210592918697, 0.015151515151515152),
    b_mid=_tsit5_mid(0.5),
)


def _dopri8() -> Tableau:
    """Dormand-Prince 8(7) (Prince & Dormand 1981), 13 stages + FSAL, torchdiffeq's "dopri8" coefficients."""
    c = [0.0, 1 / 18, 1 / 12, 1 / 8, 5 / 16, 3 / 8, 59 / 400, 93 / 200, 5490023248 / 9719169821, 13 / 20,
         1201146811 / 1299019798, 1.0, 1.0, 1.0]
    rows = [
        [1 / 18],
        [1 / 48, 1 / 16],
        [1 / 32, 0, 3 / 32],
        [5 / 16, 0, -75 / 64, 75 / 64],
        [3 / 80, 0, 0, 3 / 16, 3 / 20],
        [29443841 / 614563906, 0, 0, 77736538 / 692538347, -28693883 / 1125000000, 23124283 / 1800000000],
        [16016141 / 946692911, 0, 0, 61564180 / 158732637, 22789713 / 633445777, 545815736 / 2771057229,
         -180193667 / 1043307555],
        [39632708 / 573591083, 0, 0, -433636366 / 683701615, -421739975 / 2616292301, 100302831 / 723423059,
         790204164 / 839813087, 800635310 / 3783071287],
        [246121993 / 1340847787, 0, 0, -37695042795 / 15268766246, -309121744 / 1061227803,
         -12992083 / 490766935, 6005943493 / 2108947869, 393006217 / 1396673457, 123872331 / 1001029789],
        [-1028468189 / 846180014, 0, 0, 8478235783 / 508512852, 1311729495 / 1432422823,
         -10304129995 / 1701304382, -48777925059 / 3047939560, 15336726248 / 1032824649,
         -45442868181 / 3398467696, 3065993473 / 597172653],
        [185892177 / 718116043, 0, 0, -3185094517 / 667107341, -477755414 / 1098053517, -703635378 / 230739211,
         5731566787 / 1027545527, 5232866602 / 850066563, -4093664535 / 808688257, 3962137247 / 1805957418,
         65686358 / 487910083],
        [403863854 / 491063109, 0, 0, -5068492393 / 434740067, -411421997 / 543043805, 652783627 / 914296604,
         11173962825 / 925320556, -13158990841 / 6184727034, 3936647629 / 1978049680, -160528059 / 685178525,
         248638103 / 1413531060, 0],
    ]
    b = [14005451 / 335480064, 0, 0, 0, 0, -59238493 / 1068277825, 181606767 / 758867731, 561292985 / 797845732,
         -1041891430 / 1371343529, 760417239 / 1151165299, 118820643 / 751138087, -528747749 / 2220607170, 1 / 4]
    rows.append(b)  # the FSAL stage at (t1, y1)
    b_hat = [13451932 / 455176623, 0, 0, 0, 0, -808719846 / 976000145, 1757004468 / 5645159321,
             656045339 / 265891186, -3867574721 / 1518517206, 465885868 / 322736535, 53011238 / 667516719,
             2 / 45, 0]
    b_err = [bi - bh for bi, bh in zip(b, b_hat)] + [0.0]
    # Dense output at theta = 1/2 (torchdiffeq's dopri8.py, from Hairer's DOP853 continuous extension).
    h = 0.5
    mid = [0.0] * 14
    mid[0] = (-6.3448349392860401388 * h ** 5 + 22.1396504998094068976 * h ** 4 - 30.0610568289666450593 * h ** 3
              + 19.9990069333683970610 * h ** 2 - 6.6910181737837595697 * h + 1.0) * h
    poly = {
        5: (-39.6107919852202505218, 116.4422149550342161651, -121.4999627731334642623, 52.2273532792945524050,
            -7.6142658045872677172),
        6: (20.3761213808791436958, -67.1451318825957197185, 83.1721004639847717481, -46.8919164181093621583,
            10.7281392630428866124),
        7: (7.3347098826795362023, -16.5672243527496524646, 9.5724507555993664382, -0.1890893225010595467,
            0.5526637063753648783),
        8: (32.8801774352459155182, -89.9916014847245016028, 87.8406057677205645007, -35.7075975946222072821,
            4.2186562625665153803),
        9: (-10.1588990526426760954, 22.6237489648532849093, -17.4152107770762969005, 6.2736448083240352160,
            -0.6627209125361597559),
        10: (-12.5401268098782561200, 32.2362340167355370113, -28.5903289514790976966, 10.3160881272450748458,
             -1.2636789001135462218),
        11: (29.5553001484516038033, -82.1020315488359848644, 81.6630950584341412934, -34.7650769866611817349,
             5.4106037898590422230),
        12: (-41.7923486424390588923, 116.2662185791119533462, -114.9375291377009418170, 47.7457971078225540396,
             -7.0321379067945741781),
        13: (20.3006925822100825485, -53.9020777466385396792, 50.2558364226176017553, -19.0082099341608028453,
             2.3537586759714983486),
    }
    for i, (p5, p4, p3, p2, p1) in poly.items():
        mid[i] = (p5 * h ** 5 + p4 * h ** 4 + p3 * h ** 3 + p2 * h ** 2 + p1 * h) * h
    return Tableau("dopri8", a=((),) + tuple(tuple(r) for r in rows), b=tuple(b) + (0.0,), c=tuple(c), order=8,
                   b_err=tuple(b_err), b_mid=tuple(mid))


_DOPRI8 = _dopri8()

ALIASES: dict[str, str] = {"heun": "heun2", "rk38": "rk4"}
"""Other names for registered tableaux: ``"heun"`` (this library's earlier name for heun2) and
``"rk38"`` (the 3/8 rule, torchdiffeq's ``"rk4"``)."""

TABLEAUX: dict[str, Tableau] = {
    tab.name: tab
    for tab in (_EULER, _MIDPOINT, _HEUN2, _RALSTON, _HEUN3, _RK4, _RK4_CLASSIC, _ADAPTIVE_HEUN, _FEHLBERG2,
                _BOSH3, _DOPRI5, _TSIT5, _DOPRI8)
}
TABLEAUX.update({alias: TABLEAUX[name] for alias, name in ALIASES.items()})
"""Registry of the built-in explicit tableaux (fixed and embedded) by name, aliases included."""

FIXED_TABLEAUX: tuple[str, ...] = tuple(sorted(n for n, t in TABLEAUX.items() if n == t.name and not t.adaptive))
"""The fixed-step methods, one name each (no aliases)."""

ADAPTIVE_TABLEAUX: tuple[str, ...] = tuple(sorted(n for n, t in TABLEAUX.items() if n == t.name and t.adaptive))
"""The embedded pairs (adaptive steps), one name each."""


COUPLING = 0.999
"""The default coupling parameter lambda of the reversible methods (McCallum and Foster 2024 use
values just below 1: lambda < 1 gives the reversible scheme a stability region, lambda = 1 is the
naive reversible scheme that has none)."""


@dataclass(frozen=True)
class ReversibleTableau(Tableau):
    """An explicit tableau made algebraically reversible (McCallum and Foster 2024, "Efficient,
    accurate and stable gradients for neural ODEs", arXiv 2410.11648).  With Psi_h(t, y) the base
    method's increment (y_{n+1} - y_n of one step of size h from (t, y)), the state is a pair (y, z),
    both y0 at the start, and a step is

        y_{n+1} = lambda y_n + (1 - lambda) z_n + Psi_h(t_n, z_n)
        z_{n+1} = z_n - Psi_{-h}(t_{n+1}, y_{n+1})

    inverted exactly (to rounding) by

        z_n = z_{n+1} + Psi_{-h}(t_{n+1}, y_{n+1})
        y_n = (y_{n+1} - (1 - lambda) z_n - Psi_h(t_n, z_n)) / lambda.

    The output is y; the order is the base method's.  Adaptive steps use the base pair's error
    estimate of Psi_h(t_n, z_n).  Run by :mod:`solvers.reversible`; the coefficients here are the base's.
    """

    coupling: float = COUPLING

    def __post_init__(self) -> None:
        super().__post_init__()
        c = self.coupling
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0.0 < c <= 1.0:
            raise ValueError(f"tableau {self.name!r}: coupling must be a number in (0, 1]; got {c!r}")

    @property
    def base(self) -> Tableau:
        """The plain Runge-Kutta method this one makes reversible."""
        return Tableau(self.name.removeprefix("reversible_"), a=self.a, b=self.b, c=self.c, order=self.order,
                       b_err=self.b_err, b_mid=self.b_mid)


def reversible(method: str | Tableau, coupling: float = COUPLING) -> ReversibleTableau:
    """The reversible version of ``method`` (a name of ``TABLEAUX`` or a ``Tableau``), named
    ``reversible_<name>``, with coupling parameter ``coupling`` in (0, 1]."""
    tab = tableau(method)
    if isinstance(tab, ReversibleTableau):
        raise ValueError(f"method {tab.name!r} is already reversible")
    return ReversibleTableau(f"reversible_{tab.name}", a=tab.a, b=tab.b, c=tab.c, order=tab.order, b_err=tab.b_err,
                             b_mid=tab.b_mid, coupling=coupling)


def tableau(method: str | Tableau) -> Tableau:
    """Return the tableau for ``method``: a registered name (``TABLEAUX`` or ``REVERSIBLE_TABLEAUX``) or a
    ``Tableau`` instance.

    Raises:
        ValueError: for an unknown name, listing the known ones.
        TypeError: for anything that is neither a str nor a Tableau.
    """
    if isinstance(method, Tableau):
        return method
    if not isinstance(method, str):
        raise TypeError(f"method must be a str or a Tableau; got {type(method).__name__}")
    if method in TABLEAUX:
        return TABLEAUX[method]
    if method in REVERSIBLE_TABLEAUX:
        return REVERSIBLE_TABLEAUX[method]
    raise ValueError(f"unknown method {method!r}; expected one of the Runge-Kutta methods "
                     f"{', '.join(sorted(TABLEAUX))}, or one made reversible: reversible_<name>")


REVERSIBLE_TABLEAUX: dict[str, ReversibleTableau] = {
    f"reversible_{name}": reversible(name) for name in FIXED_TABLEAUX + ADAPTIVE_TABLEAUX
}
"""Every tableau made reversible (:class:`ReversibleTableau`, coupling ``COUPLING``), as ``reversible_<name>``;
kept apart from ``TABLEAUX``: a reversible method is not a Runge-Kutta method on y (a discrete cell or a
stability function of the base tableau does not describe it)."""
