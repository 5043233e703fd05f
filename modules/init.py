"""Weight initialization (detail 2)."""

from __future__ import annotations

import math

from torch import nn

HIDDEN_GAIN = math.sqrt(2.0)
POLICY_OUTPUT_GAIN = 0.01
VALUE_OUTPUT_GAIN = 1.0


def orthogonal_init_(mlp: nn.Module, output_gain: float, hidden_gain: float = HIDDEN_GAIN) -> nn.Module:
    """Orthogonal weights and zero biases: `hidden_gain` on hidden layers, `output_gain` on the last."""
    linears = [m for m in mlp.modules() if isinstance(m, nn.Linear)]
    for index, layer in enumerate(linears):
        gain = output_gain if index == len(linears) - 1 else hidden_gain
        nn.init.orthogonal_(layer.weight, gain=gain)
        nn.init.zeros_(layer.bias)
    return mlp
