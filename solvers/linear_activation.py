"""The structured hot path: y' = y A^T + sigma(y W^T + x(t) U^T + b), on the engine, any tableau.

Many recurrent vector fields are "linear plus activation" (Lipschitz RNN: A, W, tanh; CTRNN:
A = -I; AntisymmetricRNN: A = 0, and its gated form sigma(z) = sigmoid(z_g) * tanh(z_h)).  For that
form this module gives the engine a term (:class:`LinearActivationTerm`) whose

* stages are a few fused kernels: ``addmm`` for the pre-activation with the projected input read
  through :class:`~solvers.inputs.PiecewiseInput` (a cursor, chunk-projected coefficients), the
  activation, ``addmm`` for the linear part; a one-stage step folds the step into the matmul
  (``y (I + dt A^T) + dt s``: three kernels per Euler step);
* backward pass is hand-written: the solve runs without autograd, recording the stage states and
  activations of the accepted steps (:class:`~solvers.engine.Tape`), and the backward pass runs
  the *discrete adjoint* of exactly those steps, whatever the tableau, fixed or adaptive step
  sizes, with one matmul per stage and the weight gradients of W, A, U and b formed in one large
  matmul per chunk of steps (``gradient="backprop"``); ``"checkpoint"`` keeps only states at
  segment starts (thinned geometrically, so O(sqrt(steps)) of them even when the number of steps
  is not known in advance) and replays each segment in the backward pass, with the same gradients;
* continuous adjoint (``"adjoint"``): a closed-form vector-Jacobian product for the state, and the
  parameters' gradients as a quadrature of the backward solve's stage values, accumulated in
  chunks of steps by the same large matmuls (the parameters stay out of the error norm: the
  seminorm of Kidger et al. 2021), memory flat in the number of steps.

Kernels chosen per machine (:func:`~solvers.kernels.tanh_kernel`): tanh(z) is computed either by
``torch.tanh`` or as 2 sigmoid(2 z) - 1 (the factor 2 folded into W, U and b), whichever is faster
on this CPU (``torch.tanh`` is ten times slower than ``sigmoid`` on some CPU builds and four times
faster on others), measured once per machine and kept in a cache file so every process computes
the same bits; :func:`~solvers.kernels.pin_tanh_kernel` or ``SOLVERS_TANH_KERNEL=tanh|sigmoid``
forces one.

Why by hand: a generic autograd solve of this field spends a dozen autograd nodes per stage and a
small weight-gradient matmul per stage; this is the library's reason to exist (an RNN integrated
as an ODE at the speed of a hand-written loop).  Tests compare every path against plain autograd
through the field's own equations (:meth:`LinearActivation.rhs`) in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .driven import DrivenTerm
from .engine import Tape, adaptive_steps, check_step_count, solve_adaptive, solve_fixed
from .gradients import checkpoint_segment
from .inputs import PiecewiseInput
from .kernels import TANH_KERNELS, tanh_kernel
from .problem import Problem, forward
from .reconstruction import ReconstructionCheck
from .reversible import is_reversible
from .reversible_structured import StructuredReversible
from .stepper import Plan
from .sweep import CHUNK, Sweep
from .terms import Term

__all__ = ["ACTIVATIONS", "LinearActivation", "LinearActivationTerm", "tanh_kernel"]

ACTIVATIONS = ("tanh", "gated")
"""``"tanh"``: sigma(z) = tanh(z), P = N.  ``"gated"``: the input has P = 2N channels [u_h, u_g] and
sigma = sigmoid(y W^T + u_g) * tanh(y W^T + u_h) (AntisymmetricRNN eq. 7)."""

@dataclass(frozen=True)
class LinearActivation:
    """The vector field y' = y A^T + sigma(y W^T + x U^T + b), for a batch of row vectors y (B, N).

    Attributes:
        W: (N, N) matrix inside the activation.
        A: (N, N) linear part, or None for none (A = 0, e.g. the AntisymmetricRNN).
        U: (P, D) input weight applied to the raw inputs x (B, D), or None when the inputs are
            already projected (D = P).
        b: (P,) input bias or None.
        activation: one of ``ACTIVATIONS``.
    """

    W: Tensor
    A: Tensor | None = None
    U: Tensor | None = None
    b: Tensor | None = None
    activation: str = "tanh"

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; expected one of "
                             f"{', '.join(map(repr, ACTIVATIONS))}")
        n = self.W.shape[-1]
        if self.W.shape != (n, n):
            raise ValueError(f"W must be square (N, N); got shape {tuple(self.W.shape)}")
        if self.A is not None and self.A.shape != (n, n):
            raise ValueError(f"A must have W's shape ({n}, {n}) or be None; got {tuple(self.A.shape)}")
        p = self.input_width
        if self.U is not None and (self.U.dim() != 2 or self.U.shape[0] != p):
            raise ValueError(f"U must have shape (P, D) with P = {p} for activation {self.activation!r}; "
                             f"got {tuple(self.U.shape)}")
        if self.b is not None and self.b.shape != (p,):
            raise ValueError(f"b must have shape ({p},); got {tuple(self.b.shape)}")

    @property
    def hidden_size(self) -> int:
        return self.W.shape[-1]

    @property
    def input_width(self) -> int:
        """P, the width of the projected input u = x U^T + b."""
        return self.hidden_size * (2 if self.activation == "gated" else 1)

    def project(self, x: Tensor) -> Tensor:
        """u = x U^T + b (x itself when U is None)."""
        if self.U is None:
            return x if self.b is None else x + self.b
        u = x @ self.U.transpose(0, 1)
        return u if self.b is None else u + self.b

    def rhs(self, y: Tensor, u: Tensor) -> Tensor:
        """The field at state y (B, N) and projected input u (B, P), with plain autograd ops: the
        equations every fast path is tested against (and that a field's ``rhs`` can call)."""
        z = y @ self.W.transpose(0, 1)
        if self.activation == "tanh":
            s = torch.tanh(z + u)
        else:
            n = self.hidden_size
            s = torch.sigmoid(z + u[..., n:]) * torch.tanh(z + u[..., :n])
        return s if self.A is None else s + y @ self.A.transpose(0, 1)


# ------------------------------------------------------------------------------------ the term
class LinearActivationTerm(Term):
    """The engine's term for ``structure`` driven by a raw input x(t).

    Args:
        structure: the field's matrices (U, b project the raw input; with U None, x is already u).
        inputs: the raw input x(t) on the solve's clock.
        time_dtype: the precision stage times are nudged in (the knots' dtype).
        kernel: "tanh" or "sigmoid" (default: :func:`tanh_kernel` for the state's dtype).
    """

    def __init__(self, structure: LinearActivation, inputs: PiecewiseInput, time_dtype: torch.dtype = torch.float64,
                 kernel: str | None = None) -> None:
        self.structure = structure
        self.time_dtype = time_dtype
        W, A, U, b = structure.W, structure.A, structure.U, structure.b
        self.gated = structure.activation == "gated"
        self.N = N = W.shape[0]
        self.P = structure.input_width
        self.NA = N if A is not None else 0
        dtype, device = W.dtype, W.device
        self.kernel = kernel or tanh_kernel(dtype, device)
        if self.kernel not in TANH_KERNELS:
            raise ValueError(f"kernel must be 'tanh' or 'sigmoid'; got {kernel!r}")
        two = 2.0 if self.kernel == "sigmoid" else 1.0
        with torch.no_grad():
            scale = torch.ones(self.P, dtype=dtype, device=device)
            scale[:N] = two
            # W^T and A^T stored row-major: an addmm (B, N) x (N, N) with a transposed view as its second factor
            # took 1.3-1.6x longer at B = 8 and 1.2x at B = 32 (Intel Xeon, one thread; no clear difference at 128)
            self.WTs = ((W.detach().t() * two) if not self.gated else
                        torch.cat([W.detach().t() * two, W.detach().t()], 1)).contiguous()
            self.AT = None if A is None else A.detach().t().contiguous()
            self.minus_one = torch.full((), -1.0, dtype=dtype, device=device)
            self.Wcat = W.detach() if not self.gated else torch.cat([W.detach(), W.detach()], 0)
            self.back = self.Wcat if A is None else torch.cat([A.detach(), self.Wcat], 0)
        self.inputs = inputs
        # the same input read through the kernel's scaled projection (U None: already projected, scale and b)
        self.projected = inputs.replace(weight=None if U is None else U.detach(),
                                        bias=None if b is None else b.detach(), scale_output=scale, rates=None)
        self._aux: Any = None
        self._fold_fwd: dict[float, Tensor] = {}
        self._fold_bwd: dict[float, Tensor] = {}

    # -------------------------------------------------------------- evaluation
    def rate(self, j: int) -> Tensor | None:
        r = self.inputs.rate(j)
        return None if r is None else r.to(self.WTs.dtype)

    def _sigma(self, y: Tensor, u: Tensor, out: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(sigma, stored): sigma(y W^T + u) from the scaled input u, and what sigma' needs (tanh, or
        [tanh | gate] for the gated activation), ``stored`` written into ``out`` when given."""
        z = torch.addmm(u, y, self.WTs) if out is None else torch.addmm(u, y, self.WTs, out=out)
        if not self.gated:
            s = self.activate_(z)
            return s, s
        n = self.N
        g = z.sigmoid_() if self.kernel == "sigmoid" else z
        if self.kernel == "sigmoid":
            g[:, :n].mul_(2.0).add_(-1.0)
        else:
            g[:, :n].tanh_()
            g[:, n:].sigmoid_()
        return g[:, :n] * g[:, n:], g

    def activate_(self, z: Tensor) -> Tensor:
        """tanh of the pre-activation z (B, N), in place: ``torch.tanh``, or 2 sigmoid(z) - 1 of the
        doubled z the sigmoid kernel's scaled weights give."""
        if self.kernel == "tanh":
            return z.tanh_()
        return torch.add(self.minus_one, z.sigmoid_(), alpha=2.0, out=z)

    def _input(self, t: float) -> tuple[int, Tensor]:
        """(piece, scaled projected input) at clock time t."""
        j = self.inputs.piece(t)
        return j, self.projected.projected(j, t)

    def f(self, t: Any, y: Tensor) -> Tensor:
        j, u = self._input(t)
        s, stored = self._sigma(y, u)
        k = s if self.AT is None else torch.addmm(s, y, self.AT)
        r = self.rate(j)
        if r is not None:
            k = k * r
        self._aux = (stored, j, t)
        return k

    def aux(self) -> Any:
        return self._aux

    def euler_step(self, t: Any, y: Tensor, dt: float) -> tuple[Tensor, Any]:
        """One Euler step folded into the matmul: y (I + dt A^T) + dt sigma (three kernels)."""
        j, u = self._input(t)
        s, stored = self._sigma(y, u)
        r = self.rate(j)
        if r is not None:
            dtr = r * dt
            y1 = torch.addcmul(y, s if self.AT is None else torch.addmm(s, y, self.AT), dtr)
        elif self.AT is None:
            y1 = torch.add(y, s, alpha=dt)
        else:
            y1 = torch.addmm(s, y, self.folded_fwd(dt), beta=dt)
        return y1, (stored, j, t)

    def folded_fwd(self, dt: float) -> Tensor:
        """I + dt A^T, cached per distinct step size."""
        m = self._fold_fwd.get(dt)
        if m is None:
            m = torch.add(torch.eye(self.N, dtype=self.WTs.dtype, device=self.WTs.device), self.AT, alpha=dt)
            if len(self._fold_fwd) < 16:
                self._fold_fwd[dt] = m
        return m

    def folded_bwd(self, dt: float) -> Tensor:
        """[I + dt A; W (; W)]: the adjoint of one folded Euler step is [ybar | zb] @ this."""
        m = self._fold_bwd.get(dt)
        if m is None:
            top = torch.add(torch.eye(self.N, dtype=self.WTs.dtype, device=self.WTs.device), self.back[:self.N],
                            alpha=dt)
            m = torch.cat([top, self.Wcat], 0)
            if len(self._fold_bwd) < 16:
                self._fold_bwd[dt] = m
        return m

    # -------------------------------------------------------------- gradient modes
    def tensors(self) -> tuple:
        s = self.structure
        return (s.W, s.A, s.U, s.b, *self.inputs.coeffs, self.inputs.first, self.inputs.last)

    def _needs_graph(self, p: Problem) -> bool:
        return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (p.y0, *self.tensors()))

    def _check(self, p: Problem) -> Problem:
        if p.grid is None and not p.exact_outputs:
            p = p.with_(exact_outputs=True)
        if p.grid is not None and not set(p.t_out) <= set(p.grid):
            raise ValueError("the structured kernel reads its outputs at step ends: the fixed grid must hold every "
                             "output time (a knot-aligned grid does; torchdiffeq's arange grid does not)")
        return p

    def _solve(self, p: Problem, function: Any, *args: Any) -> list[Tensor]:
        """Without a graph to build, the plain forward; else ``function`` (an autograd Function of
        this module) applied to (p, *args, y0, *tensors), its stacked outputs split again."""
        p = self._check(p)
        if not self._needs_graph(p):
            with torch.no_grad():
                return self.forward(p)
        return list(function.apply(p, *args, p.y0, *self.tensors()).unbind(0))

    def forward(self, p: Problem, tape: Tape | _GridTape | None = None) -> list[Tensor]:
        """The states at ``p.t_out``: by the fixed-grid loop when it applies (then ``tape``, if any,
        must be a :class:`_GridTape`), else by the engine."""
        if _grid_applies(p):
            if tape is not None and not isinstance(tape, _GridTape):
                raise TypeError(f"a fixed-grid structured solve records a _GridTape; got {type(tape).__name__}")
            return _grid_solve(self, p, p.y0, p.grid, p.t_out, tape)
        return forward(p, tape)

    def solve_backprop(self, p: Problem) -> list[Tensor]:
        if is_reversible(p.plan):
            return self._solve(p, StructuredReversible, "backprop")
        return self._solve(p, _StructuredSolve, "backprop")

    def solve_reversible(self, p: Problem) -> list[Tensor]:
        """The ``"reversible"`` mode (:mod:`solvers.reversible_structured`; the plan is reversible)."""
        return self._solve(p, StructuredReversible, "reversible")

    def solve_checkpoint(self, p: Problem) -> list[Tensor]:
        return self._solve(p, _StructuredSolve, "checkpoint")

    def solve_adjoint(self, p: Problem) -> list[Tensor]:
        return self._solve(p, _StructuredAdjoint)


