"""TensorDict modules: actors, critic, the multimodal encoder and their initialization."""

from gr00t_torchrl.modules.actor_critic import (
    CategoricalActor,
    Critic,
    GaussianActor,
    GaussianSampler,
    IndependentCategoricals,
    MultiCategoricalActor,
    StateIndependentGaussianHead,
    make_actor_critic,
    make_multimodal_actor_critic,
)
from gr00t_torchrl.modules.init import orthogonal_init_
from gr00t_torchrl.modules.multimodal import MultiModalEncoder, has_multimodal_groups

__all__ = [
    "CategoricalActor",
    "Critic",
    "GaussianActor",
    "GaussianSampler",
    "IndependentCategoricals",
    "MultiCategoricalActor",
    "MultiModalEncoder",
    "StateIndependentGaussianHead",
    "has_multimodal_groups",
    "make_actor_critic",
    "make_multimodal_actor_critic",
    "orthogonal_init_",
]
