"""Atari games (details 14-19) through ale-py, with the preprocessing PPO's Atari results rely on.

Gymnasium's `AtariPreprocessing` does the no-op reset (14: up to 30 no-ops), the frame skip with a max
over the last two frames (15: 4 frames per action) and the 84x84 grayscale frames (18); two small
wrappers here add what Gymnasium has no wrapper for: a lost life ends the episode for learning without
resetting the game (16) and FIRE after a reset in games that wait for it (17); Gymnasium's
`TransformReward` clips rewards to their sign (19). Episodic life and the reward clip apply to training
envs only: evaluation plays whole games and reports the game score. Frames reach the policy as uint8
[1, 84, 84] under the "pixels" key, stacked by `env.frame_stack` (detail 20).
"""

from __future__ import annotations

import importlib.util

import gymnasium as gym
import numpy as np

from gr00t_torchrl.config import ConfigError

NOOP_MAX, FRAME_SKIP, SCREEN = 30, 4, 84


def is_atari_task(env_id: str) -> bool:
    return env_id.startswith("ALE/") or "NoFrameskip" in env_id


def register_ale() -> None:
    """Registers ale-py's games with Gymnasium; a clear error when the `atari` extra is missing."""
    if importlib.util.find_spec("ale_py") is None:
        raise ConfigError("Atari tasks need ale-py (its wheel ships the game ROMs): pip install -e '.[atari]'.")
    import ale_py

    gym.register_envs(ale_py)


class EpisodicLife(gym.Wrapper):
    """Detail 16: a lost life ends the episode (terminated) for learning; the game goes on from there.

    `reset` after a lost life takes one no-op step instead of restarting the game, so an episode of the
    learner is one life while the game keeps its score and state; a real game over resets the game.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self.env.unwrapped.ale.lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs):
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:  # the no-op ended the game: start a new one
                obs, info = self.env.reset(**kwargs)
        self.lives = self.env.unwrapped.ale.lives()
        return obs, info


class FireReset(gym.Wrapper):
    """Detail 17: after a reset, press FIRE (then the game's second action), as games like Breakout wait for it."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()
        if len(meanings) < 3 or meanings[1] != "FIRE":
            raise ValueError(f"FireReset needs a game whose action 1 is FIRE; this one has {meanings}")

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        return obs, info


def has_fire(env: gym.Env) -> bool:
    meanings = env.unwrapped.get_action_meanings()
    return len(meanings) >= 3 and meanings[1] == "FIRE"


def make_atari(env_id: str, train: bool, max_episode_steps: int | None = None, render_mode: str | None = None) -> gym.Env:
    """One game with the Atari preprocessing; `train` adds episodic life and the sign clip of rewards."""
    register_ale()
    kwargs = {"frameskip": 1, "repeat_action_probability": 0.0, "full_action_space": False}  # the skip is the wrapper's
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    env = gym.make(env_id, **kwargs)
    env = AtariFrames(env)
    if train:
        env = EpisodicLife(env)
    if has_fire(env):
        env = FireReset(env)
    if train:
        env = gym.wrappers.TransformReward(env, np.sign)  # detail 19
    return gym.wrappers.ReshapeObservation(env, (1, SCREEN, SCREEN))


class AtariFrames(gym.wrappers.AtariPreprocessing):
    """Gymnasium's preprocessing with the settings of details 14, 15 and 18 (84x84 gray, 4-frame max-skip, 30 no-ops)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env, noop_max=NOOP_MAX, frame_skip=FRAME_SKIP, screen_size=SCREEN, grayscale_obs=True)
