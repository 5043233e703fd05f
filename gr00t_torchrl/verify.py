"""`gr00t-ppo verify`: the 37 PPO implementation details, audited on the live pipeline.

Each check measures one detail of `shared/PPO_DETAILS.md` on the real objects of a built pipeline
(env, transforms, actor, critic, GAE, loss, optimizer, scheduler) and on one real collected batch,
and reports a status with the evidence it measured:

- ok: the detail is on and behaves as the checklist says;
- off by config: the config switches it off or to another value (e.g. `ppo.adam_eps=1e-8`);
- not applicable: the detail does not apply to this task (e.g. Gaussian details for a discrete task);
- missing: not built yet (Atari / pixel, LSTM and MultiDiscrete details);
- WRONG: the detail applies and the live objects disagree with it. `verify` exits 1 then.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn
from torchrl.data.tensor_specs import Categorical as CategoricalSpec

from gr00t_torchrl import checkpoint as ckpt
from gr00t_torchrl.config import Config
from gr00t_torchrl.envs import find_transform, vector_env
from gr00t_torchrl.envs.gym import BatchClipAction
from gr00t_torchrl.modules.actor_critic import StateIndependentGaussianHead
from gr00t_torchrl.modules.init import HIDDEN_GAIN, POLICY_OUTPUT_GAIN, VALUE_OUTPUT_GAIN
from gr00t_torchrl.pipeline import Pipeline, build_pipeline, make_collector
from gr00t_torchrl.transforms import RunningObservationNorm, RewardScaling

OK, OFF, NA, MISSING, WRONG = "ok", "off by config", "not applicable", "missing", "WRONG"
ROBOT_HIDDEN = [256, 256]


@dataclass
class Finding:
    """One row of the audit: a detail, its status and the evidence measured."""

    number: int
    name: str
    status: str
    evidence: str

    @property
    def applies(self) -> bool:
        # the details not built yet cannot apply: tasks needing them (pixels, MultiDiscrete) are refused
        return self.status not in (NA, MISSING)

    @property
    def failed(self) -> bool:
        return self.status == WRONG


Check = Callable[["Audit"], tuple[str, str]]
CHECKS: dict[int, tuple[str, Check]] = {}


def detail(number: int, name: str) -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        CHECKS[number] = (name, check)
        return check

    return register


class Audit:
    """A built pipeline plus one real collected batch, measured lazily by the checks."""

    def __init__(self, cfg: Config, checkpoint: Path | None = None) -> None:
        self.cfg = cfg
        self.p: Pipeline = build_pipeline(cfg, L.Fabric(accelerator="cpu", devices=1))
        # detail 2 is measured on weights as initialised: for a trained run, a fresh build of its config
        self.initial_nets = (self.p.module.actor, self.p.module.critic)
        head = _gaussian_head(self)
        self.initial_log_std = None if head is None else head.log_std.detach().clone()
        self.trained = checkpoint is not None
        if checkpoint is not None:
            self.initial_nets = copy.deepcopy(self.initial_nets)
            ckpt.load_for_inspection(self.p, ckpt.load(checkpoint), checkpoint)
        self._raw_batch: TensorDictBase | None = None
        self._batch: TensorDictBase | None = None
        self._update: dict[str, Any] | None = None

    # ---------------------------------------------------------------- measured lazily
    @property
    def continuous(self) -> bool:
        return not isinstance(self.p.env.action_spec, CategoricalSpec)

    @property
    def raw_batch(self) -> TensorDictBase:
        """One rollout of num_envs x num_steps from the real collector, before GAE."""
        if self._raw_batch is None:
            collector = make_collector(self.p)
            self._raw_batch = next(iter(collector)).clone()
            collector.shutdown()
            # detail 27: the stored log-probs must be those of the stored actions (checked before any update)
            flat = self._raw_batch.reshape(-1)
            key = self.p.module.loss_module.tensor_keys.sample_log_prob
            with torch.no_grad():
                recomputed = self.p.module.actor.get_dist(flat.clone()).log_prob(flat.get("action"))
            self.log_prob_error = float((recomputed - flat.get(key)).abs().max())
        return self._raw_batch

    @property
    def batch(self) -> TensorDictBase:
        """The rollout after the module's own GAE and advantage normalization."""
        if self._batch is None:
            self._batch = self.raw_batch.clone()
            self.p.module.compute_advantages(self._batch)
        return self._batch

    @property
    def update(self) -> dict[str, Any]:
        """One real PPO update on the batch, instrumented: mini-batch indices, gradient norms, stats."""
        if self._update is None:
            batch = self.batch.clone()
            batch.set("audit_index", torch.arange(batch.numel()).reshape(batch.shape))
            minibatches: list[torch.Tensor] = []
            applied_norms: list[float] = []
            optimizer = self.p.optimizer
            step = optimizer.step

            def recording_step(*args: Any, **kwargs: Any) -> Any:
                grads = [q.grad for q in self.p.module.parameters() if q.grad is not None]
                applied_norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
                return step(*args, **kwargs)

            def recording_loss(minibatch: TensorDictBase) -> TensorDictBase:
                minibatches.append(minibatch.get("audit_index").clone())
                return self.p.fabric_module.training_step(minibatch)

            optimizer.step = recording_step
            loss_keys = self.p.module.loss_keys
            self.p.module.loss_keys = [*loss_keys, "audit_index"]  # the update passes only these to the loss
            try:
                stats = self.p.module.update(batch, optimizer, recording_loss)
            finally:
                del optimizer.step
                self.p.module.loss_keys = loss_keys
            self._update = {"minibatches": minibatches, "applied_norms": applied_norms, "stats": stats}
        return self._update

    def run(self, numbers: list[int] | None = None) -> list[Finding]:
        findings = []
        for number in sorted(numbers or range(1, 38)):
            name, check = CHECKS[number]
            findings.append(Finding(number, name, *check(self)))
        return findings


