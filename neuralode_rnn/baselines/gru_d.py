"""GRU-D (Che et al. 2018, "Recurrent neural networks for multivariate time series with missing values").

Written out because torch has no such cell.  With mask m_t^d (1 = observed), the time since the
channel's previous observation delta_t^d (``inputs.time_since_observation``, eq. 2), the last
observation x_last^d and the empirical mean x_mean^d of the channel:

    gamma_x = exp(-max(0, w_x * delta_t + b_x))            (w_x diagonal: one decay per channel, eq. 3)
    gamma_h = exp(-max(0, W_h delta_t + b_h))              (W_h: hidden x input)
    x_hat_t = m_t x_t + (1 - m_t)(gamma_x x_last + (1 - gamma_x) x_mean)          (eq. 4)
    h_hat   = gamma_h * h_{t-1}                                                   (eq. 5)
    r_t = sigmoid(W_r x_hat_t + U_r h_hat + V_r m_t + b_r)
    z_t = sigmoid(W_z x_hat_t + U_z h_hat + V_z m_t + b_z)
    h~_t = tanh(W x_hat_t + U (r_t * h_hat) + V m_t + b)
    h_t = (1 - z_t) * h_hat + z_t * h~_t                                          (eq. 6)

A missing value decays from the last observation to the empirical mean as time passes, and the
hidden state decays toward zero.  ``x_mean`` is a buffer, zero by default: the mean of data
standardised on its training split (every task here) is zero; :meth:`GRUD.fit_mean` sets it from
training values otherwise.  Before a channel's first observation x_last = x_mean.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..inputs import check_inputs, forward_fill, observed_mask, time_since_observation
from ..models import last_observed_index

__all__ = ["GRUD"]


class GRUD(nn.Module):
    """GRU-D with a linear readout of the state at each sample's last observation.

    Call: ``model(values (B, T, D), times None | (T,) | (B, T)) -> (B, output_size)``; NaN = missing.

    Parameters: ``decay_x_weight``/``decay_x_bias`` (D each: w_x, b_x), ``decay_h`` (Linear D -> H:
    W_h, b_h), ``input_gates`` (Linear D -> 3H: [W_r; W_z; W] with [b_r; b_z; b]), ``mask_gates``
    (Linear D -> 3H, no bias: [V_r; V_z; V]), ``hidden_gates`` (Linear H -> 2H, no bias: [U_r; U_z]),
    ``hidden_candidate`` (Linear H -> H, no bias: U).  Decays start positive (w_x ~ U[0, 1/sqrt(D)],
    b = 0) so that max(0, .) is active and passes gradient from the first step.
    """

    reads_times = True

    def __init__(self, input_size: int, hidden_size: int, output_size: int):
        super().__init__()
        D, H = input_size, hidden_size
        self.input_size, self.hidden_size = D, H
        self.decay_x_weight = nn.Parameter(torch.rand(D) / math.sqrt(D))
        self.decay_x_bias = nn.Parameter(torch.zeros(D))
        self.decay_h = nn.Linear(D, H)
        self.input_gates = nn.Linear(D, 3 * H)
        self.mask_gates = nn.Linear(D, 3 * H, bias=False)
        self.hidden_gates = nn.Linear(H, 2 * H, bias=False)
        self.hidden_candidate = nn.Linear(H, H, bias=False)
        self.readout = nn.Linear(H, output_size)
        self.register_buffer("x_mean", torch.zeros(D))

    @torch.no_grad()
    def fit_mean(self, values: torch.Tensor) -> GRUD:
        """Set x_mean to the per-channel mean of the observed entries of (training) ``values`` (N, T, D)."""
        flat = values.reshape(-1, values.shape[-1]).to(torch.float64)
        mean = torch.nanmean(flat, dim=0)
        self.x_mean.copy_(torch.nan_to_num(mean, nan=0.0).to(self.x_mean.dtype))
        return self

    def decays(self, delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """gamma_x (B, T, D) and gamma_h (B, T, H) for delta (B, T, D)."""
        gamma_x = torch.exp(-torch.relu(delta * self.decay_x_weight + self.decay_x_bias))
        gamma_h = torch.exp(-torch.relu(self.decay_h(delta)))
        return gamma_x, gamma_h

    def imputed(self, values: torch.Tensor, times: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x_hat (B, T, D), m (B, T, D), gamma_h (B, T, H)): eq. 4 and the hidden decays."""
        check_inputs(values, times, self.input_size)
        m = observed_mask(values).to(values.dtype)
        delta = time_since_observation(values, times)
        mean = self.x_mean.to(values.dtype)
        x_last = forward_fill(values, initial=mean)
        gamma_x, gamma_h = self.decays(delta)
        x = torch.nan_to_num(values, nan=0.0)
        x_hat = m * x + (1 - m) * (gamma_x * x_last + (1 - gamma_x) * mean)
        return x_hat, m, gamma_h

    def trajectory(self, values: torch.Tensor, times: torch.Tensor | None = None,
                   h0: torch.Tensor | None = None, steps: int | None = None) -> torch.Tensor:
        """Hidden states (B, steps, hidden) after each of the first ``steps`` (default all T) steps."""
        x_hat, m, gamma_h = self.imputed(values, times)
        B, T, _ = values.shape
        H = self.hidden_size
        gates_in = self.input_gates(x_hat) + self.mask_gates(m)  # (B, T, 3H): the input side, all steps at once
        h = values.new_zeros(B, H) if h0 is None else h0
        states = []
        for k in range(T if steps is None else steps):
            h_hat = gamma_h[:, k] * h
            g = gates_in[:, k]
            u = self.hidden_gates(h_hat)
            r = torch.sigmoid(g[:, :H] + u[:, :H])
            z = torch.sigmoid(g[:, H:2 * H] + u[:, H:])
            candidate = torch.tanh(g[:, 2 * H:] + self.hidden_candidate(r * h_hat))
            h = (1 - z) * h_hat + z * candidate
            states.append(h)
        return torch.stack(states, dim=1)

    def forward(self, values: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        last = last_observed_index(values)
        states = self.trajectory(values, times, steps=int(last.max()) + 1)  # nothing after the last observation
        return self.readout(states[torch.arange(states.shape[0], device=states.device), last])
