"""Stochastic recurrent fields: any field as an SDE, and a model that trains with noise on.

Following the Noisy RNN (Lim, Erichson, Hodgkinson, Mahoney; NeurIPS 2021), a recurrent field
f(t, h) = rhs(h, u(t)) becomes the Ito SDE

    dh = f(t, h) dt + sigma dB                      (noise="additive":       g = sigma I)
    dh = f(t, h) dt + sigma diag(h) dB              (noise="multiplicative": g = sigma diag(h))

with B a standard Brownian motion with one channel per hidden unit ("diagonal" noise in torchsde's
terms).  One Euler-Maruyama step of size eps with a held input is the paper's noisy discrete
cell h_k = h_{k-1} + eps f(h_{k-1}, x_k) + sigma sqrt(eps) xi_k (times h_{k-1} for multiplicative
noise).  The noise acts as a regulariser: train with it on, evaluate the deterministic model
(sigma = 0, the ODE) - :class:`StochasticRNN` does exactly that through ``train()`` / ``eval()``.

Complex fields (the unitary RNN) are out of scope: torchsde integrates real (batch, state) states.
"""

from __future__ import annotations

import torch
from torch import nn

import solvers
import solvers.sde as _sde

from .cells import check_number
from .fields.base import DrivenField, Field
from .models import (
    ContinuousRNN,
    HoldsSolveSpec,
    batch_inputs,
    check_finite_states,
    check_spec,
    gather_time,
    last_observed_index,
    share_modules,
    solver_setting,
    unbatched_state,
)
from .paths import Path, solve_clock

__all__ = ["NOISES", "NoisyField", "StochasticRNN"]

NOISES = ("additive", "multiplicative")


def _check_noise(noise: str, sigma: float) -> None:
    if noise not in NOISES:
        raise ValueError(f"unknown noise {noise!r}; expected one of {', '.join(map(repr, NOISES))}")
    check_number("sigma", sigma, allow_zero=True)


