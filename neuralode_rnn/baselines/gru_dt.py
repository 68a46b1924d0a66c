"""GRU-dt: a GRU that reads the time since the previous observation as one more input channel.

The standard discrete baseline for irregular series (Kidger et al. 2020, "GRU-Δt"; Rubanova et
al. 2019, "RNN-Δt"): step k reads [x_k, t_k - t_{k-1}], with t_1 - t_0 = 0.  Missing channels are
carried forward causally (``inputs.forward_fill``, 0 before a channel's first observation: the
training mean of standardised data).  torch.nn.GRU does the recurrence: there is nothing in it
specific to this project.
"""

from __future__ import annotations

import torch
from torch import nn

from ..inputs import check_inputs, forward_fill, step_gaps
from ..models import check_plain_state, last_observed_index

__all__ = ["GRUdt"]


class GRUdt(nn.Module):
    """GRU over [x_k, t_k - t_{k-1}], linear readout of the state at each sample's last observation.

    Call: ``model(values (B, T, D), times None | (T,) | (B, T)) -> (B, output_size)``; NaN = missing.
    """

    reads_times = True  # the training loop must feed it the samples' times (zoo.uses_times)

    def __init__(self, input_size: int, hidden_size: int, output_size: int):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.rnn = nn.GRU(input_size + 1, hidden_size, batch_first=True)
        self.readout = nn.Linear(hidden_size, output_size)

    def step_inputs(self, values: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, D + 1): the causally filled values and the gap before each step."""
        check_inputs(values, times, self.input_size)
        return torch.cat([forward_fill(values), step_gaps(values, times).unsqueeze(-1)], dim=-1)

    def trajectory(self, values: torch.Tensor, times: torch.Tensor | None = None,
                   h0: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states (B, T, hidden) after each step."""
        x = self.step_inputs(values, times)
        if h0 is not None:
            check_plain_state(h0, (values.shape[0], self.hidden_size), values.dtype)
        out, _ = self.rnn(x) if h0 is None else self.rnn(x, h0.unsqueeze(0))
        return out

    def forward(self, values: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        states = self.trajectory(values, times)
        last = last_observed_index(values)
        return self.readout(states[torch.arange(states.shape[0], device=states.device), last])
