"""mjlab's manager-based envs (Isaac Lab's API on MuJoCo Warp) in the shape TorchRL's IsaacLabWrapper takes."""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from gr00t_torchrl.config import ConfigError

# mjlab names the actor's observation group "actor"; Isaac Lab (and this project) call it "policy"
GROUP_NAMES = {"actor": "policy"}


def to_gymnasium_space(space: Any) -> gym.Space:
    """An mjlab space (`mjlab.utils.spaces`: Box / Dict, same fields as gymnasium's) as a gymnasium space."""
    children = getattr(space, "spaces", None)
    if isinstance(children, dict):
        return gym.spaces.Dict({GROUP_NAMES.get(k, k): to_gymnasium_space(v) for k, v in children.items()})
    dtype = np.dtype(str(getattr(space, "dtype", "float32")))
    low = np.broadcast_to(np.asarray(space.low, dtype=dtype), space.shape)
    high = np.broadcast_to(np.asarray(space.high, dtype=dtype), space.shape)
    return gym.spaces.Box(low, high, space.shape, dtype)


class MjlabAdapter(gym.vector.VectorEnv):
    """The smallest adapter that lets TorchRL's IsaacLabWrapper take an mjlab env.

    mjlab's `ManagerBasedRlEnv` has Isaac Lab's methods (`reset() -> (obs, extras)`, `step(action) ->
    (obs, reward, terminated, truncated, extras)`, auto-reset inside `step`) but is not a gymnasium
    env and has its own space classes. This converts the spaces, renames the `actor` group to
    Isaac Lab's `policy`, and passes everything else through, tensors untouched on the env's device.
    With `random_start` (training envs), a full reset starts each env at a random point of its time
    limit, as mjlab's own training does.
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}
    autoreset_mode = gym.vector.AutoresetMode.SAME_STEP  # without the final observation, as in Isaac Lab

    def __init__(self, env: Any, random_start: bool = False) -> None:
        self.env = env
        self.random_start = random_start
        self.num_envs = env.num_envs
        self.device = torch.device(env.device)
        self.single_observation_space = to_gymnasium_space(env.single_observation_space)
        self.observation_space = to_gymnasium_space(env.observation_space)
        self.single_action_space = to_gymnasium_space(env.single_action_space)
        self.action_space = to_gymnasium_space(env.action_space)

    @staticmethod
    def _rename(obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {GROUP_NAMES.get(k, k): v for k, v in obs.items()}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict[str, torch.Tensor], dict]:
        obs, extras = self.env.reset(seed=seed, options=options)
        if self.random_start:  # as mjlab trains (rsl_rl's init_at_random_ep_len): episodes not in lock-step
            buffer = self.env.episode_length_buf
            self.env.episode_length_buf = torch.randint_like(buffer, high=int(self.env.max_episode_length))
        return self._rename(obs), extras

    def step(self, action: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        obs, reward, terminated, truncated, extras = self.env.step(action)
        return self._rename(obs), reward, terminated, truncated, extras

    def close(self, **kwargs: Any) -> None:
        self.env.close()

    @property
    def unwrapped(self) -> "MjlabAdapter":
        return self


def make_mjlab_env(task_id: str, num_envs: int, device: str, seed: int, random_start: bool = False) -> MjlabAdapter:
    """An mjlab task from mjlab's registry, with `num_envs` envs on `device`, seeded."""
    import mjlab.tasks  # noqa: F401  (registers the tasks)
    from mjlab.envs import ManagerBasedRlEnv
    from mjlab.tasks.registry import list_tasks, load_env_cfg

    if task_id not in list_tasks():
        raise ConfigError(f"Unknown mjlab task '{task_id}'. mjlab has: {', '.join(list_tasks())}.")
    cfg = copy.deepcopy(load_env_cfg(task_id))
    cfg.scene.num_envs = num_envs
    cfg.seed = seed
    return MjlabAdapter(ManagerBasedRlEnv(cfg=cfg, device=str(device)), random_start)