# ------------------------------------------------------------------------------------ the fixed-grid loop
class _GridTape:
    """What :func:`_grid_solve` records of a fixed-grid solve for the backward pass.

    ``every == 0`` (backprop): every step, chunk by chunk in the buffers the loop wrote into:
    ``chunks`` holds (first step, L, Y (L + 1, s, B, N) stage states (``Y[L, 0]`` the state after the
    chunk), S (L, s, B, P) stored activations, stages [(piece, time)] of the L s stages).
    ``every > 0`` (checkpoint): only the state before every ``every``-th step, in ``kept``.
    ``t0``/``t1``: the steps' ends; ``ends[k]``: the steps taken when output k + 1 was reached."""

    def __init__(self, every: int = 0) -> None:
        self.every = every
        self.chunks: list[tuple[int, int, Tensor, Tensor, list[tuple[int, Any]]]] = []
        self.kept: dict[int, Tensor] = {}
        self.t0: list[float] = []
        self.t1: list[float] = []
        self.ends: list[int] = []

    def __len__(self) -> int:
        return len(self.t0)


def _grid_applies(p: Problem) -> bool:
    """Whether :func:`_grid_solve` runs ``p``: a fixed grid holding every output after the start, no
    callbacks, a shared clock and a plain tableau without FSAL (every fixed-step method)."""
    if p.grid is None or p.callbacks is not None or p.plan.fsal or len(p.grid) < 2 or is_reversible(p.plan):
        return False
    return all(t > p.grid[0] for t in p.t_out[1:])


