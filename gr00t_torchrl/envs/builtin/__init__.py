"""Built-in tensor-batched tasks with the Isaac Lab env API (run on CPU or CUDA)."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from gr00t_torchrl.envs.builtin.arm_reach import ArmReachTask
from gr00t_torchrl.envs.builtin.base import BatchedTask, TaskCfg
from gr00t_torchrl.envs.builtin.cartpole import CartpoleTask
from gr00t_torchrl.envs.builtin.pendulum import PendulumSwingUpTask
from gr00t_torchrl.envs.builtin.reach_language import ReachLanguageTask
from gr00t_torchrl.envs.builtin.two_goals import TwoGoalsTask

# task id -> (class, default episode length in steps)
BUILTIN_TASKS: dict[str, tuple[Callable[[TaskCfg], BatchedTask], int]] = {
    "Gr00t-Cartpole-v0": (CartpoleTask, 250),
    "Gr00t-Pendulum-SwingUp-v0": (PendulumSwingUpTask, 200),
    "Gr00t-Arm-Reach-v0": (ArmReachTask, 100),
    "Gr00t-Reach-Language-v0": (ReachLanguageTask, 70),
    "Gr00t-Two-Goals-v0": (TwoGoalsTask, 30),
}


def make_builtin_task(
    task_id: str, num_envs: int, device: str, seed: int, episode_length: int | None = None, random_start: bool = False,
    train: bool | None = None,
) -> BatchedTask:
    """A built-in task by id, with `num_envs` envs on `device`.

    `train` (training or evaluation env) goes to the tasks that take it, e.g. the language task's
    held-out phrasings in evaluation; None leaves the task's own default, and other tasks ignore it.
    """
    task_class, default_length = BUILTIN_TASKS[task_id]
    cfg = TaskCfg(num_envs, device, episode_length or default_length, seed, random_start)
    if train is not None and "train" in inspect.signature(task_class).parameters:
        return task_class(cfg, train=train)
    return task_class(cfg)


__all__ = ["BUILTIN_TASKS", "ArmReachTask", "BatchedTask", "CartpoleTask", "PendulumSwingUpTask", "ReachLanguageTask",
           "TaskCfg", "TwoGoalsTask", "make_builtin_task"]
