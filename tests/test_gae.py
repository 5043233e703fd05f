"""GAE with terminations and truncations (detail 5) and whole-batch advantage normalization (detail 7)."""

from __future__ import annotations

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from gr00t_torchrl.config import PPOConfig
from gr00t_torchrl.modules import make_actor_critic
from gr00t_torchrl.ppo_module import PPOModule
from gr00t_torchrl.envs import make_env
from tests.conftest import tiny_config


class FirstFeature(nn.Module):
    """V(s) = s[0]: a critic whose values the test can write down."""

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return observation[..., :1]


def reference_gae(rewards, values, next_values, terminated, done, gamma, lmbda):
    advantages = [0.0] * len(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        bootstrap = 0.0 if terminated[t] else gamma * next_values[t]
        delta = rewards[t] + bootstrap - values[t]
        running = delta + (0.0 if done[t] else gamma * lmbda * running)
        advantages[t] = running
    return advantages


def test_gae_bootstraps_truncation_but_not_termination():
    gamma, lmbda = 0.9, 0.8
    # one env, 6 steps: a termination at t=1, a time-out truncation at t=3
    obs = [1.0, 2.0, 0.5, 1.5, 3.0, -1.0]
    next_obs = [2.0, 7.0, 1.5, 9.0, -1.0, 4.0]  # next_obs[3] = 9.0 is the real final obs of the time-out
    rewards = [1.0, 0.5, -1.0, 2.0, 0.0, 1.0]
    terminated = [False, True, False, False, False, False]
    truncated = [False, False, False, True, False, False]
    done = [a or b for a, b in zip(terminated, truncated)]

    def column(values, dtype=torch.float32):
        return torch.tensor(values, dtype=dtype).reshape(1, 6, 1)

    batch = TensorDict(
        {
            "observation": column(obs),
            "next": {
                "observation": column(next_obs),
                "reward": column(rewards),
                "terminated": column(terminated, torch.bool),
                "truncated": column(truncated, torch.bool),
                "done": column(done, torch.bool),
            },
        },
        batch_size=[1, 6],
    )
    critic = TensorDictModule(FirstFeature(), in_keys=["observation"], out_keys=["state_value"])
    actor, _ = make_actor_critic(1, make_env(tiny_config(), seed=0).action_spec, [8])
    module = PPOModule(PPOConfig(gamma=gamma, lmbda=lmbda, advantage_norm="none"), actor, critic, 1)
    module.compute_advantages(batch)

    expected = reference_gae(rewards, obs, next_obs, terminated, done, gamma, lmbda)
    torch.testing.assert_close(batch["advantage"].reshape(-1), torch.tensor(expected))
    torch.testing.assert_close(batch["value_target"].reshape(-1), torch.tensor(expected) + torch.tensor(obs))
    # the truncated step bootstraps from V(final obs) = 9.0; a termination would not
    assert abs(expected[3] - (2.0 + gamma * 9.0 - 1.5)) < 1e-6
    assert abs(expected[1] - (0.5 - 2.0)) < 1e-6


def collected_batch(*overrides: str):
    cfg = tiny_config(*overrides)
    env = make_env(cfg, seed=0)
    actor, critic = make_actor_critic(3, env.action_spec, [16])
    module = PPOModule(cfg.ppo, actor, critic, num_iterations=1)
    batch = env.rollout(64, actor, break_when_any_done=False)
    return module, batch


def test_advantages_normalized_over_the_whole_batch():
    module, batch = collected_batch("ppo.advantage_norm=batch")
    module.compute_advantages(batch)
    advantage = batch["advantage"].reshape(-1)
    assert abs(advantage.mean().item()) < 1e-5
    assert abs(advantage.std().item() - 1.0) < 1e-4
    # mini-batches are drawn afterwards and are not renormalized: their means differ from 0
    chunk_means = [c.mean().abs().item() for c in advantage.chunk(8)]
    assert max(chunk_means) > 0.05
    assert module.loss_module.normalize_advantage is False


def test_minibatch_and_no_normalization_options():
    module, batch = collected_batch("ppo.advantage_norm=minibatch")
    module.compute_advantages(batch)
    assert abs(batch["advantage"].mean().item()) > 1e-3  # left raw for the loss to normalize
    assert module.loss_module.normalize_advantage is True
    module, batch = collected_batch("ppo.advantage_norm=none")
    assert module.loss_module.normalize_advantage is False
