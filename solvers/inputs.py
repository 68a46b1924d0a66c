"""Inputs of driven terms: a piecewise-polynomial x(t), read at any stage time in O(1) per step.

A driven vector field dy/dt = F(y, u(t)) reads an input u = x U^T + b, with x piecewise
polynomial in time between knots (the samples of an interpolated sequence).  Generic
interpolation searches the knots at every evaluation; here a *cursor* remembers the current
piece, so when stage times advance (as they do in a solve) finding the piece costs O(1)
amortised, and the projection through (U, b) is applied to the pieces' coefficients chunk by chunk
(one matmul per chunk of at most ``CHUNK`` pieces and ``CHUNK_BYTES`` bytes, never a (B, T, P)
tensor at once), so a stage reads its input with a Horner pass on (B, P) rows (nothing at all for a
piecewise-constant input).

Layout (the contract with whoever builds the input, e.g. ``neuralode_rnn.paths.Path``):

* ``knots``: (T,) increasing clock times, as floats; or (B, T), each sample its own times, for a
  term read at per-sample clocks (times are then (B,) tensors);
* ``coeffs``: tuple of (B, T-1, D) tensors; on piece j, i.e. (knots[j], knots[j+1]], the input is
  ``sum_i coeffs[i][:, j] * tau**i`` with the local time ``tau = t - knots[j]``, or
  ``(t - knots[j]) * scale[:, j]`` when a per-sample ``scale`` (B, T-1) is given (an index clock
  whose pieces have different real lengths per sample);
* ``first`` / ``last``: (B, D), the input at and before knots[0] / after knots[-1].

The pieces are closed on the right, (knots[j], knots[j+1]]: a zero-order hold read at a knot
gives the sample that ends there, as step k of a discrete RNN reads x_k.  Solvers evaluate stages
one ulp inside their steps, so which side a piece is closed on never matters to them.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["CHUNK", "CHUNK_BYTES", "PiecewiseInput"]

CHUNK = 64
"""At most this many pieces projected per matmul; the cache keeps the current and the previous chunk."""

CHUNK_BYTES = 2 ** 20
"""At most this many bytes of projected coefficients per chunk (at least one piece a chunk).  Why: the
cache's chunks are a solve's input memory, and it grows with T until two chunks are held: with
64-piece chunks at B = 128, P = 128, float32 (64 KB a piece) that was 8 MB (12 MB while the next
was projected) at T = 784 against 6 MB at T = 98, most of the reversible mode's growth in peak memory
between T = 98 and 784 (benchmarks/run.py's fixed suite: 25.9 -> 39.4 MB before, 22.4 -> 23.2 MB with
16-piece chunks); its time did not change (0.95x, medians of 5 interleaved runs, one thread)."""


class PiecewiseInput:
    """x(t) (and u(t) = x U^T + b when ``weight`` is given) of a piecewise polynomial, with a cursor.

    Args:
        knots: (T,) increasing clock times (a tensor or a sequence of floats).
        coeffs: per power of tau, a (B, T-1, D) tensor.
        first, last: (B, D).
        scale: None, or (B, T-1) per-sample factor from clock time to local time.
        weight, bias: (P, D) and (P,) or None: the projection u = x weight^T + bias; with ``weight``
            None the input is already projected (P = D) and ``bias`` (if any) is added to it.
        scale_output: None or (P,): u multiplied by it (folded into the projection, or with ``weight``
            None applied per channel; a kernel that computes tanh(z) as 2 sigmoid(2 z) - 1 wants 2 u).
        rates: None, or (B, T) per-sample dt/ds of an index clock: a term on this clock multiplies
            its field by ``rate(j)`` on piece j (``rates[:, j + 1]``; ``rates[:, 0]`` before the first
            knot), so samples with different real gaps share one clock.
        complex_halves: the projection's P = 2M outputs are [real parts; imaginary parts] of M complex
            channels: ``projected`` returns them as a complex (B, M) tensor (the rows of the weight are
            interleaved once, so each chunk is viewed as complex without a copy).
    """

    def __init__(self, knots: Tensor | Sequence[float], coeffs: Sequence[Tensor], first: Tensor, last: Tensor,
                 scale: Tensor | None = None, weight: Tensor | None = None, bias: Tensor | None = None,
                 scale_output: Tensor | None = None, rates: Tensor | None = None, complex_halves: bool = False) -> None:
        self._sample_knots = None
        self.per_sample_knots = isinstance(knots, Tensor) and knots.dim() == 2
        if self.per_sample_knots:  # per-sample knots: the clock is each sample's own
            self._sample_knots = knots.detach().to(torch.float64).contiguous()
            knots = knots[0]
        self.knots = [float(k) for k in (knots.tolist() if isinstance(knots, Tensor) else knots)]
        self.coeffs = tuple(coeffs)
        self.first, self.last = first, last
        self.scale = scale
        self.T = len(self.knots)
        if self.coeffs and self.T > 1 and self.coeffs[0].shape[1] != self.T - 1:
            raise ValueError(f"coeffs must have T - 1 = {self.T - 1} pieces on axis 1; got {tuple(self.coeffs[0].shape)}")
        self.weight, self.bias = weight, bias
        self.channel_scale = None  # (P,): the per-channel scale of an already-projected input
        if scale_output is not None:
            if weight is not None:
                self.weight = weight * scale_output.unsqueeze(1)
            else:
                self.channel_scale = scale_output
            self.bias = None if bias is None else bias * scale_output
        self._given = dict(knots=self.knots if self._sample_knots is None else self._sample_knots, scale=scale,
                           weight=weight, bias=bias, scale_output=scale_output, rates=rates,
                           complex_halves=complex_halves)
        self.complex_halves = complex_halves and self.weight is not None
        if self.complex_halves:
            m = self.weight.shape[0] // 2
            order = torch.stack([torch.arange(m), torch.arange(m) + m], 1).reshape(-1).to(self.weight.device)
            self.weight = self.weight[order]
            self.bias = None if self.bias is None else self.bias[order]
        self.cursor = 0  # index of the first knot >= the last time read
        self._chunks: dict[int, list[list[Tensor]]] = {}
        self._chunk_len: int | None = None  # pieces per chunk (:meth:`chunk_length`)
        self._ends: dict[str, Tensor] = {}
        # projections cached under no_grad hold no graph: rebuilt when read again with grad on (a
        # torchdiffeq adjoint runs its forward without grad and differentiates f in the backward)
        self._differentiable = any(x is not None and x.requires_grad
                                   for x in (self.weight, self.bias, *self.coeffs, first, last))
        self._graphless = False
        self._scale_rows: list[Tensor] | None = None
        self.rates = rates
        self._rate_rows = None if rates is None else list(rates.detach().unsqueeze(-1).unbind(1))

    def replace(self, **changes: Any) -> PiecewiseInput:
        """A new input from this one's arguments with ``changes`` (any constructor argument: other
        ``coeffs``/``first``/``last`` tensors, a projection ``weight``/``bias``/``scale_output``, ...); the
        clock (shared or per-sample knots, ``scale``, ``rates``) is kept unless changed."""
        args = dict(self._given, coeffs=self.coeffs, first=self.first, last=self.last)
        unknown = sorted(set(changes) - set(args))
        if unknown:
            raise TypeError(f"replace() takes PiecewiseInput's arguments {sorted(args)}; got {unknown}")
        args.update(changes)
        return PiecewiseInput(**args)

    # -------------------------------------------------------------- pieces
    @property
    def batch_size(self) -> int:
        return self.first.shape[0]

    def piece(self, t: float) -> int:
        """Piece index of clock time t: j with knots[j] < t <= knots[j+1]; -1 at or before the first knot,
        T-1 after the last.  Amortised O(1) for times that move little between calls."""
        k = self.knots
        i = self.cursor
        n = self.T
        if i < n and k[i] < t:
            i += 1
            if i < n and k[i] < t:
                i = bisect.bisect_left(k, t, i)
        elif i > 0 and k[i - 1] >= t:
            i -= 1
            if i > 0 and k[i - 1] >= t:
                i = bisect.bisect_left(k, t, 0, i)
        self.cursor = i
        return i - 1

    def rate(self, j: int) -> Tensor | None:
        """(B, 1) dt/ds on piece j of an index clock; None on a real-time clock."""
        if self._rate_rows is None:
            return None
        return self._rate_rows[min(max(j + 1, 0), len(self._rate_rows) - 1)]

    def local_time(self, j: int, t: float) -> Any:
        """tau on piece j: a float, or a (B, 1) tensor with a per-sample scale."""
        tau = t - self.knots[j]
        if self.scale is None:
            return tau
        if self._scale_rows is None:
            self._scale_rows = list(self.scale.unsqueeze(-1).unbind(1))
        return self._scale_rows[j] * tau

    # -------------------------------------------------------------- per-sample clocks
    def pieces(self, t: Tensor) -> Tensor:
        """(B,) piece index of each sample's time t (B,) on its own knots (``sample_knots``)."""
        k = self.sample_knots
        return torch.searchsorted(k, t.to(k.dtype).unsqueeze(1).contiguous()).squeeze(1) - 1

    def raw_at(self, j: Tensor, t: Tensor) -> Tensor:
        """x (B, D) of each sample b on its piece j[b] at its time t[b] (per-sample knots)."""
        B, T = self.first.shape[0], self.T
        if T < 2:
            return self.first
        jc = j.clamp(0, T - 2)
        knots = self.sample_knots
        tau = (t.to(knots.dtype) - knots.gather(1, jc.unsqueeze(1)).squeeze(1)).to(self.first.dtype).unsqueeze(1)
        index = jc.view(B, 1, 1).expand(B, 1, self.first.shape[-1])
        cs = [c.gather(1, index).squeeze(1) for c in self.coeffs]
        out = cs[-1]
        for c in reversed(cs[:-1]):
            out = torch.addcmul(c, out, tau)
        out = torch.where((j < 0).unsqueeze(1), self.first, out)
        return torch.where((j >= T - 1).unsqueeze(1), self.last, out)

    @property
    def sample_knots(self) -> Tensor:
        """(B, T) float64 knots of each sample (``knots`` given as a (B, T) tensor, or shared ones repeated)."""
        k = self._sample_knots
        if k is None:
            k = self._sample_knots = torch.tensor(self.knots, dtype=torch.float64, device=self.first.device) \
                .unsqueeze(0).expand(self.first.shape[0], -1).contiguous()
        return k

    # -------------------------------------------------------------- raw x
    def raw(self, j: Any, t: Any) -> Tensor:
        """x(t) (B, D) on piece j (j = -1: ``first``; j = T-1: ``last``); (B,) tensors j and t: each
        sample on its own piece (:meth:`raw_at`)."""
        if isinstance(j, Tensor):
            return self.raw_at(j, t)
        if j < 0 or self.T < 2:
            return self.first
        if j >= self.T - 1:
            return self.last
        return self._horner([c[:, j] for c in self.coeffs], j, t)

    def _horner(self, cs: list[Tensor], j: int, t: float) -> Tensor:
        out = cs[-1]
        if len(cs) == 1:
            return out
        tau = self.local_time(j, t)
        for c in reversed(cs[:-1]):
            out = torch.addcmul(c, out, tau) if isinstance(tau, Tensor) else torch.add(c, out, alpha=tau)
        return out

    # -------------------------------------------------------------- projected u
    def _project(self, x: Tensor, with_bias: bool) -> Tensor:
        if self.weight is None:
            if self.channel_scale is not None:
                x = x * self.channel_scale
            return x + self.bias if with_bias and self.bias is not None else x
        rows = x.reshape(-1, x.shape[-1])
        if with_bias and self.bias is not None:
            u = torch.addmm(self.bias, rows, self.weight.t())
        else:
            u = torch.mm(rows, self.weight.t())
        if self.complex_halves:
            return torch.view_as_complex(u.view(*x.shape[:-1], -1, 2))
        return u.view(*x.shape[:-1], -1)

    def chunk_length(self) -> int:
        """Pieces per projected chunk: ``CHUNK``, fewer when that many would exceed ``CHUNK_BYTES``
        (B x P values per piece and power of tau), at least one."""
        n = self._chunk_len
        if n is None:
            B, D = self.coeffs[0].shape[0], self.coeffs[0].shape[-1]
            P = D if self.weight is None else self.weight.shape[0]
            dtype = self.coeffs[0].dtype if self.weight is None else torch.promote_types(self.coeffs[0].dtype,
                                                                                         self.weight.dtype)
            per_piece = B * P * len(self.coeffs) * dtype.itemsize
            n = self._chunk_len = max(1, min(CHUNK, CHUNK_BYTES // max(per_piece, 1)))
        return n

    def _chunk(self, c: int) -> list[list[Tensor]]:
        rows = self._chunks.get(c)
        if rows is None:
            n = self.chunk_length()
            j0, j1 = c * n, min(self.T - 1, (c + 1) * n)
            self._graphless |= self._differentiable and not torch.is_grad_enabled()
            if len(self._chunks) >= 2:  # before projecting the next: never three chunks at once
                self._chunks.pop(next(iter(self._chunks)))
            projected = [self._project(co[:, j0:j1], i == 0) for i, co in enumerate(self.coeffs)]
            rows = [list(p.unbind(1)) for p in projected]  # unbind once: a view per piece, no indexing per read
            self._chunks[c] = rows
        return rows

    def project_raw(self, x: Tensor, project: Any = None) -> Tensor:
        """u of raw rows x (B, D): by ``project`` when given, else by this input's own projection."""
        if project is not None:
            return project(x)
        return self._project(x, True)

    def projected(self, j: int, t: float) -> Tensor:
        """u(t) = x(t) U^T + b (B, P) on piece j, from the chunk-projected coefficients."""
        if self._graphless and torch.is_grad_enabled():
            self.clear()
        if j < 0 or self.T < 2:
            end = self._ends.get("first")
            if end is None:
                self._graphless |= self._differentiable and not torch.is_grad_enabled()
                end = self._ends["first"] = self._project(self.first, True)
            return end
        if j >= self.T - 1:
            end = self._ends.get("last")
            if end is None:
                self._graphless |= self._differentiable and not torch.is_grad_enabled()
                end = self._ends["last"] = self._project(self.last, True)
            return end
        n = self.chunk_length()
        rows = self._chunk(j // n)
        k = j % n
        return self._horner([r[k] for r in rows], j, t)

    def clear(self) -> None:
        """Forget the projected chunks (after the weights changed, or to release their graph)."""
        self._chunks.clear()
        self._ends.clear()
        self._graphless = False
        self.cursor = 0