def _verdict(ok: bool, evidence: str, recommended: bool = True) -> tuple[str, str]:
    """WRONG when the live objects disagree with the config; else ok, or off by config when the
    config departs from the checklist's value."""
    if not ok:
        return WRONG, evidence
    return (OK if recommended else OFF), evidence


def _no_transform(enabled: bool, name: str) -> tuple[str, str]:
    """The finding when a normalizing transform is absent: off by config, or WRONG if it should be there."""
    return (WRONG if enabled else OFF), f"no {name} transform in the env"


def _linears(net: nn.Module) -> list[nn.Linear]:
    return [m for m in net.modules() if isinstance(m, nn.Linear)]


def _close(a: float, b: float, rel: float = 1e-4) -> bool:
    return abs(a - b) <= rel * max(abs(b), 1e-12)


def _flat_minibatch(a: Audit, size: int = 256) -> TensorDictBase:
    return a.batch.reshape(-1)[:size].clone()


# ==================================================================== core (1-13)
@detail(1, "vectorized architecture (N envs in lock-step, N x T rollout)")
def check_vectorized(a: Audit) -> tuple[str, str]:
    n, t = a.cfg.env.num_envs, a.cfg.ppo.num_steps
    env_shape, batch_shape = tuple(a.p.env.batch_size), tuple(a.batch.shape)
    evidence = f"env batch {list(env_shape)}, rollout {list(batch_shape)} (expected [{n}] and [{n}, {t}])"
    return (OK if env_shape == (n,) and batch_shape == (n, t) else WRONG), evidence


