"""Env factories: Gymnasium tasks through TorchRL (Isaac Lab and built-in tasks plug in here)."""

from gr00t_torchrl.envs.gym import action_space_kind, env_snapshot, find_transform, make_env, vector_env
from gr00t_torchrl.envs.resumable import ResumableSyncVectorEnv

__all__ = ["ResumableSyncVectorEnv", "action_space_kind", "env_snapshot", "find_transform", "make_env", "vector_env"]
