"""Envs with the Isaac Lab API (Isaac Lab, mjlab, built-in tasks) as TorchRL envs, all one path.

Every such env goes through TorchRL's `IsaacLabWrapper` (`IsaacLabApiWrapper` below) and then the
project's transforms, on the env's own device. The auto-reset is the env's own (TorchRL's
`native_autoreset`): when an env finishes, its final observation is gone (the row already holds
the next episode's first observation), so TorchRL marks `("next", <obs>)` of that row NaN and
hands the row's new observation to the next step; `PPOModule.compute_advantages` explains how
time-outs bootstrap then.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.envs import PermuteTransform, RenameTransform, TransformedEnv, VecGymEnvTransform
from torchrl.envs.libs.isaac_lab import IsaacLabWrapper

from gr00t_torchrl.config import Config, ConfigError
from gr00t_torchrl.envs.builtin import BUILTIN_TASKS, make_builtin_task
from gr00t_torchrl.transforms import ActionChunk, ResumableCatFrames, EpisodeStatistics, RunningObservationNorm, RewardScaling

ISAAC_PREFIX, MJLAB_PREFIX = "Isaac-", "Mjlab-"
POLICY_GROUP, CRITIC_GROUP = "policy", "critic"  # Isaac Lab's observation group names


class IsaacLabApiWrapper(IsaacLabWrapper):
    """`IsaacLabWrapper`, reading no Gymnasium-style `info` from the env's `extras`.

    With Isaac Lab installed, TorchRL recognises its env classes and installs no info reader. For
    other envs with the same API (mjlab through its adapter, the built-in tasks), TorchRL would
    register its generic Gymnasium reader, which converts all of `extras` every step and fails on
    Isaac Lab's `extras["log"]` (scalars, not per-env rows). This wrapper skips that reader, so all
    three kinds of env take the same path; everything else is TorchRL's own.
    """

    def auto_register_info_dict(self, ignore_private: bool = True, *, info_dict_reader: Any = None) -> "IsaacLabApiWrapper":
        return self

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        """One env step, its outputs put straight into the step's tensordict.

        TorchRL's Gymnasium-like step is written for any env: it runs a frame-skip loop that asks
        `done.any()` after each step (a host synchronisation per env step on a GPU, the only one
        left in a rollout), passes every output through its spec and moves the result to the
        device. An Isaac-API env already returns tensors on its device, so this step does only
        what the result depends on, with the same entries, shapes and values: the reward and the
        done flags are copied in the specs' (num_envs, 1) shape (Isaac Lab and mjlab overwrite
        their buffers in place on the next step; TorchRL's frame-skip sum and its clones of the
        flags made those copies), the observations are passed on as TorchRL passes them
        (`benchmarks/wrapper_step_ab.py` times the two). Frame skipping and info readers, which this
        project never sets, keep TorchRL's own step.
        """
        if self.wrapper_frame_skip != 1 or self.info_dict_reader:
            return super()._step(tensordict)
        # IsaacLabWrapper's own reading of Isaac Lab's outputs: observation renaming, camera pixels,
        # the done flags copied and the reward in (num_envs, 1)
        obs, reward, terminated, truncated, done, _ = self._output_transform(
            self._env.step(tensordict.get(self.action_key))
        )
        if all(isinstance(value, torch.Tensor) for value in obs.values()):
            out = dict(obs)
        else:  # groups of separate terms (nested dicts): TorchRL's reader builds them
            out = self.read_obs(dict(obs))
        out.update({self.reward_key: reward.clone(), "terminated": terminated.unsqueeze(-1),
                    "truncated": truncated.unsqueeze(-1), "done": done.unsqueeze(-1)})
        if reward.device != self.device:  # an env on another device than the wrapper: moved, as TorchRL does
            return TensorDict(out, batch_size=self.batch_size).to(self.device)
        return TensorDict._new_unsafe(out, batch_size=self.batch_size, device=self.device)


class NativeAutoresetEnv(TransformedEnv):
    """A TransformedEnv on TorchRL's native auto-reset path, with every new episode's first step `is_init`.

    TorchRL 0.14's `step_and_maybe_reset` sets `is_init` from each done key in turn ("done", then
    "terminated", then "truncated"), all of which name the same "is_init": the last one wins, so an
    episode that ended by termination starts without the flag. A recurrent policy would then carry its
    memory across the boundary in the update (detail 34); here the flag is put back from "done".
    """

    def step_and_maybe_reset(self, tensordict: TensorDictBase) -> tuple[TensorDictBase, TensorDictBase]:
        tensordict, tensordict_ = super().step_and_maybe_reset(tensordict)
        if "is_init" in tensordict_.keys():
            tensordict_.set("is_init", tensordict.get(("next", "done")).clone())
        return tensordict, tensordict_


def with_native_autoreset(env: TransformedEnv) -> TransformedEnv:
    """TorchRL's native auto-reset path for an env that resets finished envs inside `step`.

    TorchRL switches it on by itself (`IsaacLabWrapper(..., native_autoreset=True)`) only for Isaac
    Lab's own env classes; all three kinds (Isaac Lab, mjlab, built-in tasks) get the same wiring here,
    so they take one path (`NativeAutoresetEnv`). Without it, `step_and_maybe_reset` calls `reset()` on every step where any env is
    done, to put back an observation the env already returned: a large share of a rollout's time
    on the CPU, and most of its host synchronisations on a GPU. The wrapper itself is
    left as is, so an explicit partial `reset()` (evaluation) stays TorchRL's no-op for these envs.
    """
    native = NativeAutoresetEnv(env.base_env, VecGymEnvTransform(native_autoreset=True))
    native._torchrl_native_autoreset = True  # the flag step_and_maybe_reset reads (TorchRL sets it so)
    return native


def is_isaac_api_task(env_id: str) -> bool:
    return env_id in BUILTIN_TASKS or env_id.startswith((ISAAC_PREFIX, MJLAB_PREFIX))


def check_isaac_api_task(env_id: str) -> None:
    """A clear ConfigError when the library an Isaac-API task needs is missing."""
    if env_id.startswith(ISAAC_PREFIX) and importlib.util.find_spec("isaaclab") is None:
        raise ConfigError(
            f"The task '{env_id}' is an Isaac Lab task, and Isaac Lab is not installed here. Isaac Lab needs an "
            "NVIDIA RTX GPU and Isaac Sim: install both with NVIDIA's instructions "
            "(https://isaac-sim.github.io/IsaacLab), then retry with accelerator=cuda. Built-in tasks with the same "
            f"API run anywhere: {', '.join(BUILTIN_TASKS)}."
        )
    if env_id.startswith(MJLAB_PREFIX) and importlib.util.find_spec("mjlab") is None:
        raise ConfigError(
            f"The task '{env_id}' is an mjlab task, and mjlab is not installed here: "
            "pip install -e '.[mjlab]' (or pip install 'gr00t-torchrl[mjlab]')."
        )


def make_raw_task(
    env_id: str, num_envs: int, device: str, seed: int, episode_length: int | None, train: bool = False
) -> Any:
    """The unwrapped Isaac-API env of `env_id`, with `num_envs` envs on `device`."""
    check_isaac_api_task(env_id)
    if env_id in BUILTIN_TASKS:
        return make_builtin_task(env_id, num_envs, device, seed, episode_length, random_start=train, train=train)
    if episode_length is not None:
        raise ConfigError(
            f"env.max_episode_steps cannot be set for '{env_id}': its time limit is the env cfg's episode_length_s."
        )
    if env_id.startswith(MJLAB_PREFIX):
        from gr00t_torchrl.envs.mjlab_adapter import make_mjlab_env

        return make_mjlab_env(env_id, num_envs, device, seed, random_start=train)
    from gr00t_torchrl.envs.isaaclab_launch import make_isaaclab_env

    return make_isaaclab_env(env_id, num_envs, device, seed)


def observation_groups(env: TransformedEnv) -> list[str]:
    """The observation entries the networks read: "observation" (the policy group), and "critic" if any."""
    keys = env.observation_spec.keys()
    return ["observation"] + ([CRITIC_GROUP] if CRITIC_GROUP in keys else [])


def channels_last_images(env: TransformedEnv) -> list[str]:
    """Image groups laid out [H, W, C], as camera sensors give them (Isaac Lab's TiledCamera, mjlab's camera).

    An image group is [num_envs, C, H, W] or [num_envs, H, W, C]; it is channels-last when its last size
    is a channel count (1, 3 or 4: gray, RGB, RGBA or RGB-D) and its first is not.
    """
    return [
        key for key, spec in env.observation_spec.items()
        if len(spec.shape) == 4 and spec.shape[-1] in (1, 3, 4) and spec.shape[-3] > 4
    ]


def frame_stack(env: TransformedEnv, frames: int) -> ResumableCatFrames:
    """Detail 20: each image group [C, H, W] becomes its last `frames` frames stacked, [frames * C, H, W].

    TorchRL's CatFrames (resumable); a finished env's stack restarts from its new episode's first frame (repeated)
    on the native auto-reset path too, so no frame of one episode leaks into the next.
    """
    images = [key for key, spec in env.observation_spec.items() if len(spec.shape) == 4]
    if not images:
        raise ConfigError(f"env.frame_stack={frames} needs a task with image observations; this one has none.")
    return ResumableCatFrames(N=frames, dim=-3, in_keys=images, padding="same")


def make_isaac_api_env(
    cfg: Config, seed: int, *, num_envs: int, train: bool, device: str | torch.device
) -> TransformedEnv:
    """An Isaac-API task wrapped the Isaac Lab way, with the project's transforms, on `device`."""
    if cfg.env.hide_velocity:
        raise ConfigError(f"env.hide_velocity=true is defined for Gymnasium's classic-control tasks, not for '{cfg.env.id}'.")
    task = make_raw_task(cfg.env.id, num_envs, str(device), seed, cfg.env.max_episode_steps, train=train)
    env = IsaacLabApiWrapper(task, device=torch.device(device), native_autoreset=True)
    if not isinstance(env, TransformedEnv):  # TorchRL adds its auto-reset transform to batched envs
        raise ConfigError(f"The task '{cfg.env.id}' did not wrap as a batched env (num_envs={num_envs}).")
    env = with_native_autoreset(env)
    # the actor reads "observation" whatever the env: Isaac Lab calls the actor's group "policy"
    env.append_transform(RenameTransform([POLICY_GROUP], ["observation"], create_copy=False))
    cameras = channels_last_images(env)
    if cameras:  # the encoder and the frame stack read [C, H, W]; the permuted view stays uint8
        env.append_transform(PermuteTransform((-1, -3, -2), in_keys=cameras))
    if cfg.network.action_chunk > 1:  # before the statistics: they see one policy step per chunk
        env.append_transform(ActionChunk(cfg.network.action_chunk, task.single_action_space.shape[-1],
                                         cfg.network.chunk_execution, task=task))
    if cfg.env.frame_stack > 1:
        env.append_transform(frame_stack(env, cfg.env.frame_stack))
    env.append_transform(EpisodeStatistics(num_envs))
    if cfg.env.normalize_obs:
        keys = observation_groups(env)
        shapes = [tuple(env.observation_spec[key].shape[1:]) for key in keys]
        env.append_transform(RunningObservationNorm(keys, shapes, clip=cfg.env.obs_clip, count_done_rows=False))
    if train and cfg.env.scale_reward:
        env.append_transform(RewardScaling(num_envs, gamma=cfg.ppo.gamma, clip=cfg.env.reward_clip))
    return env.to(device)