@detail(2, "orthogonal init, zero biases; gains sqrt(2) hidden, 0.01 policy, 1.0 value")
def check_orthogonal_init(a: Audit) -> tuple[str, str]:
    actor, critic = a.initial_nets
    measured, ok = [], True
    for label, net, out_gain in (("actor", actor, POLICY_OUTPUT_GAIN), ("critic", critic, VALUE_OUTPUT_GAIN)):
        layers = _linears(net)
        gains = []
        for index, layer in enumerate(layers):
            expected = out_gain if index == len(layers) - 1 else HIDDEN_GAIN
            singular = torch.linalg.svdvals(layer.weight.detach().double())
            gains.append(float(singular.mean()))
            orthogonal = torch.allclose(singular, torch.full_like(singular, expected), rtol=1e-3)
            ok &= orthogonal and bool((layer.bias.detach() == 0).all())
        measured.append(f"{label} singular values {', '.join(f'{g:.3g}' for g in gains)}")
    where = "fresh build of the run's config" if a.trained else "as initialised"
    evidence = f"{'; '.join(measured)} ({where}); biases {'0' if ok else 'checked'}"
    if not a.cfg.network.orthogonal_init:
        return OFF, evidence
    return _verdict(ok, evidence)


@detail(3, "Adam epsilon 1e-5")
def check_adam_eps(a: Audit) -> tuple[str, str]:
    optimizer = getattr(a.p.optimizer, "optimizer", a.p.optimizer)
    eps = {group["eps"] for group in optimizer.param_groups}
    evidence = f"{type(optimizer).__name__}, eps {sorted(eps)} (config {a.cfg.ppo.adam_eps:g})"
    ok = isinstance(optimizer, torch.optim.Adam) and eps == {a.cfg.ppo.adam_eps}
    return _verdict(ok, evidence, recommended=a.cfg.ppo.adam_eps == 1e-5)