def _combine_into(out: Tensor, y0: Tensor, dt: float, weights: tuple[tuple[int, float], ...],
                  ks: list[Tensor]) -> Tensor:
    """:func:`solvers.stepper.combine` (float ``dt``) written into ``out``: the same kernels in the
    same order, so the same bits."""
    if not weights:
        return out.copy_(y0)
    if len(weights) == 1:
        j, w = weights[0]
        return torch.add(y0, ks[j], alpha=dt * w, out=out)
    (j0, w0), rest = weights[0], weights[1:]
    torch.mul(ks[j0], dt * w0, out=out)
    for j, w in rest:
        out.add_(ks[j], alpha=dt * w)
    return out.add_(y0)


def _grid_solve(term: LinearActivationTerm, p: Problem, y0: Tensor, grid: list[float], t_out: list[float],
                tape: _GridTape | None = None) -> list[Tensor]:
    """The steps of ``p.plan`` over ``grid`` from ``y0``, the states at ``t_out`` (a subset of
    ``grid[1:]`` and ``grid[0]`` itself): exactly the engine's fixed-grid steps (the same kernels in
    the same order, so the same bits as :func:`solvers.engine.solve_fixed` with this term).

    Why: the record.  The inputs of a chunk of ``CHUNK`` steps are read first, then the kernels
    write the stage states and activations straight into the chunk's buffers, which are what the
    backward pass reads (:meth:`Sweep.grid_chunks`): no per-step step and stage records, nothing
    stacked, the backward's views made once per chunk.  (The forward alone runs at the engine's
    speed: at B = 8 its time is the kernels' and the inputs' reads, not the loop's Python.)"""
    check_step_count(len(grid) - 1, p.max_steps, f"this fixed-step solve over [{grid[0]}, {grid[-1]}]")
    outputs = [y0]
    if len(t_out) < 2:
        return outputs
    index = {t: n for n, t in enumerate(grid)}
    ends = [index[t] for t in t_out[1:]]
    stop = max(ends)
    want: dict[int, list[int]] = {}
    for k, n in enumerate(ends):
        want.setdefault(n, []).append(k)
    found: list[Tensor | None] = [None] * len(ends)
    plan, perturb = p.plan, p.perturb
    tab = plan.tab
    s = tab.stages
    c = tab.c
    rows = plan.rows
    AT, N, P = term.AT, term.N, term.P
    B = y0.shape[0]
    dense = tape is not None and tape.every == 0
    rated = term.inputs.rates is not None
    fused = s == 1
    nudge, piece, projected = term.nudge, term.inputs.piece, term.projected.projected
    y = y0
    n = 0
    while n < stop:
        L = min(CHUNK, stop - n)
        Y = torch.empty(L + 1, s, B, N, dtype=y0.dtype, device=y0.device)
        # the activations: kept per stage of the chunk for backprop's record; else one step's worth, reused
        S = torch.empty(L if dense else 1, s, B, P, dtype=y0.dtype, device=y0.device)
        Y[0, 0].copy_(y)
        # the inputs of the chunk's stages, read in the engine's order (stage times as rk_step makes them)
        stages: list[tuple[int, Any]] = []
        us: list[Tensor] = []
        dts: list[float] = []
        for m in range(n, n + L):
            t0, t1 = grid[m], grid[m + 1]
            dts.append(t1 - t0)
            for i in range(s):
                ci = c[i]
                if i == 0 or ci == 0.0:
                    ti = nudge(t0, t1) if perturb else t0
                elif ci == 1.0:
                    ti = nudge(t1, t0) if perturb else t1
                else:
                    ti = t0 + ci * (t1 - t0)
                j = piece(ti)
                stages.append((j, ti))
                us.append(projected(j, ti))
        Ys = Y.view((L + 1) * s, B, N).unbind(0)  # stage i of step k: Ys[k s + i], Ss[k s + i]
        Ss = S.view(L * s, B, P).unbind(0) if dense else S[0].unbind(0) * L
        q = 0
        for k in range(L):
            dt = dts[k]
            ystart = Ys[q]
            if tape is not None and not dense and (n + k) % tape.every == 0:
                tape.kept[n + k] = ystart.clone()
            out = Ys[q + s]
            if fused:  # LinearActivationTerm.euler_step's kernels
                sig, _ = term._sigma(ystart, us[q], out=Ss[q])
                r = term.rate(stages[q][0]) if rated else None
                if r is not None:
                    torch.addcmul(ystart, sig if AT is None else torch.addmm(sig, ystart, AT), r * dt, out=out)
                elif AT is None:
                    torch.add(ystart, sig, alpha=dt, out=out)
                else:
                    torch.addmm(sig, ystart, term.folded_fwd(dt), beta=dt, out=out)
                q += 1
            else:  # rk_step's stages through LinearActivationTerm.f
                ks: list[Tensor] = []
                for i in range(s):
                    yi = ystart if i == 0 else _combine_into(Ys[q], ystart, dt, rows[i], ks)
                    sig, _ = term._sigma(yi, us[q], out=Ss[q])
                    kk = sig if AT is None else torch.addmm(sig, yi, AT)
                    if rated:
                        r = term.rate(stages[q][0])
                        if r is not None:
                            kk = kk * r
                    ks.append(kk)
                    q += 1
                _combine_into(out, ystart, dt, plan.b, ks)
            for o in want.get(n + k + 1, ()):
                found[o] = out if dense else out.clone()
        y = Ys[L * s]
        if tape is not None:
            tape.t0.extend(grid[n:n + L])
            tape.t1.extend(grid[n + 1:n + L + 1])
            if dense:
                tape.chunks.append((n, L, Y, S, stages))
        n += L
    if tape is not None:
        tape.ends.extend(ends)
    evaluations = stop * s
    if p.stats is not None:
        p.stats.nfe += evaluations
        p.stats.accepted += stop
    return outputs + found  # type: ignore[operator]


