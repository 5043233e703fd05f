"""Reward scaling by the running std of the discounted return, then clipping (details 30-31)."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torchrl.envs.transforms import Transform

from gr00t_torchrl.transforms.running_stats import RunningMeanStd


class RewardScaling(Transform):
    """Divides each reward by the running std of the discounted return, then clips it.

    Per env, the discounted return G <- gamma * G + r is accumulated; the std of all G seen so far
    scales the reward (not the std of the rewards themselves, which is what TorchRL's VecNorm
    uses). G restarts at 0 after an episode ends, by termination or by truncation: a new episode's
    return owes nothing to the last one. Returns and statistics are buffers, so checkpoints carry
    them and a resumed run continues exactly.
    """

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0, eps: float = 1e-8) -> None:
        super().__init__(in_keys=["reward"], out_keys=["reward"])
        self.gamma = gamma
        self.clip = clip
        self.eps = eps
        self.frozen = False
        self.stats = RunningMeanStd(())
        self.register_buffer("returns", torch.zeros(num_envs, 1, dtype=torch.float64))

    def freeze(self) -> "RewardScaling":
        self.frozen = True
        return self

    def unfreeze(self) -> "RewardScaling":
        self.frozen = False
        return self

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        reward = next_tensordict.get("reward")
        done = next_tensordict.get("done").reshape(self.returns.shape)
        returns = self.returns * self.gamma + reward.reshape(self.returns.shape).to(torch.float64)
        if not self.frozen:
            self.stats.update(returns)
        scaled = reward / self.stats.std(self.eps).to(reward.dtype)
        next_tensordict.set("reward", scaled.clamp(-self.clip, self.clip))  # detail 31
        self.returns.copy_(returns.masked_fill(done, 0.0))
        return next_tensordict

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        return tensordict_reset
