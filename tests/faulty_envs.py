"""Gymnasium envs that misbehave on purpose, registered for the fault tests.

Registered on import, so `task=tests.faulty_envs:<id>` also works in env worker processes
(Gymnasium imports the module named before the colon).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class NaNObservationsAfter(gym.Wrapper):
    """Pendulum whose observations turn NaN after `after` steps of the env's life."""

    def __init__(self, after: int = 150) -> None:
        super().__init__(gym.make("Pendulum-v1"))
        self.after = after
        self.steps = 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.steps > self.after:
            obs = np.full_like(obs, np.nan)
        return obs, reward, terminated, truncated, info


class CrashingEnv(gym.Wrapper):
    """Pendulum that raises after `after` steps, like a simulator losing its sensor feed."""

    def __init__(self, after: int = 40) -> None:
        super().__init__(gym.make("Pendulum-v1"))
        self.after = after
        self.steps = 0

    def step(self, action):
        self.steps += 1
        if self.steps > self.after:
            raise RuntimeError("simulated sensor failure in the test env")
        return self.env.step(action)


def register() -> None:
    if "Gr00tTest-NaNPendulum-v0" not in gym.registry:
        gym.register("Gr00tTest-NaNPendulum-v0", entry_point=NaNObservationsAfter)
        gym.register("Gr00tTest-CrashingPendulum-v0", entry_point=CrashingEnv)


register()