class NoisyField(nn.Module):
    """A field driven by a path, as a torchsde SDE: drift f(t, h), diffusion sigma (h) per unit.

    Args:
        field: a real :class:`Field`.
        path: the input path (shared knots; see ``Field.driven_by``).
        sigma: noise level.
        noise: "additive" (g = sigma I) or "multiplicative" (g = sigma diag(h)).
        clock: as for ``driven_by``; on the "index" clock the diffusion is scaled by
            sqrt(dt/ds), the time change of a Brownian motion.
        knots: the solve clock's knots (``paths.solve_clock``) the path is read on, when not its own.

    The drift is ``field.driven_term(path, clock, knots)``: the term (and the one input reader,
    ``Path.input``) the deterministic models integrate.

    Attributes ``noise_type = "diagonal"`` and ``sde_type = "ito"`` make it a torchsde SDE.
    """

    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(self, field: Field, path: Path, sigma: float = 0.1, noise: str = "additive", clock: str = "time",
                 knots: torch.Tensor | None = None):
        super().__init__()
        if not isinstance(field, Field):
            raise TypeError(f"field must be a neuralode_rnn Field; got {type(field).__name__}")
        if field.is_complex:
            raise TypeError(f"{type(field).__name__} has a complex hidden state; SDEs here are real "
                            f"(torchsde integrates real (batch, state) tensors): use a real field")
        _check_noise(noise, sigma)
        self.driven = DrivenField(field, field.driven_term(path, clock, knots))
        self.sigma = float(sigma)
        self.noise = noise

    def f(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.driven(t, h)

    def g(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        g = torch.full_like(h, self.sigma) if self.noise == "additive" else self.sigma * h
        rate = self.driven.rate_at(t)  # the drift's own clock rate (index clock), None in real time
        return g if rate is None else g * rate.sqrt().to(h.dtype)


class StochasticRNN(HoldsSolveSpec, nn.Module):
    """A :class:`ContinuousRNN` whose hidden state is an SDE while training, its ODE when evaluating.

    In ``train()`` mode (or always with ``noise_at_eval=True``) the states solve
    dh = f dt + g dB with ``sde_method`` (Euler-Maruyama by default) on the knot-aligned grid of
    step ``step_size`` (one step per sample gap when None), a fresh Brownian path per call; in
    ``eval()`` mode the model is exactly its deterministic ``base`` ContinuousRNN (sigma = 0,
    solved with ``method``).  ``sigma = 0`` in train mode gives the ODE's Euler solution to
    rounding, which the tests check.

    Args:
        field: a real Field.  output_size: readout width.
        sigma, noise: the diffusion (see :class:`NoisyField`).
        method, step_size, interpolation, rtol, atol, gradient: as for ContinuousRNN (the
            deterministic model; ``step_size`` is also the SDE step).
        sde_method: torchsde method for the noisy solve ("euler", "milstein", "srk").
        adjoint_sde: solve the SDE with torchsde's adjoint (needs ``step_size``).
        noise_at_eval: keep the noise on in eval mode (e.g. to measure the noisy model).
    """

    def __init__(self, field: Field, output_size: int, sigma: float = 0.1, noise: str = "additive",
                 method: str = "euler", step_size: float | None = None, interpolation: str = "hold",
                 rtol: float = 1e-3, atol: float = 1e-5, gradient: str | None = None, sde_method: str = "euler",
                 adjoint_sde: bool = False, noise_at_eval: bool = False):
        super().__init__()
        if getattr(field, "is_complex", False):
            raise TypeError(f"{type(field).__name__} has a complex hidden state; StochasticRNN needs a real field")
        _check_noise(noise, sigma)
        if sde_method not in _sde.SDE_METHODS:
            raise ValueError(f"unknown sde_method {sde_method!r}; expected one of {', '.join(sorted(_sde.SDE_METHODS))}")
        self.base = ContinuousRNN(field, output_size, method=method, step_size=step_size,
                                  interpolation=interpolation, rtol=rtol, atol=atol, gradient=gradient)
        self.sigma = float(sigma)
        self.noise = noise
        self.sde_method = sde_method
        self.adjoint_sde = bool(adjoint_sde)
        self.noise_at_eval = bool(noise_at_eval)

    @property
    def field(self) -> Field:
        return self.base.field

    @property
    def spec(self) -> solvers.SolveSpec:
        """The deterministic model's solve specification (``step_size`` is also the SDE step)."""
        return self.base.spec

    def with_solver(self, **changes) -> StochasticRNN:
        """This model with ``spec.replace(**changes)``, sharing its field and readout (not copies);
        see :meth:`ContinuousRNN.with_solver`."""
        return share_modules(self, base=self.base.with_solver(**changes))

    max_steps = solver_setting("max_steps")

    @property
    def readout(self) -> nn.Linear:
        return self.base.readout

    @property
    def noisy(self) -> bool:
        """Whether the next solve is stochastic."""
        return self.training or self.noise_at_eval

    @property
    def nfe(self) -> int:
        return self.base.nfe

    def path(self, values: torch.Tensor, times: torch.Tensor | None = None) -> Path:
        return self.base.path(values, times)

    def solve_path(self, path: Path, h0: torch.Tensor | None = None, bm=None, *,
                   spec: solvers.SolveSpec | None = None) -> torch.Tensor:
        """Hidden states (B, T, N) at the knots: the SDE's when :attr:`noisy`, else the ODE's;
        ``spec``: another solve specification for this call (its ``step_size`` is the SDE step)."""
        if not self.noisy:
            return self.base.solve_path(path, h0, spec=spec)
        spec = self.spec if spec is None else check_spec(spec)
        if path.per_sample:
            raise ValueError("StochasticRNN supports shared sample times (T,) only; got per-sample (B, T) times "
                             "(evaluate such data with the deterministic model, model.eval())")
        B, T = path.batch_size, path.length
        if h0 is None:
            h0 = self.field.initial_state(B, path.dtype, path.device)
        else:
            self.field.check_state(h0, B, name="h0", dtype=path.dtype)
        # the models' clock (real time from the first sample, in float64) and their input term
        knots, t = solve_clock(path, range(T))
        sde = NoisyField(self.field, path, self.sigma, self.noise, knots=knots)
        if bm is None:
            # seeded from torch's RNG, so torch.manual_seed makes training reproducible
            entropy = int(torch.randint(0, 2 ** 31 - 1, ()).item())
            bm = _sde.brownian_interval(float(t[0]), float(t[-1]), B, self.field.hidden_size, dtype=h0.dtype,
                                        device=h0.device, entropy=entropy, method=self.sde_method)
        out = _sde.sdeint(sde, h0, t, method=self.sde_method, dt=spec.step_size, adjoint=self.adjoint_sde,
                          bm=bm, jump_t=knots)
        states = out[1:].transpose(0, 1)
        check_finite_states(states, self, lambda: f"the noisy solve ({self.sde_method!r}, sigma={self.sigma:g}) "
                                                  f"{self.base.instability(path, spec)}")
        return states

    def trajectory(self, values: torch.Tensor, times: torch.Tensor | None = None,
                   h0: torch.Tensor | None = None, bm=None, *, spec: solvers.SolveSpec | None = None) -> torch.Tensor:
        """Hidden states (B, T, N) at the sample times; inputs as for ContinuousRNN (unbatched,
        cast to the model's dtype, empty batches, ``spec``)."""
        if not self.noisy:
            return self.base.trajectory(values, times, h0, spec=spec)
        values, times, unbatched = batch_inputs(values, times, self.base.dtype)
        if values.shape[0] == 0:
            return self.base.trajectory(values, times, h0, spec=spec)
        states = self.solve_path(self.base.path(values, times), unbatched_state(h0, unbatched), bm, spec=spec)
        return states[0] if unbatched else states

    def forward(self, values: torch.Tensor, times: torch.Tensor | None = None,
                h0: torch.Tensor | None = None, bm=None, *, spec: solvers.SolveSpec | None = None) -> torch.Tensor:
        """Readout (B, output_size) of each sample's last observed state (``spec``: as ``trajectory``)."""
        if not self.noisy:
            return self.base(values, times, h0, spec=spec)
        values, times, unbatched = batch_inputs(values, times, self.base.dtype)
        if values.shape[0] == 0:
            return self.base(values, times, h0, spec=spec)
        states = self.solve_path(self.base.path(values, times), unbatched_state(h0, unbatched), bm, spec=spec)
        out = self.readout(self.field.features(gather_time(states, last_observed_index(values))))
        return out[0] if unbatched else out
