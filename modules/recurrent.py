"""Recurrent actor and critic (details 32-36): TorchRL's LSTMModule / GRUModule before each MLP head.

The actor and the critic each get their own recurrent layer over the observation (details 13, 26:
no shared trunk for vector observations). Each layer keeps its hidden state in the TensorDict under
its own keys ("actor_memory_h", ...), TorchRL's convention: the env's `TensorDictPrimer` writes zeros
at every reset (detail 33), `InitTracker` marks each episode's first step `is_init` and the layer
zeroes the state it receives there (detail 34), including on the Isaac-API path where envs reset
inside `step`. The update runs the layers in TorchRL's recurrent mode over whole env sequences,
from each sequence's stored first state (details 35, 36).
"""

from __future__ import annotations

from collections.abc import Sequence

from tensordict.nn import TensorDictModuleBase, TensorDictSequential
from torch import nn
from torchrl.data import TensorSpec
from torchrl.modules import GRUModule, LSTMModule, ProbabilisticActor
from torchrl.modules.tensordict_module.probabilistic import SafeProbabilisticTensorDictSequential

from gr00t_torchrl.modules.actor_critic import Critic, make_actor

MEMORY_OUT = {"actor": "actor_memory", "critic": "critic_memory"}  # the layers' outputs, read by the heads


def state_keys(kind: str, prefix: str) -> list[str]:
    """The TensorDict keys of a layer's hidden state: h (and c for an LSTM)."""
    return [f"{prefix}_h", f"{prefix}_c"] if kind == "lstm" else [f"{prefix}_h"]


def memory_layer(kind: str, input_size: int, hidden_size: int, in_key: str, prefix: str) -> TensorDictModuleBase:
    """An LSTMModule or GRUModule reading `in_key`, writing "<prefix>" and its next hidden state.

    Detail 32: orthogonal weights (gain 1) and zero biases, as CleanRL's LSTM agent.
    """
    states = state_keys(kind, f"{prefix}_state")
    cls = LSTMModule if kind == "lstm" else GRUModule
    layer = cls(input_size=input_size, hidden_size=hidden_size, in_keys=[in_key, *states, "is_init"],
                out_keys=[prefix, *[("next", key) for key in states]])
    for name, param in layer.named_parameters():
        if "weight" in name:
            nn.init.orthogonal_(param, gain=1.0)
        elif "bias" in name:
            nn.init.zeros_(param)
    return layer


def make_recurrent_actor_critic(
    obs_dim: int,
    action_spec: TensorSpec,
    hidden_sizes: Sequence[int],
    activation: str,
    orthogonal_init: bool,
    init_log_std: float,
    state_dependent_std: bool,
    kind: str,
    memory_size: int,
    critic_obs: tuple[str, int] | None = None,
) -> tuple[TensorDictModuleBase, TensorDictModuleBase]:
    """The actor (recurrent layer, then the Gaussian or categorical head) and the critic (its own layer, then the value MLP).

    With `critic_obs` = (key, dim) the critic's layer reads the env's privileged group instead.
    """
    actor_memory = memory_layer(kind, obs_dim, memory_size, "observation", MEMORY_OUT["actor"])
    head: ProbabilisticActor = make_actor(memory_size, action_spec, hidden_sizes, activation, orthogonal_init,
                                          init_log_std, state_dependent_std, in_key=MEMORY_OUT["actor"])
    actor = SafeProbabilisticTensorDictSequential(actor_memory, *head.module)
    critic_key, critic_dim = critic_obs or ("observation", obs_dim)
    critic_memory = memory_layer(kind, critic_dim, memory_size, critic_key, MEMORY_OUT["critic"])
    critic = TensorDictSequential(critic_memory, Critic(memory_size, hidden_sizes, activation, orthogonal_init,
                                                        obs_key=MEMORY_OUT["critic"]))
    return actor, critic


def memory_layers(module: nn.Module) -> list[TensorDictModuleBase]:
    """The recurrent layers inside a module (actor, critic or policy)."""
    return [m for m in module.modules() if isinstance(m, (LSTMModule, GRUModule))]


def recurrent_state_keys(module: nn.Module) -> list[str]:
    """Every hidden-state key the module's recurrent layers read."""
    return [key for layer in memory_layers(module) for key in layer.in_keys[1:-1]]
