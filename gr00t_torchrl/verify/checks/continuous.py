"""Checks of the continuous-action details 23-31: Gaussian policy, MLPs, action clipping,
observation and reward normalization."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

from gr00t_torchrl.envs import find_transform, vector_env
from gr00t_torchrl.envs.gym import BatchClipAction
from gr00t_torchrl.modules.recurrent import memory_layers
from gr00t_torchrl.transforms import RunningObservationNorm, RewardScaling
from gr00t_torchrl.verify.audit import Audit, gaussian_head
from gr00t_torchrl.verify.checks.common import linears, verdict
from gr00t_torchrl.verify.registry import NA, OFF, OK, WRONG, detail

ROBOT_HIDDEN = [256, 256]
FLOW = "flow-matching head: actions from K Euler steps of a learned velocity field, no Gaussian"


def _no_transform(enabled: bool, name: str) -> tuple[str, str]:
    """The finding when a normalizing transform is absent: off by config, or WRONG if it should be there."""
    return (WRONG if enabled else OFF), f"no {name} transform in the env"


def _dist(audit: Audit, inputs: torch.Tensor | TensorDictBase) -> torch.distributions.Distribution:
    """The policy's distribution for observation vectors, or for a TensorDict of all its inputs."""
    td = inputs if isinstance(inputs, TensorDictBase) else TensorDict({"observation": inputs}, batch_size=inputs.shape[:1])
    for layer in memory_layers(audit.pipeline.module.actor):  # a recurrent actor: probed from episode starts
        td.set("is_init", torch.ones(*td.shape, 1, dtype=torch.bool))
        for key in layer.in_keys[1:-1]:
            td.set(key, torch.zeros(*td.shape, *audit.raw_batch.get(key).shape[2:]))
    with torch.no_grad():
        return audit.pipeline.module.actor.get_dist(td.clone())


@detail(23, "actions from a Normal distribution")
def check_normal(audit: Audit) -> tuple[str, str]:
    if audit.cfg.network.head == "flow":
        return NA, FLOW
    if not audit.continuous:
        return NA, "discrete actions: categorical policy"
    dist = _dist(audit, audit.policy_inputs(8))
    base = dist.base_dist if isinstance(dist, torch.distributions.Independent) else dist
    evidence = f"policy distribution {type(dist).__name__} over {type(base).__name__}"
    return (OK if type(base) is torch.distributions.Normal else WRONG), evidence


@detail(24, "state-independent log std: a learnable parameter, init 0")
def check_log_std(audit: Audit) -> tuple[str, str]:
    if audit.cfg.network.head == "flow":
        return NA, FLOW
    if not audit.continuous:
        return NA, "discrete actions"
    if audit.cfg.network.state_dependent_std:
        return OFF, "network.state_dependent_std=true: the std is a network output"
    head = gaussian_head(audit)
    action_dim = audit.pipeline.env.action_spec.shape[-1]
    if audit.encoder is None:
        obs_dim = audit.batch.get("observation").shape[-1]
        probe = torch.cat([torch.zeros(1, obs_dim), torch.full((1, obs_dim), 5.0), torch.randn(6, obs_dim)])
    else:  # images and words: 8 different steps of the real batch
        probe = audit.policy_inputs(8)
    scale = _dist(audit, probe).base_dist.scale
    independent = bool(torch.allclose(scale, scale[:1].expand_as(scale)))
    if head is None:
        return WRONG, f"no state-independent log-std head in the actor; scale varies with obs: {not independent}"
    optimized = any(q is head.log_std for g in audit.pipeline.optimizer.param_groups for q in g["params"])
    log_std = head.log_std.detach()
    ok = (isinstance(head.log_std, nn.Parameter) and tuple(log_std.shape) == (action_dim,) and optimized
          and independent and torch.allclose(scale[0], log_std.exp()))
    initial = "" if audit.trained else f", init {audit.initial_log_std.tolist()} (config {audit.cfg.network.init_log_std:g})"
    evidence = (f"nn.Parameter of shape {list(log_std.shape)} in the optimizer: {optimized}; std equal over "
                f"8 different observations: {independent}{initial}")
    if ok and not audit.trained and not torch.all(audit.initial_log_std == audit.cfg.network.init_log_std):
        ok = False
    return verdict(ok, evidence, recommended=audit.cfg.network.init_log_std == 0.0)


@detail(25, "independent action components: log-probs summed over action dims")
def check_summed_log_probs(audit: Audit) -> tuple[str, str]:
    if audit.cfg.network.head == "flow":
        return NA, FLOW
    if not audit.continuous:
        return NA, "discrete actions"
    flat = audit.batch.reshape(-1)[:64]
    dist = _dist(audit, flat.select(*audit.pipeline.module.actor.in_keys))
    action = flat.get("action")
    joint = dist.log_prob(action)
    base = dist.base_dist if isinstance(dist, torch.distributions.Independent) else dist
    per_dim = torch.distributions.Normal(base.loc, base.scale).log_prob(action)
    ok = joint.shape == per_dim.shape[:-1] and torch.allclose(joint, per_dim.sum(-1), atol=1e-5)
    evidence = f"log_prob shape {list(joint.shape)} for actions {list(action.shape)}; equals the per-dim sum: {ok}"
    return (OK if ok else WRONG), evidence


