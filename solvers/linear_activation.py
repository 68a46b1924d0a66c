"""The structured hot path: explicit Runge-Kutta on y' = y A^T + sigma(y W^T + x(t) U^T + b).

Many recurrent vector fields are "linear plus activation" (Lipschitz RNN: A, W, tanh; CTRNN:
A = -I; AntisymmetricRNN: A = 0, and its gated form sigma(z) = sigmoid(z_g) * tanh(z_h)).  For
that form the whole integration is one ``torch.autograd.Function`` whose

* forward runs without autograd, a few fused ops per stage (``addmm`` with ``beta`` folds the
  step into the matmul: one Euler step is ``addmm(u, y, W^T)``, ``tanh``, ``addmm(s, y,
  I + dt A^T, beta=dt)``), projects the raw inputs x through (U, b) chunk by chunk (one matmul
  over chunk x B rows, never a (T, B, P) tensor at once), and stores only what the backward
  needs: the stage states Y and the activations;
* backward runs the *discrete adjoint* of exactly those steps (so its gradients are the
  gradients of the computed forward, to rounding), three ops per stage, and forms the weight
  gradients of W, A, U and b in one large matmul per chunk of steps (chunk x stages x B rows)
  instead of one small matmul per step.

Gradient modes: ``"backprop"`` keeps every step's Y and activation (memory O(T));
``"checkpoint"`` keeps only the state at the start of segments of ~sqrt(T) steps and recomputes
each segment in the backward pass (memory O(sqrt(T)), same gradients bit for bit, one extra
forward pass of work).

This module knows nothing of RNNs: it integrates a driven ODE of this form on a given step grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .tableaux import Tableau

__all__ = ["ACTIVATIONS", "LinearActivation", "solve_linear_activation"]

ACTIVATIONS = ("tanh", "gated")
"""``"tanh"``: sigma(z) = tanh(z), P = N.  ``"gated"``: the input has P = 2N channels
[u_h, u_g] and sigma = sigmoid(y W^T + u_g) * tanh(y W^T + u_h) (AntisymmetricRNN eq. 7)."""

# Steps per chunk: the inputs of a chunk are projected in one matmul and the weight gradients of
# a chunk are formed in one matmul over CHUNK x stages x B rows; large enough for an efficient
# matmul, small enough that the chunk buffers are a small share of memory.
CHUNK = 64


@dataclass(frozen=True)
class LinearActivation:
    """The vector field y' = y A^T + sigma(y W^T + x U^T + b), for a batch of row vectors y (B, N).

    Attributes:
        W: (N, N) matrix inside the activation.
        A: (N, N) linear part, or None for none (A = 0, e.g. the AntisymmetricRNN).
        U: (P, D) input weight applied to the raw inputs x (B, D), or None when the inputs given
            to the solver are already projected (D = P).
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

    def rhs(self, y: Tensor, u: Tensor) -> Tensor:
        """The field at state y (B, N) and projected input u (B, P), with plain autograd ops."""
        z = y @ self.W.transpose(0, 1)
        if self.activation == "tanh":
            s = torch.tanh(z + u)
        else:
            n = self.hidden_size
            s = torch.sigmoid(z + u[..., n:]) * torch.tanh(z + u[..., :n])
        return s if self.A is None else s + y @ self.A.transpose(0, 1)


# ------------------------------------------------------------------------------------ the plan
class _Plan:
    """Everything static about one solve: tableau rows, step sizes, stage -> input node map."""

    def __init__(self, tab: Tableau, dt: Tensor, node_of_stage: tuple[int, ...], n_nodes: int,
                 outputs: list[int], segment: int, gated: bool, has_a: bool) -> None:
        self.s = tab.stages
        self.a_rows = [[(j, w) for j, w in enumerate(row) if w != 0.0] for row in tab.a]
        self.b_w = [(j, w) for j, w in enumerate(tab.b) if w != 0.0]
        # a_cols[i]: the later stages j > i whose state uses K_i, with weight a_ji (for the adjoint)
        self.a_cols = [[(j, tab.a[j][i]) for j in range(i + 1, self.s) if tab.a[j][i] != 0.0]
                       for i in range(self.s)]
        self.b = tab.b
        self.n = dt.shape[0]
        self.per_sample = dt.dim() > 1
        # Shared steps are Python floats (no tensor per step); per-sample steps are (B, 1) rows.
        self.dts = dt.unsqueeze(-1).unbind(0) if self.per_sample else [float(h) for h in dt.tolist()]
        self.node_of_stage = node_of_stage
        self.n_nodes = n_nodes
        self.outputs = outputs
        self.segment = segment
        self.gated = gated
        self.has_a = has_a
        # One-stage methods with shared steps fold the step into the matmul (y (I + dt A^T) + dt s).
        self.fold = self.s == 1 and not self.per_sample


