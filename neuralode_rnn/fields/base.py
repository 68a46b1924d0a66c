"""The Field contract: a recurrent vector field dh/dt = rhs(h, u) with u = input_map(x(t)).

Every recurrent family in this package is written as

    dh/dt = f(h, x(t)),   with the input entering only through an affine map u = U x + b,

so a field is two things: an ``input_map`` (an ``nn.Linear`` carrying U and b) and ``rhs(h, u)``.
Because every interpolation in :mod:`neuralode_rnn.paths` is linear in the samples, the input
map can be applied once to the path's coefficients (:meth:`Path.affine`) instead of at each
evaluation: :meth:`Field.driven_by` does exactly that.

``f.A`` and ``f.W`` are the composed (hidden, hidden) matrices of the common form
h' = A h + sigma(W h + u), acting on column vectors as h -> A h (a batch of row vectors is
multiplied by their transposes).
"""

from __future__ import annotations

import abc
import math

import torch
from torch import nn

import solvers

from ..parametrizations import keep_complex
from ..paths import CLOCK_DTYPE, Path

__all__ = ["DrivenField", "Field"]


class Field(nn.Module, abc.ABC):
    """Abstract recurrent vector field.

    Subclasses set ``input_size``, ``hidden_size``, ``input_map`` and implement :meth:`rhs`, and
    the properties :attr:`A` and :attr:`W`.  ``is_complex`` is True for fields with a complex
    hidden state (the unitary RNN).
    """

    is_complex: bool = False

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        for name, v in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int; got {v!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size

    # -------------------------------------------------------------- the contract
    @abc.abstractmethod
    def rhs(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """dh/dt for hidden state h (B, N) and projected input u = input_map(x) (B, P)."""

    @property
    @abc.abstractmethod
    def A(self) -> torch.Tensor:
        """(N, N) linear part of the field."""

    @property
    @abc.abstractmethod
    def W(self) -> torch.Tensor:
        """(N, N) hidden-to-hidden matrix inside the nonlinearity."""

    def structure(self) -> solvers.LinearActivation | None:
        """The field as h' = h A^T + sigma(h W^T + x U^T + b), or None when it has no such form.

        Fields that return a :class:`solvers.LinearActivation` here are integrated by the solvers'
        structured fast path (a custom autograd Function with a discrete adjoint); the others by
        the generic driven loop.  The default is None: declaring structure is opt-in, and a
        wrong declaration would silently change the model, so tests compare both paths.
        """
        return None

    def euler_step(self, h: torch.Tensor, u: torch.Tensor, dt: float) -> torch.Tensor:
        """One Euler step h + dt rhs(h, u) with the projected input u held.  A field may fuse it
        (e.g. a decaying field h' = g - h as ``lerp(h, g, dt)``, exact at dt = 1); the default is the
        plain step."""
        return h + dt * self.rhs(h, u)

    euler_loop = None
    """None, or a method ``euler_loop(h0, us, dts, ends)``: :meth:`euler_step` over S steps with inputs
    ``us`` and steps ``dts`` as one fused solve (e.g. one autograd Function with a hand-written
    backward), returning the states after ``ends`` steps; the driven term calls it for fixed-grid
    Euler solves under backprop (the unitary field has one)."""

    # -------------------------------------------------------------- helpers
    def _apply(self, fn, recurse: bool = True):
        # .to(torch.float64) / .double() keep a complex parameter complex (complex128) instead of
        # discarding its imaginary part (keep_complex); every complex parameter lives in a field
        return super()._apply(keep_complex(fn), recurse)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """dh/dt for hidden state h (B, N) and raw input x (B, input_size)."""
        return self.rhs(h, self.input_map(x))

    @property
    def feature_size(self) -> int:
        """Width of :meth:`features`, what a readout reads."""
        return 2 * self.hidden_size if self.is_complex else self.hidden_size

    def features(self, h: torch.Tensor) -> torch.Tensor:
        """Real features of a hidden state for a readout: h itself, or [Re h, Im h] if complex."""
        return torch.cat([h.real, h.imag], -1) if self.is_complex else h

    def state_dtype(self, real_dtype: torch.dtype) -> torch.dtype:
        """The hidden state's dtype for inputs of ``real_dtype``."""
        if not self.is_complex:
            return real_dtype
        return torch.complex128 if real_dtype == torch.float64 else torch.complex64

    def initial_state(self, batch_size: int, dtype: torch.dtype, device=None) -> torch.Tensor:
        """h0 = 0 of shape (B, N), complex for complex fields."""
        return torch.zeros(batch_size, self.hidden_size, dtype=self.state_dtype(dtype), device=device)

    def check_state(self, h: torch.Tensor, batch_size: int | None = None, name: str = "h",
                    dtype: torch.dtype | None = None) -> None:
        """Raise a clear error when a hidden state has the wrong shape, dtype or a non-finite entry.

        ``dtype``: the model's real dtype (its input map's); the state must then be
        ``state_dtype(dtype)`` (complex64 for a float32 unitary model).  The finiteness check is one
        host sync, made once per forward call before the solve."""
        if not isinstance(h, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(h).__name__}")
        want = (batch_size if batch_size is not None else h.shape[0] if h.dim() else -1, self.hidden_size)
        if h.dim() != 2 or tuple(h.shape) != want:
            raise ValueError(f"{name} must have shape (batch, hidden_size) = {want}; got {tuple(h.shape)}")
        expected = self.state_dtype(dtype) if dtype is not None else None
        if self.is_complex and not h.is_complex():
            raise TypeError(f"{name} must be complex ({expected or 'complex64 or complex128'}) for "
                            f"{type(self).__name__}, whose hidden state is complex; got a real tensor of dtype "
                            f"{h.dtype} (e.g. pass torch.complex({name}, torch.zeros_like({name})))")
        if not self.is_complex and not h.is_floating_point():
            raise TypeError(f"{name} must be a real floating tensor{f' ({expected})' if expected else ''} for "
                            f"{type(self).__name__}; got dtype {h.dtype}")
        if expected is not None and h.dtype != expected:
            raise TypeError(f"{name} must have the model's state dtype {expected}; got {h.dtype} (cast it with "
                            f"{name}.to({expected}), or the model with model.to({h.real.dtype if h.is_complex() else h.dtype}))")
        bad = ~torch.isfinite(h.detach())
        if bool(bad.any()):
            b, n = torch.nonzero(bad)[0].tolist()
            raise ValueError(f"{name} must be finite; got {name}[{b}, {n}] = {h.detach()[b, n].item()} (NaN or inf "
                             f"in an initial state gives NaN states and logits)")

    def driven_by(self, path: Path, clock: str = "time", project: bool = True) -> DrivenField:
        """This field driven by an input path: a module g(t, h) -> dh/dt for torchdiffeq/solvers.

        clock="time": t is real time (the path's knots are sample times; pass t in float64 for
        absolute timestamps such as epoch seconds, or drive ``path.relative()`` from t - t_1).
        clock="index": t is the knot index s, sample k at s = k (0-based) and the start one piece
        before the first sample at s = -1; g is scaled by dt/ds, the length of the current piece
        for each sample.  This lets one solver drive samples with different (B, T) times: each
        sample steps through its own pieces, exactly as it would alone.
        project=True projects the path's coefficients through the input map (chunk by chunk, on
        first use: fast per evaluation); False applies the input map at each evaluation (memory O(T D),
        what the adjoint wants to stay flat in T, and its gradients reach the map).
        The module wraps :meth:`driven_term`, the term the models' solves integrate.
        """
        return DrivenField(self, self.driven_term(path, clock, project=project))

    def driven_term(self, path: Path, clock: str = "time", knots: torch.Tensor | None = None,
                    project: bool = True) -> solvers.DrivenTerm:
        """``rhs(h, u(t))`` on the solvers' engine, the input read through ``path.input(clock, knots)``
        (the one reader of a path: ``solvers.PiecewiseInput``), u = input_map(x) projected chunk by
        chunk (``project``) or per evaluation; the field's :meth:`euler_step` is its one-stage step."""
        if not isinstance(path, Path):
            raise TypeError(f"path must be a neuralode_rnn Path (from nr.interpolate); got {type(path).__name__}")
        if path.channels != self.input_size:
            raise ValueError(f"the path has {path.channels} channels but the field expects input_size = "
                             f"{self.input_size}")
        lin = self.input_map
        if project:
            inputs = path.input(clock, knots, weight=lin.weight, bias=lin.bias, complex_halves=self.is_complex)
            return solvers.DrivenTerm(self.rhs, inputs, time_dtype=CLOCK_DTYPE, euler=self.euler_step,
                                      euler_loop=self.euler_loop)
        return solvers.DrivenTerm(self.rhs, path.input(clock, knots), project=lin, time_dtype=CLOCK_DTYPE,
                                  euler=self.euler_step, euler_loop=self.euler_loop)

    def discretize(self, method: str = "euler", step_size: float = 1.0):
        """The discrete cell h_k = Phi(h_{k-1}, x_k): one step of ``method`` of size ``step_size``
        with x_k held over the step.  Shares this field's parameters."""
        from ..cells import FieldCell

        return FieldCell(self, method=method, step_size=step_size)


class DrivenField(nn.Module):
    """g(t, h) = field.rhs(h, u(t)) as an ``nn.Module`` for torchdiffeq: the solvers' driven term
    (:meth:`Field.driven_by`), with the field as a submodule so that ``odeint_adjoint`` finds its
    parameters.

    The projection of the input is computed on first use, from the field's current parameters:
    build a new one after each optimiser step (models do, per forward pass).  t is a clock time (a
    float or a 0-d tensor, read as a float64 number: the input's piece is found by its cursor);
    with per-sample knots (B, T) on the "time" clock each sample reads its own piece at t.
    """

    def __init__(self, field: Field, term: solvers.DrivenTerm):
        super().__init__()
        self.field = field
        self.term = term
        self.batch_size = term.inputs.batch_size
        self.clock = "index" if term.inputs.rates is not None else "time"
        self._per_sample = term.inputs.rates is None and term.inputs.per_sample_knots

    def extra_tensors(self) -> tuple[torch.Tensor, ...]:
        """Tensors besides the field's parameters that g depends on and that require grad (the raw
        path's: an ``odeint_adjoint`` of a ``project=False`` module wants them in ``adjoint_params``)."""
        inputs = self.term.inputs
        return tuple(x for x in (*inputs.coeffs, inputs.first, inputs.last) if x.requires_grad)

    def _time(self, t):
        if isinstance(t, torch.Tensor):
            if t.numel() != 1:
                raise ValueError(f"t must be one clock time (a float or a 0-d tensor); got shape {tuple(t.shape)}")
            t = t.item()
        t = float(t)
        if math.isnan(t):
            raise ValueError("t must be a time, not NaN; got NaN")
        if self._per_sample:  # each sample on its own knots: the term reads (B,) times per sample
            return torch.full((self.batch_size,), t, dtype=CLOCK_DTYPE, device=self.term.inputs.first.device)
        return t

    def input_at(self, t) -> torch.Tensor:
        """u(t) (B, P), the projected input the field reads at clock time t (real: a complex field's
        input, read as M = P / 2 complex channels, is given back as [real parts, imaginary parts])."""
        u = self.term.input_at(self._time(t))
        return torch.cat([u.real, u.imag], -1) if u.is_complex() else u

    def rate_at(self, t) -> torch.Tensor | None:
        """(B, 1) dt/ds at clock time t on the "index" clock; None on the "time" clock."""
        return None if self.clock == "time" else self.term.rate_at(self._time(t))

    def forward(self, t, h: torch.Tensor) -> torch.Tensor:
        if h.dim() != 2 or h.shape[0] != self.batch_size or h.shape[1] != self.field.hidden_size:
            raise ValueError(f"hidden state must have shape (batch, hidden_size) = ({self.batch_size}, "
                             f"{self.field.hidden_size}); got {tuple(h.shape)}")
        return self.term.f(self._time(t), h)