# ------------------------------------------------------------------------------------ checkpoint tape
class _ThinTape(Tape):
    """Step times of every step, and (state, first-stage derivative, its aux) at every L-th step,
    L doubling whenever more than 2 (L + 1) states are kept: O(sqrt(steps)) states for any count."""

    def __init__(self) -> None:
        super().__init__(states=False)
        self.every = 8
        self.kept: dict[int, tuple[Tensor, Tensor | None, Any]] = {}

    @property
    def collect_aux(self) -> bool:
        return True  # the first stage's aux of a kept step starts its replay

    def record(self, t0: Any, t1: Any, step: Any, plan: Plan, on_jump: bool = False) -> None:
        n = len(self.t0)
        if n % self.every == 0:
            k0 = step.ks[0] if step.ks else None
            aux0 = step.aux[0] if step.aux else None
            self.kept[n] = (step.ys[0], k0, aux0)
            if len(self.kept) > 2 * (self.every + 1):
                self.every *= 2
                self.kept = {m: v for m, v in self.kept.items() if m % self.every == 0}
        super().record(t0, t1, step, plan, on_jump)


# ------------------------------------------------------------------------------------ the Function
class _StructuredSolve(torch.autograd.Function):
    """Forward: the engine without autograd, recording a tape.  Backward: the discrete adjoint of
    the recorded steps (or, under create_graph, the same steps replayed with autograd ops)."""

    @staticmethod
    def forward(ctx, p: Problem, mode: str, y0: Tensor, *tensors: Tensor | None) -> Tensor:
        ctx.set_materialize_grads(False)
        ctx.problem, ctx.mode = p, mode
        term: LinearActivationTerm = p.term
        if _grid_applies(p):
            tape = _GridTape(0 if mode == "backprop" else checkpoint_segment(len(p.grid) - 1))
        else:
            tape = Tape() if mode == "backprop" else _ThinTape()
            if mode == "checkpoint":
                tape.every = checkpoint_segment(len(p.grid) - 1) if p.grid is not None else 8
        with torch.no_grad():
            outs = term.forward(p, tape)
        ctx.tape = tape
        ctx.save_for_backward(y0, *tensors)
        return torch.stack(outs)

    @staticmethod
    def backward(ctx, grad_out: Tensor | None):
        if grad_out is None:
            return (None,) * (len(ctx.saved_tensors) + 2)
        if torch.is_grad_enabled():
            return _StructuredSolve._replayed_backward(ctx, grad_out)
        return _StructuredSolve._adjoint_backward(ctx, grad_out)

    @staticmethod
    def _replayed_backward(ctx, grad_out: Tensor):
        """create_graph=True (a Hessian-vector product, a gradient penalty): the hand-written
        adjoint is not differentiable, so the same steps run again as autograd ops through the
        structure's own equations, and those are differentiated, keeping the graph."""
        p: Problem = ctx.problem
        y0, *tensors = ctx.saved_tensors
        term: LinearActivationTerm = p.term
        W, A, U, b = tensors[:4]
        n_coef = len(term.inputs.coeffs)
        coeffs = tensors[4:4 + n_coef]
        first, last = tensors[4 + n_coef:6 + n_coef]
        structure = LinearActivation(W, A, U, b, term.structure.activation)
        inputs = term.inputs.replace(coeffs=coeffs, first=first, last=last)
        plain = DrivenTerm(structure.rhs, inputs, project=structure.project, time_dtype=term.time_dtype)
        tape: Tape = ctx.tape
        if p.grid is not None:
            outs = solve_fixed(plain, p.plan, y0, p.grid, p.t_out, perturb=p.perturb, max_steps=p.max_steps)
        else:
            outs = [y0]
            ends = tape.ends
            j = 0
            for n, acc in enumerate(adaptive_steps(plain, p.plan, y0, p.t_out[0], p.t_out[-1], None,
                                                   schedule=tape.schedule, jump_t=p.jump_t), start=1):
                while j < len(ends) and ends[j] == n:
                    outs.append(acc.y1)
                    j += 1
        out = torch.stack(outs)
        inputs = (y0, *tensors)
        wrt = [i for i, x in enumerate(inputs) if x is not None and ctx.needs_input_grad[i + 2]]
        grads = torch.autograd.grad(out, [inputs[i] for i in wrt], grad_out, create_graph=True, allow_unused=True)
        result: list[Tensor | None] = [None] * (len(inputs) + 2)
        for i, g in zip(wrt, grads):
            result[i + 2] = g
        return tuple(result)

    @staticmethod
    @once_differentiable
    def _adjoint_backward(ctx, grad_out: Tensor):
        p: Problem = ctx.problem
        term: LinearActivationTerm = p.term
        y0, *tensors = ctx.saved_tensors
        need = ctx.needs_input_grad[2:]
        sweep = Sweep(term, p.plan, need, tensors)
        tape: Tape = ctx.tape
        n = len(tape)
        grads_at = _output_grads(grad_out, tape)
        ybar = grads_at.pop(n, None)
        g0 = grads_at.pop(0, None)
        if isinstance(tape, _GridTape):
            if tape.every == 0:
                ybar = sweep.run_chunks(ybar, sweep.grid_chunks(tape), grads_at)
            else:
                starts = sorted(tape.kept)
                bounds = starts + [n]
                for i in range(len(starts) - 1, -1, -1):
                    n0, n1 = bounds[i], bounds[i + 1]
                    seg = _GridTape()
                    grid = p.grid[n0:n1 + 1]
                    with torch.no_grad():  # (the replay's evaluations are the term's, not the forward's stats)
                        _grid_solve(term, p.with_(stats=None), tape.kept[n0], grid, [grid[0], grid[-1]], seg)
                    ybar = sweep.run_chunks(ybar, sweep.grid_chunks(seg, n0), grads_at)
        elif ctx.mode == "backprop":
            ybar = sweep.run(ybar, 0, n, tape, grads_at)
        else:
            starts = sorted(tape.kept)
            bounds = starts + [n]
            for i in range(len(starts) - 1, -1, -1):
                n0, n1 = bounds[i], bounds[i + 1]
                seg = _replay_segment(p, tape, n0, n1)
                ybar = sweep.run(ybar, n0, n1, seg, grads_at, offset=n0)
        if ybar is None:
            ybar = torch.zeros_like(y0)
        if g0 is not None:
            ybar = ybar + g0
        return (None, None, ybar if need[0] else None, *sweep.results())


