"""Checks of the core details 1-13: rollout shape, init, optimizer, GAE, mini-batches, losses."""

from __future__ import annotations

import math

import torch
from tensordict import TensorDictBase
from torch import nn

from gr00t_torchrl.modules.init import HIDDEN_GAIN, POLICY_OUTPUT_GAIN, VALUE_OUTPUT_GAIN
from gr00t_torchrl.verify.audit import Audit
from gr00t_torchrl.verify.checks.common import linears, verdict
from gr00t_torchrl.verify.registry import OFF, OK, WRONG, detail


def _close(a: float, b: float, rel: float = 1e-4) -> bool:
    return abs(a - b) <= rel * max(abs(b), 1e-12)


def _flat_minibatch(audit: Audit, size: int = 256) -> TensorDictBase:
    """`size` rows of the batch. For a recurrent policy each row is a one-step sequence ([size, 1]): the
    loss runs in TorchRL's recurrent mode, and a row then starts from its own stored hidden state."""
    rows = audit.batch.reshape(-1)[:size].clone()
    return rows.unsqueeze(-1) if audit.pipeline.module.recurrent else rows


@detail(1, "vectorized architecture (N envs in lock-step, N x T rollout)")
def check_vectorized(audit: Audit) -> tuple[str, str]:
    n, t = audit.cfg.env.num_envs, audit.cfg.ppo.num_steps
    env_shape, batch_shape = tuple(audit.pipeline.env.batch_size), tuple(audit.batch.shape)
    evidence = f"env batch {list(env_shape)}, rollout {list(batch_shape)} (expected [{n}] and [{n}, {t}])"
    return (OK if env_shape == (n,) and batch_shape == (n, t) else WRONG), evidence


@detail(2, "orthogonal init, zero biases; gains sqrt(2) hidden, 0.01 policy, 1.0 value")
def check_orthogonal_init(audit: Audit) -> tuple[str, str]:
    actor, critic = audit.initial_nets
    measured, ok = [], True
    for label, net, out_gain in (("actor", actor, POLICY_OUTPUT_GAIN), ("critic", critic, VALUE_OUTPUT_GAIN)):
        layers = linears(net)
        gains = []
        for index, layer in enumerate(layers):
            expected = out_gain if index == len(layers) - 1 else HIDDEN_GAIN
            singular = torch.linalg.svdvals(layer.weight.detach().double())
            gains.append(float(singular.mean()))
            orthogonal = torch.allclose(singular, torch.full_like(singular, expected), rtol=1e-3)
            ok &= orthogonal and bool((layer.bias.detach() == 0).all())
        measured.append(f"{label} singular values {', '.join(f'{g:.3g}' for g in gains)}")
    where = "fresh build of the run's config" if audit.trained else "as initialised"
    evidence = f"{'; '.join(measured)} ({where}); biases {'0' if ok else 'checked'}"
    if not audit.cfg.network.orthogonal_init:
        return OFF, evidence
    return verdict(ok, evidence)


@detail(3, "Adam epsilon 1e-5")
def check_adam_eps(audit: Audit) -> tuple[str, str]:
    optimizer = getattr(audit.pipeline.optimizer, "optimizer", audit.pipeline.optimizer)
    eps = {group["eps"] for group in optimizer.param_groups}
    evidence = f"{type(optimizer).__name__}, eps {sorted(eps)} (config {audit.cfg.ppo.adam_eps:g})"
    ok = isinstance(optimizer, torch.optim.Adam) and eps == {audit.cfg.ppo.adam_eps}
    return verdict(ok, evidence, recommended=audit.cfg.ppo.adam_eps == 1e-5)


@detail(4, "learning-rate annealing, linear to 0")
def check_lr_annealing(audit: Audit) -> tuple[str, str]:
    n = audit.pipeline.num_iterations
    factor = audit.pipeline.scheduler.lr_lambdas[0]
    factors = [factor(k) for k in range(n + 1)]
    linear = all(abs(f - (1.0 - k / n)) < 1e-9 for k, f in enumerate(factors))
    evidence = f"LR factor {factors[0]:.3g} -> {factors[n // 2]:.3g} -> {factors[n]:.3g} over {n} iterations"
    if audit.cfg.ppo.desired_kl is not None:
        evidence += f"; rsl_rl's KL-adaptive LR instead (desired KL {audit.cfg.ppo.desired_kl:g})"
    if not audit.cfg.ppo.anneal_lr:
        return (OFF if all(f == 1.0 for f in factors) else WRONG), evidence
    return (OK if linear else WRONG), evidence