def _axpy_into(out: Tensor | None, y: Tensor, terms: list[tuple[float, Tensor]], dt) -> Tensor:
    """y + dt * sum(w * k for w, k in terms), in as few ops as possible (dt float or (B, 1))."""
    first = True
    for w, k in terms:
        if first:
            if isinstance(dt, float):
                r = torch.add(y, k, alpha=dt * w) if out is None else torch.add(y, k, alpha=dt * w, out=out)
            else:
                r = torch.addcmul(y, k, dt, value=w) if out is None else torch.addcmul(y, k, dt, value=w, out=out)
            first = False
        elif isinstance(dt, float):
            r.add_(k, alpha=dt * w)
        else:
            r.addcmul_(k, dt, value=w)
    if first:
        return y
    return r


class _Ops:
    """The solve's tensors and the forward / backward sweeps over a range of steps.

    Two choices made for speed, both exact up to rounding:

    * tanh(z) is computed as 2 sigmoid(2 z) - 1: on this CPU build ``torch.tanh`` takes about ten
      times as long as ``torch.sigmoid`` (87 vs 9 us for a 128 x 128 float32 block), as long as
      the step's matmul.  The factor 2 is folded into the matrices (2 W^T, 2 U, 2 b; exact in
      binary), so it costs one ``add`` a stage.  The absolute error is that of sigmoid, ~1 ulp of 1.
    * backward: a stage's state adjoint kb A + zb W is one matmul [kb | zb] @ [A; W] on a
      (B, N + P) row block that is also kept for the chunk's weight gradient
      [A_bar; W_bar] = [kb | zb]^T Y, one matmul over all of the chunk's rows.
    """

    def __init__(self, plan: _Plan, x: Tensor, W: Tensor, A: Tensor | None, U: Tensor | None,
                 b: Tensor | None) -> None:
        self.p = plan
        self.x = x  # (n, m, B, D)
        self.W, self.A, self.U, self.b = W, A, U, b
        N = self.N = W.shape[0]
        self.P = N * (2 if plan.gated else 1)
        self.NA = N if A is not None else 0
        dtype, device = W.dtype, W.device
        # pre-activation scale: 2 on tanh channels (tanh z = 2 sigmoid(2 z) - 1), 1 on gate channels
        scale = torch.ones(self.P, dtype=dtype, device=device)
        scale[:N] = 2.0
        self.scale = scale
        self.WTs = (W.t() * 2.0) if not plan.gated else torch.cat([W.t() * 2.0, W.t()], 1)  # (N, P)
        self.Us = None if U is None else U * scale.unsqueeze(1)
        self.bs = None if b is None else b * scale
        self.AT = None if A is None else A.t()
        self.minus_one = torch.full((), -1.0, dtype=dtype, device=device)
        # backward block matrix [A; W (; W)] (N_A + P, N): one matmul per stage
        self.Wcat = W if not plan.gated else torch.cat([W, W], 0)
        self.back = self.Wcat if A is None else torch.cat([A, self.Wcat], 0)
        self._fold_fwd: dict[float, Tensor] = {}
        self._fold_bwd: dict[float, Tensor] = {}

    # -------------------------------------------------------------- helpers
    def folded_fwd(self, dt: float) -> Tensor:
        """I + dt A^T, cached per distinct step size."""
        m = self._fold_fwd.get(dt)
        if m is None:
            m = torch.add(torch.eye(self.N, dtype=self.W.dtype, device=self.W.device), self.AT, alpha=dt)
            if len(self._fold_fwd) < 16:
                self._fold_fwd[dt] = m
        return m

    def folded_bwd(self, dt: float) -> Tensor:
        """[I + dt A; W (; W)]: the adjoint of one folded Euler step is [ybar | zb] @ this."""
        m = self._fold_bwd.get(dt)
        if m is None:
            top = torch.add(torch.eye(self.N, dtype=self.W.dtype, device=self.W.device), self.A, alpha=dt)
            m = torch.cat([top, self.Wcat], 0)
            if len(self._fold_bwd) < 16:
                self._fold_bwd[dt] = m
        return m

    def project(self, n0: int, n1: int) -> Tensor:
        """Scaled projected inputs of steps n0..n1-1: (n1 - n0, m, B, P), one matmul."""
        x = self.x[n0:n1]
        if self.U is None:
            return x * self.scale
        rows = x.reshape(-1, x.shape[-1])
        u = torch.mm(rows, self.Us.t()) if self.bs is None else torch.addmm(self.bs, rows, self.Us.t())
        return u.view(*x.shape[:-1], -1)

    def sigma(self, Y: Tensor, u: Tensor, s_out: Tensor | None) -> Tensor:
        """sigma(Y W^T + u) from the scaled input u; s_out keeps what sigma' needs: tanh, or
        [tanh | gate] for the gated activation."""
        z = torch.addmm(u, Y, self.WTs).sigmoid_()
        if not self.p.gated:
            return torch.add(self.minus_one, z, alpha=2.0, out=s_out) if s_out is not None else \
                torch.add(self.minus_one, z, alpha=2.0)
        n = self.N
        if s_out is None:
            s_out = z
        else:
            s_out.copy_(z)
        th = torch.add(self.minus_one, z[:, :n], alpha=2.0, out=s_out[:, :n])
        return th * s_out[:, n:]

    # -------------------------------------------------------------- forward
    def forward(self, y: Tensor, n0: int, n1: int, Ybuf: Tensor | None, Sbuf: Tensor | None,
                keep: dict[int, Tensor] | None) -> Tensor:
        """Steps n0..n1-1 from y.  With buffers (indexed from n0): Ybuf[k, i] = stage state i of
        step n0 + k (Ybuf[k, 0] the state itself, Ybuf[n1 - n0, 0] the end state), Sbuf[k, i] the
        stored activation.  ``keep`` collects output states by grid index."""
        p = self.p
        store = Ybuf is not None
        if store:
            Ybuf[0, 0].copy_(y)
            y = Ybuf[0, 0]
        for c0 in range(n0, n1, CHUNK):
            c1 = min(n1, c0 + CHUNK)
            us = self.project(c0, c1).unbind(0)
            for n in range(c0, c1):
                k = n - n0
                un = us[n - c0]
                dt = p.dts[n]
                y_out = Ybuf[k + 1, 0] if store else None
                if p.fold:
                    s = self.sigma(y, un[p.node_of_stage[0]], Sbuf[k, 0] if store else None)
                    if self.A is None:
                        y = torch.add(y, s, alpha=dt, out=y_out) if store else torch.add(y, s, alpha=dt)
                    elif store:
                        y = torch.addmm(s, y, self.folded_fwd(dt), beta=dt, out=y_out)
                    else:
                        y = torch.addmm(s, y, self.folded_fwd(dt), beta=dt)
                else:
                    ks: list[Tensor] = []
                    for i in range(p.s):
                        if i == 0:
                            Yi = y
                        else:
                            Yi = _axpy_into(Ybuf[k, i] if store else None, y,
                                            [(w, ks[j]) for j, w in p.a_rows[i]], dt)
                        s = self.sigma(Yi, un[p.node_of_stage[i]], Sbuf[k, i] if store else None)
                        ks.append(s if self.A is None else torch.addmm(s, Yi, self.AT))
                    y = _axpy_into(y_out, y, [(w, ks[j]) for j, w in p.b_w], dt)
                if keep is not None and (n + 1) in keep:
                    keep[n + 1] = y  # never modified in place afterwards
        return y

    # -------------------------------------------------------------- backward
    def _derivative(self, Sc: Tensor, c0: int, c1: int) -> Tensor:
        """sigma'(z) of steps c0..c1-1 from the stored activations Sc (L, s, B, P), one batched op
        per chunk; for the folded one-stage step it already includes the step size."""
        p = self.p
        if not p.gated:
            d = torch.addcmul(-self.minus_one, Sc, Sc, value=-1.0)  # 1 - tanh^2
        else:
            n = self.N
            th, g = Sc[..., :n], Sc[..., n:]
            d = torch.empty_like(Sc)
            # d(g th)/dz_h = g (1 - th^2);  d(g th)/dz_g = th g (1 - g)
            torch.mul(g, 1.0 - th * th, out=d[..., :n])
            torch.mul(th * g, 1.0 - g, out=d[..., n:])
        if p.fold:
            dts = torch.tensor(p.dts[c0:c1], dtype=d.dtype, device=d.device)
            d.mul_(dts.view(-1, 1, 1, 1))
        return d

    def _zbar(self, kb: Tensor, D: Tensor, out: Tensor) -> None:
        """Adjoint of the pre-activation(s) kb sigma'(z) into out, one op (both gates at once)."""
        if not self.p.gated:
            torch.mul(kb, D, out=out)
        else:
            B, n = kb.shape
            torch.mul(kb.unsqueeze(1), D.view(B, 2, n), out=out.view(B, 2, n))

    def backward(self, ybar: Tensor | None, n0: int, n1: int, Ybuf: Tensor, Sbuf: Tensor,
                 grads_out: dict[int, Tensor], acc: dict[str, Tensor | None], xbar: Tensor | None) -> Tensor | None:
        """Discrete adjoint of steps n1-1 .. n0 (buffers as filled by ``forward``).

        ybar: adjoint of the state at grid index n1 (None: zero).  Returns that of index n0.
        Weight gradients are added into ``acc``; input gradients written into ``xbar``.
        """
        p = self.p
        N, s, P, NA = self.N, p.s, self.P, self.NA
        B = Ybuf.shape[2]
        dtype, device = Ybuf.dtype, Ybuf.device
        if ybar is None:
            ybar = torch.zeros(B, N, dtype=dtype, device=device)
        for c1 in range(n1, n0, -CHUNK):
            c0 = max(n0, c1 - CHUNK)
            L = c1 - c0
            Dc = self._derivative(Sbuf[c0 - n0:c1 - n0], c0, c1)
            if p.fold:
                # Row block of step n: [ybar_{n+1} | zb_n] (or zb_n alone when A = 0); the next
                # state adjoint is written by the matmul straight into the previous row block.
                width = NA + P
                KZ = torch.empty(L, 1, B, width, dtype=dtype, device=device)
                if NA:
                    KZ[L - 1, 0, :, :N].copy_(ybar)
                for n in range(c1 - 1, c0 - 1, -1):
                    kc = n - c0
                    row = KZ[kc, 0]
                    yb = row[:, :N] if NA else ybar
                    self._zbar(yb, Dc[kc, 0], row[:, NA:])
                    out = KZ[kc - 1, 0, :, :N] if (NA and kc > 0) else None
                    if NA:
                        nxt = torch.mm(row, self.folded_bwd(p.dts[n]), out=out) if out is not None \
                            else torch.mm(row, self.folded_bwd(p.dts[n]))
                    else:
                        nxt = torch.addmm(ybar, row, self.Wcat)
                    g = grads_out.get(n)
                    if g is not None:
                        nxt.add_(g)
                    ybar = nxt
                if NA:  # the A rows of the block hold ybar; A_bar needs dt * ybar
                    dts = p.dts[c0:c1]
                    if len(set(dts)) == 1:
                        KZ[..., :NA].mul_(dts[0])
                    else:
                        KZ[..., :NA].mul_(torch.tensor(dts, dtype=dtype, device=device).view(-1, 1, 1, 1))
            else:
                KZ = torch.empty(L, s, B, NA + P, dtype=dtype, device=device)
                for n in range(c1 - 1, c0 - 1, -1):
                    kc = n - c0
                    dt = p.dts[n]
                    Ybars: list[Tensor | None] = [None] * s
                    total = ybar
                    for i in range(s - 1, -1, -1):
                        terms = ([(p.b[i], ybar)] if p.b[i] != 0.0 else []) + \
                                [(w, Ybars[j]) for j, w in p.a_cols[i]]
                        row = KZ[kc, i]
                        if not terms:
                            row.zero_()
                            continue
                        kb = _scaled_sum(terms, dt, row[:, :NA] if NA else None)
                        self._zbar(kb, Dc[kc, i], row[:, NA:])
                        yb = torch.mm(row, self.back)
                        Ybars[i] = yb
                        total = total + yb
                    g = grads_out.get(n)
                    if g is not None:
                        total = total + g
                    ybar = total
            self._accumulate(c0, c1, n0, Ybuf, KZ, acc, xbar)
        return ybar

    def _accumulate(self, c0: int, c1: int, n0: int, Ybuf: Tensor, KZ: Tensor,
                    acc: dict[str, Tensor | None], xbar: Tensor | None) -> None:
        """Weight and input gradients of steps c0..c1-1, each one matmul over all their rows."""
        p = self.p
        L, s = c1 - c0, p.s
        N, NA, P = self.N, self.NA, self.P
        Y = Ybuf[c0 - n0:c1 - n0].reshape(L * s * Ybuf.shape[2], N)
        rows = KZ.view(-1, KZ.shape[-1])
        need_w = acc.get("W") is not None
        need_a = acc.get("A") is not None
        if need_w or need_a:
            lo = 0 if need_a else NA
            hi = NA + P if need_w else NA
            G = torch.mm(rows[:, lo:hi].t(), Y)  # [A_bar; W_bar (; W_bar of the gate)]
            if need_a:
                acc["A"].add_(G[:NA])
            if need_w:
                Gw = G[NA - lo:]
                acc["W"].add_(Gw[:N])
                if p.gated:
                    acc["W"].add_(Gw[N:])
        need_u = acc.get("U") is not None or acc.get("b") is not None or xbar is not None
        if not need_u:
            return
        ZB = KZ[..., NA:]  # (L, s, B, P)
        m = p.n_nodes
        if m == s and p.node_of_stage == tuple(range(s)):
            Zn = ZB
        else:  # stages sharing an input node (held input; rk4's two midpoints) add up
            Zn = torch.zeros(L, m, *ZB.shape[2:], dtype=ZB.dtype, device=ZB.device)
            Zn.index_add_(1, torch.tensor(p.node_of_stage, device=ZB.device), ZB)
        Zr = Zn.reshape(-1, P)
        if self.U is None:
            if xbar is not None:
                xbar[c0:c1].copy_(Zn)
            return
        x = self.x[c0:c1].reshape(-1, self.x.shape[-1])
        if acc.get("U") is not None:
            acc["U"].addmm_(Zr.t(), x)
        if acc.get("b") is not None:
            acc["b"].add_(Zr.sum(0))
        if xbar is not None:
            xbar[c0:c1].copy_(torch.mm(Zr, self.U).view(xbar[c0:c1].shape))


