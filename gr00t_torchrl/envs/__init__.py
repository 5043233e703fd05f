"""Env factories: Gymnasium tasks, and Isaac Lab / mjlab / built-in tasks through one Isaac Lab path."""

from gr00t_torchrl.envs.factory import (
    action_space_kind,
    env_snapshot,
    find_transform,
    make_env,
    restore_env_snapshot,
    vector_env,
)
from gr00t_torchrl.envs.resumable import ResumableSyncVectorEnv

__all__ = [
    "ResumableSyncVectorEnv",
    "action_space_kind",
    "env_snapshot",
    "find_transform",
    "make_env",
    "restore_env_snapshot",
    "vector_env",
]
