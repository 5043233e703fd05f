"""Gymnasium tasks as batched TorchRL envs, with the project's transforms."""

from __future__ import annotations

import functools
import warnings

import gymnasium as gym
import numpy as np
from torchrl.envs import Compose, DoubleToFloat, GymWrapper, RenameTransform, TransformedEnv

from gr00t_torchrl.config import Config, ConfigError
from gr00t_torchrl.envs.atari import is_atari_task, make_atari, register_ale
from gr00t_torchrl.envs.resumable import ResumableSyncVectorEnv
from gr00t_torchrl.seeding import sub_env_seeds
from gr00t_torchrl.transforms import ResumableCatFrames, EpisodeStatistics, RunningObservationNorm, RewardScaling


PIXELS = "pixels"  # the key of a Gymnasium task's image observation (the encoder's image group)


def _forward_mujoco_warnings() -> None:
    """Routes MuJoCo's C-level warnings to Python warnings, minus a known deprecation notice.

    Gymnasium's bundled HalfCheetah XML uses `settotalmass`, which MuJoCo 4 reports once per model
    compile straight to stderr: one line per sub-env at every start, and nothing a user can act on.
    """
    try:
        import mujoco
    except ImportError:
        return

    def forward(message: str) -> None:
        if "settotalmass" not in message:
            warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)

    mujoco.set_mju_user_warning(forward)


_forward_mujoco_warnings()


# the observation entries that are not velocities, per classic-control task (env.hide_velocity=true keeps only these)
POSITION_ENTRIES: dict[str, list[int]] = {
    "CartPole-v1": [0, 2],  # cart position, pole angle (no cart velocity, no pole angular velocity)
    "Pendulum-v1": [0, 1],  # cos and sin of the angle (no angular velocity)
    "MountainCar-v0": [0],  # position (no velocity)
    "MountainCarContinuous-v0": [0],
    "Acrobot-v1": [0, 1, 2, 3],  # cos and sin of both joint angles (no joint velocities)
}


def check_hide_velocity(env_id: str) -> None:
    if env_id not in POSITION_ENTRIES:
        raise ConfigError(
            f"env.hide_velocity=true is defined for {', '.join(POSITION_ENTRIES)}; not for '{env_id}'."
        )


def without_velocity(env: gym.Env, env_id: str) -> gym.Env:
    """The env with only its position entries observed (Gymnasium's observation wrapper, a new Box)."""
    keep = POSITION_ENTRIES[env_id]
    space = env.observation_space
    box = gym.spaces.Box(space.low[keep], space.high[keep], dtype=space.dtype)
    return gym.wrappers.TransformObservation(env, lambda obs: obs[keep], box)


def _make_gym(
    env_id: str, max_episode_steps: int | None = None, render_mode: str | None = None, hide_velocity: bool = False,
    train: bool = True,
) -> gym.Env:
    if is_atari_task(env_id):
        return make_atari(env_id, train, max_episode_steps, render_mode)
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    env = gym.make(env_id, **kwargs)
    return without_velocity(env, env_id) if hide_velocity else env


class BatchClipAction(gym.wrappers.vector.TransformAction):
    """Clips a vector env's whole batch of actions to its bounds: one np.clip per step.

    Detail 27: the env sees actions clipped to its bounds; the policy's unclipped sample is what
    the collector stores. Like Gymnasium's ClipAction, it accepts any action (its action space is
    unbounded). Gymnasium's vector ClipAction applies the single-env wrapper action by action, a
    Python call per env and step, which is what this saves.
    """

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        low, high = env.action_space.low, env.action_space.high  # the batch's bounds, one row per env
        single = env.single_action_space
        unbounded = gym.spaces.Box(-np.inf, np.inf, single.shape, single.dtype)
        super().__init__(env, lambda action: np.clip(action, low, high), single_action_space=unbounded)

    @property
    def autoreset_mode(self) -> gym.vector.AutoresetMode:  # TorchRL's GymWrapper reads it from the env
        return self.env.autoreset_mode