def _output_grads(grad_out: Tensor, tape: Tape) -> dict[int, Tensor]:
    """The gradient of the state after each number of recorded steps, from the outputs' gradients
    (output k + 1 was reached after ``tape.ends[k]`` steps)."""
    grads_at: dict[int, Tensor] = {}
    for k, g in enumerate(grad_out.unbind(0)):
        pos = 0 if k == 0 else tape.ends[k - 1]
        grads_at[pos] = grads_at[pos] + g if pos in grads_at else g
    return grads_at


def _replay_segment(p: Problem, tape: _ThinTape, n0: int, n1: int) -> Tape:
    """Steps n0..n1-1 computed again from the kept state, recorded in full."""
    y, k0, aux0 = tape.kept[n0]
    seg = Tape()
    with torch.no_grad():
        if p.grid is not None:
            solve_fixed(p.term, p.plan, y, p.grid[n0:n1 + 1], [p.grid[n0], p.grid[n1]], perturb=p.perturb, tape=seg,
                        max_steps=p.max_steps)
        else:
            for _ in adaptive_steps(p.term, p.plan, y, tape.t0[n0], tape.t1[n1 - 1], None,
                                    schedule=tape.schedule[n0:n1], k0=k0, tape=seg, aux0=aux0, jump_t=p.jump_t):
                pass
    return seg