def _describe(net: nn.Module) -> tuple[list[int], set[str]]:
    layers = linears(net)
    sizes = [layers[0].in_features, *[layer.out_features for layer in layers]]
    activations = {type(m).__name__ for m in net.modules() if isinstance(m, (nn.Tanh, nn.ReLU, nn.ELU))}
    return sizes, activations


@detail(26, "separate MLPs for policy and value (256x256 Tanh for robots)")
def check_mlps(audit: Audit) -> tuple[str, str]:
    hidden, activation = list(audit.cfg.network.hidden_sizes), audit.cfg.network.activation
    expected_activation = {"tanh": "Tanh", "relu": "ReLU", "elu": "ELU"}[activation]
    described, ok = [], True
    # over a shared multimodal encoder, the heads are the separate MLPs
    for label, net in (("actor", audit.actor_head), ("critic", audit.critic_head)):
        sizes, activations = _describe(net)
        described.append(f"{label} {'x'.join(map(str, sizes))} {'/'.join(sorted(activations))}")
        ok &= sizes[1:-1] == hidden and activations == ({expected_activation} if hidden else set())  # [] : linear heads
    evidence = "; ".join(described)
    robot_default = hidden == ROBOT_HIDDEN and activation == "tanh"
    return verdict(ok, evidence, recommended=robot_default or not audit.continuous)


@detail(27, "actions clipped in the env step only; the unclipped sample is stored")
def check_action_clipping(audit: Audit) -> tuple[str, str]:
    if not audit.continuous:
        return NA, "discrete actions"
    venv = vector_env(audit.pipeline.env)
    if hasattr(venv, "envs") or hasattr(venv, "env_fns"):  # Gymnasium: the batch clip over the vector env
        wrapped = isinstance(audit.pipeline.env.base_env._env, BatchClipAction)  # the one vector wrapper the env gets
        how = "env clips (BatchClipAction over the vector env)"
        space = venv.single_action_space  # the task's bounds (the clip widens its own space to +-inf)
    elif hasattr(venv, "snapshot"):  # a built-in batched task saturates commands inside its step
        wrapped, how = _saturates(venv), "task saturates commands in its step (probed: x5 the bound == the bound)"
        space = venv.single_action_space
    else:
        return NA, "Isaac Lab / mjlab env: its action terms process raw actions (no bounds to clip to)"
    low, high = torch.as_tensor(space.low), torch.as_tensor(space.high)
    action = audit.batch.get("action").reshape(-1, low.shape[-1])
    outside = int(((action < low) | (action > high)).sum())
    at_bound = int(((action == low) | (action == high)).sum())
    consistent = audit.log_prob_error < 1e-4
    evidence = (f"{outside} of {action.numel()} stored action values outside [{float(low.min()):g}, "
                f"{float(high.max()):g}], {at_bound} exactly at a bound; stored log-probs are those of the "
                f"stored actions: {consistent}; {how}: {wrapped}")
    if not audit.cfg.env.clip_actions:
        return OFF, evidence
    if audit.cfg.network.head == "flow" and audit.cfg.network.flow_clip_actions:
        # by design: the flow's ratio is taken at the executed (clipped) action, so it learns inside the bounds
        return (OFF if outside == 0 and consistent and wrapped else WRONG), \
            f"{evidence}; network.flow_clip_actions stores the clipped action"
    return (OK if at_bound == 0 and consistent and wrapped else WRONG), evidence


def _saturates(task: Any) -> bool:
    """Whether a built-in task treats actions beyond its bounds as the bounds (state after one step)."""
    saved = task.snapshot()
    high = torch.as_tensor(task.single_action_space.high, device=task.device).expand(task.num_envs, -1)
    outcomes = []
    for scale in (1.0, 5.0):
        task.restore(saved, resume=False)
        task.step(high * scale)
        outcomes.append(task.state.clone())
    task.restore(saved, resume=False)
    return torch.equal(outcomes[0], outcomes[1])


