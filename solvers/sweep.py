"""The discrete adjoint of recorded steps of the structured kernel (:mod:`solvers.linear_activation`):
the backward pass of its ``"backprop"`` and ``"checkpoint"`` modes, chunk by chunk, with the weight
gradients of each chunk formed in one matmul, and the parameters' quadrature of its continuous adjoint."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .engine import Tape
from .stepper import Plan

__all__ = ["CHUNK", "Sweep", "scaled_sum"]

# Steps per chunk of the backward pass: the weight gradients of a chunk are formed in one matmul
# over CHUNK x stages x B rows; large enough for an efficient matmul, small enough that the chunk
# buffers are a small share of memory.
CHUNK = 64


class Sweep:
    """The discrete adjoint of recorded steps, chunk by chunk, accumulating the weight gradients.

    For step n with stage states Y_i, activations S_i and step h (times the clock rate):
    kb_i = h (b_i ybar + sum_{j > i} a_ji Ybar_j) is the adjoint of k_i, zb_i = kb_i sigma'(z_i) the
    adjoint of the pre-activation, Ybar_i = kb_i A + zb_i W the adjoint of the stage state, and
    ybar_n = ybar_{n+1} + sum_i Ybar_i.  The weight gradients are sums over all stages of
    [kb_i; zb_i]^T Y_i (A, W) and zb_i^T x_i (U, b): one matmul per chunk of steps.
    """

    def __init__(self, term: Any, plan: Plan, need: tuple, tensors: list) -> None:
        """``term``: the :class:`~solvers.linear_activation.LinearActivationTerm` (not imported: that
        module imports this one)."""
        self.term = term
        self.need = need  # (y0, W, A, U, b, *coeffs, first, last)
        self.plan = plan
        tab = plan.tab
        s = plan.solution_stages
        self.s = s
        self.b = tab.b[:s]
        a_cols = [[(j, tab.a[j][i]) for j in range(i + 1, s) if tab.a[j][i] != 0.0] for i in range(s)]
        # stage i's kb_i = h (b_i ybar + sum_j a_ji Ybar_j): its (weight, source) pairs, source -1 for ybar,
        # without the stages whose adjoint is structurally zero
        self.stage_terms: list[list[tuple[float, int]]] = [[] for _ in range(s)]
        for i in range(s - 1, -1, -1):
            self.stage_terms[i] = ([(self.b[i], -1)] if self.b[i] != 0.0 else []) + \
                [(w, j) for j, w in a_cols[i] if self.stage_terms[j]]
        self.fold = s == 1 and term.NA > 0 and term.inputs.rates is None
        W, A, U, b = tensors[:4]
        self.U = U
        self.acc = {
            "W": torch.zeros_like(W) if need[1] else None,
            "A": torch.zeros_like(A) if A is not None and need[2] else None,
            "U": torch.zeros_like(U) if U is not None and need[3] else None,
            "b": torch.zeros_like(b) if b is not None and need[4] else None,
        }
        n_coef = len(term.inputs.coeffs)
        self.coef_need = [need[5 + i] for i in range(n_coef)] + [need[5 + n_coef], need[6 + n_coef]]
        self.coef_grads = [torch.zeros_like(c) if nd else None
                           for c, nd in zip([*term.inputs.coeffs, term.inputs.first, term.inputs.last], self.coef_need)]

    def results(self) -> list[Tensor | None]:
        return [self.acc["W"], self.acc["A"], self.acc["U"], self.acc["b"], *self.coef_grads]

    def _dt(self, tape: Tape, n: int) -> Any:
        """The step of recorded step n, times the clock rate of its piece."""
        return self.step_size(tape.t0[n], tape.t1[n])

    def step_size(self, t0: float, t1: float) -> Any:
        """The step from t0 to t1 (negative backward) times the clock rate of its piece."""
        h = t1 - t0
        if self.term.inputs.rates is None:
            return h
        # the piece of the step's middle: steps never straddle a knot of the index clock
        return self.term.rate(self.term.inputs.piece(0.5 * (t0 + t1))) * h

    def derivative(self, S: Tensor) -> Tensor:
        """sigma'(z) from the stored activations (..., B, P)."""
        if not self.term.gated:
            return torch.addcmul(-self.term.minus_one, S, S, value=-1.0)  # 1 - tanh^2
        n = self.term.N
        th, g = S[..., :n], S[..., n:]
        d = torch.empty_like(S)
        torch.mul(g, 1.0 - th * th, out=d[..., :n])
        torch.mul(th * g, 1.0 - g, out=d[..., n:])
        return d

    def _zbar(self, kb: Tensor, D: Tensor, out: Tensor) -> None:
        if not self.term.gated:
            torch.mul(kb, D, out=out)
        else:
            B, n = kb.shape
            torch.mul(kb.unsqueeze(1), D.view(B, 2, n), out=out.view(B, 2, n))

    def _folded_chunk(self, ybar: Tensor, c0: int, hs: list[Any], D: Tensor, KZ: Tensor,
                      grads_at: dict[int, Tensor]) -> Tensor:
        """Euler steps folded as in the forward: the adjoint of y (I + h A^T) + h s is
        [ybar | zb] @ [I + h A; W] with zb = ybar h sigma'; two kernels a step, the state adjoint
        written by the matmul straight into the previous step's row (the rows' views made once
        per chunk, not per step)."""
        term = self.term
        N, NA = term.N, term.NA
        L = len(hs)
        same = all(h == hs[0] for h in hs)
        hv = hs[0] if same else torch.tensor(hs, dtype=D.dtype, device=D.device).view(-1, 1, 1, 1)
        D.mul_(hv)  # sigma' times the step
        flat = KZ.view(L, *KZ.shape[2:])
        rows, ybars, zbars = flat.unbind(0), flat[..., :N].unbind(0), flat[..., NA:].unbind(0)
        Ds = D.view(L, *D.shape[2:]).unbind(0)
        backs = [term.folded_bwd(hs[0])] * L if same else [term.folded_bwd(h) for h in hs]
        zbar = self._zbar
        ybars[L - 1].copy_(ybar)
        for kc in range(L - 1, -1, -1):
            zbar(ybars[kc], Ds[kc], zbars[kc])
            ybar = torch.mm(rows[kc], backs[kc], out=ybars[kc - 1]) if kc else torch.mm(rows[0], backs[0])
            if grads_at:
                g = grads_at.get(c0 + kc)
                if g is not None:
                    ybar.add_(g)
        KZ[..., :NA].mul_(hv)  # the A rows of the weight gradient need h * ybar
        return ybar

    def _stage_chunk(self, ybar: Tensor, c0: int, hs: list[Any], D: Tensor, KZ: Tensor,
                     grads_at: dict[int, Tensor]) -> Tensor:
        """Any tableau: per step, stages last to first, kb_i (into the row's first NA columns), zb_i,
        Ybar_i = [kb_i | zb_i] @ [A; W] (one matmul), ybar_n = ybar_{n+1} + sum_i Ybar_i."""
        term = self.term
        NA, s = term.NA, self.s
        L = len(hs)
        flat = KZ.view(L * s, *KZ.shape[2:])
        rows, zbars = flat.unbind(0), flat[..., NA:].unbind(0)
        kbs = flat[..., :NA].unbind(0) if NA else [None] * (L * s)
        Ds = D.view(L * s, *D.shape[2:]).unbind(0)
        for kc in range(L - 1, -1, -1):
            q = kc * s
            total = self.step_back(ybar, hs[kc], rows[q:q + s], kbs[q:q + s], zbars[q:q + s], Ds[q:q + s], ybar)
            ybar = ybar.clone() if total is None else total
            if grads_at:
                g = grads_at.get(c0 + kc)
                if g is not None:
                    ybar.add_(g)
        return ybar

    def step_back(self, ybar: Tensor, h: Any, rows: Any, kbs: Any, zbars: Any, Ds: Any, init: Tensor | None
                  ) -> Tensor | None:
        """One step's adjoint, stages last to first: kb_i (into ``kbs[i]``, the first NA columns of
        ``rows[i]``), zb_i (into ``zbars[i]``), Ybar_i = [kb_i | zb_i] @ [A; W] (one matmul).  ``ybar``:
        the adjoint of the step's result; ``Ds``: sigma' at its stages.  Returns ``init`` + sum_i Ybar_i
        (``init`` None: the sum alone, the adjoint of an increment's start; None when no stage counts)."""
        back, stage_terms, zbar = self.term.back, self.stage_terms, self._zbar
        Ybars: list[Any] = [None] * self.s
        total = None  # init + sum_i Ybar_i, accumulated in place once it is a tensor of its own
        for i in range(self.s - 1, -1, -1):
            terms = stage_terms[i]
            if not terms:
                rows[i].zero_()
                continue
            kb = scaled_sum([(w, ybar if j < 0 else Ybars[j]) for w, j in terms], h, kbs[i])
            zbar(kb, Ds[i], zbars[i])
            yb = Ybars[i] = torch.mm(rows[i], back)
            if total is None:
                total = torch.add(init, yb) if init is not None else yb
                own = init is not None
            elif own:
                total.add_(yb)
            else:
                total, own = total + yb, True
        return total

    def run(self, ybar: Tensor | None, n0: int, n1: int, tape: Tape, grads_at: dict[int, Tensor],
            offset: int = 0) -> Tensor | None:
        """Steps n1-1 .. n0 (global indices; ``tape`` holds them from ``offset`` on).  ``ybar``: the
        adjoint of the state after step n1 - 1 (None: zero).  Returns that of the state at step n0."""
        return self.run_chunks(ybar, self._tape_chunks(tape, n0, n1, offset), grads_at)

    def _tape_chunks(self, tape: Tape, n0: int, n1: int, offset: int):
        """The engine's record of steps n0..n1-1 as chunks (last first): (c0, Y, S, stages, hs)."""
        s = self.s
        for c1 in range(n1, n0, -CHUNK):
            c0 = max(n0, c1 - CHUNK)
            L = c1 - c0
            Y = torch.stack([y for n in range(c0, c1) for y in tape.ys[n - offset]])
            S = torch.stack([a[0] for n in range(c0, c1) for a in tape.aux[n - offset]])
            stages = [(a[1], a[2]) for n in range(c0, c1) for a in tape.aux[n - offset]]
            hs = [self._dt(tape, n - offset) for n in range(c0, c1)]
            yield c0, Y.view(L, s, *Y.shape[1:]), S.view(L, s, *S.shape[1:]), stages, hs

    def grid_chunks(self, tape: Any, offset: int = 0):
        """A fixed-grid tape's (:mod:`solvers.linear_activation`) chunks (last first) as :meth:`_tape_chunks` gives them: its buffers
        as they are (steps numbered from ``offset``)."""
        for start, L, Y, S, stages in reversed(tape.chunks):
            yield offset + start, Y[:L], S, stages, [self._dt(tape, n) for n in range(start, start + L)]

    def run_chunks(self, ybar: Tensor | None, chunks: Any, grads_at: dict[int, Tensor]) -> Tensor | None:
        """The adjoint through ``chunks`` ((c0, Y (L, s, B, N) stage states, S (L, s, B, P) stored
        activations, stages, step sizes hs), the last chunk first), the weight gradients of each
        chunk added by :meth:`accumulate`.  ``ybar``: the adjoint of the state after the last step
        (None: zero).  Returns that of the state before the first."""
        term = self.term
        NA, P = term.NA, term.P
        for c0, Y, S, stages, hs in chunks:
            L, s, B = Y.shape[:3]
            if ybar is None:
                ybar = torch.zeros(B, term.N, dtype=Y.dtype, device=Y.device)
            D = self.derivative(S)
            KZ = torch.empty(L, s, B, NA + P, dtype=Y.dtype, device=Y.device)
            if self.fold:
                ybar = self._folded_chunk(ybar, c0, hs, D, KZ, grads_at)
            else:
                ybar = self._stage_chunk(ybar, c0, hs, D, KZ, grads_at)
            self.accumulate(KZ.view(-1, *KZ.shape[2:]), Y.view(-1, *Y.shape[2:]), stages)
        return ybar

    def accumulate(self, KZ: Tensor, Y: Tensor, stages: list[tuple[int, Any]]) -> None:
        """Add the weight and input gradients of M stages: KZ (M, B, N_A + P) rows [kb | zb] (the
        adjoints of the stage's linear part and pre-activation, already weighted), Y (M, B, N) the
        stage states, ``stages`` their (piece, time).  Each gradient is one matmul over all rows."""
        term = self.term
        N, NA, P = term.N, term.NA, term.P
        rows = KZ.reshape(-1, KZ.shape[-1])
        Yr = Y.reshape(-1, N)
        need_w, need_a = self.acc["W"] is not None, self.acc["A"] is not None
        if need_w or need_a:
            lo = 0 if need_a else NA
            hi = NA + P if need_w else NA
            G = torch.mm(rows[:, lo:hi].t(), Yr)
            if need_a:
                self.acc["A"].add_(G[:NA])
            if need_w:
                Gw = G[NA - lo:]
                self.acc["W"].add_(Gw[:N])
                if term.gated:
                    self.acc["W"].add_(Gw[N:])
        need_x = any(self.coef_need)
        if self.acc["U"] is None and self.acc["b"] is None and not need_x:
            return
        Z = KZ[..., NA:].reshape(-1, P)  # (M B, P): adjoints of the projected inputs u
        if self.acc["b"] is not None:
            self.acc["b"].add_(Z.sum(0))
        if self.acc["U"] is None and not need_x:
            return
        x = self._raw_inputs(stages)  # (M, B, D)
        if self.acc["U"] is not None:
            self.acc["U"].addmm_(Z.t(), x.reshape(-1, x.shape[-1]))
        if need_x:
            xbar = (Z @ self.U if self.U is not None else Z).view(len(stages), -1, x.shape[-1])
            self._input_grads(stages, xbar)

    def _raw_inputs(self, stages: list[tuple[Any, Any]]) -> Tensor:
        """x (M, B, D) at the M stages (piece, time): one gather per power of tau for all of them (the
        input's ``raw`` per stage with local-time scales)."""
        inputs = self.term.inputs
        T = inputs.T
        if T < 2 or inputs.scale is not None:
            return torch.stack([inputs.raw(j, t) for j, t in stages])
        js = [j for j, _ in stages]
        first = inputs.first
        index = torch.tensor([min(max(j, 0), T - 2) for j in js], device=first.device)
        cs = [c.index_select(1, index) for c in inputs.coeffs]  # (B, M, D) each
        x = cs[-1]
        if len(cs) > 1:
            tau = torch.tensor([inputs.local_time(j, t) if 0 <= j < T - 1 else 0.0 for j, t in stages],
                               dtype=x.dtype, device=x.device).view(1, -1, 1)
            for c in reversed(cs[:-1]):
                x = torch.addcmul(c, x, tau)
        for ends, value in (([j < 0 for j in js], first), ([j >= T - 1 for j in js], inputs.last)):
            if any(ends):
                mask = torch.tensor(ends, device=first.device).view(1, -1, 1)
                x = torch.where(mask, value.unsqueeze(1), x)
        return x.transpose(0, 1)

    def _input_grads(self, stages: list[tuple[int, Any]], xbar: Tensor) -> None:
        inputs = self.term.inputs
        n_coef = len(inputs.coeffs)
        for (j, t), xb in zip(stages, xbar.unbind(0)):
            if j < 0 or inputs.T < 2:
                if self.coef_grads[n_coef] is not None:
                    self.coef_grads[n_coef].add_(xb)
                continue
            if j >= inputs.T - 1:
                if self.coef_grads[n_coef + 1] is not None:
                    self.coef_grads[n_coef + 1].add_(xb)
                continue
            tau = inputs.local_time(j, t)
            power: Any = 1.0
            for i in range(n_coef):
                if self.coef_grads[i] is not None:
                    self.coef_grads[i][:, j].add_(xb * power)
                power = power * tau


def scaled_sum(terms: list[tuple[float, Tensor]], dt: Any, out: Tensor | None) -> Tensor:
    """dt * sum(w * t for w, t in terms)."""
    (w0, t0), rest = terms[0], terms[1:]
    if not isinstance(dt, Tensor):
        r = torch.mul(t0, dt * w0, out=out) if out is not None else t0 * (dt * w0)
        for w, t in rest:
            r.add_(t, alpha=dt * w)
        return r
    r = torch.mul(t0, dt, out=out) if out is not None else t0 * dt
    if w0 != 1.0:
        r.mul_(w0)
    for w, t in rest:
        r.addcmul_(t, dt, value=w)
    return r

