"""Builds what one rank trains with: Fabric, the env, the actor-critic, the PPO module, the collector.

This is the project's factory API: the training loop (`runner`), `evaluate`, `verify` and the
benchmarks all build their pipeline here, so they train and measure the same objects.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.seed import seed_everything
from tensordict.nn import TensorDictModuleBase, TensorDictSequential
from torchrl.collectors import Collector
from torchrl.envs import InitTracker, TransformedEnv
from torchrl.modules.utils import get_primers_from_module
from torchrl.modules import ProbabilisticActor

from gr00t_torchrl.config import Config, ConfigError
from gr00t_torchrl.distributed import prepare_statistics
from gr00t_torchrl.envs import action_bounds, find_transform, make_env, vector_env
from gr00t_torchrl.envs.isaac_api import POLICY_GROUP
from gr00t_torchrl.modules import (
    GaussianActor,
    MultiModalEncoder,
    has_multimodal_groups,
    make_actor_critic,
    make_multimodal_actor_critic,
)
from gr00t_torchrl.modules.actor_critic import ACTIVATIONS, Critic, multidiscrete_nvec
from gr00t_torchrl.modules.multimodal import input_groups, make_privileged_predictor
from gr00t_torchrl.modules.flow import EncodedFlowActor, FlowActor
from gr00t_torchrl.modules.recurrent import make_recurrent_actor_critic, memory_layers
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
    collection_policy: TensorDictModuleBase  # what the collector calls each env step

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


def task_signature(cfg: Config, env: TransformedEnv) -> dict[str, Any]:
    """What a checkpoint must agree on with the pipeline it is loaded into."""
    action_spec = env.action_spec
    n = getattr(getattr(action_spec, "space", None), "n", None)
    nvec = multidiscrete_nvec(action_spec)
    if nvec is not None:
        action = {"kind": "multidiscrete", "nvec": nvec}
    elif n is not None:
        action = {"kind": "discrete", "n": int(n)}
    else:
        action = {"kind": "continuous", "dim": int(action_spec.shape[-1])}
    return {
        "task": cfg.task,
        "env_id": cfg.env.id,
        "obs_shape": list(env.observation_spec["observation"].shape[1:]) if "observation" in env.observation_spec.keys() else [],
        "action": action,
        "num_envs": cfg.env.num_envs,
        "hidden_sizes": list(cfg.network.hidden_sizes),
        # every observation group the networks may read, with its shape and dtype
        "inputs": {key: [list(spec.shape[1:]), str(spec.dtype)] for key, spec in input_groups(env.observation_spec).items()},
    }


def build_pipeline(cfg: Config, fabric: L.Fabric) -> Pipeline:
    """Env, actor-critic, PPO module and optimizer for this rank (seeded per rank)."""
    seeds = rank_seeds(cfg.seed, fabric.global_rank)
    seed_everything(seeds.torch, verbose=False)
    env = make_env(cfg, seed=seeds.envs, device=fabric.device)
    prepare_statistics(fabric, env)
    actor, critic, policy, predictor = make_networks(cfg, env)
    with_memory(env, policy)
    num_iterations = max(cfg.total_steps // (cfg.frames_per_batch * fabric.world_size), 1)
    module = PPOModule(cfg.ppo, actor, critic, num_iterations, fabric=fabric, privileged_predictor=predictor,
                       aux_coeff=cfg.network.encoder.privileged_aux_coeff, compile_update=cfg.compile)
    optimizer, scheduler = module.configure_optimizers()
    fabric_module, optimizer = fabric.setup(module, optimizer)
    signature = task_signature(cfg, env)
    return Pipeline(cfg, fabric, env, module, fabric_module, optimizer, scheduler, num_iterations, signature, policy)


def make_networks(cfg: Config, env: TransformedEnv) -> tuple[
    TensorDictModuleBase, TensorDictModuleBase, TensorDictModuleBase, TensorDictModuleBase | None
]:
    """The actor, the critic, the collection policy and the privileged predictor (or None).

    Vector observations get separate actor and critic MLPs (details 13, 26); images or an instruction
    get the multimodal encoder, shared by the actor's and the critic's heads (detail 21), and by the
    auxiliary loss's predictor where `network.encoder.privileged_aux_coeff` > 0.
    """
    net = cfg.network
    spec = env.observation_spec
    critic_obs = None
    if net.asymmetric_critic and "critic" in spec.keys():
        critic_obs = ("critic", spec["critic"].shape[-1])
    if has_multimodal_groups(spec):
        task = vector_env(env)
        encoder = MultiModalEncoder.from_spec(
            spec, net.encoder, ACTIVATIONS[net.activation], vocab_sizes=token_vocab_sizes(task),
            vocabulary=getattr(task, "vocabulary", None),
        )
        actor, critic, head = make_multimodal_actor_critic(
            encoder, env.action_spec, net.hidden_sizes, net.activation, net.orthogonal_init, net.init_log_std,
            net.state_dependent_std, critic_obs,
        )
        if net.recurrent != "none":
            raise ConfigError("network.recurrent with images or an instruction is not built yet.")
        if net.head == "flow":  # the flow head over the same shared features, in place of the Gaussian
            actor = policy = EncodedFlowActor(encoder, flow_actor(net, encoder.out_features, env, in_key="features"))
        else:
            policy = TensorDictSequential(encoder, head.sampler()) if isinstance(head, GaussianActor) else actor
        predictor = None
        if net.encoder.privileged_aux_coeff > 0:
            if "critic" not in spec.keys():
                raise ConfigError(
                    f"network.encoder.privileged_aux_coeff={net.encoder.privileged_aux_coeff} needs a task with a "
                    "privileged `critic` observation group; this one has none (set it to 0)."
                )
            predictor = make_privileged_predictor(encoder, spec["critic"].shape[-1])
        return actor, critic, policy, predictor
    if net.encoder.privileged_aux_coeff > 0:
        raise ConfigError("network.encoder.privileged_aux_coeff needs a task with images or an instruction (set it to 0).")
    if net.head == "flow":
        obs_dim = spec["observation"].shape[-1]
        actor = flow_actor(net, obs_dim, env)
        critic_key, critic_dim = critic_obs or ("observation", obs_dim)
        critic = Critic(critic_dim, net.hidden_sizes, net.activation, net.orthogonal_init, obs_key=critic_key)
        return actor, critic, actor, None
    if net.recurrent != "none":
        actor, critic = make_recurrent_actor_critic(
            spec["observation"].shape[-1], env.action_spec, net.hidden_sizes, net.activation, net.orthogonal_init,
            net.init_log_std, net.state_dependent_std, net.recurrent, net.recurrent_size, critic_obs,
        )
        # the critic runs at each step too, to carry its own hidden state (as rsl_rl's recurrent actor-critic)
        return actor, critic, TensorDictSequential(actor, critic), None
    actor, critic = make_actor_critic(
        spec["observation"].shape[-1], env.action_spec, net.hidden_sizes, net.activation, net.orthogonal_init,
        net.init_log_std, net.state_dependent_std, critic_obs,
    )
    return actor, critic, collection_policy(actor), None


def flow_actor(net: Any, obs_dim: int, env: TransformedEnv, in_key: str = "observation") -> FlowActor:
    """The flow-matching head of `network.*` over inputs of width `obs_dim` read from `in_key`."""
    if not env.action_spec.dtype.is_floating_point:
        raise ConfigError("network.head=flow needs a continuous (Box) action space.")
    action_dim, bounds = env.action_spec.shape[-1], None
    if net.flow_clip_actions:
        bounds = action_bounds(env)
        if bounds is None:
            raise ConfigError("network.flow_clip_actions needs an env whose action space has finite bounds; this one has none.")
        repeats = action_dim // bounds[0].numel()  # an action chunk holds several of the env's actions
        bounds = (bounds[0].repeat(repeats), bounds[1].repeat(repeats))
    return FlowActor.from_settings(net, obs_dim, action_dim, in_key=in_key, bounds=bounds)


def with_memory(env: TransformedEnv, policy: TensorDictModuleBase) -> TransformedEnv:
    """For a recurrent policy, the env transforms its hidden states need (details 33, 34); else the env as is.

    `InitTracker` marks each episode's first step `is_init`; TorchRL's primers write zero hidden states
    at every reset, both also where an Isaac-API env resets inside `step`.
    """
    if memory_layers(policy):
        env.append_transform(InitTracker())
        env.append_transform(get_primers_from_module(policy))
    return env


def token_vocab_sizes(task: Any) -> dict[str, int]:
    """Each integer (token id) observation group's number of ids, from the task's own Gymnasium space."""
    space = getattr(task, "single_observation_space", None)
    groups = getattr(space, "spaces", {}) or {}
    return {
        ("observation" if key == POLICY_GROUP else key): int(sub.high.max()) + 1  # the actor's group is renamed
        for key, sub in groups.items()
        if hasattr(sub, "high") and not np.issubdtype(sub.dtype, np.floating)
    }


def collection_policy(actor: ProbabilisticActor) -> TensorDictModuleBase:
    """What the collector calls each env step: a Gaussian actor's one-pass sampler, else the actor."""
    return actor.sampler() if isinstance(actor, GaussianActor) else actor


