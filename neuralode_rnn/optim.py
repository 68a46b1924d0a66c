"""Training on the unitary group: the full-capacity Cayley step (Wisdom et al., NeurIPS 2016, Sec. 4).

A parameter W marked unitary (:func:`neuralode_rnn.parametrizations.mark_unitary`, as the
``UnitaryField``'s recurrence matrix is) is moved along the unitary group by a multiplicative step

    A = G W^H - W G^H                                   (skew-Hermitian, A^H = -A)
    W <- (I + lr/2 A)^{-1} (I - lr/2 A) W               (the Cayley transform of -lr A, times W)

which is unitary whenever W is, since (I + lr/2 A)^{-1}(I - lr/2 A) is the Cayley transform of a
skew-Hermitian matrix.  It is computed as one linear solve, X = solve(I + lr/2 A, W - lr/2 A W); no
inverse is formed.  To first order W <- W - lr A W, and the loss changes by
-lr/2 ||W^H G - G^H W||_F^2 <= 0: the step descends for a small enough lr.

Gradient convention.  For a real loss L of a complex W = X + iY, PyTorch stores in ``W.grad``
the conjugate Wirtinger derivative times two,

    W.grad = 2 dL/d(conj W) = dL/dX + i dL/dY,

(tests/test_optim.py checks this against central differences in X and in Y).  This is exactly
the paper's G: its reference code forms G = C + iD from the gradients C, D of the real and
imaginary blocks of W's real-composite form.  So ``lr_unitary`` here is the paper's lambda with no
rescaling.  (Had one used dL/d(conj W) = G/2 instead, lambda would have to be doubled.)  W acts on
column vectors, h -> W h, as in the paper.

The paper trains all other parameters with RMSprop and steps W with a fixed lambda, without
gradient clipping or normalisation; its copy-memory script uses the same value, 1e-3, for both
learning rates.  :class:`FullCapacityOptimizer` does that: the Cayley step for the unitary
parameters, any ``torch.optim`` optimiser for the rest.

The modern alternative is to parametrize W as the image of an unconstrained matrix under a map
onto the unitary group and use any optimiser: :func:`parametrize_unitary` registers
``torch.nn.utils.parametrizations.orthogonal`` (``"matrix_exp"`` or ``"cayley"``, both support
complex unitary matrices) on a field's unitary parameter, keeping its current value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from .parametrizations import is_unitary_parameter, unmark_unitary

__all__ = [
    "UNITARY_MAPS",
    "CayleyOptimizer",
    "FullCapacityOptimizer",
    "cayley_step",
    "parametrize_unitary",
    "unitary_parameters",
]

UNITARY_MAPS = ("matrix_exp", "cayley")


def unitary_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``module`` registered as unitary (in ``module.parameters()`` order)."""
    return [p for p in module.parameters() if is_unitary_parameter(p)]


def _check_lr(lr: Any, name: str) -> float:
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr >= 0.0:
        raise ValueError(f"{name} must be a non-negative number; got {lr!r}")
    return float(lr)


def cayley_step(W: torch.Tensor, G: torch.Tensor, lr: float) -> torch.Tensor:
    """One full-capacity step: (I + lr/2 A)^{-1} (I - lr/2 A) W with A = G W^H - W G^H.

    Args:
        W: (N, N) unitary matrix (complex, or real orthogonal: the same formula keeps it orthogonal).
        G: (N, N) its gradient in PyTorch's convention, dL/dRe W + i dL/dIm W (``W.grad``).
        lr: the step size lambda (Wisdom et al. 2016, eq. 11).

    Returns the new (N, N) matrix, computed by one linear solve in W's dtype.
    """
    if W.dim() != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"W must be a square (N, N) matrix; got shape {tuple(W.shape)}")
    if G.shape != W.shape:
        raise ValueError(f"the gradient G must have W's shape {tuple(W.shape)}; got {tuple(G.shape)}")
    GWh = G @ W.mH
    A = GWh - GWh.mH  # = G W^H - W G^H
    half = 0.5 * float(lr)
    eye = torch.eye(W.shape[0], dtype=W.dtype, device=W.device)
    return torch.linalg.solve(eye + half * A, W - half * (A @ W))


