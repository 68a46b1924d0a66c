"""The ``"reversible"`` gradient mode: the exact gradient of a reversible solve, its memory flat in
the number of steps wherever the backward reconstruction holds, and bounded where it does not.

Forward: the reversible solve (:mod:`solvers.reversible`) runs without a graph, keeping its
outputs, its accepted step times, its final pair (y_N, z_N) and a few *anchors*: the pair after
every K-th step (none but y0's when K is None).  Backward, segment by segment from the last anchor
down: the pair before each step is rebuilt by :func:`solvers.reversible.unstep` (exact but for
rounding), the step is recomputed from it with a graph and backpropagated (one step's graph at a
time), and the output gradients are added where outputs were taken.  So the gradient is backprop's
through the same solve, with memory O(one step) plus the outputs and the anchors, for fixed grids
and adaptive steps alike (the accepted step sizes are replayed, as constants: backprop's convention).

Why anchors: running a step backward expands what the step contracted.  For a field that contracts
(h' = -h + ..., CTRNN and unitary; or any field with a coupling lambda well below 1, whose pair
contracts by lambda a step) rounding grows like the contraction's inverse over the segment rebuilt,
e^(rate x time): e^78 over 784 steps of 0.1 at rate 1.  No reversible scheme avoids it (a flow that
contracts in floating point forgets bits; MacKay et al. 2018 make the same point for reversible
RNNs); what bounds it is rebuilding only over segments short enough.  Hence the check: each
segment's rebuilt pair at its lower anchor is compared with the anchor itself.  Within
``ANCHOR_TOLERANCE`` x eps of the dtype, the segment's gradient is kept (rounding errors grow
toward the lower end, so the anchor sees the largest); beyond it, the segment's gradient is thrown
away, the forward is recomputed from the lower anchor with anchors every L steps (L from the drift
measured: the length over which it stays under the tolerance at the rate it grew), and the
sub-segments are done the same way; a segment of one step starts from its anchor and is exact.

The rebuild length L is learned per solve specification (``anchor_spacing`` tells it): the
finest refinement's, doubled back while every segment stays 8x under the tolerance.  The next
forward of the same specification anchors every L steps when that makes at most ``TWO_LEVEL``
anchors; beyond, every K = L round(sqrt(n / L)) steps (n the steps of the last backward pass), and
the backward pass recomputes each K-segment's forward with anchors every L before rebuilding it (no
rebuild attempted over a segment known to be too long, so no gradient thrown away): about
2 sqrt(n / L) pairs held at once instead of n / L, for one more forward pass.  For a field that does
not contract (Lipschitz, Antisymmetric at lambda = 0.999) nothing is refined and the memory stays
flat; for one that does, the pairs kept grow as sqrt(T).  Each check reads one number on the host
(at the anchors only).

The tensors differentiated besides y0 are the problem's ``params`` (with ``param_sources``, as the
continuous adjoint's: :func:`solvers.adjoint.adjoint_outputs`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .problem import Problem, forward, forward_reversible
from .reversible import ReversibleRun, is_reversible, step, unstep

__all__ = ["ANCHOR_TOLERANCE", "AutogradSteps", "Backward", "TWO_LEVEL", "anchor_spacing", "backward_pass",
           "forget_anchor_spacings", "forward_spacing", "reversible_perturb", "set_anchor_spacing", "solve_reversible",
           "spec_key"]

ANCHOR_TOLERANCE = 16
"""A rebuilt segment is kept when its pair at the lower anchor is within this many eps of the
state's dtype (relative RMS): 3.6e-15 in float64, 1.9e-6 in float32.  The gradient error measured
against backprop stays within about a hundred times the reconstruction error
(scripts/reversible_drift.py), so this keeps it under 1e-10 / 1e-5."""

TWO_LEVEL = 16
"""A forward keeps at most this many anchors every L steps; beyond, fewer, every K steps (module docstring)."""

_spacing: dict = {}  # solve specification -> rebuild length L learned by its last backward pass
_steps: dict = {}  # solve specification -> the number of steps of its last backward pass


def anchor_spacing(key: object) -> int | None:
    """The rebuild length L (steps) of solve specification ``key`` (None: the whole solve is rebuilt
    from its last pair), as learned by its last backward pass in the ``"reversible"`` mode: its next
    forward keeps an anchor every L steps, or every K (a multiple of L, see :func:`forward_spacing`)."""
    try:
        return _spacing.get(key)
    except TypeError:  # an unhashable specification learns nothing
        return None


def _coarse(fine: int, n: int) -> int:
    """The anchor spacing over n steps that must be rebuilt in segments of ``fine``: ``fine`` itself up to
    ``TWO_LEVEL`` segments, else fine round(sqrt(n / fine)) (each such segment refined again when rebuilt)."""
    if n <= TWO_LEVEL * fine:
        return fine
    return fine * max(1, round(math.sqrt(n / fine)))


def forward_spacing(key: object) -> tuple[int | None, int | None]:
    """(K, L): the anchor spacing the next forward of ``key`` keeps and the rebuild length its backward
    pass recomputes each segment's anchors to (both None: none but y0's)."""
    fine = anchor_spacing(key)
    if fine is None:
        return None, None
    try:
        n = _steps.get(key)
    except TypeError:
        n = None
    return (fine if n is None else _coarse(fine, n)), fine


def set_anchor_spacing(key: object, every: int | None) -> None:
    """Make solve specification ``key`` rebuild in segments of ``every`` steps (None: the whole solve
    from its last pair): its next forward anchors every ``every`` steps, or every multiple K of it
    (:func:`forward_spacing`); a backward pass then learns on from there."""
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise ValueError(f"every must be None or a positive int (steps between anchors); got {every!r}")
    try:
        if every is None:
            _spacing.pop(key, None)
        else:
            _spacing[key] = every
    except TypeError:  # an unhashable specification learns nothing
        pass


def forget_anchor_spacings() -> None:
    """Forget every learned anchor spacing."""
    _spacing.clear()
    _steps.clear()


def spec_key(p: Problem) -> object:
    """What the anchor spacing is learned under: the problem's solve specification (its tableau without one)."""
    return p.spec if p.spec is not None else p.plan.tab