def compiles_collection(pipeline: Pipeline) -> bool:
    """Whether `compile=true` compiles the collection policy: on a GPU only, where it saves kernel launches.

    On the CPU a compiled policy step costs more than the small eager one it replaces (dynamo's guards on the
    TensorDict run every env step): rollouts took 10-20% longer at 4 to 256 envs
    (benchmarks/results/speed_bound_pendulum_compiled_policy.md), so there only the update is compiled.
    """
    return pipeline.cfg.compile and pipeline.fabric.device.type == "cuda"


def make_collector(pipeline: Pipeline) -> Collector:
    """TorchRL's collector of `frames_per_batch` env steps per batch, with the current policy."""
    compiled = compiles_collection(pipeline)
    if compiled:
        # compiled sampling draws eager's random numbers (inductor has its own generator otherwise): the same
        # actions as an eager run, and an exact resume
        torch._inductor.config.fallback_random = True
    return Collector(
        pipeline.env,
        pipeline.collection_policy,
        frames_per_batch=pipeline.cfg.frames_per_batch,
        total_frames=-1,
        track_traj_ids=False,
        auto_register_policy_transforms=False,
        # rollouts are stored where the update runs: for an Isaac-API env on a GPU, the env's own
        # device, so nothing goes through the host
        env_device=pipeline.env.device,
        policy_device=pipeline.fabric.device,
        storing_device=pipeline.fabric.device,
        compile_policy=compiled or None,  # torch.compile of the policy step (TorchRL's option)
    )