class CayleyOptimizer(torch.optim.Optimizer):
    """Plain Cayley steps on the unitary group for square unitary (or orthogonal) parameters.

    A ``torch.optim.Optimizer``, so LR schedulers and ``state_dict`` work; it keeps no state.
    Every parameter given must be square; use :class:`FullCapacityOptimizer` to mix with others.

    Args:
        params: the unitary parameters (or param groups).
        lr: lambda of :func:`cayley_step`; 1e-3 is the paper's copy-memory value.
        double: compute each step in double precision and round the result to the parameter's
            dtype (default True).  Why: the step is unitary in exact arithmetic, but a float32 solve
            and matmuls leave ~1e-7 relative error per step that accumulates; in tests/test_optim.py's
            1,000-step run, float32 arithmetic drifts to max|W^H W - I| = 2e-5 (N = 16), double
            arithmetic with float32 storage stays below 1e-6.  It changes nothing for complex128.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict], lr: float = 1e-3, double: bool = True):
        super().__init__(params, {"lr": _check_lr(lr, "lr"), "double": bool(double)})
        for group in self.param_groups:
            for p in group["params"]:
                if p.dim() != 2 or p.shape[0] != p.shape[1]:
                    raise ValueError(f"CayleyOptimizer steps square (N, N) matrices; got a parameter of shape "
                                     f"{tuple(p.shape)}: give it to the base optimiser instead")

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if group["double"] and p.dtype in (torch.complex64, torch.float32, torch.float16, torch.bfloat16):
                    wide = torch.complex128 if p.is_complex() else torch.float64
                    p.copy_(cayley_step(p.to(wide), p.grad.to(wide), group["lr"]))
                else:
                    p.copy_(cayley_step(p, p.grad, group["lr"]))
        return loss


class FullCapacityOptimizer:
    """Full-capacity training: Cayley steps for the unitary parameters, ``base`` for the rest.

    Parameters marked unitary (:func:`unitary_parameters`) are stepped by :class:`CayleyOptimizer`
    with ``lr_unitary``; all others go to ``base(other_params, **base_kwargs)`` untouched, so
    they follow exactly the trajectory ``base`` alone would give them.

    Args:
        params: parameters (e.g. ``model.parameters()``); param-group dicts are not accepted here.
        lr_unitary: lambda for the Cayley step (paper: a fixed value, no clipping).
        base: a ``torch.optim.Optimizer`` class; RMSprop as in the paper.
        double: Cayley steps computed in double precision (see :class:`CayleyOptimizer`).
        **base_kwargs: passed to ``base`` (e.g. ``lr=1e-3``).

    ``optimizer.unitary`` and ``optimizer.base`` are the two optimisers (``base`` is None when every
    parameter is unitary); ``param_groups`` lists both's groups (unitary first) for schedulers that
    only read them.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr_unitary: float = 1e-3,
                 base: type[torch.optim.Optimizer] = torch.optim.RMSprop, double: bool = True, **base_kwargs: Any):
        params = list(params)
        if any(isinstance(p, dict) for p in params):
            raise TypeError("FullCapacityOptimizer takes a flat iterable of parameters, not param groups; "
                            "build CayleyOptimizer and your base optimiser separately for per-group options")
        if not (isinstance(base, type) and issubclass(base, torch.optim.Optimizer)):
            raise TypeError(f"base must be a torch.optim.Optimizer class (e.g. torch.optim.RMSprop); got {base!r}")
        unitary = [p for p in params if is_unitary_parameter(p)]
        others = [p for p in params if not is_unitary_parameter(p)]
        if not unitary and not others:
            raise ValueError("FullCapacityOptimizer got an empty parameter list")
        self.unitary = CayleyOptimizer(unitary, lr=lr_unitary, double=double) if unitary else None
        self.base = base(others, **base_kwargs) if others else None

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [o for o in (self.unitary, self.base) if o is not None]

    @property
    def param_groups(self) -> list[dict]:
        return [g for o in self.optimizers for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for o in self.optimizers:
            o.step()
        return loss

    def state_dict(self) -> dict:
        return {"unitary": None if self.unitary is None else self.unitary.state_dict(),
                "base": None if self.base is None else self.base.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        for key, o in (("unitary", self.unitary), ("base", self.base)):
            if (o is None) != (state.get(key) is None):
                raise ValueError(f"state_dict[{key!r}] does not match this optimiser's {key} part")
            if o is not None:
                o.load_state_dict(state[key])


def parametrize_unitary(module: nn.Module, name: str = "U", orthogonal_map: str = "matrix_exp") -> nn.Module:
    """Replace the unitary parameter ``module.<name>`` by a map onto the unitary group.

    Registers ``torch.nn.utils.parametrizations.orthogonal(module, name, orthogonal_map)`` with
    the trivialization (W = B exp(X - X^H) or B cayley(X - X^H), B the current value, X starting
    at 0), so ``module.<name>`` keeps its current value, is unitary for any X, and is trained by
    any optimiser (e.g. Adam/RMSprop on all parameters).  The new unconstrained parameter is not
    marked unitary, so :class:`FullCapacityOptimizer` hands it to the base optimiser.

    Args:
        module: e.g. a ``UnitaryField``.  name: the attribute holding the (N, N) matrix.
        orthogonal_map: "matrix_exp" or "cayley" (torch's "householder" has no complex support).

    Returns ``module``.

    A recurrent model reads W once per time step, and each read recomputes the map (a matrix
    exponential or solve): wrap the forward pass in ``torch.nn.utils.parametrize.cached()`` so W is
    computed once per pass, e.g. ``with cached(): loss = criterion(model(x), y)``.
    """
    if orthogonal_map not in UNITARY_MAPS:
        raise ValueError(f"unknown orthogonal_map {orthogonal_map!r}; expected one of "
                         f"{', '.join(map(repr, UNITARY_MAPS))}")
    p = getattr(module, name, None)
    if not isinstance(p, nn.Parameter):
        raise TypeError(f"{type(module).__name__}.{name} must be an nn.Parameter to parametrize; got "
                         f"{type(p).__name__}")
    value = p.detach().clone()
    torch.nn.utils.parametrizations.orthogonal(module, name, orthogonal_map=orthogonal_map)
    original = getattr(module.parametrizations, name).original
    unmark_unitary(original)  # it is now an unconstrained matrix: not for the Cayley step
    with torch.no_grad():
        # torch re-orthonormalises by QR a matrix it finds "not orthogonal" at a tight tolerance;
        # keep the exact current value as the base B instead.
        getattr(module.parametrizations, name)[0].base.copy_(value)
    return module
