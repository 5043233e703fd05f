"""Isaac Lab tasks, built the Isaac Lab way: the app launched headless, the env cfg parsed for the run.

Needs Isaac Lab and Isaac Sim (an NVIDIA RTX GPU); nothing else in the project imports this module.
"""

from __future__ import annotations

from typing import Any

_APP: Any = None  # one Isaac Sim app per process


def make_isaaclab_env(task_id: str, num_envs: int, device: str, seed: int) -> Any:
    """The Isaac Lab env of `task_id` with `num_envs` envs on `device` (launches the app once)."""
    global _APP
    from isaaclab.app import AppLauncher

    if _APP is None:
        _APP = AppLauncher(headless=True, device=str(device)).app
    import gymnasium as gym
    import isaaclab_tasks  # noqa: F401  (registers the Isaac-* ids)
    from isaaclab_tasks.utils import parse_env_cfg

    from gr00t_torchrl.config import ConfigError

    if task_id not in gym.registry:
        known = sorted(name for name in gym.registry if name.startswith("Isaac-"))
        raise ConfigError(f"Unknown Isaac Lab task '{task_id}'. Registered: {', '.join(known)}.")
    env_cfg = parse_env_cfg(task_id, device=str(device), num_envs=num_envs)
    env_cfg.seed = seed
    return gym.make(task_id, cfg=env_cfg)
