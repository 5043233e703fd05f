"""Observation normalization, reward scaling and episode statistics (details 28-31)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from gr00t_torchrl.envs import find_transform, make_env
from gr00t_torchrl.transforms import EpisodeStatistics, RunningObservationNorm, RewardScaling, RunningMeanStd
from tests.conftest import tiny_config


def step(transform, reward, done, obs=None):
    n = reward.shape[0]
    next_td = TensorDict({"reward": reward.reshape(n, 1), "done": done.reshape(n, 1)}, batch_size=[n])
    if obs is not None:
        next_td["observation"] = obs
    return transform._step(TensorDict({}, batch_size=[n]), next_td)


def test_reward_scaling_matches_hand_computation_with_episode_ends():
    gamma, eps = 0.9, 1e-8
    rewards = np.array([[1.0, -2.0], [0.5, 3.0], [2.0, 1.0], [-1.0, 0.0], [4.0, 2.0]])
    dones = np.array([[False, False], [True, False], [False, False], [False, True], [False, False]])
    scaler = RewardScaling(num_envs=2, gamma=gamma, clip=10.0, eps=eps)

    seen_returns: list[float] = []
    running = np.zeros(2)
    for r, d in zip(rewards, dones):
        running = running * gamma + r
        seen_returns.extend(running.tolist())
        expected = np.clip(r / np.sqrt(np.var(seen_returns) + eps), -10, 10)
        out = step(scaler, torch.tensor(r, dtype=torch.float32), torch.tensor(d))
        np.testing.assert_allclose(out["reward"].reshape(-1).numpy(), expected, rtol=1e-5)
        running[d] = 0.0  # a new episode's return starts from zero
    # it is the std of the discounted return, not of the rewards themselves
    assert not np.isclose(np.var(seen_returns), np.var(rewards))


def test_reward_scaling_clips_and_freezes():
    scaler = RewardScaling(num_envs=1, gamma=0.99, clip=10.0)
    for _ in range(20):
        step(scaler, torch.tensor([0.01]), torch.tensor([False]))
    scaler.freeze()
    count = scaler.stats.count.clone()
    out = step(scaler, torch.tensor([1000.0]), torch.tensor([False]))
    assert out["reward"].item() == pytest.approx(10.0)  # detail 31
    assert torch.equal(scaler.stats.count, count)  # frozen: the step was not counted


def test_running_mean_std_update_and_merge_are_exact():
    data = torch.randn(100, 3, dtype=torch.float64) * 3 + 1
    whole = RunningMeanStd((3,))
    whole.update(data)
    torch.testing.assert_close(whole.mean, data.mean(0))
    torch.testing.assert_close(whole.var, data.var(0, unbiased=False))
    part_a, part_b = RunningMeanStd((3,)), RunningMeanStd((3,))
    part_a.update(data[:30])
    part_b.update(data[30:])
    part_a.merge_(part_b.count, part_b.mean, part_b.var)
    torch.testing.assert_close(part_a.mean, whole.mean)
    torch.testing.assert_close(part_a.var, whole.var)


def test_observation_norm_statistics_clip_and_freeze():
    norm = RunningObservationNorm(["observation"], [(2,)], clip=10.0)
    batches = [torch.randn(4, 2) * torch.tensor([1.0, 5.0]) + torch.tensor([2.0, -3.0]) for _ in range(5)]
    for obs in batches:
        out = step(norm, torch.zeros(4), torch.zeros(4, dtype=torch.bool), obs=obs)
    everything = torch.cat(batches).double()
    torch.testing.assert_close(norm.stats[0].mean, everything.mean(0))
    torch.testing.assert_close(norm.stats[0].var, everything.var(0, unbiased=False))
    expected = (batches[-1].double() - everything.mean(0)) / torch.sqrt(everything.var(0, unbiased=False) + 1e-8)
    torch.testing.assert_close(out["observation"], expected.float())

    far = torch.tensor([[1e6, -1e6]])
    norm.freeze()
    out = step(norm, torch.zeros(1), torch.zeros(1, dtype=torch.bool), obs=far)
    assert out["observation"].tolist() == [[10.0, -10.0]]  # detail 29
    assert norm.stats[0].count.item() == 20  # frozen: the far observation was not counted


def test_env_statistics_count_steps_not_resets_and_eval_env_keeps_raw_reward():
    cfg = tiny_config()
    env = make_env(cfg, seed=0)
    env.rollout(10, break_when_any_done=False)
    norm = find_transform(env, RunningObservationNorm)
    assert norm.stats[0].count.item() == 10 * cfg.env.num_envs
    assert find_transform(env, RewardScaling) is not None

    eval_env = make_env(cfg, seed=0, train=False)
    assert find_transform(eval_env, RewardScaling) is None
    td = eval_env.rollout(5, break_when_any_done=False)
    # Pendulum's raw reward is in [-16.3, 0]; the running episode return sums it
    assert (td["next", "reward"] <= 0).all()
    torch.testing.assert_close(td["next", "episode_return"][:, -1], td["next", "reward"].sum(1))


def test_episode_statistics_report_finished_episodes():
    stats = EpisodeStatistics(num_envs=2)
    for t in range(3):
        done = torch.tensor([t == 1, False])
        out = step(stats, torch.tensor([1.0, 2.0]), done)
        if t == 1:
            assert out["episode_return"].reshape(-1).tolist() == [2.0, 4.0]
            assert out["episode_length"].reshape(-1).tolist() == [2, 2]
    assert stats.running_return.reshape(-1).tolist() == [1.0, 6.0]