@detail(4, "learning-rate annealing, linear to 0")
def check_lr_annealing(a: Audit) -> tuple[str, str]:
    n = a.p.num_iterations
    factor = a.p.scheduler.lr_lambdas[0]
    factors = [factor(k) for k in range(n + 1)]
    linear = all(abs(f - (1.0 - k / n)) < 1e-9 for k, f in enumerate(factors))
    evidence = f"LR factor {factors[0]:.3g} -> {factors[n // 2]:.3g} -> {factors[n]:.3g} over {n} iterations"
    if a.cfg.ppo.desired_kl is not None:
        evidence += f"; rsl_rl's KL-adaptive LR instead (desired KL {a.cfg.ppo.desired_kl:g})"
    if not a.cfg.ppo.anneal_lr:
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
def check_gae(a: Audit) -> tuple[str, str]:
    batch = a.raw_batch.clone()
    n, t = batch.shape
    timeout_env, end_env = 0, min(1, n - 1)
    flags = {key: batch.get(("next", key)) for key in ("done", "terminated", "truncated")}
    flags["done"][timeout_env, t // 2] = True  # an injected time-out ...
    flags["truncated"][timeout_env, t // 2] = True
    flags["terminated"][timeout_env, t // 2] = False
    flags["done"][end_env, t // 3] = True  # ... and an injected termination
    flags["terminated"][end_env, t // 3] = True
    flags["truncated"][end_env, t // 3] = False
    critic = a.p.module.critic
    # auto-reset envs (Isaac Lab API) lose final observations (NaN): a time-out then bootstraps from
    # the last observation it has, V(s_{T-1}); the reference does that substitution itself
    reference_batch = batch.clone()
    lost = 0
    for key in critic.in_keys:
        next_obs = reference_batch.get(("next", key))
        missing = torch.isnan(next_obs).any(-1, keepdim=True)
        lost = max(lost, int(missing.sum()))
        reference_batch.set(("next", key), torch.where(missing, reference_batch.get(key), next_obs))
    reference = _reference_gae(reference_batch, critic, a.cfg.ppo.gamma, a.cfg.ppo.lmbda)
    a.p.module.estimate_advantages(batch)
    error = float((batch.get("advantage").squeeze(-1) - reference).abs().max())
    gamma, lmbda = float(a.p.module.advantage_module.gamma), float(a.p.module.advantage_module.lmbda)
    evidence = (
        f"max |A - A_ref| {error:.1e} over {n}x{t} steps holding a time-out and a termination; "
        f"gamma {gamma:g}, lambda {lmbda:g}" + (f"; {lost} lost final observation(s) bootstrapped from the last one" if lost else "")
    )
    return (OK if error < 1e-4 else WRONG), evidence


@detail(6, "mini-batch updates over shuffled indices, several epochs")
def check_minibatches(a: Audit) -> tuple[str, str]:
    minibatches = a.update["minibatches"]
    k, epochs = a.cfg.ppo.num_minibatches, int(a.update["stats"]["epochs_run"])
    total = a.batch.numel()
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
def check_advantage_norm(a: Audit) -> tuple[str, str]:
    advantage = a.batch.get("advantage")
    mean, std = float(advantage.mean()), float(advantage.std())
    per_minibatch = bool(a.p.module.loss_module.normalize_advantage)
    evidence = f"batch advantage mean {mean:.1e}, std {std:.4f}; loss normalizes per mini-batch: {per_minibatch}"
    mode = a.cfg.ppo.advantage_norm
    if mode == "batch":
        ok = abs(mean) < 1e-4 and abs(std - 1) < 1e-3 and not per_minibatch
        return (OK if ok else WRONG), evidence
    return (OFF if per_minibatch == (mode == "minibatch") else WRONG), evidence


def _ratio_probe(a: Audit) -> tuple[TensorDictBase, torch.Tensor]:
    """A mini-batch whose stored log-probs make the ratios 1.5 and 0.6, alternately."""
    minibatch = _flat_minibatch(a)
    key = a.p.module.loss_module.tensor_keys.sample_log_prob
    with torch.no_grad():
        log_prob = a.p.module.actor.get_dist(minibatch.clone()).log_prob(minibatch.get("action"))
    ratio = torch.where(torch.arange(minibatch.shape[0]) % 2 == 0, 1.5, 0.6).reshape(log_prob.shape)
    minibatch.set(key, log_prob - ratio.log())
    return minibatch, ratio


@detail(8, "clipped surrogate objective")
def check_clipped_objective(a: Audit) -> tuple[str, str]:
    minibatch, ratio = _ratio_probe(a)
    eps = a.cfg.ppo.clip_epsilon
    advantage = minibatch.get("advantage").reshape(ratio.shape)
    expected = -torch.min(ratio * advantage, ratio.clamp(1 - eps, 1 + eps) * advantage).mean()
    with torch.no_grad():
        measured = a.p.module.loss_module(minibatch).get("loss_objective")
    error = float((measured - expected).abs())
    evidence = f"loss on ratios 1.5 / 0.6: {float(measured):.5f}, hand-computed with clip {eps:g}: {float(expected):.5f}"
    return (OK if error < 1e-4 * max(1.0, abs(float(expected))) else WRONG), evidence


def _value_probe(a: Audit, offset: float) -> tuple[TensorDictBase, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A mini-batch whose stored (old) values are the current ones +- `offset`."""
    minibatch = _flat_minibatch(a)
    with torch.no_grad():
        value = a.p.module.critic(minibatch.select(*a.p.module.critic.in_keys).clone()).get("state_value")
    sign = torch.where(torch.arange(value.shape[0]) % 2 == 0, 1.0, -1.0).reshape(value.shape)
    old = value + offset * sign
    minibatch.set("state_value", old)
    return minibatch, value, old, minibatch.get("value_target")


@detail(9, "value-function loss clipping")
def check_value_clipping(a: Audit) -> tuple[str, str]:
    minibatch, value, old, target = _value_probe(a, offset=1.0)
    eps = a.cfg.ppo.clip_epsilon
    clipped = old + (value - old).clamp(-eps, eps)
    coeff = 0.5 * a.cfg.ppo.vf_coef
    with_clip = coeff * torch.max((value - target) ** 2, (clipped - target) ** 2).mean()
    without = coeff * ((value - target) ** 2).mean()
    with torch.no_grad():
        measured = float(a.p.module.loss_module(minibatch).get("loss_critic"))
    evidence = f"value loss with old values 1.0 away: {measured:.5f}; clipped form {float(with_clip):.5f}, " \
               f"unclipped {float(without):.5f}"
    expected = with_clip if a.cfg.ppo.clip_value else without
    ok = abs(measured - float(expected)) < 1e-4 * max(1.0, float(expected))
    return _verdict(ok, evidence, recommended=bool(a.cfg.ppo.clip_value))


@detail(10, "loss = policy loss - ent_coef * entropy + vf_coef * value loss")
def check_loss_terms(a: Audit) -> tuple[str, str]:
    minibatch, value, _, target = _value_probe(a, offset=0.0)  # old == current: no value clipping
    with torch.no_grad():
        losses = a.p.module.loss_module(minibatch)
    vf = float(losses.get("loss_critic")) / float(((value - target) ** 2).mean() / 2)
    entropy = float(losses.get("entropy"))
    ent = -float(losses.get("loss_entropy")) / entropy + 0.0 if entropy else float("nan")  # + 0.0: no "-0"
    evidence = f"measured vf_coef {vf:.4g} (config {a.cfg.ppo.vf_coef:g}), ent_coef {ent:.4g} " \
               f"(config {a.cfg.ppo.entropy_coeff:g})"
    ok = _close(vf, a.cfg.ppo.vf_coef, 1e-3) and abs(ent - a.cfg.ppo.entropy_coeff) < 1e-6
    return _verdict(ok, evidence, recommended=a.cfg.ppo.entropy_coeff == (0.0 if a.continuous else 0.01))


@detail(11, "global gradient-norm clipping")
def check_grad_clip(a: Audit) -> tuple[str, str]:
    limit = a.cfg.ppo.max_grad_norm
    applied = a.update["applied_norms"]
    largest = max(applied) if applied else float("nan")
    evidence = f"largest applied gradient norm {largest:.4g} over {len(applied)} steps; " \
               f"mean pre-clip norm {a.update['stats'].get('grad_norm', float('nan')):.4g}; limit {limit}"
    if not limit:
        return OFF, evidence
    return (OK if applied and largest <= limit * (1 + 1e-3) else WRONG), evidence


@detail(12, "debug variables: losses, entropy, both approx KLs, clip fraction, explained variance")
def check_debug_variables(a: Audit) -> tuple[str, str]:
    from gr00t_torchrl.ppo_module import explained_variance

    stats = dict(a.update["stats"])
    stats["explained_variance"] = explained_variance(a.batch)
    wanted = ("policy_loss", "value_loss", "entropy", "approx_kl", "old_approx_kl", "clip_fraction",
              "explained_variance")
    missing = [k for k in wanted if k not in stats or not math.isfinite(stats[k])]
    evidence = ", ".join(f"{k} {stats[k]:.3g}" for k in wanted if k in stats)
    if missing:
        return WRONG, f"missing or non-finite: {', '.join(missing)}; {evidence}"
    return OK, evidence


@detail(13, "separate policy and value networks (vector observations)")
def check_separate_networks(a: Audit) -> tuple[str, str]:
    actor = {id(q) for q in a.p.module.actor.parameters()}
    critic = {id(q) for q in a.p.module.critic.parameters()}
    shared = len(actor & critic)
    evidence = f"{len(actor)} actor and {len(critic)} critic parameter tensors, {shared} shared"
    return (OK if shared == 0 else WRONG), evidence


# ==================================================================== Atari / pixel (14-22)
for _number, _name in [
    (14, "NoopReset"), (15, "MaxAndSkip"), (16, "EpisodicLife"), (17, "FireReset"), (18, "WarpFrame 84x84 gray"),
    (19, "ClipReward to sign"), (20, "FrameStack 4"), (21, "shared Nature-CNN trunk"), (22, "images scaled to [0, 1]"),
]:
    detail(_number, _name)(lambda a: (MISSING, "pixel / Atari tasks are not built yet (this task has vector observations)"))


# ==================================================================== continuous actions (23-31)
def _gaussian_head(a: Audit) -> StateIndependentGaussianHead | None:
    heads = [m for m in a.p.module.actor.modules() if isinstance(m, StateIndependentGaussianHead)]
    return heads[0] if heads else None


def _dist(a: Audit, observation: torch.Tensor) -> torch.distributions.Distribution:
    td = TensorDict({"observation": observation}, batch_size=observation.shape[:1])
    with torch.no_grad():
        return a.p.module.actor.get_dist(td)


@detail(23, "actions from a Normal distribution")
def check_normal(a: Audit) -> tuple[str, str]:
    if not a.continuous:
        return NA, "discrete actions: categorical policy"
    dist = _dist(a, a.batch.get("observation").reshape(-1, a.batch.get("observation").shape[-1])[:8])
    base = dist.base_dist if isinstance(dist, torch.distributions.Independent) else dist
    evidence = f"policy distribution {type(dist).__name__} over {type(base).__name__}"
    return (OK if type(base) is torch.distributions.Normal else WRONG), evidence


@detail(24, "state-independent log std: a learnable parameter, init 0")
def check_log_std(a: Audit) -> tuple[str, str]:
    if not a.continuous:
        return NA, "discrete actions"
    if a.cfg.network.state_dependent_std:
        return OFF, "network.state_dependent_std=true: the std is a network output"
    head = _gaussian_head(a)
    action_dim = a.p.env.action_spec.shape[-1]
    obs_dim = a.batch.get("observation").shape[-1]
    probe = torch.cat([torch.zeros(1, obs_dim), torch.full((1, obs_dim), 5.0), torch.randn(6, obs_dim)])
    scale = _dist(a, probe).base_dist.scale
    independent = bool(torch.allclose(scale, scale[:1].expand_as(scale)))
    if head is None:
        return WRONG, f"no state-independent log-std head in the actor; scale varies with obs: {not independent}"
    optimized = any(q is head.log_std for g in a.p.optimizer.param_groups for q in g["params"])
    log_std = head.log_std.detach()
    ok = (isinstance(head.log_std, nn.Parameter) and tuple(log_std.shape) == (action_dim,) and optimized
          and independent and torch.allclose(scale[0], log_std.exp()))
    initial = "" if a.trained else f", init {a.initial_log_std.tolist()} (config {a.cfg.network.init_log_std:g})"
    evidence = (f"nn.Parameter of shape {list(log_std.shape)} in the optimizer: {optimized}; std equal over "
                f"8 different observations: {independent}{initial}")
    if ok and not a.trained and not torch.all(a.initial_log_std == a.cfg.network.init_log_std):
        ok = False
    return _verdict(ok, evidence, recommended=a.cfg.network.init_log_std == 0.0)


@detail(25, "independent action components: log-probs summed over action dims")
def check_summed_log_probs(a: Audit) -> tuple[str, str]:
    if not a.continuous:
        return NA, "discrete actions"
    flat = a.batch.reshape(-1)[:64]
    dist = _dist(a, flat.get("observation"))
    action = flat.get("action")
    joint = dist.log_prob(action)
    base = dist.base_dist if isinstance(dist, torch.distributions.Independent) else dist
    per_dim = torch.distributions.Normal(base.loc, base.scale).log_prob(action)
    ok = joint.shape == per_dim.shape[:-1] and torch.allclose(joint, per_dim.sum(-1), atol=1e-5)
    evidence = f"log_prob shape {list(joint.shape)} for actions {list(action.shape)}; equals the per-dim sum: {ok}"
    return (OK if ok else WRONG), evidence


def _describe(net: nn.Module) -> tuple[list[int], set[str]]:
    layers = _linears(net)
    sizes = [layers[0].in_features, *[layer.out_features for layer in layers]]
    activations = {type(m).__name__ for m in net.modules() if isinstance(m, (nn.Tanh, nn.ReLU, nn.ELU))}
    return sizes, activations


@detail(26, "separate MLPs for policy and value (256x256 Tanh for robots)")
def check_mlps(a: Audit) -> tuple[str, str]:
    hidden, activation = list(a.cfg.network.hidden_sizes), a.cfg.network.activation
    expected_activation = {"tanh": "Tanh", "relu": "ReLU", "elu": "ELU"}[activation]
    described, ok = [], True
    for label, net in (("actor", a.p.module.actor), ("critic", a.p.module.critic)):
        sizes, activations = _describe(net)
        described.append(f"{label} {'x'.join(map(str, sizes))} {'/'.join(sorted(activations))}")
        ok &= sizes[1:-1] == hidden and activations == {expected_activation}
    evidence = "; ".join(described)
    robot_default = hidden == ROBOT_HIDDEN and activation == "tanh"
    return _verdict(ok, evidence, recommended=robot_default or not a.continuous)


@detail(27, "actions clipped in the env step only; the unclipped sample is stored")
def check_action_clipping(a: Audit) -> tuple[str, str]:
    if not a.continuous:
        return NA, "discrete actions"
    venv = vector_env(a.p.env)
    if hasattr(venv, "envs") or hasattr(venv, "env_fns"):  # Gymnasium: the batch clip over the vector env
        wrapped = isinstance(a.p.env.base_env._env, BatchClipAction)  # the one vector wrapper the env gets
        how = "env clips (BatchClipAction over the vector env)"
        space = venv.single_action_space  # the task's bounds (the clip widens its own space to +-inf)
    elif hasattr(venv, "snapshot"):  # a built-in batched task saturates commands inside its step
        wrapped, how = _saturates(venv), "task saturates commands in its step (probed: x5 the bound == the bound)"
        space = venv.single_action_space
    else:
        return NA, "Isaac Lab / mjlab env: its action terms process raw actions (no bounds to clip to)"
    low, high = torch.as_tensor(space.low), torch.as_tensor(space.high)
    action = a.batch.get("action").reshape(-1, low.shape[-1])
    outside = int(((action < low) | (action > high)).sum())
    at_bound = int(((action == low) | (action == high)).sum())
    consistent = a.log_prob_error < 1e-4
    evidence = (f"{outside} of {action.numel()} stored action values outside [{float(low.min()):g}, "
                f"{float(high.max()):g}], {at_bound} exactly at a bound; stored log-probs are those of the "
                f"stored actions: {consistent}; {how}: {wrapped}")
    if not a.cfg.env.clip_actions:
        return OFF, evidence
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
def check_obs_norm(a: Audit) -> tuple[str, str]:
    norm = find_transform(a.p.env, RunningObservationNorm)
    if norm is None:
        return _no_transform(a.cfg.env.normalize_obs, "RunningObservationNorm")
    _ = a.batch  # a rollout has run
    stats = norm.stats[0]
    probe = torch.randn(4, stats.mean.shape[-1]) * 3
    expected = ((probe - stats.mean.float()) / torch.sqrt(stats.var.float() + norm.eps)).clamp(-norm.clip, norm.clip)
    normalizes = torch.allclose(norm.normalize(0, probe), expected, atol=1e-5)
    in_state = any(k.endswith("mean") for k in a.p.env.transform.state_dict())
    seen = int(stats.count)
    # auto-reset envs lose each finished episode's final observation (NaN): not a statistic
    lost = int(torch.isnan(a.raw_batch.get(("next", "observation"))).any(-1).sum())
    expected_seen = a.cfg.frames_per_batch - lost
    evidence = (f"statistics over {seen} observations (rollout of {a.cfg.frames_per_batch}"
                f"{f', {lost} lost final observations skipped' if lost else ''}), mean "
                f"{[round(x, 3) for x in stats.mean.tolist()[:3]]}..., normalizes a probe correctly: {normalizes}; "
                f"in the checkpointed state: {in_state}")
    ok = normalizes and in_state and (seen >= expected_seen or a.trained) and not norm.frozen
    return (OK if ok else WRONG), evidence


@detail(29, "observation clipping after normalization, [-10, 10]")
def check_obs_clip(a: Audit) -> tuple[str, str]:
    norm = find_transform(a.p.env, RunningObservationNorm)
    if norm is None:
        return _no_transform(a.cfg.env.normalize_obs, "RunningObservationNorm")
    dim = norm.stats[0].mean.shape[-1]
    out = norm.normalize(0, torch.full((2, dim), 1e9) * torch.tensor([[1.0], [-1.0]]))
    evidence = f"a probe 1e9 away normalizes to [{float(out.min()):g}, {float(out.max()):g}] " \
               f"(config {a.cfg.env.obs_clip:g})"
    ok = float(out.max()) == a.cfg.env.obs_clip and float(out.min()) == -a.cfg.env.obs_clip
    return _verdict(ok, evidence, recommended=a.cfg.env.obs_clip == 10.0)


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
def check_reward_scaling(a: Audit) -> tuple[str, str]:
    scaling = find_transform(a.p.env, RewardScaling)
    if scaling is None:
        return _no_transform(a.cfg.env.scale_reward, "RewardScaling")
    gamma = a.cfg.ppo.gamma
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
def check_reward_clip(a: Audit) -> tuple[str, str]:
    scaling = find_transform(a.p.env, RewardScaling)
    if scaling is None:
        return _no_transform(a.cfg.env.scale_reward, "RewardScaling")
    measured = _reward_probe(scaling, [0.0, 1.0, 1e9, -1e12], [False] * 4, frozen=True)
    evidence = f"probe rewards 1e9 and -1e12 at return std 1 scale to {measured[2]:g} and {measured[3]:g} " \
               f"(config {a.cfg.env.reward_clip:g})"
    ok = measured[2] == a.cfg.env.reward_clip and measured[3] == -a.cfg.env.reward_clip
    return _verdict(ok, evidence, recommended=a.cfg.env.reward_clip == 10.0)


# ==================================================================== LSTM (32-36), MultiDiscrete (37)
for _number, _name in [
    (32, "LSTM init: orthogonal weights, zero biases"), (33, "initial LSTM state zeros"),
    (34, "LSTM state reset where an episode ends"), (35, "mini-batches of whole env sequences"),
    (36, "hidden states recomputed during training"),
]:
    detail(_number, _name)(lambda a: (MISSING, "the recurrent (LSTM) policy is not built yet; this policy is an MLP"))
detail(37, "MultiDiscrete: a categorical per action dim, log-probs summed")(
    lambda a: (MISSING, "MultiDiscrete action spaces are not supported yet (refused at config time)")
)


# ==================================================================== report
def format_table(findings: list[Finding]) -> str:
    width = max(len(f.name) for f in findings)
    lines = [f"{'#':>2}  {'detail':<{width}}  {'status':<14}  evidence"]
    for f in findings:
        lines.append(f"{f.number:>2}  {f.name:<{width}}  {f.status:<14}  {f.evidence}")
    return "\n".join(lines)


def audit_for(argv: list[str]) -> Audit:
    """The audit of `run_dir=<dir>` (its config and last checkpoint) or of a config built from key=value words."""
    from gr00t_torchrl.config import ConfigError, parse_overrides
    from gr00t_torchrl.tasks import read_for_inspection

    args = parse_overrides(argv)
    if "run_dir" in args and len(args) == 1:
        run_dir = Path(str(args["run_dir"]))
        # the audit runs in one process; a DDP run is audited from rank 0's state
        return Audit(read_for_inspection(run_dir), checkpoint=run_dir / "checkpoints" / "last.ckpt")
    if "run_dir" in args:
        raise ConfigError("verify takes either run_dir=<a run directory> alone, or a task and settings.")
    from gr00t_torchrl.tasks import resolve_config

    cfg = resolve_config(argv)
    cfg.devices = 1
    return Audit(cfg)


def to_json(findings: list[Finding]) -> list[dict[str, Any]]:
    return [
        {"number": f.number, "name": f.name, "status": f.status, "evidence": f.evidence, "applies": f.applies}
        for f in findings
    ]
