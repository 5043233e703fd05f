"""PointReachMultiDiscrete-v0: a Gymnasium task whose action space is MultiDiscrete (detail 37).

A point moves in the plane towards a goal; each step it picks, per axis, one of three moves (back, stay,
forward), so the action is MultiDiscrete([3, 3]): two independent choices, not one of nine.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

STEP = 0.1  # metres per step along an axis
REACHED = 0.1  # the episode ends (terminated) within this distance of the goal
MAX_STEPS = 50  # time limit (truncation)


class PointReachMultiDiscrete(gym.Env):
    """Move a point to a goal in [-1, 1]^2 with one of {-0.1, 0, +0.1} per axis each step.

    Observation (float32 [4]): the point's xy and the goal's offset from it. Reward per step: the
    distance gained towards the goal (x 10), and +1 when it gets within 0.1 of it, which ends the
    episode. A policy that goes straight there earns about 10 x the start distance + 1; a random one
    about 0 in its 50 steps. Success (`info["success"]`): the goal reached.
    """

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-3.0, 3.0, (4,), dtype=np.float32)
        self.action_space = gym.spaces.MultiDiscrete([3, 3])
        self.point = np.zeros(2)
        self.goal = np.zeros(2)

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.point, self.goal - self.point]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.point = self.np_random.uniform(-1.0, 1.0, 2)
        self.goal = self.np_random.uniform(-1.0, 1.0, 2)
        while np.linalg.norm(self.goal - self.point) < 3 * REACHED:
            self.goal = self.np_random.uniform(-1.0, 1.0, 2)
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        before = np.linalg.norm(self.goal - self.point)
        self.point = np.clip(self.point + STEP * (np.asarray(action) - 1), -1.0, 1.0)
        after = np.linalg.norm(self.goal - self.point)
        reached = bool(after < REACHED)
        reward = 10.0 * (before - after) + (1.0 if reached else 0.0)
        return self._obs(), float(reward), reached, False, {"success": reached}

    @property
    def state(self) -> np.ndarray:
        """The point and the goal, as classic-control envs keep a `state` (what an exact resume saves)."""
        return np.concatenate([self.point, self.goal])

    @state.setter
    def state(self, value: np.ndarray) -> None:
        value = np.asarray(value, dtype=np.float64)
        self.point, self.goal = value[:2].copy(), value[2:].copy()


def register() -> None:
    if "PointReachMultiDiscrete-v0" not in gym.registry:
        gym.register("PointReachMultiDiscrete-v0", entry_point=PointReachMultiDiscrete, max_episode_steps=MAX_STEPS)
