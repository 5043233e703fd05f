"""Builds what one rank trains with: Fabric, the env, the actor-critic, the PPO module, the collector.

This is the project's factory API: the training loop (`runner`), `evaluate`, `verify` and the
benchmarks all build their pipeline here, so they train and measure the same objects.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.seed import seed_everything
from tensordict.nn import TensorDictModuleBase
from torchrl.collectors import Collector
from torchrl.envs import TransformedEnv
from torchrl.modules import ProbabilisticActor

from gr00t_torchrl.config import Config, ConfigError
from gr00t_torchrl.distributed import prepare_statistics
from gr00t_torchrl.envs import find_transform, make_env
from gr00t_torchrl.modules import GaussianActor, make_actor_critic
from gr00t_torchrl.ppo_module import PPOModule
from gr00t_torchrl.seeding import rank_seeds
from gr00t_torchrl.transforms import RunningObservationNorm


@dataclass
class Pipeline:
    """Everything one rank trains with, built from the config."""

    cfg: Config
    fabric: L.Fabric
    env: TransformedEnv
    module: PPOModule
    fabric_module: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    num_iterations: int
    signature: dict[str, Any]

    @property
    def obs_norm(self) -> RunningObservationNorm | None:
        return find_transform(self.env, RunningObservationNorm)

    @property
    def steps_per_iteration(self) -> int:
        """Env steps one iteration collects, summed over ranks."""
        return self.cfg.frames_per_batch * self.fabric.world_size


def launched_by_fabric_cli() -> bool:
    return os.environ.get("LT_CLI_USED", "0") == "1"


def make_fabric(cfg: Config, loggers: list | None = None) -> L.Fabric:
    """Fabric for this run; under `fabric run` its flags (accelerator, devices, nodes) decide."""
    if cfg.accelerator == "cuda" and not launched_by_fabric_cli() and not torch.cuda.is_available():
        raise ConfigError(
            f"accelerator=cuda, but this machine has no CUDA device PyTorch can use (the '{cfg.task}' preset "
            "asks for a GPU): run it where there is one, or add accelerator=cpu."
        )
    if launched_by_fabric_cli():
        fabric = L.Fabric(loggers=loggers)
        cfg.num_nodes = getattr(fabric.strategy, "num_nodes", 1)
        cfg.devices = fabric.world_size // cfg.num_nodes  # recorded in config.yaml
        return fabric
    strategy = "ddp" if cfg.devices * cfg.num_nodes > 1 else "auto"
    return L.Fabric(
        accelerator=cfg.accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes, strategy=strategy, loggers=loggers
    )


def task_signature(cfg: Config, obs_shape: tuple[int, ...], action_spec: Any) -> dict[str, Any]:
    """What a checkpoint must agree on with the pipeline it is loaded into."""
    n = getattr(getattr(action_spec, "space", None), "n", None)
    action = {"kind": "discrete", "n": int(n)} if n is not None else {"kind": "continuous", "dim": int(action_spec.shape[-1])}
    return {
        "task": cfg.task,
        "env_id": cfg.env.id,
        "obs_shape": list(obs_shape),
        "action": action,
        "num_envs": cfg.env.num_envs,
        "hidden_sizes": list(cfg.network.hidden_sizes),
    }


def build_pipeline(cfg: Config, fabric: L.Fabric) -> Pipeline:
    """Env, actor-critic, PPO module and optimizer for this rank (seeded per rank)."""
    seeds = rank_seeds(cfg.seed, fabric.global_rank)
    seed_everything(seeds.torch, verbose=False)
    env = make_env(cfg, seed=seeds.envs, device=fabric.device)
    prepare_statistics(fabric, env)
    obs_shape = tuple(env.observation_spec["observation"].shape[1:])
    critic_obs = None
    if cfg.network.asymmetric_critic and "critic" in env.observation_spec.keys():
        critic_obs = ("critic", env.observation_spec["critic"].shape[-1])
    actor, critic = make_actor_critic(
        obs_shape[0],
        env.action_spec,
        cfg.network.hidden_sizes,
        cfg.network.activation,
        cfg.network.orthogonal_init,
        cfg.network.init_log_std,
        cfg.network.state_dependent_std,
        critic_obs,
    )
    num_iterations = max(cfg.total_steps // (cfg.frames_per_batch * fabric.world_size), 1)
    module = PPOModule(cfg.ppo, actor, critic, num_iterations, fabric=fabric)
    optimizer, scheduler = module.configure_optimizers()
    fabric_module, optimizer = fabric.setup(module, optimizer)
    signature = task_signature(cfg, obs_shape, env.action_spec)
    return Pipeline(cfg, fabric, env, module, fabric_module, optimizer, scheduler, num_iterations, signature)


def collection_policy(actor: ProbabilisticActor) -> TensorDictModuleBase:
    """What the collector calls each env step: a Gaussian actor's one-pass sampler, else the actor."""
    return actor.sampler() if isinstance(actor, GaussianActor) else actor


def make_collector(pipeline: Pipeline) -> Collector:
    """TorchRL's collector of `frames_per_batch` env steps per batch, with the current policy."""
    return Collector(
        pipeline.env,
        collection_policy(pipeline.module.actor),
        frames_per_batch=pipeline.cfg.frames_per_batch,
        total_frames=-1,
        track_traj_ids=False,
        auto_register_policy_transforms=False,
        # rollouts are stored where the update runs: for an Isaac-API env on a GPU, the env's own
        # device, so nothing goes through the host
        env_device=pipeline.env.device,
        policy_device=pipeline.fabric.device,
        storing_device=pipeline.fabric.device,
    )