@detail(28, "observation normalization by running mean / std")
def check_obs_norm(audit: Audit) -> tuple[str, str]:
    norm = find_transform(audit.pipeline.env, RunningObservationNorm)
    if norm is None:
        return _no_transform(audit.cfg.env.normalize_obs, "RunningObservationNorm")
    _ = audit.batch  # a rollout has run
    stats = norm.stats[0]
    probe = torch.randn(4, stats.mean.shape[-1]) * 3
    expected = ((probe - stats.mean.float()) / torch.sqrt(stats.var.float() + norm.eps)).clamp(-norm.clip, norm.clip)
    normalizes = torch.allclose(norm.normalize(0, probe), expected, atol=1e-5)
    in_state = any(k.endswith("mean") for k in audit.pipeline.env.transform.state_dict())
    seen = int(stats.count)
    # auto-reset envs lose each finished episode's final observation (NaN): not a statistic
    lost = int(torch.isnan(audit.raw_batch.get(("next", "observation"))).any(-1).sum())
    expected_seen = audit.cfg.frames_per_batch - lost
    evidence = (f"statistics over {seen} observations (rollout of {audit.cfg.frames_per_batch}"
                f"{f', {lost} lost final observations skipped' if lost else ''}), mean "
                f"{[round(x, 3) for x in stats.mean.tolist()[:3]]}..., normalizes a probe correctly: {normalizes}; "
                f"in the checkpointed state: {in_state}")
    ok = normalizes and in_state and (seen >= expected_seen or audit.trained) and not norm.frozen
    return (OK if ok else WRONG), evidence


@detail(29, "observation clipping after normalization, [-10, 10]")
def check_obs_clip(audit: Audit) -> tuple[str, str]:
    norm = find_transform(audit.pipeline.env, RunningObservationNorm)
    if norm is None:
        return _no_transform(audit.cfg.env.normalize_obs, "RunningObservationNorm")
    dim = norm.stats[0].mean.shape[-1]
    out = norm.normalize(0, torch.full((2, dim), 1e9) * torch.tensor([[1.0], [-1.0]]))
    evidence = f"a probe 1e9 away normalizes to [{float(out.min()):g}, {float(out.max()):g}] " \
               f"(config {audit.cfg.env.obs_clip:g})"
    ok = float(out.max()) == audit.cfg.env.obs_clip and float(out.min()) == -audit.cfg.env.obs_clip
    return verdict(ok, evidence, recommended=audit.cfg.env.obs_clip == 10.0)


def _reward_probe(scaling: RewardScaling, rewards: list[float], dones: list[bool], frozen: bool = False) -> list[float]:
    """Feeds a reward sequence (the same in every env) through a copy of the live transform.

    The copy starts from empty statistics (std 1); `frozen` keeps them there.
    """
    probe = copy.deepcopy(scaling)
    probe.frozen = frozen
    probe.stats.count.zero_(), probe.stats.mean.zero_(), probe.stats.var.fill_(1.0)
    probe.stats.deferred, probe.stats.pending = False, None
    probe.returns.zero_()
    n = probe.returns.shape[0]
    out = []
    for reward, done in zip(rewards, dones):
        step = TensorDict({"reward": torch.full((n, 1), reward), "done": torch.full((n, 1), done)}, batch_size=[n])
        out.append(float(probe._step(TensorDict({}, batch_size=[n]), step).get("reward")[0, 0]))
    return out


@detail(30, "reward scaling by the running std of the discounted return")
def check_reward_scaling(audit: Audit) -> tuple[str, str]:
    scaling = find_transform(audit.pipeline.env, RewardScaling)
    if scaling is None:
        return _no_transform(audit.cfg.env.scale_reward, "RewardScaling")
    gamma = audit.cfg.ppo.gamma
    rewards, dones = [1.0, 2.0, 0.5, 3.0, 1.0, 2.0], [False, False, True, False, False, True]
    returns, running = [], 0.0
    for reward, done in zip(rewards, dones):
        running = running * gamma + reward
        returns.append(running)
        if done:
            running = 0.0
    expected = [r / math.sqrt(torch.tensor(returns[: i + 1], dtype=torch.float64).var(unbiased=False).item() + scaling.eps)
                for i, r in enumerate(rewards)]
    expected = [max(-scaling.clip, min(scaling.clip, x)) for x in expected]
    measured = _reward_probe(scaling, rewards, dones)
    # from the second step: with one return seen the std is sqrt(eps) and the first reward is clipped
    ok = all(abs(m - e) <= 1e-4 * max(1.0, abs(e)) for m, e in zip(measured[1:], expected[1:]))
    evidence = (f"probe rewards {rewards} with episode ends: scaled {[round(x, 3) for x in measured[1:]]}, "
                f"by discounted-return std (gamma {gamma:g}) {[round(x, 3) for x in expected[1:]]}")
    return (OK if ok else WRONG), evidence


@detail(31, "reward clipping after scaling, [-10, 10]")
def check_reward_clip(audit: Audit) -> tuple[str, str]:
    scaling = find_transform(audit.pipeline.env, RewardScaling)
    if scaling is None:
        return _no_transform(audit.cfg.env.scale_reward, "RewardScaling")
    measured = _reward_probe(scaling, [0.0, 1.0, 1e9, -1e12], [False] * 4, frozen=True)
    evidence = f"probe rewards 1e9 and -1e12 at return std 1 scale to {measured[2]:g} and {measured[3]:g} " \
               f"(config {audit.cfg.env.reward_clip:g})"
    ok = measured[2] == audit.cfg.env.reward_clip and measured[3] == -audit.cfg.env.reward_clip
    return verdict(ok, evidence, recommended=audit.cfg.env.reward_clip == 10.0)
