"""GR00T's flow-matching action head, trained by PPO through Flow Policy Optimization (FPO).

The head turns Gaussian noise into an action with K Euler steps of a learned velocity field v(x, t | s),
as GR00T N1's action head does: x_0 ~ N(0, I), x_{k+1} = x_k + v(x_k, k / K | s) / K, the action is x_K.
Training follows conditional flow matching: for an action a, noise e and time t, the noisy point is
x_t = (1 - t) e + t a and the velocity target a - e.

A flow has no tractable log-likelihood, so PPO's ratio comes from FPO (McAllister et al. 2025): at
collection, N (t, e) pairs are drawn per action and stored in the TensorDict; the policy's "log-prob" of
an action is minus its conditional flow-matching loss averaged over those pairs, so that the ratio
exp(log_prob_new - log_prob_old) = exp(L_old - L_new) is exactly 1 at the collection parameters. With
`pairs="separate"` (an option of FPO's reference, which FPO++ found important) each pair has its own ratio, the
log-prob is [..., N] and ClipPPOLoss clips each pair's ratio and averages the objective over pairs: what lets
the head learn from scratch without its action spread collapsing (benchmarks/results/flow_scratch.md).
TorchRL's ClipPPOLoss calls `get_dist(...).log_prob(action)` as for any policy, so the loss and the
update stay the library's. There is no closed-form entropy: the entropy bonus is refused for this head.

The other ratio (`ratio="chain"`, ReinFlow, Zhang et al. 2025) makes sampling itself a Markov chain of
Gaussians: a learned noise network gives each Euler step a standard deviation sigma_k, so
x_{k+1} ~ N(x_k + v(x_k, t_k | s) / K, sigma_k^2), and the log-probability of the stored chain
x_0 .. x_K is an exact sum of Gaussian terms. Suited to fine-tuning a cloned head: the velocity field
keeps its meaning and the noise network adds the exploration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch import nn
from torchrl.envs.utils import ExplorationType, exploration_type

from gr00t_torchrl.modules.actor_critic import ACTIVATIONS, make_mlp
from gr00t_torchrl.modules.init import POLICY_OUTPUT_GAIN, orthogonal_init_

FPO_T, FPO_NOISE = "fpo_t", "fpo_noise"  # the stored (t, e) pairs of each collected action
FLOW_CHAIN = "flow_chain"  # the stored Euler chain x_0 .. x_K of each collected action (ratio="chain")


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of t in [0, 1], [..., dim] (sin and cos at geometrically spaced frequencies)."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device, dtype=t.dtype) / max(half - 1, 1))
    angles = 2 * math.pi * t.unsqueeze(-1) * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class VelocityNet(nn.Module):
    """v(x, t | s): an MLP over [s, x] whose first hidden layer is scaled and shifted by t's embedding (FiLM)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], activation: str, time_dim: int = 32,
                 orthogonal_init: bool = True, output_scale: float = 1.0) -> None:
        super().__init__()
        self.time_dim = time_dim
        self.output_scale = output_scale  # the MLP's output times this is the velocity (FPO's reference: 0.25)
        self.mlp = make_mlp(obs_dim + action_dim, action_dim, hidden_sizes, activation)
        if orthogonal_init:
            orthogonal_init_(self.mlp, POLICY_OUTPUT_GAIN)
        first = hidden_sizes[0] if hidden_sizes else action_dim
        # raw parameters, zero at first (FiLM starts as the identity), so the MLP's linears stay the MLP's own
        self.film_weight = nn.Parameter(torch.zeros(2 * first, time_dim))
        self.film_bias = nn.Parameter(torch.zeros(2 * first))

    def forward(self, obs: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        scale, shift = nn.functional.linear(time_embedding(t, self.time_dim), self.film_weight, self.film_bias).chunk(2, -1)
        layers = list(self.mlp)
        h = layers[0](torch.cat([obs, x], dim=-1))
        h = h * (1 + scale) + shift
        for layer in layers[1:]:
            h = layer(h)
        return h * self.output_scale if self.output_scale != 1.0 else h


class NoiseNet(nn.Module):
    """sigma(x_k, t_k | s), ReinFlow's exploration noise of each Euler step, kept within [min_std, max_std]."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], activation: str,
                 min_std: float, max_std: float, time_dim: int = 32) -> None:
        super().__init__()
        self.time_dim = time_dim
        self.mlp = orthogonal_init_(make_mlp(obs_dim + action_dim + time_dim, action_dim, hidden_sizes, activation),
                                    POLICY_OUTPUT_GAIN)
        self.log_min, self.log_max = math.log(min_std), math.log(max_std)

    def forward(self, obs: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        u = torch.sigmoid(self.mlp(torch.cat([obs, x, time_embedding(t, self.time_dim)], dim=-1)))
        return torch.exp(self.log_min + (self.log_max - self.log_min) * u)  # starts midway (in log) between the bounds


def chain_log_prob(net: VelocityNet, noise_net: NoiseNet, obs: torch.Tensor, chain: torch.Tensor,
                   start_std: float = 1.0) -> torch.Tensor:
    """log p(x_0 .. x_K | s) of a stored chain [..., K + 1, A]: N(x_0; 0, start_std^2 I) and each step's Gaussian
    transition."""
    steps = chain.shape[-2] - 1
    x, following = chain[..., :-1, :], chain[..., 1:, :]
    t = (torch.arange(steps, device=chain.device, dtype=chain.dtype) / steps).expand(x.shape[:-1])
    repeated = obs.unsqueeze(-2).expand(*obs.shape[:-1], steps, obs.shape[-1])
    mean = x + net(repeated, x, t) / steps
    std = noise_net(repeated, x, t)
    transitions = torch.distributions.Normal(mean, std).log_prob(following).sum((-1, -2))
    start = torch.distributions.Normal(torch.zeros_like(chain[..., 0, :]), start_std).log_prob(chain[..., 0, :]).sum(-1)
    return start + transitions


class ChainRatio(torch.distributions.Distribution):
    """ClipPPOLoss's `log_prob(action)` for the noisy Euler chain: the exact log-probability of the stored chain."""

    arg_constraints: dict = {}

    def __init__(self, net: VelocityNet, noise_net: NoiseNet, obs: torch.Tensor, chain: torch.Tensor,
                 start_std: float = 1.0) -> None:
        self.net, self.noise_net, self.obs, self.chain, self.start_std = net, noise_net, obs, chain, start_std
        super().__init__(batch_shape=obs.shape[:-1], validate_args=False)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:  # the action is the chain's last point
        return chain_log_prob(self.net, self.noise_net, self.obs, self.chain, self.start_std)


class FlowRatio(torch.distributions.Distribution):
    """What ClipPPOLoss needs from a policy: `log_prob(action)`, here minus the CFM loss over the stored pairs.

    With `pairs="averaged"` one log-prob per action, minus the loss averaged over its N pairs (one ratio
    per action); with `"separate"` one per pair, [..., N] (the stored "action_log_prob" is [..., N] too),
    so ClipPPOLoss clips each pair's ratio and averages the objective over pairs (TorchRL broadcasts the
    [..., 1] advantage over them). `log_ratio_clip` (with the stored `old` log-prob) bounds each log-ratio
    to [-c, c] before it is exponentiated, as FPO's reference does with per-pair ratios (c = 3).
    """

    arg_constraints: dict = {}

    def __init__(self, net: VelocityNet, obs: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                 loss_weight: str = "velocity", pairs: str = "averaged", log_ratio_clip: float | None = None,
                 old: torch.Tensor | None = None) -> None:
        self.net, self.obs, self.t, self.noise = net, obs, t, noise
        self.loss_weight, self.pairs, self.log_ratio_clip, self.old = loss_weight, pairs, log_ratio_clip, old
        super().__init__(batch_shape=obs.shape[:-1], validate_args=False)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        losses = pair_losses(self.net, self.obs, action, self.t, self.noise, self.loss_weight)
        log_prob = -(losses if self.pairs == "separate" else losses.mean(-1))
        if self.log_ratio_clip is None or self.old is None:
            return log_prob
        old = self.old.to(log_prob.dtype)
        return old + (log_prob - old).clamp(-self.log_ratio_clip, self.log_ratio_clip)


def pair_losses(net: VelocityNet, obs: torch.Tensor, action: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                loss_weight: str = "velocity") -> torch.Tensor:
    """The conditional flow-matching loss of each (action, pair): obs [..., O], action [..., A], t [..., N],
    noise [..., N, A] -> [..., N].

    `loss_weight="velocity"`: the velocity's squared error, averaged over action dims. `"noise"`: the error of
    the noise recovered from the velocity, e_hat = x_t - t v, which is t^2 times the velocity's (FPO's
    reference "u_but_supervise_as_eps"): pairs near the noise end, where the target is most uncertain, weigh less.
    """
    samples = t.shape[-1]
    x_t = (1 - t.unsqueeze(-1)) * noise + t.unsqueeze(-1) * action.unsqueeze(-2)
    target = action.unsqueeze(-2) - noise
    repeated = obs.unsqueeze(-2).expand(*obs.shape[:-1], samples, obs.shape[-1])
    velocity = net(repeated, x_t, t)
    error = (velocity - target).square().mean(-1)
    return error * t.square() if loss_weight == "noise" else error


def cfm_loss(net: VelocityNet, obs: torch.Tensor, action: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
             loss_weight: str = "velocity") -> torch.Tensor:
    """The conditional flow-matching loss of each action, averaged over its N pairs: obs [..., O], action [..., A],
    t [..., N], noise [..., N, A] -> [...]."""
    return pair_losses(net, obs, action, t, noise, loss_weight).mean(-1)


def euler_integrate(net: nn.Module, obs: torch.Tensor, noise: torch.Tensor, steps: int) -> torch.Tensor:
    """x_{k+1} = x_k + v(x_k, k / K | s) / K from x_0 = `noise`: the flow head's action (and its exported form).

    t is built with `full_like`, so a traced export keeps the batch size free.
    """
    x = noise
    for k in range(steps):
        x = x + net(obs, x, torch.full_like(x[..., 0], k / steps)) / steps
    return x


class FlowActor(TensorDictModuleBase):
    """The flow-matching policy: samples by K Euler steps, and stores what its PPO ratio needs.

    Reads "observation"; while exploring writes "action" and, with `ratio="fpo"`, N (t, noise) pairs per
    action and "action_log_prob" (minus the CFM loss, the FPO log-prob); with `ratio="chain"`, the noisy
    Euler chain and its exact log-probability. Outside exploration (evaluation) it injects no step noise
    and writes the action only, integrated from fresh noise (`eval_noise="sample"`, as GR00T samples at
    inference: a multimodal policy keeps its modes) or from zero, the noise's mean (`"zero"`: one action
    per state).
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], activation: str, steps: int = 4,
                 samples: int = 8, orthogonal_init: bool = True, in_key: str = "observation",
                 eval_noise: str = "sample", ratio: str = "fpo", noise_std: tuple[float, float] = (0.05, 0.3),
                 output_scale: float = 1.0, loss_weight: str = "velocity", time_sampling: str = "uniform",
                 pairs: str = "averaged", log_ratio_clip: float | None = None, action_noise: float = 0.0,
                 init_noise: float = 1.0, bounds: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation}")
        self.net = VelocityNet(obs_dim, action_dim, hidden_sizes, activation, orthogonal_init=orthogonal_init,
                               output_scale=output_scale)
        self.steps, self.samples, self.action_dim, self.eval_noise = steps, samples, action_dim, eval_noise
        self.ratio = ratio
        # FPO's options: the loss's weighting over t, where the stored t lie, one ratio per action or per pair
        self.loss_weight, self.time_sampling, self.pairs, self.log_ratio_clip = loss_weight, time_sampling, pairs, log_ratio_clip
        self.action_noise = action_noise  # while exploring, Gaussian noise of this std added to each flow action
        self.init_noise = init_noise  # the std of x_0, and of the noise in every flow-matching pair
        self.bounds = bounds  # where set, each collected action is stored clipped to these (low, high)
        self.noise_net = NoiseNet(obs_dim, action_dim, hidden_sizes, activation, *noise_std) if ratio == "chain" else None
        self.in_keys = [in_key]
        # what the update reads from the rollout besides the observation
        self.stored_keys = [FLOW_CHAIN] if ratio == "chain" else [FPO_T, FPO_NOISE]
        self.out_keys = ["action", *self.stored_keys, "action_log_prob"]

    @classmethod
    def from_settings(cls, net: object, obs_dim: int, action_dim: int, in_key: str = "observation",
                      bounds: tuple[torch.Tensor, torch.Tensor] | None = None) -> "FlowActor":
        """The flow head that the `network.flow_*` settings (a `NetworkConfig`) describe: every setting read here
        (`bounds`: the env's, used with `network.flow_clip_actions`)."""
        return cls(obs_dim, action_dim, net.hidden_sizes, net.activation, net.flow_steps, net.flow_samples,
                   net.orthogonal_init, in_key=in_key, eval_noise=net.flow_eval_noise, ratio=net.flow_ratio,
                   noise_std=tuple(net.flow_noise_std), output_scale=net.flow_output_scale,
                   loss_weight=net.flow_loss_weight, time_sampling=net.flow_time_sampling, pairs=net.flow_pair_ratios,
                   log_ratio_clip=net.flow_log_ratio_clip, action_noise=net.flow_action_noise,
                   init_noise=net.flow_init_noise, bounds=bounds)

    def integrate(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """K Euler steps of the velocity field from `noise` (t = 0) to the action (t = 1)."""
        return euler_integrate(self.net, obs, noise, self.steps)

    def sample_chain(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The noisy Euler chain from `noise`: each step's mean plus sigma_k times fresh noise; [..., K + 1, A]."""
        points = [noise]
        for k in range(self.steps):
            x = points[-1]
            t = torch.full(x.shape[:-1], k / self.steps, device=x.device, dtype=x.dtype)
            mean = x + self.net(obs, x, t) / self.steps
            points.append(mean + self.noise_net(obs, x, t) * torch.randn_like(mean))
        return torch.stack(points, dim=-2)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        obs = tensordict.get(self.in_keys[0])
        shape = (*obs.shape[:-1], self.action_dim)
        evaluating = exploration_type() not in (ExplorationType.RANDOM, None)  # then nothing is stored
        if evaluating and self.eval_noise == "zero":  # the noise's mean: for a two-mode policy, between the modes
            return tensordict.set("action", self.integrate(obs, obs.new_zeros(shape)))
        noise = self.draw_noise(shape, obs)
        if evaluating:
            return tensordict.set("action", self.integrate(obs, noise))
        if self.ratio == "chain":
            chain = self.sample_chain(obs, noise)
            tensordict.set("action", chain[..., -1, :])
            tensordict.set(FLOW_CHAIN, chain)
            tensordict.set("action_log_prob", chain_log_prob(self.net, self.noise_net, obs, chain, self.init_noise))
            return tensordict
        action = self.integrate(obs, noise)
        if self.action_noise:  # FPO's "feather" noise: exploration that a collapsed flow keeps
            action = action + self.action_noise * torch.randn_like(action)
        if self.bounds is not None:  # the action the env executes: the ratio then pulls the flow inside the bounds
            action = action.clamp(*(bound.to(action) for bound in self.bounds))
        t = self.draw_t((*obs.shape[:-1], self.samples), obs)
        noise = self.draw_noise((*obs.shape[:-1], self.samples, self.action_dim), obs)
        tensordict.set("action", action)
        tensordict.set(FPO_T, t)
        tensordict.set(FPO_NOISE, noise)
        # the FPO log-prob at the collection parameters: the ratio's denominator (no log-ratio clip without an old one)
        tensordict.set("action_log_prob", FlowRatio(self.net, obs, t, noise, self.loss_weight, self.pairs).log_prob(action))
        return tensordict

    def draw_noise(self, shape: tuple[int, ...], like: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Starting noise N(0, init_noise^2): x_0 of sampling, and the noise of the flow-matching pairs."""
        return self.init_noise * torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)

    def draw_t(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """The stored pairs' t: uniform in [0, 1), or (`time_sampling="grid"`) one of the K Euler steps' k / K."""
        if self.time_sampling == "grid":
            return torch.randint(0, self.steps, shape, device=like.device).to(like.dtype) / self.steps
        return torch.rand(shape, device=like.device, dtype=like.dtype)

    def flow_matching_loss(self, tensordict: TensorDictBase) -> torch.Tensor:
        """Each row's conditional flow-matching loss at one fresh (t, noise) draw: the behaviour-cloning loss."""
        obs, action = tensordict.get(self.in_keys[0]), tensordict.get("action")
        t = torch.rand((*obs.shape[:-1], 1), device=obs.device, dtype=obs.dtype)
        noise = self.draw_noise((*obs.shape[:-1], 1, self.action_dim), obs)
        return cfm_loss(self.net, obs, action, t, noise, self.loss_weight)

    @torch.no_grad()
    def action_spread(self, tensordict: TensorDictBase, draws: int = 16) -> torch.Tensor:
        """The policy's exploration, which a flow has no log std to show: the std of its actions over `draws`
        noise draws per state, averaged over states and action dims. The draws come from a generator of their
        own, fixed, so measuring consumes no training randomness and compares across iterations."""
        obs = tensordict.get(self.in_keys[0])
        generator = torch.Generator(obs.device).manual_seed(0)
        noise = self.draw_noise((draws, *obs.shape[:-1], self.action_dim), obs, generator)
        return self.integrate(obs.expand(draws, *obs.shape), noise).std(0).mean()

    @property
    def dist_params_keys(self) -> list[str]:
        """What the KL-adaptive LR reads of the rollout: the stored pairs (or chain), the action, its log-prob."""
        return [*self.stored_keys, "action", "action_log_prob"]

    def approx_kl(self, tensordict: TensorDictBase) -> torch.Tensor:
        """KL(rollout policy || current one), estimated from the PPO ratio r of the stored samples as
        mean((r - 1) - log r): a flow has no closed-form KL (the KL-adaptive LR's measure for this head)."""
        log_ratio = self.get_dist(tensordict).log_prob(tensordict.get("action")) - tensordict.get("action_log_prob")
        return (log_ratio.exp() - 1 - log_ratio).mean()

    def get_dist(self, tensordict: TensorDictBase) -> FlowRatio | ChainRatio:
        if self.ratio == "chain":
            return ChainRatio(self.net, self.noise_net, tensordict.get(self.in_keys[0]), tensordict.get(FLOW_CHAIN),
                              self.init_noise)
        old = tensordict.get("action_log_prob", None) if self.log_ratio_clip is not None else None
        return FlowRatio(self.net, tensordict.get(self.in_keys[0]), tensordict.get(FPO_T), tensordict.get(FPO_NOISE),
                         self.loss_weight, self.pairs, self.log_ratio_clip, old)


class EncodedFlowActor(TensorDictModuleBase):
    """The flow head over a shared encoder's "features" (the `MultiModalEncoder`): encoder, then `FlowActor`.

    The encoder runs again in `get_dist` and the behaviour-cloning loss, so the PPO and flow-matching
    losses train it too (as the Gaussian head's ActorValueOperator does); the flow head's parts are
    reachable as on a `FlowActor` (`net`, `noise_net`, `steps`, `integrate`).
    """

    def __init__(self, encoder: TensorDictModuleBase, flow: FlowActor) -> None:
        super().__init__()
        self.encoder, self.flow = encoder, flow
        self.in_keys = list(encoder.in_keys)
        self.out_keys = [*encoder.out_keys, *flow.out_keys]
        self.stored_keys = flow.stored_keys

    net = property(lambda self: self.flow.net)
    dist_params_keys = property(lambda self: self.flow.dist_params_keys)
    noise_net = property(lambda self: self.flow.noise_net)
    steps = property(lambda self: self.flow.steps)
    init_noise = property(lambda self: self.flow.init_noise)

    def integrate(self, features: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.flow.integrate(features, noise)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        return self.flow(self.encoder(tensordict))

    def get_dist(self, tensordict: TensorDictBase) -> FlowRatio | ChainRatio:
        return self.flow.get_dist(self.encoder(tensordict))

    def approx_kl(self, tensordict: TensorDictBase) -> torch.Tensor:
        return self.flow.approx_kl(self.encoder(tensordict))

    def action_spread(self, tensordict: TensorDictBase, draws: int = 16) -> torch.Tensor:
        with torch.no_grad():
            return self.flow.action_spread(self.encoder(tensordict), draws)

    def flow_matching_loss(self, tensordict: TensorDictBase) -> torch.Tensor:
        return self.flow.flow_matching_loss(self.encoder(tensordict))