def _reference_gae(batch: TensorDictBase, critic: nn.Module, gamma: float, lmbda: float) -> torch.Tensor:
    """GAE computed here, step by step: time-outs bootstrap from V(final obs), terminations do not."""
    with torch.no_grad():
        value = critic(batch.select(*critic.in_keys).clone()).get("state_value").squeeze(-1)
        next_value = critic(batch.get("next").select(*critic.in_keys).clone()).get("state_value").squeeze(-1)
    reward = batch.get(("next", "reward")).squeeze(-1)
    terminated = batch.get(("next", "terminated")).squeeze(-1).float()
    done = batch.get(("next", "done")).squeeze(-1).float()
    advantage = torch.zeros_like(reward)
    running = torch.zeros_like(reward[:, 0])
    for t in reversed(range(reward.shape[1])):
        delta = reward[:, t] + gamma * next_value[:, t] * (1 - terminated[:, t]) - value[:, t]
        running = delta + gamma * lmbda * (1 - done[:, t]) * running
        advantage[:, t] = running
    return advantage


@detail(5, "GAE: time-outs bootstrap, terminations do not")
def check_gae(audit: Audit) -> tuple[str, str]:
    batch = audit.raw_batch.clone()
    n, t = batch.shape
    timeout_env, end_env = 0, min(1, n - 1)
    flags = {key: batch.get(("next", key)) for key in ("done", "terminated", "truncated")}
    flags["done"][timeout_env, t // 2] = True  # an injected time-out ...
    flags["truncated"][timeout_env, t // 2] = True
    flags["terminated"][timeout_env, t // 2] = False
    flags["done"][end_env, t // 3] = True  # ... and an injected termination
    flags["terminated"][end_env, t // 3] = True
    flags["truncated"][end_env, t // 3] = False
    critic = audit.pipeline.module.critic
    # auto-reset envs (Isaac Lab API) lose final observations (NaN): a time-out then bootstraps from
    # the last observation it has, V(s_{T-1}); the reference does that substitution itself
    reference_batch = batch.clone()
    # a lost row is NaN in the float groups; every group of that row then takes the step's own observation
    missing = torch.zeros(batch.shape, dtype=torch.bool)
    for key in critic.in_keys:
        value = reference_batch.get(("next", key))
        if value.is_floating_point():
            missing |= torch.isnan(value).flatten(2).any(-1)
    lost = int(missing.sum())
    for key in critic.in_keys:
        next_obs = reference_batch.get(("next", key))
        mask = missing.reshape(*missing.shape, *([1] * (next_obs.dim() - 2)))
        reference_batch.set(("next", key), torch.where(mask, reference_batch.get(key), next_obs))
    reference = _reference_gae(reference_batch, critic, audit.cfg.ppo.gamma, audit.cfg.ppo.lmbda)
    audit.pipeline.module.estimate_advantages(batch)
    error = float((batch.get("advantage").squeeze(-1) - reference).abs().max())
    gamma, lmbda = float(audit.pipeline.module.advantage_module.gamma), float(audit.pipeline.module.advantage_module.lmbda)
    evidence = (
        f"max |A - A_ref| {error:.1e} over {n}x{t} steps holding a time-out and a termination; "
        f"gamma {gamma:g}, lambda {lmbda:g}" + (f"; {lost} lost final observation(s) bootstrapped from the last one" if lost else "")
    )
    return (OK if error < 1e-4 else WRONG), evidence


@detail(6, "mini-batch updates over shuffled indices, several epochs")
def check_minibatches(audit: Audit) -> tuple[str, str]:
    minibatches = audit.update["minibatches"]
    k, epochs = audit.cfg.ppo.num_minibatches, int(audit.update["stats"]["epochs_run"])
    total = audit.batch.numel()
    ok = len(minibatches) == epochs * k and epochs >= 1
    shuffled = False
    for e in range(epochs):
        order = torch.cat([m.flatten() for m in minibatches[e * k:(e + 1) * k]])
        ok &= torch.equal(order.sort().values, torch.arange(total))  # each sample once per epoch
        shuffled |= not torch.equal(order, torch.arange(total))
    sizes = sorted({m.numel() for m in minibatches})
    evidence = f"{epochs} epoch(s) x {len(minibatches) // max(epochs, 1)} mini-batches of {sizes}, " \
               f"{'shuffled' if shuffled else 'NOT shuffled'}, every sample once per epoch: {ok}"
    return (OK if ok and shuffled else WRONG), evidence


@detail(7, "advantage normalization over the whole batch")
def check_advantage_norm(audit: Audit) -> tuple[str, str]:
    advantage = audit.batch.get("advantage")
    mean, std = float(advantage.mean()), float(advantage.std())
    per_minibatch = bool(audit.pipeline.module.loss_module.normalize_advantage)
    evidence = f"batch advantage mean {mean:.1e}, std {std:.4f}; loss normalizes per mini-batch: {per_minibatch}"
    mode = audit.cfg.ppo.advantage_norm
    if mode == "batch":
        ok = abs(mean) < 1e-4 and abs(std - 1) < 1e-3 and not per_minibatch
        return (OK if ok else WRONG), evidence
    return (OFF if per_minibatch == (mode == "minibatch") else WRONG), evidence


def _ratio_probe(audit: Audit) -> tuple[TensorDictBase, torch.Tensor]:
    """A mini-batch whose stored log-probs make the ratios 1.5 and 0.6, alternately by row (every ratio of a row,
    where a flow head has one per (t, noise) pair)."""
    minibatch = _flat_minibatch(audit)
    key = audit.pipeline.module.loss_module.tensor_keys.sample_log_prob
    with torch.no_grad():
        log_prob = audit.pipeline.module.actor.get_dist(minibatch.clone()).log_prob(minibatch.get("action"))
    ratio = torch.where(torch.arange(minibatch.shape[0]) % 2 == 0, 1.5, 0.6)
    ratio = ratio.reshape(-1, *(1,) * (log_prob.ndim - 1)).expand_as(log_prob)
    minibatch.set(key, log_prob - ratio.log())
    return minibatch, ratio


@detail(8, "clipped surrogate objective")
def check_clipped_objective(audit: Audit) -> tuple[str, str]:
    minibatch, ratio = _ratio_probe(audit)
    eps = audit.cfg.ppo.clip_epsilon
    low = eps if audit.cfg.ppo.clip_epsilon_low is None else audit.cfg.ppo.clip_epsilon_low
    advantage = minibatch.get("advantage").reshape(-1, *(1,) * (ratio.ndim - 1))  # one per row, over its ratios
    objective = torch.min(ratio * advantage, ratio.clamp(1 - low, 1 + eps) * advantage)
    spo = audit.cfg.ppo.negative_advantages == "spo"
    if spo:  # negative advantages: SPO's r A - |A| (r - 1)^2 / (2 eps_low), no floor
        objective = torch.where(advantage < 0, ratio * advantage + advantage * (ratio - 1) ** 2 / (2 * low), objective)
    expected = -objective.mean()
    with torch.no_grad():
        measured = audit.pipeline.module.loss_module(minibatch).get("loss_objective")
    error = float((measured - expected).abs())
    clip = f"{eps:g}" if low == eps else f"[1 - {low:g}, 1 + {eps:g}]"
    clip += f", SPO's pull-back (eps {low:g}) for negative advantages" if spo else ""
    evidence = f"loss on ratios 1.5 / 0.6: {float(measured):.5f}, hand-computed with clip {clip}: {float(expected):.5f}"
    return (OK if error < 1e-4 * max(1.0, abs(float(expected))) else WRONG), evidence


def _value_probe(audit: Audit, offset: float) -> tuple[TensorDictBase, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A mini-batch whose stored (old) values are the current ones +- `offset`."""
    minibatch = _flat_minibatch(audit)
    with torch.no_grad():
        value = audit.pipeline.module.critic(minibatch.select(*audit.pipeline.module.critic.in_keys).clone()).get("state_value")
    sign = torch.where(torch.arange(value.shape[0]) % 2 == 0, 1.0, -1.0).reshape(value.shape)
    old = value + offset * sign
    minibatch.set("state_value", old)
    return minibatch, value, old, minibatch.get("value_target")


@detail(9, "value-function loss clipping")
def check_value_clipping(audit: Audit) -> tuple[str, str]:
    minibatch, value, old, target = _value_probe(audit, offset=1.0)
    eps = audit.cfg.ppo.clip_epsilon
    clipped = old + (value - old).clamp(-eps, eps)
    coeff = 0.5 * audit.cfg.ppo.vf_coef
    with_clip = coeff * torch.max((value - target) ** 2, (clipped - target) ** 2).mean()
    without = coeff * ((value - target) ** 2).mean()
    with torch.no_grad():
        measured = float(audit.pipeline.module.loss_module(minibatch).get("loss_critic"))
    evidence = f"value loss with old values 1.0 away: {measured:.5f}; clipped form {float(with_clip):.5f}, " \
               f"unclipped {float(without):.5f}"
    expected = with_clip if audit.cfg.ppo.clip_value else without
    ok = abs(measured - float(expected)) < 1e-4 * max(1.0, float(expected))
    return verdict(ok, evidence, recommended=bool(audit.cfg.ppo.clip_value))


@detail(10, "loss = policy loss - ent_coef * entropy + vf_coef * value loss")
def check_loss_terms(audit: Audit) -> tuple[str, str]:
    minibatch, value, _, target = _value_probe(audit, offset=0.0)  # old == current: no value clipping
    with torch.no_grad():
        losses = audit.pipeline.module.loss_module(minibatch)
    vf = float(losses.get("loss_critic")) / float(((value - target) ** 2).mean() / 2)
    if "entropy" in losses.keys():
        entropy = float(losses.get("entropy"))
        ent = -float(losses.get("loss_entropy")) / entropy + 0.0 if entropy else float("nan")  # + 0.0: no "-0"
    else:  # a flow head: no closed-form entropy, no entropy term (its config refuses a weight)
        ent = 0.0
    evidence = f"measured vf_coef {vf:.4g} (config {audit.cfg.ppo.vf_coef:g}), ent_coef {ent:.4g} " \
               f"(config {audit.cfg.ppo.entropy_coeff:g}){'' if 'entropy' in losses.keys() else '; no entropy term'}"
    ok = _close(vf, audit.cfg.ppo.vf_coef, 1e-3) and abs(ent - audit.cfg.ppo.entropy_coeff) < 1e-6
    return verdict(ok, evidence, recommended=audit.cfg.ppo.entropy_coeff == (0.0 if audit.continuous else 0.01))


@detail(11, "global gradient-norm clipping")
def check_grad_clip(audit: Audit) -> tuple[str, str]:
    limit = audit.cfg.ppo.max_grad_norm
    applied = audit.update["applied_norms"]
    largest = max(applied) if applied else float("nan")
    evidence = f"largest applied gradient norm {largest:.4g} over {len(applied)} steps; " \
               f"mean pre-clip norm {audit.update['stats'].get('grad_norm', float('nan')):.4g}; limit {limit}"
    if not limit:
        return OFF, evidence
    return (OK if applied and largest <= limit * (1 + 1e-3) else WRONG), evidence


@detail(12, "debug variables: losses, entropy, both approx KLs, clip fraction, explained variance")
def check_debug_variables(audit: Audit) -> tuple[str, str]:
    from gr00t_torchrl.ppo_module import explained_variance

    stats = dict(audit.update["stats"])
    stats["explained_variance"] = explained_variance(audit.batch)
    wanted = ("policy_loss", "value_loss", "entropy", "approx_kl", "old_approx_kl", "clip_fraction",
              "explained_variance")
    if audit.cfg.network.head == "flow":  # no closed-form entropy to log
        wanted = tuple(k for k in wanted if k != "entropy")
    missing = [k for k in wanted if k not in stats or not math.isfinite(stats[k])]
    evidence = ", ".join(f"{k} {stats[k]:.3g}" for k in wanted if k in stats)
    if missing:
        return WRONG, f"missing or non-finite: {', '.join(missing)}; {evidence}"
    return OK, evidence


@detail(13, "separate policy and value networks (vector observations); shared encoder for images")
def check_separate_networks(audit: Audit) -> tuple[str, str]:
    actor = {id(q) for q in audit.pipeline.module.actor.parameters()}
    critic = {id(q) for q in audit.pipeline.module.critic.parameters()}
    shared = actor & critic
    evidence = f"{len(actor)} actor and {len(critic)} critic parameter tensors, {len(shared)} shared"
    if audit.encoder is None:
        return (OK if not shared else WRONG), evidence
    encoder = {id(q) for q in audit.encoder.parameters()}
    heads_apart = not ({id(q) for q in audit.actor_head.parameters()} & {id(q) for q in audit.critic_head.parameters()})
    evidence += f": the {len(encoder)} of the multimodal encoder (all of them: {shared == encoder}); heads apart: {heads_apart}"
    return (OK if shared == encoder and heads_apart else WRONG), evidence
