"""Env factories: Gymnasium tasks, and Isaac Lab / mjlab / built-in tasks through one Isaac Lab path."""

from gr00t_torchrl.envs.factory import (
    action_bounds,
    action_space_kind,
    env_snapshot,
    find_transform,
    make_env,
    restore_env_snapshot,
    vector_env,
)
from gr00t_torchrl.envs.point_reach import register as _register_point_reach
from gr00t_torchrl.envs.resumable import ResumableSyncVectorEnv

_register_point_reach()  # PointReachMultiDiscrete-v0, a Gymnasium task with a MultiDiscrete action space

__all__ = [
    "ResumableSyncVectorEnv",
    "action_bounds",
    "action_space_kind",
    "env_snapshot",
    "find_transform",
    "make_env",
    "restore_env_snapshot",
    "vector_env",
]
