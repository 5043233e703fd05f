"""Action chunks: the policy outputs H actions at once, as GR00T's action head does (chunks of 16)."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.data import Bounded, Composite
from torchrl.envs.transforms import Transform


class ActionChunk(Transform):
    """The env takes a chunk of `horizon` actions [H * A] per policy step and executes it.

    - `execution="open_loop"`: the H actions are applied one after the other within one policy step; the
      step's reward is their rewards' sum, up to the first that ends the episode (later ones, stepped in
      the env's next episode, are masked), and the step is done if any of them ended it. PPO's discount
      then applies per chunk. For envs that reset finished envs inside `step` (the Isaac Lab API): after
      a mid-chunk end, the observation returned is that of the new episode a few steps in.
    - `execution="receding"`: only the chunk's first action is applied; the policy plans H and replans
      every step (receding horizon).

    `task` (the batched env under the wrapper), where given, gets its `extras["success"]` set to the
    chunk's outcome, so that evaluation sees a success reached before the chunk's last action.
    """

    def __init__(self, horizon: int, action_dim: int, execution: str = "open_loop", task: Any = None) -> None:
        super().__init__(in_keys_inv=["action"], out_keys_inv=["action"])
        if execution not in ("open_loop", "receding"):
            raise ValueError(f"unknown chunk execution {execution}")
        self.horizon, self.action_dim, self.execution = horizon, action_dim, execution
        self.task = task
        self._chunk: torch.Tensor | None = None

    def _inv_apply_transform(self, action: torch.Tensor) -> torch.Tensor:
        self._chunk = action  # the later actions of an open-loop chunk, stepped in `_step`
        return action[..., : self.action_dim]

    def transform_input_spec(self, input_spec: Composite) -> Composite:
        spec = input_spec["full_action_spec", "action"]
        low, high = spec.space.low, spec.space.high
        input_spec["full_action_spec", "action"] = Bounded(
            low.tile((self.horizon,)), high.tile((self.horizon,)),
            shape=(*spec.shape[:-1], self.horizon * self.action_dim), dtype=spec.dtype, device=spec.device,
        )
        return input_spec

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        if self.execution == "receding" or self.horizon == 1:
            return next_tensordict
        parent, chunk = self.parent, self._chunk
        done = next_tensordict.get("done").clone()
        terminated = next_tensordict.get("terminated").clone()
        truncated = next_tensordict.get("truncated").clone()
        reward = next_tensordict.get("reward").clone()
        success = self._success(done)
        for k in range(1, self.horizon):
            action = chunk[..., k * self.action_dim:(k + 1) * self.action_dim]
            next_tensordict = parent._step(tensordict.clone(False).set("action", action))
            live = ~done
            reward = reward + next_tensordict.get("reward") * live
            terminated = terminated | (next_tensordict.get("terminated") & live)
            truncated = truncated | (next_tensordict.get("truncated") & live)
            if success is not None:
                success = success | (self._success(next_tensordict.get("done")) & live.reshape(success.shape))
            done = done | next_tensordict.get("done")
        if success is not None:
            self.task.extras["success"] = success
        return next_tensordict.update({"reward": reward, "done": done, "terminated": terminated, "truncated": truncated})

    def _success(self, done: torch.Tensor) -> torch.Tensor | None:
        if self.task is None or "success" not in getattr(self.task, "extras", {}):
            return None
        return self.task.extras["success"].reshape(-1) & done.reshape(-1)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        raise RuntimeError("ActionChunk works inside a TransformedEnv only.")
