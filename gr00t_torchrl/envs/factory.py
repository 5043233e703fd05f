"""Which env a task id builds: a Gymnasium env, or an env with the Isaac Lab API."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from torchrl.envs import TransformedEnv

from gr00t_torchrl.config import Config
from gr00t_torchrl.envs.gym import gym_action_space_kind, make_gym_env
from gr00t_torchrl.envs.isaac_api import check_isaac_api_task, is_isaac_api_task, make_isaac_api_env


def action_space_kind(env_id: str, task: str | None = None) -> str:
    """'discrete', 'multidiscrete' or 'continuous' for a task id; a clear ConfigError for an unusable one."""
    if is_isaac_api_task(env_id):
        check_isaac_api_task(env_id)
        return "continuous"  # Isaac Lab, mjlab and the built-in tasks: continuous joint commands
    return gym_action_space_kind(env_id, task)


def make_env(
    cfg: Config, seed: int, *, num_envs: int | None = None, train: bool = True, device: str | torch.device = "cpu",
    render: bool = False,
) -> TransformedEnv:
    """The batched env of `cfg.env.id` with the project's transforms (`num_envs` defaults to the config's).

    Training envs scale rewards; evaluation envs (`train=False`) keep the raw reward. Gymnasium
    envs step on the CPU; Isaac-API envs (Isaac Lab, mjlab, built-in tasks) on `device`. `render` makes
    Gymnasium envs draw `rgb_array` frames (Isaac-API tasks show their image groups instead).
    """
    num_envs = num_envs or cfg.env.num_envs
    if is_isaac_api_task(cfg.env.id):
        return make_isaac_api_env(cfg, seed, num_envs=num_envs, train=train, device=device)
    return make_gym_env(cfg, seed, num_envs=num_envs, train=train, render=render)


def find_transform(env: TransformedEnv, kind: type) -> torch.nn.Module | None:
    """The first transform of type `kind` in the env's chain, if any."""
    for transform in env.transform:
        if isinstance(transform, kind):
            return transform
    return None


def vector_env(env: TransformedEnv) -> Any:
    """The batched env under the TorchRL wrapper (a Gymnasium vector env, or an Isaac-API env),
    under any Gymnasium vector wrappers (e.g. the batched action clip)."""
    venv = env.base_env._env
    while isinstance(venv, gym.vector.VectorWrapper):
        venv = venv.env
    return venv


def action_bounds(env: TransformedEnv) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The env's own continuous action bounds (low, high), float32, where they are finite; else None.

    These are what detail 27's clip clips to, read under the clip (which presents an unbounded space)."""
    space = getattr(vector_env(env), "single_action_space", None)
    if not isinstance(space, gym.spaces.Box):
        return None
    low, high = torch.as_tensor(space.low, dtype=torch.float32), torch.as_tensor(space.high, dtype=torch.float32)
    return (low, high) if torch.isfinite(low).all() and torch.isfinite(high).all() else None


def env_snapshot(env: TransformedEnv) -> dict | None:
    """The exact state of the env's sub-envs, or None where it cannot be captured (e.g. async, Isaac Lab)."""
    snapshot = getattr(vector_env(env), "snapshot", None)
    return snapshot() if snapshot is not None else None


def restore_env_snapshot(env: TransformedEnv, snapshot: dict | None) -> bool:
    """Puts a snapshot back; False where this env cannot take one (it then starts new episodes)."""
    restore = getattr(vector_env(env), "restore", None)
    if snapshot is None or restore is None:
        return False
    restore(snapshot)
    return True