def gym_action_space_kind(env_id: str, task: str | None = None) -> str:
    """'discrete', 'multidiscrete' or 'continuous' for a Gymnasium id; a clear ConfigError for anything else."""
    from gr00t_torchrl.envs.builtin import BUILTIN_TASKS
    from gr00t_torchrl.presets import preset_names

    try:
        if is_atari_task(env_id):
            register_ale()
        env = _make_gym(env_id)
    except gym.error.Error as err:
        name = task or env_id
        raise ConfigError(
            f"Unknown task '{name}': it is neither a preset ({', '.join(preset_names())}), a built-in task "
            f"({', '.join(BUILTIN_TASKS)}), an Isaac-* or Mjlab-* task, nor a Gymnasium id that can be made "
            f"here ({type(err).__name__}: {err})."
        ) from None
    space = env.action_space
    env.close()
    if isinstance(space, gym.spaces.Discrete):
        return "discrete"
    if isinstance(space, gym.spaces.MultiDiscrete) and len(space.shape) == 1 and not space.start.any():
        return "multidiscrete"
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return "continuous"
    raise ConfigError(
        f"The task '{task or env_id}' has a {type(space).__name__} action space of shape {space.shape}; only "
        "Discrete, 1-D MultiDiscrete (choices from 0) and 1-D Box action spaces are supported."
    )


def make_gym_env(cfg: Config, seed: int, *, num_envs: int, train: bool = True, render: bool = False) -> TransformedEnv:
    """A batched env of `num_envs` Gymnasium envs with the transforms, on the CPU.

    The sub-envs get independent seeds spawned from `seed` (`sub_env_seeds`). Training envs scale rewards; evaluation envs
    (`train=False`) keep the raw reward. Time-limit truncation stays apart from termination in
    ("next", "truncated") / ("next", "terminated"), and the observation after a time-out is the
    real final one (the env is reset on the next call), so GAE can bootstrap from it (detail 5).
    With `render`, each env draws `rgb_array` frames (for evaluation videos).
    """
    if cfg.env.hide_velocity:
        check_hide_velocity(cfg.env.id)
    if cfg.network.action_chunk > 1:
        raise ConfigError(
            f"network.action_chunk={cfg.network.action_chunk} runs on Isaac-API tasks (built-in Gr00t-*, mjlab, Isaac Lab), "
            f"not on the Gymnasium task '{cfg.env.id}' (Gr00t-Pendulum-SwingUp-v0 is Pendulum with that API)."
        )
    make_one = functools.partial(
        _make_gym, cfg.env.id, cfg.env.max_episode_steps, "rgb_array" if render else None, cfg.env.hide_velocity, train
    )
    if cfg.env.vectorization == "async":
        # a worker process per env; a worker's exception is re-raised here with its message
        vector_env = gym.vector.AsyncVectorEnv(
            [make_one for _ in range(num_envs)], autoreset_mode=gym.vector.AutoresetMode.DISABLED
        )
    else:
        vector_env = ResumableSyncVectorEnv([make_one for _ in range(num_envs)])
    if cfg.env.clip_actions and isinstance(vector_env.single_action_space, gym.spaces.Box):
        vector_env = BatchClipAction(vector_env)
    vector_env.reset(seed=sub_env_seeds(seed, num_envs))  # later resets continue these streams
    base = GymWrapper(vector_env, device="cpu", categorical_action_encoding=True)
    transforms = [DoubleToFloat(), EpisodeStatistics(num_envs)]
    obs_shape = tuple(base.observation_spec["observation"].shape[1:])
    if len(obs_shape) == 3:  # frames [C, H, W] (Atari): an image group for the encoder, never normalized
        transforms.append(RenameTransform(["observation"], [PIXELS], create_copy=False))
        if cfg.env.frame_stack > 1:  # detail 20
            transforms.append(ResumableCatFrames(N=cfg.env.frame_stack, dim=-3, in_keys=[PIXELS], padding="same"))
        return TransformedEnv(base, Compose(*transforms, *reward_transforms(cfg, num_envs, train)))
    if cfg.env.frame_stack > 1:  # the last N observation vectors side by side (the feed-forward answer to hidden state)
        transforms.append(ResumableCatFrames(N=cfg.env.frame_stack, dim=-1, in_keys=["observation"], padding="same"))
        obs_shape = (obs_shape[0] * cfg.env.frame_stack, *obs_shape[1:])
    if cfg.env.normalize_obs:
        transforms.append(RunningObservationNorm(["observation"], [obs_shape], clip=cfg.env.obs_clip))
    return TransformedEnv(base, Compose(*transforms, *reward_transforms(cfg, num_envs, train)))


def reward_transforms(cfg: Config, num_envs: int, train: bool) -> list:
    """Reward scaling (details 30, 31) for training envs; evaluation keeps the raw reward."""
    if train and cfg.env.scale_reward:
        return [RewardScaling(num_envs, gamma=cfg.ppo.gamma, clip=cfg.env.reward_clip)]
    return []