def _rms(x: Tensor) -> Tensor:
    return x.detach().abs().to(torch.float64).pow(2).mean().sqrt()


class AutogradSteps:
    """One reversible step's backward pass by autograd, for any term: the step recomputed from its
    pair with a graph (one step's graph at a time) and differentiated; the parameters' gradients
    summed in double precision (one term per step, often cancelling)."""

    def __init__(self, p: Problem, params: tuple[Tensor, ...], perturb: bool) -> None:
        self.p, self.params, self.perturb = p, params, perturb
        self.gs: list[Tensor | None] = [None] * len(params)

    def unstep(self, t0: float, t1: float, y1: Tensor, z1: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            return unstep(self.p.term, self.p.plan, t0, t1, y1, z1, self.perturb)

    def back(self, t0: float, t1: float, y0: Tensor, z0: Tensor, ay: Tensor, az: Tensor) -> tuple[Tensor, Tensor]:
        """The adjoints of the pair (y0, z0) before the step from those (ay, az) of the pair after it."""
        with torch.enable_grad():
            yl, zl = y0.detach().requires_grad_(True), z0.detach().requires_grad_(True)
            y1, z1, _ = step(self.p.term, self.p.plan, t0, t1, yl, zl, self.perturb)
            # retain_graph: the term may read tensors computed once outside (an input's projection)
            grads = torch.autograd.grad((y1, z1), (yl, zl, *self.params), (ay, az), allow_unused=True,
                                        retain_graph=True)
        for i, g in enumerate(grads[2:]):
            if g is not None:
                g = g.to(torch.promote_types(g.dtype, torch.float64))
                self.gs[i] = g if self.gs[i] is None else self.gs[i] + g
        return (torch.zeros_like(y0) if grads[0] is None else grads[0],
                torch.zeros_like(z0) if grads[1] is None else grads[1])

    def save(self) -> list[Tensor | None]:
        return list(self.gs)

    def restore(self, saved: list[Tensor | None]) -> None:
        self.gs = saved


class Backward:
    """One backward pass over a reversible run: the adjoint pair (ay, az), and what the segments'
    checks found.  ``steps`` takes the steps back (:class:`AutogradSteps`, or a term's own with the
    same methods: ``unstep``, ``back``, ``save``, ``restore``) and holds the parameters' gradients."""

    def __init__(self, p: Problem, run: ReversibleRun, grad_ys: Tensor, steps: AutogradSteps,
                 fine: int | None = None) -> None:
        self.p, self.run, self.grad_ys, self.steps = p, run, grad_ys, steps
        self.fine = fine  # a segment longer than this is refined to it before any rebuild
        self.perturb = reversible_perturb(p)
        self.at: dict[int, list[int]] = {}
        for k, n in enumerate(run.ends):
            self.at.setdefault(n, []).append(k)
        eps = torch.finfo(p.y0.real.dtype).eps
        self.tolerance = ANCHOR_TOLERANCE * eps
        self.eps = eps
        self.finest: int | None = None  # the shortest refinement length used
        self.worst = 0.0  # the largest relative error of a kept segment
        n = len(run.steps)
        self.ay = self._outputs_at(n, torch.zeros_like(run.y))
        self.az = torch.zeros_like(run.z)

    def _outputs_at(self, n: int, a: Tensor) -> Tensor:
        for k in self.at.get(n, []):
            a = a + self.grad_ys[k]
        return a

    def _step_back(self, n: int, y0: Tensor, z0: Tensor) -> None:
        """Backpropagate step n (from the pair (y0, z0) before it) and add the outputs taken at n."""
        t0, t1 = self.run.steps[n]
        self.ay, self.az = self.steps.back(t0, t1, y0, z0, self.ay, self.az)
        self.ay = self._outputs_at(n, self.ay)

    def segment(self, a: int, b: int, anchor: tuple[Tensor, Tensor], top: tuple[Tensor, Tensor]) -> None:
        """Steps a .. b-1 backward, from the exact pair ``top`` after step b-1 down to the exact pair
        ``anchor`` before step a (see the module docstring)."""
        if b - a == 1:
            self._step_back(a, *anchor)
            return
        if self.fine is not None and b - a > self.fine:  # known too long to rebuild: refine first
            self._refine(a, b, anchor, top, self.fine)
            return
        saved = (self.ay, self.az, self.steps.save())
        y, z = top
        scale = torch.maximum(torch.maximum(_rms(anchor[0]), _rms(anchor[1])), _rms(top[0]))
        scale = scale.clamp_min(torch.finfo(torch.float64).tiny)
        for n in range(b - 1, a - 1, -1):
            t0, t1 = self.run.steps[n]
            y, z = self.steps.unstep(t0, t1, y, z)
            if n == a:
                break
            self._step_back(n, y, z)
        error = torch.sqrt(_rms(y - anchor[0]) ** 2 + _rms(z - anchor[1]) ** 2) / scale
        e = float(error)  # the one host read of a segment
        if e <= self.tolerance:
            self.worst = max(self.worst, e)
            self._step_back(a, *anchor)  # the last step from the forward's own pair
            return
        self.ay, self.az = saved[0], saved[1]
        self.steps.restore(saved[2])
        length = self._refined_length(e, b - a)
        self.finest = length if self.finest is None else min(self.finest, length)
        self.fine = length if self.fine is None else min(self.fine, length)
        self._refine(a, b, anchor, top, _coarse(length, b - a))

    def _refine(self, a: int, b: int, anchor: tuple[Tensor, Tensor], top: tuple[Tensor, Tensor], length: int
                ) -> None:
        """Steps a .. b-1 backward as sub-segments of ``length`` steps, their anchors recomputed from
        ``anchor`` by the forward steps."""
        anchors = {a: anchor}
        y, z = anchor
        with torch.no_grad():
            for n in range(a, b - 1):
                t0, t1 = self.run.steps[n]
                y, z, _ = step(self.p.term, self.p.plan, t0, t1, y, z, self.perturb)
                if (n + 1 - a) % length == 0:
                    anchors[n + 1] = (y, z)
        bounds = [*sorted(anchors), b]
        pairs = {**anchors, b: top}
        for lo, hi in zip(reversed(bounds[:-1]), reversed(bounds[1:])):
            self.segment(lo, hi, pairs[lo], pairs[hi])

    def _refined_length(self, error: float, steps: int) -> int:
        """The sub-segment length over which a drift that reached ``error`` (relative) after ``steps``
        steps stays under half the tolerance, growing geometrically from eps; at most half the segment."""
        if math.isfinite(error):
            growth = math.log(max(error / self.eps, math.e))
            length = int(steps * math.log(self.tolerance / (2 * self.eps)) / growth)
        else:
            length = steps // 8
        return max(1, min(length, steps // 2))

    def run_all(self) -> Tensor:
        """The whole run backward; returns y0's gradient (the parameters' are in ``steps``)."""
        run = self.run
        n = len(run.steps)
        bounds = sorted(run.anchors)
        if bounds[-1] != n:
            bounds.append(n)
        pairs = {**run.anchors, n: (run.y, run.z)}
        for lo, hi in zip(reversed(bounds[:-1]), reversed(bounds[1:])):
            if hi > lo:
                self.segment(lo, hi, pairs[lo], pairs[hi])
        return self.ay + self.az  # z_0 = y_0: y0's gradient is the sum of both

    def learn(self, every: int | None) -> None:
        """The anchor spacing of this specification's next forward (see the module docstring)."""
        key, n = spec_key(self.p), len(self.run.steps)
        try:
            _steps[key] = n
        except TypeError:
            pass
        if self.finest is not None:
            new = self.finest
        elif every is not None and self.worst < self.tolerance / 8:
            new = None if 2 * every >= n else 2 * every
        else:
            new = every
        set_anchor_spacing(key, new)


def reversible_perturb(p: Problem) -> bool:
    """Whether the reversible solve of ``p`` evaluates stages on a step's ends one ulp inside (always on
    adaptive steps, which land on the input's knots)."""
    return p.perturb if p.grid is not None else True


def backward_pass(p: Problem, run: ReversibleRun, grad_ys: Tensor, steps: AutogradSteps, fine: int | None
                  ) -> Tensor:
    """The ``"reversible"`` mode's backward pass over ``run`` (its forward's anchors as
    :func:`forward_spacing` gave them, ``fine`` the rebuild length L): y0's gradient (the parameters'
    accumulate in ``steps``); the length learned and the reconstruction error reported to the solve's Stats."""
    back = Backward(p, run, grad_ys, steps, fine)
    g_y0 = back.run_all()
    back.learn(fine)
    _report(p, back)
    return g_y0


class _ReversibleSolve(torch.autograd.Function):
    @staticmethod
    def forward(ctx, p: Problem, y0: Tensor, *sources: Tensor) -> Tensor:
        every, ctx.fine = forward_spacing(spec_key(p))
        with torch.no_grad():
            run = forward_reversible(p, anchor_every=every)
        ctx.problem, ctx.run = p, run
        return torch.stack(run.outputs)

    @staticmethod
    def backward(ctx, grad_ys: Tensor):
        p: Problem = ctx.problem
        steps = AutogradSteps(p, p.params, reversible_perturb(p))
        g_y0 = backward_pass(p, ctx.run, grad_ys, steps, ctx.fine)
        gs = [torch.zeros_like(q) if g is None else g.to(q.dtype) for q, g in zip(p.params, steps.gs)]
        return (None, g_y0, *gs)


def _report(p: Problem, back: Backward) -> None:
    """The largest reconstruction error of a kept segment (the rebuilt pair at its lower anchor against
    the anchor, relative RMS) goes to the solve's Stats (``reconstruction_error``; 0 when every segment
    was one step from its anchor).  Nothing to warn of: a segment beyond the tolerance is never kept."""
    if p.stats is not None:
        p.stats.set_reconstruction_error(torch.tensor(back.worst, dtype=torch.float64))


def solve_reversible(p: Problem) -> list[Tensor]:
    """Outputs of ``p`` (a reversible method) whose backward pass rebuilds each step from the last
    state (see the module docstring)."""
    if not is_reversible(p.plan):
        raise ValueError(f"gradient='reversible' needs a reversible method (reversible_<tableau>, e.g. "
                         f"'reversible_{p.plan.tab.name}'); got method {p.plan.tab.name!r}")
    hook = getattr(p.term, "solve_reversible", None)
    if hook is not None:  # a term with its own backward pass (the structured kernel's)
        return hook(p)
    sources = p.param_sources if p.param_sources is not None else p.params
    keep = [i for i, q in enumerate(sources) if q.requires_grad]
    if not torch.is_grad_enabled() or not (p.y0.requires_grad or keep):
        return forward(p)
    p = p.with_(params=tuple(p.params[i] for i in keep))
    return list(_ReversibleSolve.apply(p, p.y0, *(sources[i] for i in keep)).unbind(0))
