"""Actor and critic TensorDict modules for vector observations."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import NormalParamExtractor, TensorDictModule, TensorDictModuleBase
from torch import nn
from torchrl.data import TensorSpec
from torchrl.data.tensor_specs import Categorical as CategoricalSpec
from torchrl.data.tensor_specs import MultiCategorical as MultiCategoricalSpec
from torchrl.envs.utils import ExplorationType, exploration_type
from torchrl.modules import MLP, ActorValueOperator, IndependentNormal, ProbabilisticActor, ValueOperator

from gr00t_torchrl.modules.init import POLICY_OUTPUT_GAIN, VALUE_OUTPUT_GAIN, orthogonal_init_

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


def make_mlp(in_dim: int, out_dim: int, hidden_sizes: Sequence[int], activation: str) -> MLP:
    return MLP(
        in_features=in_dim,
        out_features=out_dim,
        num_cells=list(hidden_sizes),
        activation_class=ACTIVATIONS[activation],
    )


class TensorOutputs:
    """Mixin for a TensorDictModule whose module returns tensors: they are written as they are.

    TensorDictModule passes every output through `TensorDict.from_any`, which for a plain tensor ends
    in a module lookup (`importlib.util.find_spec("pandas")`) on every call: three calls per PPO
    mini-batch, a visible share of a small network's update. Calls with a `tensordict_out` or other
    keywords take TensorDictModule's own path.
    """

    def forward(self, tensordict: TensorDictBase, tensordict_out: TensorDictBase | None = None, **kwargs: Any):
        if tensordict_out is not None or kwargs:
            return super().forward(tensordict, tensordict_out=tensordict_out, **kwargs)
        outputs = self.module(*(tensordict.get(key) for key in self.in_keys))
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        for key, value in zip(self.out_keys, outputs, strict=True):
            tensordict.set(key, value)
        return tensordict


class TensorOutputModule(TensorOutputs, TensorDictModule):
    """A TensorDictModule over a module that returns tensors (see `TensorOutputs`)."""


class StateIndependentGaussianHead(nn.Module):
    """Mean from an MLP; log std a learnable parameter per action dim, never a network output.

    This is detail 24: the std does not depend on the observation, it is one `nn.Parameter` of
    shape [action_dim], initialised to `init_log_std` (0, i.e. std 1).
    """

    def __init__(self, mean_net: nn.Module, action_dim: int, init_log_std: float = 0.0) -> None:
        super().__init__()
        self.mean_net = mean_net
        self.log_std = nn.Parameter(torch.full((action_dim,), float(init_log_std)))

    def forward(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc = self.mean_net(observation)
        return loc, self.log_std.exp().expand_as(loc)


class StateDependentGaussianHead(nn.Module):
    """Mean and std both network outputs: the common form that detail 24 replaces (ablations only)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net  # outputs 2 x action_dim: the mean, then the std before a softplus
        self.split = NormalParamExtractor()

    def forward(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split(self.net(observation))


class GaussianActor(ProbabilisticActor):
    """A Normal policy over independent action dims (details 23-25), log-probs summed over dims.

    Its samples are unbounded and stored as sampled; clipping to the action bounds happens in
    the env step only (detail 27). `state_dependent_std=True` makes the std a network output
    instead of a parameter (detail 24 switched off, for ablations).
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int] = (256, 256),
        activation: str = "tanh",
        orthogonal_init: bool = True,
        init_log_std: float = 0.0,
        state_dependent_std: bool = False,
        in_key: str = "observation",
    ) -> None:
        mean_net = make_mlp(obs_dim, action_dim * (2 if state_dependent_std else 1), hidden_sizes, activation)
        if orthogonal_init:
            orthogonal_init_(mean_net, POLICY_OUTPUT_GAIN)
        head: nn.Module = (
            StateDependentGaussianHead(mean_net)
            if state_dependent_std
            else StateIndependentGaussianHead(mean_net, action_dim, init_log_std)
        )
        super().__init__(
            TensorOutputModule(head, in_keys=[in_key], out_keys=["loc", "scale"]),
            in_keys=["loc", "scale"],
            out_keys=["action"],
            distribution_class=IndependentNormal,
            return_log_prob=True,
        )

    @property
    def head(self) -> nn.Module:
        """The module computing (loc, scale) from the observation."""
        return self.module[0].module

    def sampler(self) -> GaussianSampler:
        """This policy in the form the collector calls once per env step (see `GaussianSampler`)."""
        return GaussianSampler(self)


class GaussianSampler(TensorDictModuleBase):
    """A GaussianActor's collection step in one pass: the same parameters, keys and numbers.

    The actor (a ProbabilisticActor) builds a distribution object through several TensorDict layers
    on every call; at one call per env step that machinery costs more than a small network does
    (measured in benchmarks/results/rsl_rl_history.md). This module writes
    what the actor writes - loc, scale, the action sampled as loc + scale * eps (the same random
    numbers as the actor's rsample) and its log-prob, summed over action dims as IndependentNormal
    does - straight from the actor's own head, so it always acts with the current weights. Outside
    random exploration (the collector's) the action is the mean, as the actor's. The loss and evaluation
    use the actor itself.
    """

    LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

    def __init__(self, actor: GaussianActor) -> None:
        super().__init__()
        self.head = actor.head
        self.in_keys = list(actor.in_keys)
        self.out_keys = list(actor.out_keys)  # loc, scale, action, log-prob: the actor's own names
        self.loc_key, self.scale_key, self.action_key, self.log_prob_key = self.out_keys
        self.default_exploration = actor.default_interaction_type

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        loc, scale = self.head(tensordict.get(self.in_keys[0]))
        if (exploration_type() or self.default_exploration) == ExplorationType.RANDOM:
            noise = torch.randn_like(loc)
            action = loc + scale * noise
            log_density = -0.5 * noise.pow(2)
        else:
            action = loc
            log_density = torch.zeros_like(loc)
        log_prob = (log_density - scale.log() - self.LOG_SQRT_2PI).sum(-1)
        tensordict.set(self.loc_key, loc)
        tensordict.set(self.scale_key, scale)
        tensordict.set(self.action_key, action)
        tensordict.set(self.log_prob_key, log_prob)
        return tensordict


class IndependentCategoricals(torch.distributions.Distribution):
    """Detail 37: one categorical per action dim of a MultiDiscrete space; log-probs and entropies summed.

    `logits` [..., sum(nvec)] holds each dim's logits one after the other; an action is [..., len(nvec)]
    integer choices. The deterministic action is each dim's most likely choice.
    """

    arg_constraints: dict = {}

    def __init__(self, logits: torch.Tensor, nvec: Sequence[int]) -> None:
        self.nvec = tuple(int(n) for n in nvec)
        self.parts = [torch.distributions.Categorical(logits=part) for part in logits.split(self.nvec, dim=-1)]
        super().__init__(batch_shape=logits.shape[:-1], event_shape=torch.Size([len(self.nvec)]), validate_args=False)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        return torch.stack([part.sample(sample_shape) for part in self.parts], dim=-1)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        return torch.stack([part.log_prob(a) for part, a in zip(self.parts, action.unbind(-1))], dim=-1).sum(-1)

    def entropy(self) -> torch.Tensor:
        return torch.stack([part.entropy() for part in self.parts], dim=-1).sum(-1)

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return torch.stack([part.logits.argmax(-1) for part in self.parts], dim=-1)

    mode = deterministic_sample


@torch.distributions.kl.register_kl(IndependentCategoricals, IndependentCategoricals)
def _kl_independent_categoricals(p: IndependentCategoricals, q: IndependentCategoricals) -> torch.Tensor:
    """The KL of independent dims is the sum of theirs (the KL-adaptive LR reads it)."""
    terms = [torch.distributions.kl_divergence(a, b) for a, b in zip(p.parts, q.parts)]
    return torch.stack(terms, dim=-1).sum(-1)


class CategoricalActor(ProbabilisticActor):
    """A categorical policy over a discrete action space, logits from an MLP.

    With `nvec` (a MultiDiscrete space, detail 37) the MLP's outputs are each dim's logits one after the
    other, and the distribution is `IndependentCategoricals`.
    """

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "tanh",
        orthogonal_init: bool = True,
        in_key: str = "observation",
        nvec: Sequence[int] | None = None,
    ) -> None:
        self.nvec = None if nvec is None else [int(n) for n in nvec]
        logits_net = make_mlp(obs_dim, num_actions if nvec is None else sum(self.nvec), hidden_sizes, activation)
        if orthogonal_init:
            orthogonal_init_(logits_net, POLICY_OUTPUT_GAIN)
        super().__init__(
            TensorOutputModule(logits_net, in_keys=[in_key], out_keys=["logits"]),
            in_keys=["logits"],
            out_keys=["action"],
            distribution_class=torch.distributions.Categorical if nvec is None else IndependentCategoricals,
            distribution_kwargs={} if nvec is None else {"nvec": tuple(self.nvec)},
            return_log_prob=True,
        )


class MultiCategoricalActor(CategoricalActor):
    """A policy over a MultiDiscrete action space (detail 37): one MLP, each dim's logits a slice of its output."""

    def __init__(
        self,
        obs_dim: int,
        nvec: Sequence[int],
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "tanh",
        orthogonal_init: bool = True,
        in_key: str = "observation",
    ) -> None:
        super().__init__(obs_dim, sum(nvec), hidden_sizes, activation, orthogonal_init, in_key, nvec=nvec)


class Critic(TensorOutputs, ValueOperator):
    """A state-value MLP, separate from the actor (details 13, 26), writing "state_value".

    It reads `obs_key`: "observation" like the actor, or an env's privileged "critic" group
    (asymmetric actor-critic: the critic only shapes training, so it may see what the robot cannot);
    several keys are concatenated (TorchRL's MLP concatenates its inputs), e.g. the multimodal
    encoder's features and the privileged group.
    """

    def __init__(
        self,
        obs_dim: int,
        hidden_sizes: Sequence[int] = (256, 256),
        activation: str = "tanh",
        orthogonal_init: bool = True,
        obs_key: str | Sequence[str] = "observation",
    ) -> None:
        value_net = make_mlp(obs_dim, 1, hidden_sizes, activation)
        if orthogonal_init:
            orthogonal_init_(value_net, VALUE_OUTPUT_GAIN)
        super().__init__(value_net, in_keys=[obs_key] if isinstance(obs_key, str) else list(obs_key))


def multidiscrete_nvec(action_spec: TensorSpec) -> list[int] | None:
    """The choices per dim of a MultiDiscrete action spec, or None for any other kind.

    TorchRL writes a batched Gymnasium MultiDiscrete space as an integer box (`BoundedDiscrete`,
    choices 0..high per dim), a single env's as `MultiCategorical`.
    """
    if isinstance(action_spec, MultiCategoricalSpec):
        return action_spec.nvec.reshape(-1, action_spec.shape[-1])[0].tolist()
    if isinstance(action_spec, CategoricalSpec) or action_spec.dtype.is_floating_point or action_spec.dtype == torch.bool:
        return None
    high = action_spec.space.high.reshape(-1, action_spec.shape[-1])[0]
    return (high + 1).tolist()


def make_actor(
    in_dim: int,
    action_spec: TensorSpec,
    hidden_sizes: Sequence[int],
    activation: str = "tanh",
    orthogonal_init: bool = True,
    init_log_std: float = 0.0,
    state_dependent_std: bool = False,
    in_key: str = "observation",
) -> ProbabilisticActor:
    """The actor fitting the action spec: categorical(s) for a discrete (MultiDiscrete) one, Gaussian for a box."""
    nvec = multidiscrete_nvec(action_spec)
    if nvec is not None:
        return MultiCategoricalActor(in_dim, nvec, hidden_sizes, activation, orthogonal_init, in_key=in_key)
    if isinstance(action_spec, CategoricalSpec):
        return CategoricalActor(in_dim, action_spec.space.n, hidden_sizes, activation, orthogonal_init, in_key=in_key)
    return GaussianActor(in_dim, action_spec.shape[-1], hidden_sizes, activation, orthogonal_init, init_log_std,
                         state_dependent_std, in_key=in_key)


def make_actor_critic(
    obs_dim: int,
    action_spec: TensorSpec,
    hidden_sizes: Sequence[int],
    activation: str = "tanh",
    orthogonal_init: bool = True,
    init_log_std: float = 0.0,
    state_dependent_std: bool = False,
    critic_obs: tuple[str, int] | None = None,
) -> tuple[ProbabilisticActor, Critic]:
    """The actor fitting the action spec (categorical or Gaussian) and a critic.

    `critic_obs` = (key, dim) gives the critic its own observation entry (asymmetric actor-critic).
    """
    actor = make_actor(obs_dim, action_spec, hidden_sizes, activation, orthogonal_init, init_log_std,
                       state_dependent_std)
    critic_key, critic_dim = critic_obs or ("observation", obs_dim)
    critic = Critic(critic_dim, hidden_sizes, activation, orthogonal_init, obs_key=critic_key)
    return actor, critic


def make_multimodal_actor_critic(
    encoder: TensorDictModuleBase,  # a MultiModalEncoder
    action_spec: TensorSpec,
    hidden_sizes: Sequence[int],
    activation: str = "tanh",
    orthogonal_init: bool = True,
    init_log_std: float = 0.0,
    state_dependent_std: bool = False,
    privileged: tuple[str, int] | None = None,
) -> tuple[TensorDictModuleBase, TensorDictModuleBase, ProbabilisticActor]:
    """Actor and critic heads over one shared encoder (detail 21), as TorchRL's ActorValueOperator.

    Returns the actor (encoder + head), the critic (encoder + value head) and the actor's head alone.

    The actor is the encoder followed by a Gaussian or categorical head reading "features"; the
    critic the same encoder followed by a value head reading "features" (and, with `privileged` =
    (key, dim), the env's privileged group too). Their encoder is one module, trained by both losses.
    """
    width = encoder.out_features
    head = make_actor(width, action_spec, hidden_sizes, activation, orthogonal_init, init_log_std, state_dependent_std,
                      in_key="features")
    keys, dim = ["features"], width
    if privileged is not None:
        keys, dim = ["features", privileged[0]], width + privileged[1]
    value_head = Critic(dim, hidden_sizes, activation, orthogonal_init, obs_key=keys)
    both = ActorValueOperator(encoder, head, value_head)
    return both.get_policy_operator(), both.get_value_operator(), head
