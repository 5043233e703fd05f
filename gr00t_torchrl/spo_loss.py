"""TorchRL's ClipPPOLoss with SPO's quadratic pull-back in place of the clip for negative advantages."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.ppo import _broadcast_advantage_to_log_weight


class NegativeSPOLoss(ClipPPOLoss):
    """ClipPPOLoss whose negative advantages meet SPO's penalty instead of the ratio's floor (FPO++'s asymmetric
    objective, ASPO).

    Positive advantages keep PPO's objective, min(r A, clip(r, ., 1 + eps_high) A). Negative ones get SPO's
    (Xie et al. 2024) r A - |A| (r - 1)^2 / (2 eps), which peaks at r = 1 - eps and pulls a ratio that fell below
    it back, where the clip only stops pushing (its gradient is 0 there). With a flow head a negative advantage
    raises the flow-matching loss at the stored pair without bound; the pull-back bounds it.

    The library computes the ratios and the positive side: the floor is removed (negative advantages are the
    only ones it acts on), and the penalty, from the ratios and advantages this call saw, is added to
    "loss_objective" over the same elements and with the same mean.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._seen: dict[str, torch.Tensor] = {}

    @property
    def spo_epsilon(self) -> torch.Tensor:
        """SPO's eps: the lower clip range the loss was built with (no longer a floor here)."""
        return self.clip_epsilon_low if self._asymmetric_clip else self.clip_epsilon

    @property
    def _clip_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        high = self.clip_epsilon_high if self._asymmetric_clip else self.clip_epsilon  # the library's two buffers
        return torch.full_like(high, -torch.inf), high.log1p()

    def _maybe_normalize_advantage(self, advantage: torch.Tensor, tensordict: TensorDictBase, *,
                                   update_norm: bool) -> torch.Tensor:
        self._seen["advantage"] = super()._maybe_normalize_advantage(advantage, tensordict, update_norm=update_norm)
        return self._seen["advantage"]

    def _log_weight(self, tensordict: TensorDictBase, adv_shape: torch.Size):
        out = super()._log_weight(tensordict, adv_shape=adv_shape)
        self._seen["log_weight"] = out[0]
        return out

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        out = super().forward(tensordict)
        advantage, log_weight = self._seen.pop("advantage"), self._seen.pop("log_weight")
        advantage = _broadcast_advantage_to_log_weight(advantage, log_weight)  # over per-pair ratios, as the loss does
        penalty = (-advantage).clamp(min=0.0) * (log_weight.exp() - 1).square() / (2 * self.spo_epsilon)
        out.set("loss_objective", out.get("loss_objective") + penalty.mean())
        return out
