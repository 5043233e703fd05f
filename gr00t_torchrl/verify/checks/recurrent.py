"""Details 32-36 (recurrent / LSTM policies): not built yet, so each reports missing."""

from __future__ import annotations

from gr00t_torchrl.verify.registry import MISSING, detail

for _number, _name in [
    (32, "LSTM init: orthogonal weights, zero biases"), (33, "initial LSTM state zeros"),
    (34, "LSTM state reset where an episode ends"), (35, "mini-batches of whole env sequences"),
    (36, "hidden states recomputed during training"),
]:
    detail(_number, _name)(lambda audit: (MISSING, "the recurrent (LSTM) policy is not built yet; this policy is an MLP"))