# ------------------------------------------------------------------------------------ the continuous adjoint
class _AdjointTerm(Term):
    """The backward system of the continuous adjoint in reversed time s = -t, state z = [y; a] (2, B, N):

        dy/ds = -f(y),   da/ds = r (a A + (a sigma'(z)) W)

    with r the clock rate.  Each stage keeps, as its aux, the row [r a | r a sigma'] (the adjoints
    of the linear part and the pre-activation: the parameters' gradient densities) and its state y.
    """

    def __init__(self, term: LinearActivationTerm) -> None:
        self.term = term
        self.time_dtype = term.time_dtype
        self._aux: Any = None

    def nudge(self, s: Any, toward: Any) -> Any:
        return -self.term.nudge(-s, -toward)

    def aux(self) -> Any:
        return self._aux

    def f(self, s: Any, z: Tensor) -> Tensor:
        term = self.term
        t = -s
        y, a = z[0], z[1]
        j, u = term._input(t)
        sig, stored = term._sigma(y, u)
        k = sig if term.AT is None else torch.addmm(sig, y, term.AT)
        NA = term.NA
        row = torch.empty(y.shape[0], NA + term.P, dtype=y.dtype, device=y.device)
        if NA:
            row[:, :NA].copy_(a)
        if not term.gated:
            torch.mul(a, torch.addcmul(-term.minus_one, stored, stored, value=-1.0), out=row[:, NA:])
        else:
            n = term.N
            th, g = stored[:, :n], stored[:, n:]
            torch.mul(a, g * (1.0 - th * th), out=row[:, NA:NA + n])
            torch.mul(a, th * g * (1.0 - g), out=row[:, NA + n:])
        out = torch.empty_like(z)
        r = term.rate(j)
        if r is None:
            torch.neg(k, out=out[0])
            torch.mm(row, term.back, out=out[1])
        else:
            torch.mul(k, -r, out=out[0])
            torch.mm(row, term.back, out=out[1])
            out[1].mul_(r)
            row.mul_(r)
        self._aux = (row, j, t)
        return out


