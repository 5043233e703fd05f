"""The Isaac Lab env API, written in torch: the base of the built-in tensor-batched tasks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch

Observations = dict[str, torch.Tensor]


@dataclass
class TaskCfg:
    """What every built-in task is built with (Isaac Lab keeps these on `env.cfg`)."""

    num_envs: int = 64
    device: str = "cpu"
    episode_length: int = 200  # steps; reaching it is a time-out (truncation), not a termination
    seed: int = 0
    # a full reset starts each env at a random point of its time limit, so episodes do not end in
    # lock-step (rsl_rl's init_at_random_ep_len for Isaac Lab); training envs only
    random_start: bool = False


class BatchedTask(gym.vector.VectorEnv):
    """An Isaac Lab `DirectRLEnv` look-alike: every env is a row of the same tensors, stepped at once.

    The interface is Isaac Lab's: `reset() -> (obs, extras)`, `step(action) -> (obs, reward,
    terminated, truncated, extras)` with torch tensors on `device`, observation groups `policy`
    (and `critic` where the task has privileged observations), `num_envs`, `device`, `cfg`,
    gymnasium spaces, `extras["log"]`, and auto-reset of finished envs inside `step` (so, as in
    Isaac Lab, a finished env's final observation is not returned: the row already holds its next
    episode's first observation). It subclasses gymnasium's `VectorEnv`, which is how TorchRL's
    `IsaacLabWrapper` recognises a batched env when Isaac Lab itself is not installed.

    Resets are masked (`torch.where`), never indexed by ids, so a step has no host synchronisation.
    Subclasses set `state_dim`, `action_dim`, `policy_dim` (and `critic_dim`), either `start_bounds`
    or their own `_sample_state`, and define `_advance`, `_observations`, `_reward`, `_terminated`
    and `_success`; actions in [-1, 1] are the task's normalised actuator commands and larger ones
    saturate (the policy's own sample is what PPO stores).
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}
    autoreset_mode = gym.vector.AutoresetMode.SAME_STEP  # without the final observation, as in Isaac Lab
    state_dim: int
    action_dim: int
    policy_dim: int
    critic_dim: int | None = None  # privileged observations, where the task has them
    start_bounds: tuple[float, ...] | None = None  # a fresh state is uniform in +-start_bounds, per state entry
    defines_success = True  # extras["success"]: per env, whether the episode that just ended succeeded

    def __init__(self, cfg: TaskCfg) -> None:
        self.cfg = cfg
        self.num_envs = cfg.num_envs
        self.device = torch.device(cfg.device)
        self.max_episode_length = cfg.episode_length
        groups = {"policy": self._box(self.policy_dim)}
        if self.critic_dim is not None:
            groups["critic"] = self._box(self.critic_dim)
        groups.update(self._extra_observation_spaces())
        self.single_observation_space = gym.spaces.Dict(groups)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, (self.action_dim,))
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.generator = torch.Generator(self.device)
        self.generator.manual_seed(cfg.seed)
        self.state = torch.zeros(self.num_envs, self.state_dim, device=self.device)
        self.episode_length_buf = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self.extras: dict[str, Any] = {}
        self._restored = False
        # made once: a tensor built from a tuple on a GPU is a host-to-device copy, which synchronises
        self._start_bounds = None if self.start_bounds is None else torch.tensor(self.start_bounds, device=self.device)

    @staticmethod
    def _box(dim: int) -> gym.spaces.Box:
        return gym.spaces.Box(-math.inf, math.inf, (dim,))

    def _extra_observation_spaces(self) -> dict[str, gym.Space]:
        """Observation groups besides `policy` and `critic` (e.g. camera images, token ids), each with its own
        single-env space (shape and dtype); TorchRL's wrapper builds its specs from these."""
        return {}

    # ------------------------------------------------------------------ the Isaac Lab API

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[Observations, dict[str, Any]]:
        """Starts a new episode in every env (after `restore`, the first call continues the restored ones)."""
        if self._restored:  # the collector's first reset after a resume: keep the restored episodes
            self._restored = False
            self.extras = {"log": {}}
            return self._observations(), self.extras
        if seed is not None:
            self.generator.manual_seed(seed)
        everyone = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        self._reset_where(everyone)
        if self.cfg.random_start:
            self.episode_length_buf = torch.randint(
                0, self.max_episode_length, (self.num_envs,), generator=self.generator, device=self.device
            )
        self.extras = {"log": {}}
        return self._observations(), self.extras

    def step(self, action: torch.Tensor) -> tuple[Observations, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Advances every env one control step; finished envs start a new episode at once."""
        action = torch.as_tensor(action, device=self.device, dtype=torch.float32).clamp(-1.0, 1.0)
        self.state = self._advance(self.state, action)
        self.episode_length_buf += 1
        reward = self._reward(self.state, action)
        terminated = self._terminated(self.state)
        truncated = (self.episode_length_buf >= self.max_episode_length) & ~terminated
        done = terminated | truncated
        success = self._success(self.state) & done
        # Isaac Lab's extras["log"]: episode statistics of the envs that finished in this step
        finished = done.sum()
        self.extras = {
            "log": {"success_rate": success.sum() / finished.clamp_min(1), "episodes_finished": finished},
            "success": success,
            "time_outs": truncated,  # the key rsl_rl reads time-outs from
        }
        self._reset_where(done)
        return self._observations(), reward, terminated, truncated, self.extras

    def close(self, **kwargs: Any) -> None:
        pass

    @property
    def unwrapped(self) -> "BatchedTask":
        return self

    def snapshot(self) -> dict[str, torch.Tensor]:
        """The exact state of every env (for resuming a run where it stopped)."""
        return {"state": self.state.clone(), "episode_length": self.episode_length_buf.clone(),
                "generator": self.generator.get_state()}

    def restore(self, snapshot: dict[str, torch.Tensor], resume: bool = True) -> None:
        """Puts a snapshot back; with `resume`, the next `reset()` continues its episodes instead of new ones."""
        # copies: a step updates these buffers in place, which must not reach back into the snapshot
        self.state = snapshot["state"].to(self.device, copy=True)
        self.episode_length_buf = snapshot["episode_length"].to(self.device, copy=True)
        self.generator.set_state(snapshot["generator"])
        self._restored = resume

    # ------------------------------------------------------------------ helpers for subclasses

    def _reset_where(self, mask: torch.Tensor) -> None:
        fresh = self._sample_state(self.num_envs)
        self.state = torch.where(mask.unsqueeze(-1), fresh, self.state)
        self.episode_length_buf = self.episode_length_buf.masked_fill(mask, 0)

    def _uniform(self, low: float | torch.Tensor, high: float | torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        u = torch.rand(shape, generator=self.generator, device=self.device)
        return low + (high - low) * u

    # ------------------------------------------------------------------ the task (subclasses)

    def _sample_state(self, n: int) -> torch.Tensor:
        if self._start_bounds is None:
            raise NotImplementedError("set start_bounds or override _sample_state")
        return self._uniform(-self._start_bounds, self._start_bounds, (n, self.state_dim))

    def _advance(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _observations(self) -> Observations:
        raise NotImplementedError

    def _reward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _terminated(self, state: torch.Tensor) -> torch.Tensor:
        return torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)

    def _success(self, state: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