def _scaled_sum(terms: list[tuple[float, Tensor]], dt, out: Tensor | None) -> Tensor:
    """dt * sum(w * t for w, t in terms)."""
    (w0, t0), rest = terms[0], terms[1:]
    if isinstance(dt, float):
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


# ------------------------------------------------------------------------------------ Function
class _Solve(torch.autograd.Function):
    """Forward without autograd; backward = the discrete adjoint (see the module docstring).

    Every tensor the backward reads goes through ``save_for_backward`` (inputs and the step
    buffers alike), so saved-tensor hooks see them and in-place changes to an output are caught.
    """

    @staticmethod
    def forward(ctx, plan: _Plan, y0: Tensor, x: Tensor, W: Tensor, A: Tensor | None, U: Tensor | None,
                b: Tensor | None) -> Tensor:
        ops = _Ops(plan, x, W, A, U, b)
        ctx.set_materialize_grads(False)
        n, s = plan.n, plan.s
        B, N = y0.shape
        outputs = plan.outputs
        if plan.segment >= n:  # backprop: keep every step's stage states and activations
            Ybuf = torch.empty(n + 1, s, B, N, dtype=y0.dtype, device=y0.device)
            Sbuf = torch.empty(n, s, B, ops.P, dtype=y0.dtype, device=y0.device)
            ops.forward(y0, 0, n, Ybuf, Sbuf, None)
            out = Ybuf[:, 0] if outputs == list(range(n + 1)) else Ybuf[outputs, 0]
            saved = (Ybuf, Sbuf)
        else:  # checkpoint: keep the states at segment starts; outputs are copies
            keep: dict[int, Tensor | None] = {i: None for i in outputs}
            keep[0] = y0
            starts, y = [], y0
            for n0 in range(0, n, plan.segment):
                starts.append(y)
                y = ops.forward(y, n0, min(n, n0 + plan.segment), None, None, keep)
            out = torch.stack([keep[i] for i in outputs])
            saved = (torch.stack(starts),)
        ctx.ops = ops
        ctx.save_for_backward(y0, x, W, A, U, b, *saved)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor | None):
        if torch.is_grad_enabled():
            # create_graph=True (a Hessian-vector product, a gradient penalty): the hand-written
            # adjoint below is not differentiable, so replay the same steps with autograd ops and
            # differentiate those, keeping the graph.  Slower, and only taken when asked for.
            return _Solve._replayed_backward(ctx, grad_out)
        return _Solve._adjoint_backward(ctx, grad_out)

    @staticmethod
    def _replayed_backward(ctx, grad_out: Tensor | None):
        y0, x, W, A, U, b, *_ = ctx.saved_tensors
        plan: _Plan = ctx.ops.p
        inputs = (y0, x, W, A, U, b)
        wrt = [i for i, t in enumerate(inputs) if t is not None and ctx.needs_input_grad[i + 1]]
        if grad_out is None or not wrt:
            return (None,) * 7
        field = LinearActivation(W, A, None, None, "gated" if plan.gated else "tanh")
        u = x if U is None else (x @ U.transpose(0, 1) if b is None else torch.addmm(b, x.reshape(-1, x.shape[-1]),
                                                                                     U.transpose(0, 1)).view(
            *x.shape[:-1], -1))
        us = [v.unbind(0) for v in u.unbind(0)]
        states = [y0]
        y = y0
        for k in range(plan.n):
            dt, un = plan.dts[k], us[k]
            ks: list[Tensor] = []
            for i in range(plan.s):
                yi = y
                for j, w in plan.a_rows[i]:
                    yi = yi + (dt * w) * ks[j]
                ks.append(field.rhs(yi, un[plan.node_of_stage[i]]))
            for j, w in plan.b_w:
                y = y + (dt * w) * ks[j]
            states.append(y)
        out = torch.stack([states[i] for i in plan.outputs])
        grads = torch.autograd.grad(out, [inputs[i] for i in wrt], grad_out, create_graph=True, allow_unused=True)
        result: list[Tensor | None] = [None] * 7
        for i, g in zip(wrt, grads):
            result[i + 1] = g
        return tuple(result)

    @staticmethod
    @once_differentiable
    def _adjoint_backward(ctx, grad_out: Tensor | None):
        y0, x, W, A, U, b, *saved = ctx.saved_tensors
        ops: _Ops = ctx.ops
        plan = ops.p
        n, s = plan.n, plan.s
        B, N = y0.shape
        need = ctx.needs_input_grad  # (plan, y0, x, W, A, U, b)
        acc: dict[str, Tensor | None] = {
            "W": torch.zeros_like(W) if need[3] else None,
            "A": torch.zeros_like(A) if A is not None and need[4] else None,
            "U": torch.zeros_like(U) if U is not None and need[5] else None,
            "b": torch.zeros_like(b) if b is not None and need[6] else None,
        }
        xbar = torch.zeros_like(x) if need[2] else None
        grads_out: dict[int, Tensor] = {}
        if grad_out is not None:
            for pos, g in zip(plan.outputs, grad_out.unbind(0)):
                grads_out[pos] = grads_out[pos] + g if pos in grads_out else g
        ybar = grads_out.pop(n, None)
        g0 = grads_out.pop(0, None)
        if len(saved) == 2:
            Ybuf, Sbuf = saved
            ybar = ops.backward(ybar, 0, n, Ybuf, Sbuf, grads_out, acc, xbar)
        else:
            starts = saved[0].unbind(0)
            seg = plan.segment
            Ybuf = torch.empty(seg + 1, s, B, N, dtype=y0.dtype, device=y0.device)
            Sbuf = torch.empty(seg, s, B, ops.P, dtype=y0.dtype, device=y0.device)
            for k in range(len(starts) - 1, -1, -1):
                n0 = k * seg
                n1 = min(n, n0 + seg)
                ops.forward(starts[k], n0, n1, Ybuf, Sbuf, None)  # recompute the segment
                ybar = ops.backward(ybar, n0, n1, Ybuf, Sbuf, grads_out, acc, xbar)
        if ybar is None:
            ybar = torch.zeros_like(y0)
        if g0 is not None:
            ybar = ybar + g0
        return (None, ybar if need[1] else None, xbar, acc["W"], acc["A"], acc["U"], acc["b"])