class _QuadratureTape(Tape):
    """Accepted backward steps turned into the parameters' gradients as they come: the stage rows,
    weighted by ds b_i, are gathered and added to the accumulators by one matmul every CHUNK steps
    (memory flat in the number of steps)."""

    def __init__(self, sweep: Sweep, plan: Plan) -> None:
        super().__init__(states=False)
        self.sweep = sweep
        b = plan.tab.b
        self.weights = [(i, w) for i, w in enumerate(b[:plan.solution_stages]) if w != 0.0]
        self.rows: list[Tensor] = []
        self.scales: list[float] = []
        self.ys: list[Tensor] = []
        self.stages: list[tuple[int, Any]] = []
        self.count = 0

    @property
    def collect_aux(self) -> bool:
        return True

    def record(self, t0: Any, t1: Any, step: Any, plan: Plan, on_jump: bool = False) -> None:
        ds = t1 - t0
        for i, w in self.weights:
            row, j, t = step.aux[i]
            self.rows.append(row)
            self.scales.append(ds * w)
            self.ys.append(step.ys[i][0])
            self.stages.append((j, t))
        self.count += 1
        if self.count % CHUNK == 0:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            rows = torch.stack(self.rows)
            rows.mul_(torch.tensor(self.scales, dtype=rows.dtype, device=rows.device).view(-1, 1, 1))
            self.sweep.accumulate(rows, torch.stack(self.ys), self.stages)
            self.rows, self.scales, self.ys, self.stages = [], [], [], []


