"""Per-env episode return and length of the raw reward, for logging."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torchrl.data import Composite, Unbounded
from torchrl.envs.transforms import Transform


class EpisodeStatistics(Transform):
    """Writes the running `episode_return` and `episode_length` of each env into every step.

    Placed before reward scaling, it sums the env's own reward. Where `("next", "done")` is set,
    the two entries hold the finished episode's totals. Accumulators are buffers (checkpointed),
    unlike TorchRL's RewardSum which keeps them in the carried tensordict.
    """

    def __init__(self, num_envs: int) -> None:
        super().__init__(in_keys=["reward"], out_keys=["episode_return", "episode_length"])
        self.register_buffer("running_return", torch.zeros(num_envs, 1, dtype=torch.float64))
        self.register_buffer("running_length", torch.zeros(num_envs, 1, dtype=torch.int64))

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        reward = next_tensordict.get("reward").reshape(self.running_return.shape)
        done = next_tensordict.get("done").reshape(self.running_return.shape)
        self.running_return.add_(reward.to(torch.float64))
        self.running_length.add_(1)
        self._written = (self.running_return.to(torch.float32), self.running_length.clone())
        next_tensordict.set("episode_return", self._written[0])
        next_tensordict.set("episode_length", self._written[1])
        self.running_return.masked_fill_(done, 0.0)
        self.running_length.masked_fill_(done, 0)
        return next_tensordict

    def _post_step_mdp_hooks(
        self, tensordict: TensorDictBase, tensordict_: TensorDictBase
    ) -> tuple[TensorDictBase, TensorDictBase]:
        # With TorchRL's native auto-reset (Isaac-API envs), every observation entry of a done row is
        # blanked (NaN, or 0 for integers) after the transforms ran, these two included: the finished
        # episode's totals are put back.
        written = self.__dict__.pop("_written", None)
        if written is not None:
            tensordict.set(("next", "episode_return"), written[0])
            tensordict.set(("next", "episode_length"), written[1])
        return tensordict, tensordict_

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        tensordict_reset.set("episode_return", self.running_return.to(torch.float32))
        tensordict_reset.set("episode_length", self.running_length.clone())
        return tensordict_reset

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        shape = (*observation_spec.shape, 1)
        device = observation_spec.device
        observation_spec["episode_return"] = Unbounded(shape=shape, dtype=torch.float32, device=device)
        observation_spec["episode_length"] = Unbounded(shape=shape, dtype=torch.int64, device=device)
        return observation_spec
