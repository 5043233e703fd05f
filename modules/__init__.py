"""TensorDict modules: actors, critic and their initialization."""

from gr00t_torchrl.modules.actor_critic import (
    CategoricalActor,
    Critic,
    GaussianActor,
    GaussianSampler,
    StateIndependentGaussianHead,
    make_actor_critic,
)
from gr00t_torchrl.modules.init import orthogonal_init_

__all__ = [
    "CategoricalActor",
    "Critic",
    "GaussianActor",
    "GaussianSampler",
    "StateIndependentGaussianHead",
    "make_actor_critic",
    "orthogonal_init_",
]
