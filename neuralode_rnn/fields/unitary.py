"""Full-capacity unitary RNN (Wisdom, Powers, Hershey, Le Roux, Atlas; NeurIPS 2016) as a field.

    dh/dt = -h + modReLU(W h + V x, b),   h in C^N,  W unitary,
    modReLU(z, b) = z * max(|z| + b, 0) / |z|   (elementwise; Arjovsky et al. 2016).

One Euler step of size 1 gives h_k = h_{k-1} + (-h_{k-1} + modReLU(...)) = modReLU(W h_{k-1} + V x_k, b),
the paper's recurrence.  The input x is real; V = V_re + i V_im is complex, so ``input_map`` is
``nn.Linear(D, 2N, bias=False)`` holding [V_re; V_im] (the bias of this cell lives in modReLU).
W is a complex parameter registered as unitary (:func:`mark_unitary`): train it with
:class:`neuralode_rnn.optim` so it stays on the unitary group.  A readout reads [Re h, Im h].
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from ..parametrizations import mark_unitary, random_unitary
from .base import Field

__all__ = ["UnitaryField", "complex_input", "euler_steps", "modrelu"]

MODRELU_FLOOR = 1e-5


def modrelu(z: torch.Tensor, b: torch.Tensor, floor: float = MODRELU_FLOOR) -> torch.Tensor:
    """modReLU(z, b) = z * relu(|z| + b) / |z|, elementwise on complex z (..., N), real b (N,).

    Exact wherever |z| >= ``floor``.  Below it |z| is replaced by ``floor`` in the scale
    relu(|z| + b) / |z|: modReLU with b > 0 jumps at z = 0 (it maps z to the direction z/|z| at
    length b), so its exact gradient grows like b/|z| and a first step from h = 0 on a blank input
    (z = 0 exactly) would send a gradient of b/1e-12 into training.  With the floor the value stays
    0 at z = 0 and every gradient is finite and at most (floor + |b|)/floor; the reference
    implementations soften the same point by adding 1e-5 to |z| everywhere, which is never exact.

    Six kernels: |z| (``abs``, one pass over the complex entries), the floor, + b, relu, the division
    and the product; the fused Euler loop (:meth:`UnitaryField.euler_loop`) runs the same six in place,
    so its states are these bits.
    """
    mag = torch.clamp(z.abs(), min=floor)
    scale = torch.relu(mag + b) / mag
    return z * scale


def complex_input(u: torch.Tensor) -> torch.Tensor:
    """V x as complex (..., N) from an input map's [Re V x; Im V x] (..., 2N); a complex u is it
    already (a solver may deliver it so: ``solvers.PiecewiseInput(complex_halves=True)``)."""
    if u.is_complex():
        return u
    n = u.shape[-1] // 2
    return torch.complex(u[..., :n], u[..., n:])


class _EulerLoop(torch.autograd.Function):
    """Euler steps h_{m+1} = lerp(h_m, modReLU(h_m W^T + u_m, b), dt_m), m = 0..S-1, as one Function.

    Forward: the steps without autograd, one ``addmm`` and modReLU's six kernels (:func:`modrelu`'s, in
    place: the same bits) per step, writing the pre-activations z, the floored moduli r = max(|z|, floor),
    the scales s = relu(r + b) / r and the states into preallocated (S, B, N) buffers.

    Backward: the discrete adjoint of those steps, by hand.  modReLU's Jacobian at z, on (Re z, Im z),
    is the symmetric s I - (b / r) n n^T with n = z / r (from d(z (1 + b/r)) = dz (1 + b/r)
    - b z Re(conj(z) dz) / r^3; the second term only where r + b > 0 and |z| > floor: at |z| = floor
    exactly, a set of measure zero, autograd's clamp would count it, this backward does not); on a
    complex gradient g that is

        grad_z = alpha g + beta conj(g),   alpha = s - c,  beta = -c n^2,  c = b / (2 r)

    (c = 0 off that set).  alpha and beta depend on z alone, so they are computed for all steps at
    once, in a few real passes over (S, B, N), and a backward step is one conjugate product, one
    ``addcmul`` and one ``mm`` (grad_h = grad_z conj(W), plus (1 - dt) g off the unit step).  The weight
    and bias gradients are single reductions over all steps after the sweep: grad_W = G^T conj(H) for
    the stacked (S B, N) pre-activation gradients G and the states H the steps started from, and
    grad_b = sum dt Re(conj(g) z) / r where r + b > 0.  Under ``create_graph`` (a Hessian-vector
    product) the steps are replayed with autograd ops and differentiated instead.

    Inputs: h0 (B, N) complex; U (S, B, N) the projected inputs of the steps, complex, of h0's dtype;
    W (N, N) likewise; b (N,) real; ``dts``: S floats, or S real tensors (B, 1) (an index clock's
    per-sample steps); ``ends``: increasing step counts (the last one S) whose states are returned,
    stacked (K, B, N).
    """

    @staticmethod
    def forward(ctx, h0: torch.Tensor, U: torch.Tensor, W: torch.Tensor, b: torch.Tensor, dts: list,
                ends: list[int], floor: float) -> torch.Tensor:
        ctx.set_materialize_grads(False)
        S = U.shape[0]
        Z = torch.empty_like(U)
        R = torch.empty(Z.shape, dtype=b.dtype, device=Z.device)
        C = torch.empty_like(R)
        H = torch.empty((S + 1, *h0.shape), dtype=h0.dtype, device=h0.device)
        H[0] = h0
        # views made once (one call each): no indexing per step
        zs, rs, cs, hs, us = Z.unbind(0), R.unbind(0), C.unbind(0), H.unbind(0), U.unbind(0)
        WT = W.transpose(0, 1)
        h = h0
        for m in range(S):
            z = torch.addmm(us[m], h, WT, out=zs[m])
            r = torch.abs(z, out=rs[m]).clamp_(min=floor)
            scale = torch.add(r, b, out=cs[m]).relu_().div_(r)
            dt = dts[m]
            if not isinstance(dt, torch.Tensor) and dt == 1.0:
                h = torch.mul(z, scale, out=hs[m + 1])
            else:  # lerp_step's lerp
                h = torch.lerp(h, z * scale, dt.to(h.dtype) if isinstance(dt, torch.Tensor) else dt, out=hs[m + 1])
        ctx.save_for_backward(h0, U, W, b, Z, R, C, H)
        ctx.dts, ctx.ends, ctx.floor = dts, ends, floor
        return H.index_select(0, torch.tensor(ends, device=H.device))

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor | None):
        if grad_out is None:
            return (None,) * 7
        if torch.is_grad_enabled():
            return _EulerLoop.replayed_backward(ctx, grad_out)
        return _EulerLoop.adjoint_backward(ctx, grad_out)

    @staticmethod
    def replayed_backward(ctx, grad_out: torch.Tensor):
        """create_graph=True: the hand-written adjoint is not differentiable, so the steps run again as
        autograd ops (:meth:`UnitaryField.euler_step`'s, from the saved inputs) and those are
        differentiated, keeping the graph."""
        h0, U, W, b = ctx.saved_tensors[:4]
        inputs = (h0, U, W, b)
        wrt = [i for i in range(4) if ctx.needs_input_grad[i]]
        h, states = h0, [h0]
        WT = W.transpose(0, 1)
        for u, dt in zip(U.unbind(0), ctx.dts):
            h = lerp_step(h, modrelu(torch.addmm(u, h, WT), b, ctx.floor), dt)
            states.append(h)
        out = torch.stack([states[n] for n in ctx.ends])
        grads = torch.autograd.grad(out, [inputs[i] for i in wrt], grad_out, create_graph=True, allow_unused=True)
        result: list[torch.Tensor | None] = [None] * 7
        for i, g in zip(wrt, grads):
            result[i] = g
        return tuple(result)

    @staticmethod
    @once_differentiable
    def adjoint_backward(ctx, grad_out: torch.Tensor):
        h0, U, W, b, Z, R, C, H = ctx.saved_tensors
        dts, ends, floor = ctx.dts, ctx.ends, ctx.floor
        S, N = Z.shape[0], Z.shape[-1]
        # modReLU's factors at every step at once, in real passes over (S, B, N) (the scales C are >= 0,
        # > 0 exactly where r + b > 0; R >= floor, > floor exactly where |z| > floor)
        live = torch.sign(C)
        cneg = torch.div(b * -0.5, R).mul_(live).mul_(torch.sub(R, floor).sign_())  # -c
        alpha = torch.add(C, cneg)
        beta = Z.square().mul_(cneg.div_(R.square()))  # -c z^2 / r^2
        unit = all(not isinstance(dt, torch.Tensor) and dt == 1.0 for dt in dts)
        D = None
        if not unit:  # the target's gradient is dt times the state's
            D = torch.stack([dt.to(R.dtype) if isinstance(dt, torch.Tensor) else torch.full_like(R[0, :, :1], dt)
                             for dt in dts])  # (S, B, 1)
            alpha.mul_(D)
            beta.mul_(D)
        Wbar = W.conj().resolve_conj()
        G = torch.empty_like(Z)  # the gradient of each step's pre-activation z
        Gh = torch.empty_like(Z)  # the gradient of each step's resulting state
        gs, ghs, al, be = G.unbind(0), Gh.unbind(0), alpha.unbind(0), beta.unbind(0)
        out_at = {n: k for k, n in enumerate(ends)}
        ghs[S - 1].copy_(grad_out[out_at[S]])
        grad_h0 = None
        for m in range(S - 1, -1, -1):
            g = ghs[m]
            gz = torch.mul(be[m], g.conj(), out=gs[m]).addcmul_(al[m], g)
            if m == 0:
                if ctx.needs_input_grad[0]:
                    grad_h0 = lerp_carry(torch.mm(gz, Wbar), g, dts[0])
                break
            nxt = lerp_carry(torch.mm(gz, Wbar, out=ghs[m - 1]), g, dts[m])
            k = out_at.get(m)
            if k is not None:
                nxt.add_(grad_out[k])
        grad_W = None
        if ctx.needs_input_grad[2]:  # G^T conj(H) = conj(G^H H): one product over all steps
            grad_W = torch.mm(G.reshape(-1, N).conj().t(), H[:-1].reshape(-1, N)).conj().resolve_conj()
        grad_b = None
        if ctx.needs_input_grad[3]:  # sum of dt Re(conj(g) z) / r where r + b > 0 (Gh is scratch now)
            weight = live.div_(R)
            if D is not None:
                weight.mul_(D)
            grad_b = torch.view_as_real(Gh.mul_(weight)).mul_(torch.view_as_real(Z)).sum((0, 1)).sum(-1)
        return grad_h0, G if ctx.needs_input_grad[1] else None, grad_W, grad_b, None, None, None


def euler_steps(h0: torch.Tensor, U: torch.Tensor, W: torch.Tensor, b: torch.Tensor, dts: list, ends: list[int],
                floor: float = MODRELU_FLOOR) -> torch.Tensor:
    """The uRNN field's Euler steps h_{m+1} = lerp(h_m, modReLU(h_m W^T + u_m, b), dt_m), m = 0..S-1, with a
    hand-written backward (the same states as S calls of :meth:`UnitaryField.euler_step`, bit for bit).

    Args:
        h0: (B, N) complex initial state.  U: (S, B, N) complex inputs u_m = V x, in h0's dtype.
        W: (N, N) complex, in h0's dtype.  b: (N,) real modReLU bias, in h0's real dtype.
        dts: S step sizes: floats (1.0: the uRNN cell) or real (B, 1) tensors (per-sample steps).
        ends: increasing step counts in 1..S, the last one S.
        floor: modReLU's floor (:func:`modrelu`).
    Returns:
        (len(ends), B, N): the states after ``ends[k]`` steps.
    """
    S = U.shape[0] if U.dim() == 3 else -1
    if U.dim() != 3 or U.shape[1:] != h0.shape or len(dts) != S:
        raise ValueError(f"euler_steps wants U (S, B, N) = (len(dts), *h0.shape) = ({len(dts)}, {tuple(h0.shape)}); "
                         f"got U of shape {tuple(U.shape)}")
    if not ends or list(ends) != sorted(set(ends)) or ends[0] < 1 or ends[-1] != S:
        raise ValueError(f"ends must be increasing step counts in 1..{S} ending at {S}; got {list(ends)}")
    return _EulerLoop.apply(h0, U, W, b, list(dts), list(ends), floor)


def lerp_step(h: torch.Tensor, target: torch.Tensor, dt) -> torch.Tensor:
    """h + dt (target - h) as one ``lerp``; at dt = 1 the target itself.  ``dt``: a float, or a real (B, 1)
    tensor (an index clock's per-sample step; ``lerp`` wants the weight in the state's dtype)."""
    if not isinstance(dt, torch.Tensor):
        return target if dt == 1.0 else torch.lerp(h, target, dt)
    return torch.lerp(h, target, dt.to(h.dtype))


def lerp_carry(grad: torch.Tensor, g: torch.Tensor, dt) -> torch.Tensor:
    """grad + (1 - dt) g in place: what a lerp step passes back to the state it started from."""
    if isinstance(dt, torch.Tensor):
        return grad.addcmul_(1 - dt, g)
    return grad if dt == 1.0 else grad.add_(g, alpha=1.0 - dt)


class UnitaryField(Field):
    """Full-capacity uRNN vector field with a complex hidden state.

    Args:
        input_size: D (real inputs).  hidden_size: N (complex units).
        bias_init: modReLU bias b starts at this value (0: modReLU starts as the identity).
        learn_initial_state: start from a learned h0 (N,) instead of 0.  Why: with b > 0, h = 0 is
            an unstable point of the cell (modReLU sends any z != 0 to length |z| + b), so on a run of
            blank inputs from h0 = 0 (z = 0 exactly) the gradient is multiplied at every step by
            modReLU's slope at 0, (floor + b) / floor, and overflows within a few hundred steps (seen
            on permuted MNIST, whose sequences start with long runs of zero pixels).  A nonzero h0
            keeps z away from 0.  Drawn with entries uniform in [-s, s] (real and imaginary parts),
            s = sqrt(3 / (2 N)), so E|h0|^2 = 1.  Off by default: the papers' recurrences start at 0.
    """

    is_complex = True

    def __init__(self, input_size: int, hidden_size: int, bias_init: float = 0.0, learn_initial_state: bool = False):
        super().__init__(input_size, hidden_size)
        self.U = mark_unitary(nn.Parameter(random_unitary(hidden_size, torch.complex64)))
        self.b = nn.Parameter(torch.full((hidden_size,), float(bias_init)))
        self.input_map = nn.Linear(input_size, 2 * hidden_size, bias=False)
        if learn_initial_state:
            s = (3.0 / (2 * hidden_size)) ** 0.5
            parts = (torch.rand(2, hidden_size) * 2 - 1) * s
            self.h0 = nn.Parameter(torch.complex(parts[0], parts[1]))
        else:
            self.h0 = None

    def initial_state(self, batch_size: int, dtype: torch.dtype, device=None) -> torch.Tensor:
        if self.h0 is None:
            return super().initial_state(batch_size, dtype, device)
        h0 = self.h0.to(device=device, dtype=self.state_dtype(dtype))
        return h0.unsqueeze(0).expand(batch_size, -1).contiguous()

    @property
    def A(self) -> torch.Tensor:
        return -torch.eye(self.hidden_size, dtype=self.U.dtype, device=self.U.device)

    @property
    def W(self) -> torch.Tensor:
        return self.U

    def complex_input(self, u: torch.Tensor) -> torch.Tensor:
        return complex_input(u)

    def target(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """modReLU(W h + V x, b): the point the state decays toward (h' = target - h)."""
        # conversions only when the dtypes differ: at small batch each ``.to`` (and ``h.real``, a view)
        # costs a few microseconds of a step's ~100
        u, W, b = self.complex_input(u), self.U, self.b
        real = h.dtype.to_real()
        z = torch.addmm(u if u.dtype == h.dtype else u.to(h.dtype), h,
                        (W if W.dtype == h.dtype else W.to(h.dtype)).transpose(0, 1))
        return modrelu(z, b if b.dtype == real else b.to(real))

    def rhs(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.target(h, u) - h

    def euler_step(self, h: torch.Tensor, u: torch.Tensor, dt) -> torch.Tensor:
        """h + dt (target - h) as one ``lerp``; at dt = 1 the target itself, modReLU(W h + V x, b): the
        uRNN cell, exactly.  ``dt``: a float or a real (B, 1) tensor (an index clock's steps)."""
        return lerp_step(h, self.target(h, u), dt)

    def euler_loop(self, h0: torch.Tensor, us: list[torch.Tensor], dts: list, ends: list[int]) -> list[torch.Tensor]:
        """S fused Euler steps (:meth:`euler_step` S times, the same bits) as one autograd Function with
        a hand-written backward; the states after ``ends`` steps (increasing, the last one S).

        ``us``: the S steps' projected inputs (B, 2N) real or (B, N) complex; ``dts``: S floats or real
        (B, 1) tensors.  What the solvers' driven term calls for a fixed-grid Euler solve under
        backprop.  Why: at batch 8-32 a step's kernels are short, and autograd's per-step records
        (about ten elementwise nodes for modReLU) cost more than the arithmetic."""
        U = complex_input(torch.stack(us))
        if U.dtype != h0.dtype:
            U = U.to(h0.dtype)
        real = h0.dtype.to_real()
        W = self.U if self.U.dtype == h0.dtype else self.U.to(h0.dtype)
        b = self.b if self.b.dtype == real else self.b.to(real)
        return list(euler_steps(h0, U, W, b, dts, ends).unbind(0))
