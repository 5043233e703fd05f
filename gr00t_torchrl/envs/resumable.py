"""An in-process Gymnasium vector env whose exact state can be saved and restored."""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv


def _time_limit(env: gym.Env) -> gym.wrappers.TimeLimit | None:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None


def _rng_state(env: gym.Env) -> dict[str, Any]:
    # Python ints of any size load under torch.load(weights_only=True); numpy arrays would not.
    return copy.deepcopy(env.unwrapped.np_random.bit_generator.state)


class ResumableSyncVectorEnv(SyncVectorEnv):
    """SyncVectorEnv (autoreset disabled: TorchRL resets finished envs) with `snapshot` / `restore`.

    A snapshot holds, per sub-env, the simulator state (MuJoCo's full integration state, or a
    classic-control env's `state`), the time-limit step counter and the RNG state, plus the last
    observations, all as tensors and plain Python values. After `restore`, the next full `reset()`
    returns the restored observations instead of starting new episodes, so a collector built on
    the restored env continues the interrupted episodes exactly.
    """

    def __init__(self, env_fns: list, **kwargs: Any) -> None:
        super().__init__(env_fns, autoreset_mode=AutoresetMode.DISABLED, **kwargs)
        self._restored_obs: np.ndarray | None = None

    def supports_snapshot(self) -> bool:
        if not isinstance(self.single_observation_space, gym.spaces.Box):
            return False
        return all(hasattr(e.unwrapped, "data") or hasattr(e.unwrapped, "state") for e in self.envs)

    def snapshot(self) -> dict[str, Any] | None:
        """The state of every sub-env, or None if an env's state cannot be captured."""
        if not self.supports_snapshot():
            return None
        envs = []
        for env in self.envs:
            raw = env.unwrapped
            entry: dict[str, Any] = {"rng": _rng_state(env)}
            limit = _time_limit(env)
            entry["elapsed_steps"] = None if limit is None else limit._elapsed_steps
            if hasattr(raw, "data"):  # MuJoCo: the full integration state, warm start included
                import mujoco

                spec = mujoco.mjtState.mjSTATE_INTEGRATION
                state = np.empty(mujoco.mj_stateSize(raw.model, spec))
                mujoco.mj_getState(raw.model, raw.data, state, spec)
                entry["mujoco_state"] = torch.from_numpy(state)
            else:
                entry["state"] = torch.as_tensor(np.asarray(raw.state, dtype=np.float64))
                entry["steps_beyond_terminated"] = getattr(raw, "steps_beyond_terminated", None)
            envs.append(entry)
        return {
            "envs": envs,
            "observations": torch.from_numpy(np.array(self._observations)),
            "terminations": torch.from_numpy(self._terminations.copy()),
            "truncations": torch.from_numpy(self._truncations.copy()),
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Puts every sub-env back into the snapshot's state (see the class docstring)."""
        if len(snapshot["envs"]) != self.num_envs:
            raise ValueError(f"The snapshot holds {len(snapshot['envs'])} envs, this vector env {self.num_envs}.")
        for env, entry in zip(self.envs, snapshot["envs"]):
            raw = env.unwrapped
            raw.np_random.bit_generator.state = entry["rng"]
            limit = _time_limit(env)
            if limit is not None:
                limit._elapsed_steps = entry["elapsed_steps"]
            if "mujoco_state" in entry:
                import mujoco

                state = entry["mujoco_state"].numpy()
                mujoco.mj_setState(raw.model, raw.data, state, mujoco.mjtState.mjSTATE_INTEGRATION)
                mujoco.mj_forward(raw.model, raw.data)
            else:
                state = entry["state"].numpy().copy()
                raw.state = state if isinstance(raw.state, np.ndarray) else tuple(state)
                if "steps_beyond_terminated" in entry and hasattr(raw, "steps_beyond_terminated"):
                    raw.steps_beyond_terminated = entry["steps_beyond_terminated"]
        self._terminations = snapshot["terminations"].numpy().copy()
        self._truncations = snapshot["truncations"].numpy().copy()
        self._restored_obs = snapshot["observations"].numpy().astype(self._observations.dtype)

    def reset(self, *, seed: Any = None, options: dict[str, Any] | None = None):
        if self._restored_obs is not None and not (options and "reset_mask" in options):
            self._observations = self._restored_obs
            self._restored_obs = None
            return (copy.deepcopy(self._observations) if self.copy else self._observations), {}
        return super().reset(seed=seed, options=options)
