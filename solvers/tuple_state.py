"""Tuple states, as torchdiffeq handles them: flattened into one tensor (and back), tolerances
one entry per state, the default error norm the max of the parts' RMS norms."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .controller import rms_norm
from .odeint_args import check_y0
from .terms import FuncTerm


class Flat:
    """A tuple state flattened into one tensor, as torchdiffeq does, and back."""

    def __init__(self, y0: tuple) -> None:
        if not y0:
            raise ValueError("y0 must not be an empty tuple")
        for i, y in enumerate(y0):
            check_y0(y, f"y0[{i}]")
        self.shapes = [y.shape for y in y0]
        self.dtypes = [y.dtype for y in y0]
        self.sizes = [y.numel() for y in y0]

    def flat(self, ys: Sequence[Tensor]) -> Tensor:
        return torch.cat([y.reshape(-1) for y in ys])

    def split(self, y: Tensor, lead: tuple[int, ...] = ()) -> tuple[Tensor, ...]:
        parts = y.split(self.sizes, dim=-1)
        return tuple(p.view((*lead, *s)) for p, s in zip(parts, self.shapes))

    def field(self, func: Callable) -> Callable[[Tensor, Tensor], Tensor]:
        """The flattened field of a tuple state, as torchdiffeq's."""
        return lambda t, y: torch.cat([v.reshape(-1) for v in func(t, self.split(y))])

    def tol(self, name: str, tol: Any) -> Any:
        # torchdiffeq's rule: an iterable tolerance (also a 1-D tensor) holds one entry per state
        if isinstance(tol, Tensor) and tol.ndim == 0:
            return tol
        try:
            entries = tuple(tol)
        except TypeError:
            return tol
        if len(entries) != len(self.shapes):
            raise ValueError(f"a tuple {name} needs one entry per state of the tuple y0 ({len(self.shapes)}); "
                             f"got {len(entries)}")
        return torch.cat([torch.as_tensor(x, dtype=torch.float64).expand(n) for x, n in zip(entries, self.sizes)])


def install_first_call_check(term: FuncTerm, y0: Tensor, flat: Flat | None, user: Callable) -> None:
    """Check what ``func`` returns on its first call (a tensor of y0's shape), then hand the term the
    plain function: no extra evaluation and no cost per step after the first."""
    inner = term.func

    def checked(t: Tensor, y: Tensor) -> Tensor:
        if flat is not None:
            out = user(t, flat.split(y))
            if not isinstance(out, (tuple, list)) or len(out) != len(flat.shapes):
                raise TypeError(f"func must return a tuple of {len(flat.shapes)} tensors for a tuple y0; got "
                                f"{type(out).__name__}" + (f" of length {len(out)}" if isinstance(out, (tuple, list))
                                                          else ""))
            for i, (o, s) in enumerate(zip(out, flat.shapes)):
                if not isinstance(o, Tensor):
                    raise TypeError(f"func must return tensors; got {type(o).__name__} at position {i}")
                if o.shape != s:
                    raise ValueError(f"func returned shape {tuple(o.shape)} at position {i} whilst y0[{i}] has shape "
                                     f"{tuple(s)}")
            result = torch.cat([o.reshape(-1) for o in out])
        else:
            result = inner(t, y)
            if not isinstance(result, Tensor):
                raise TypeError(f"func must return a torch.Tensor; got {type(result).__name__}")
            if result.shape != y.shape:
                raise ValueError(f"func returned shape {tuple(result.shape)} whilst y0 has shape {tuple(y.shape)}")
        term.func = inner
        return result

    term.func = checked


def mixed_norm(flat: Flat) -> Callable[[Tensor], Tensor]:
    def norm(x: Tensor) -> Tensor:
        parts = flat.split(x)
        return torch.stack([rms_norm(p).to(torch.float64) for p in parts if p.numel()]).max()

    return norm


def tuple_adjoint_norm(norm: Callable, flat: Flat) -> Callable:
    """A user's adjoint norm for a tuple state gets (t, *y, *adj_y, *adj_params) (torchdiffeq's layout)."""
    def wrapped(parts: tuple) -> Any:
        t, y, a, *ps = parts
        return norm((t, *flat.split(y), *flat.split(a), *ps))

    return wrapped
