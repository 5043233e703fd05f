"""Actor, critic and optimizer details: 2, 3, 23-27."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import ExplorationType, set_exploration_type

from gr00t_torchrl.envs import make_env
from gr00t_torchrl.modules import GaussianActor, make_actor_critic
from gr00t_torchrl.ppo_module import PPOModule
from tests.conftest import tiny_config


def linears(module):
    return [m for m in module.modules() if isinstance(m, torch.nn.Linear)]


def test_log_std_is_one_parameter_per_action_dim_independent_of_observation():
    actor = GaussianActor(obs_dim=5, action_dim=3, hidden_sizes=[32, 32])
    head = actor.module[0].module
    assert isinstance(head.log_std, torch.nn.Parameter)
    assert head.log_std.shape == (3,)
    assert torch.equal(head.log_std.detach(), torch.zeros(3))  # init 0: std 1
    assert any(p is head.log_std for p in actor.parameters())
    far_apart = TensorDict({"observation": torch.cat([torch.zeros(1, 5), 100 * torch.randn(1, 5)])}, [2])
    out = actor(far_apart)
    assert torch.equal(out["scale"][0], out["scale"][1])
    assert not torch.equal(out["loc"][0], out["loc"][1])
    # log-probs are summed over the independent action dims (detail 25)
    dist = actor.get_dist(far_apart)
    per_dim = torch.distributions.Normal(out["loc"], out["scale"]).log_prob(out["action"]).sum(-1)
    torch.testing.assert_close(dist.log_prob(out["action"]), per_dim)


def test_orthogonal_init_gains_and_zero_biases():
    cfg = tiny_config()
    actor, critic = make_actor_critic(3, make_env(cfg, seed=0).action_spec, [64, 64])
    for net, out_gain in ((actor, 0.01), (critic, 1.0)):
        layers = linears(net)
        assert len(layers) == 3
        for index, layer in enumerate(layers):
            gain = out_gain if index == len(layers) - 1 else math.sqrt(2)
            singular = torch.linalg.svdvals(layer.weight.detach())
            torch.testing.assert_close(singular, torch.full_like(singular, gain), rtol=1e-4, atol=1e-5)
            assert torch.count_nonzero(layer.bias) == 0


def test_default_networks_are_256x256_tanh_for_continuous_and_64x64_for_discrete():
    from gr00t_torchrl.tasks import resolve_config

    continuous = resolve_config(["task=MountainCarContinuous-v0"])
    discrete = resolve_config(["task=Acrobot-v1"])
    assert continuous.network.hidden_sizes == [256, 256] and continuous.network.activation == "tanh"
    assert discrete.network.hidden_sizes == [64, 64]
    assert continuous.ppo.entropy_coeff == 0.0 and discrete.ppo.entropy_coeff == 0.01


def test_adam_eps_and_linear_lr_annealing():
    cfg = tiny_config("ppo.lr=1e-3")
    actor, critic = make_actor_critic(3, make_env(cfg, seed=0).action_spec, [8])
    module = PPOModule(cfg.ppo, actor, critic, num_iterations=4)
    optimizer, scheduler = module.configure_optimizers()
    assert optimizer.defaults["eps"] == 1e-5
    lrs = []
    for _ in range(4):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == [1e-3, 0.75e-3, 0.5e-3, 0.25e-3]


def test_stored_actions_are_unclipped_and_clipped_only_inside_the_env():
    cfg = tiny_config("network.init_log_std=2.0")  # std e^2 ~ 7.4 on Pendulum's [-2, 2] torque
    env = make_env(cfg, seed=0)
    actor, _ = make_actor_critic(3, env.action_spec, [16], init_log_std=2.0)
    with set_exploration_type(ExplorationType.RANDOM):
        batch = env.rollout(50, actor, break_when_any_done=False)
    assert batch["action"].abs().max() > 2.0  # stored as sampled
    dist = actor.get_dist(batch)
    torch.testing.assert_close(dist.log_prob(batch["action"]), batch["action_log_prob"])  # log-prob of the raw sample


@pytest.mark.parametrize("clip_actions", [True, False])
def test_the_env_step_clips_the_action_it_is_given(clip_actions):
    # HalfCheetah's control cost reads the action as given (MuJoCo clamps only the actuator input), so
    # its reward tells whether the env saw the action clipped to the [-1, 1] bounds
    rewards = []
    for value in (1.0, 5.0):
        env = make_env(tiny_config("task=halfcheetah", "env.num_envs=2", f"env.clip_actions={clip_actions}"),
                       seed=0, train=False)
        td = env.reset()
        td["action"] = torch.full((2, 6), value)
        rewards.append(env.step(td)["next", "reward"])
        env.close()
    assert torch.equal(rewards[0], rewards[1]) == clip_actions


def test_collection_sampler_matches_the_actor_it_shares_weights_with():
    # the collector's one-pass sampler: same keys, same random numbers, same log-probs, the actor's weights
    actor = GaussianActor(obs_dim=5, action_dim=3, hidden_sizes=[32, 32], init_log_std=-0.7)
    sampler = actor.sampler()
    assert sampler.out_keys == actor.out_keys and sampler.in_keys == actor.in_keys
    assert list(sampler.parameters()) and all(
        any(p is q for q in actor.parameters()) for p in sampler.parameters()
    )
    obs = TensorDict({"observation": torch.randn(64, 5)}, [64])
    for mode in (ExplorationType.RANDOM, ExplorationType.DETERMINISTIC):
        with set_exploration_type(mode):
            torch.manual_seed(3)
            expected = actor(obs.clone())
            torch.manual_seed(3)
            got = sampler(obs.clone())
        for key in actor.out_keys:
            torch.testing.assert_close(got[key], expected[key])
    with set_exploration_type(ExplorationType.RANDOM):
        sample = sampler(obs.clone())
    assert not torch.equal(sample["action"], sample["loc"])
    torch.testing.assert_close(actor.get_dist(sample).log_prob(sample["action"]), sample["action_log_prob"])
    # a weight change reaches the sampler at once: it holds no copy
    with torch.no_grad():
        actor.head.log_std.fill_(0.5)
    assert torch.allclose(sampler(obs.clone())["scale"], torch.full((64, 3), math.exp(0.5)))


def test_actor_and_critic_write_their_outputs_as_tensordict_modules_do_without_from_any(monkeypatch):
    from tensordict.nn import TensorDictModule

    from gr00t_torchrl.modules.actor_critic import Critic, TensorOutputModule

    torch.manual_seed(0)
    head = torch.nn.Linear(4, 2)
    data = TensorDict({"observation": torch.randn(6, 4)}, [6])
    expected = TensorDictModule(head, in_keys=["observation"], out_keys=["a"])(data.clone())
    expected_pair = TensorDictModule(lambda x: (x + 1, x * 2), in_keys=["observation"], out_keys=["b", "c"])(data.clone())
    critic = Critic(4, hidden_sizes=[8])
    expected_value = TensorDictModule(critic.module, in_keys=["observation"], out_keys=["state_value"])(data.clone())

    # the library's path passes each output through TensorDict.from_any (a module lookup per call)
    def no_from_any(*args, **kwargs):
        raise AssertionError("TensorDict.from_any called")

    monkeypatch.setattr(TensorDict, "from_any", no_from_any)
    out = TensorOutputModule(head, in_keys=["observation"], out_keys=["a"])(data.clone())
    torch.testing.assert_close(out["a"], expected["a"], rtol=0, atol=0)
    pair = TensorOutputModule(lambda x: (x + 1, x * 2), in_keys=["observation"], out_keys=["b", "c"])(data.clone())
    assert torch.equal(pair["b"], expected_pair["b"]) and torch.equal(pair["c"], expected_pair["c"])
    assert torch.equal(critic(data.clone())["state_value"], expected_value["state_value"])
    actor, _ = make_actor_critic(4, make_env(tiny_config(), seed=0).action_spec, [8])
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        assert actor(data.clone())["action"].shape == (6, 1)
    monkeypatch.undo()
    # keywords TensorDictModule understands still take its own path
    written = TensorOutputModule(head, in_keys=["observation"], out_keys=["a"])(data.clone(), tensordict_out=TensorDict({}, [6]))
    assert list(written.keys()) == ["a"] and torch.equal(written["a"], expected["a"])