def _adjoint_norm(x: Tensor) -> Tensor:
    """max(rms(y), rms(a)): torchdiffeq's adjoint seminorm (the parameters are not in the state)."""
    return torch.maximum(x[0].abs().pow(2).mean().sqrt(), x[1].abs().pow(2).mean().sqrt())


class _StructuredAdjoint(torch.autograd.Function):
    """Forward: the solve without a graph.  Backward: the continuous adjoint, interval by interval
    between outputs, on the engine with the forward's method and tolerances."""

    @staticmethod
    def forward(ctx, p: Problem, y0: Tensor, *tensors: Tensor | None) -> Tensor:
        ctx.set_materialize_grads(False)
        ctx.problem = p
        with torch.no_grad():
            ys = torch.stack(p.term.forward(p))
        ctx.save_for_backward(ys, *tensors)
        return ys

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_ys: Tensor | None):
        p: Problem = ctx.problem
        ys, *tensors = ctx.saved_tensors
        if grad_ys is None:
            return (None,) * (len(tensors) + 2)
        term: LinearActivationTerm = p.term
        spec = p.adjoint
        plan = spec.plan if spec is not None else p.plan
        sweep = Sweep(term, plan, ctx.needs_input_grad[1:], tensors)
        aug = _AdjointTerm(term)
        controller = None
        if p.controller is not None:
            # the backward solve's specification builds its controller: every setting kept, the norm the adjoint's
            back = spec.spec if spec is not None and spec.spec is not None else p.spec
            if back is None:
                raise ValueError("the structured adjoint of an adaptive solve needs the problem's SolveSpec; build "
                                 "the problem with SolveSpec.problem")
            controller = back.controller(_adjoint_norm)
        a = grad_ys[-1]
        jumps = sorted(-x for x in p.jump_t)
        check = ReconstructionCheck(p, ys)
        for i in range(len(p.t_out) - 1, 0, -1):
            z = torch.stack([ys[i], a])
            s0, s1 = -p.t_out[i], -p.t_out[i - 1]
            tape = _QuadratureTape(sweep, plan)
            if p.grid is not None:
                inner = [x for x in p.grid if p.t_out[i - 1] < x < p.t_out[i]]
                grid = [s0] + [-x for x in reversed(inner)] + [s1]
                out = solve_fixed(aug, plan, z, grid, [s0, s1], perturb=True, tape=tape, max_steps=p.max_steps)
            else:
                out = solve_adaptive(aug, plan, z, [s0, s1], controller, jump_t=jumps, exact_outputs=True,
                                     tape=tape, max_steps=p.max_steps)
            tape.flush()
            check.add(out[-1][0], ys[i - 1])
            a = out[-1][1] + grad_ys[i - 1]
        check.done()
        return (None, a if ctx.needs_input_grad[1] else None, *sweep.results())