def solve_linear_activation(field: LinearActivation, y0: Tensor, x: Tensor, dt: Tensor, tab: Tableau,
                            node_of_stage: tuple[int, ...], outputs: list[int] | None = None,
                            gradient: str = "backprop") -> Tensor:
    """Integrate ``field`` over a fixed step grid with precomputed stage inputs.

    Args:
        field: the structure (W, A, U, b, activation).
        y0: (B, N) initial state (real).
        x: (n, m, B, D) raw inputs (projected by field.U, b) or projected inputs (D = P when
            field.U is None) at the m input nodes of each of the n steps.
        dt: (n,) step sizes shared by the batch, or (n, B) per-sample step sizes.
        tab: explicit tableau.
        node_of_stage: for each stage, which of the m nodes it reads (len = tab.stages).
        outputs: grid indices 0..n of the states to return (default all, 0 = y0).
        gradient: "backprop" or "checkpoint" (segments of ceil(sqrt(n)) steps recomputed in backward).

    Returns:
        (len(outputs), B, N) states.
    """
    n = dt.shape[0]
    if gradient not in ("backprop", "checkpoint"):
        raise ValueError(f"gradient must be 'backprop' or 'checkpoint' for this solver; got {gradient!r}")
    if dt.requires_grad:
        raise ValueError("dt must not require gradients here (gradients with respect to times are not "
                         "formed by this solver); use solvers.odeint for that")
    if x.dim() != 4 or x.shape[0] != n or x.shape[2] != y0.shape[0]:
        raise ValueError(f"x must have shape (n, m, B, D) = ({n}, m, {y0.shape[0]}, D); got {tuple(x.shape)}")
    if len(node_of_stage) != tab.stages or not all(0 <= i < x.shape[1] for i in node_of_stage):
        raise ValueError(f"node_of_stage must give, for each of the {tab.stages} stages, a node in "
                         f"0..{x.shape[1] - 1}; got {node_of_stage}")
    outputs = list(range(n + 1)) if outputs is None else [int(i) for i in outputs]
    segment = n if gradient == "backprop" else max(1, math.ceil(math.sqrt(n)))
    plan = _Plan(tab, dt.to(y0.dtype), tuple(node_of_stage), x.shape[1], outputs, max(segment, 1),
                 field.activation == "gated", field.A is not None)
    if n == 0:
        return y0.unsqueeze(0).expand(len(outputs), -1, -1).clone()
    tensors = (y0, x, field.W, field.A, field.U, field.b)
    if not (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)):
        # inference: no buffers, three ops a step for Euler
        with torch.no_grad():
            keep: dict[int, Tensor | None] = {i: None for i in outputs}
            keep[0] = y0
            _Ops(plan, x, field.W, field.A, field.U, field.b).forward(y0, 0, n, None, None, keep)
        return torch.stack([keep[i] for i in outputs])
    return _Solve.apply(plan, *tensors)
