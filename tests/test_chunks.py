"""Action chunks (`network.action_chunk`): H actions per policy step, open-loop or receding-horizon."""

from __future__ import annotations

import torch

from gr00t_torchrl.cli import main
from gr00t_torchrl.envs import make_env, vector_env
from gr00t_torchrl.tasks import resolve_config

UP, RIGHT = [0.0, 1.0], [1.0, 0.0]


def chunk_env(execution: str, horizon: int = 4):
    cfg = resolve_config(["task=Gr00t-Two-Goals-v0", f"network.action_chunk={horizon}",
                          f"network.chunk_execution={execution}"])
    return make_env(cfg, seed=0, num_envs=2, train=False)


def test_an_open_loop_chunk_applies_its_actions_in_turn_and_sums_their_rewards():
    env = chunk_env("open_loop")
    task = vector_env(env)
    assert env.action_spec.shape == (2, 8)
    td = env.reset()
    start = task.state[:, :2].clone()
    chunk = torch.tensor([RIGHT + UP + UP + RIGHT] * 2)
    before = task._goal_distance(task.state).clone()
    step, td = env.step_and_maybe_reset(td.set("action", chunk))
    moved = task.state[:, :2] - start
    assert torch.allclose(moved, torch.tensor([[0.2, 0.2]] * 2), atol=1e-6)  # four steps of 0.1
    after = task._goal_distance(task.state)
    assert torch.allclose(step["next", "reward"].reshape(-1), 10 * (before - after), atol=1e-5)  # the four summed
    assert not step["next", "done"].any()


def test_a_chunk_stops_counting_at_the_step_that_ends_the_episode():
    env = chunk_env("open_loop", horizon=8)
    task = vector_env(env)
    td = env.reset()
    # straight up: the disc is hit at the 4th action; the 4 after it act in the next episode and are not counted
    step, td = env.step_and_maybe_reset(td.set("action", torch.tensor([UP * 8] * 2)))
    assert step["next", "done"].all() and step["next", "terminated"].all()
    assert not task.extras["success"].any()
    hit_reward = step["next", "reward"].reshape(-1)
    up4 = chunk_env("open_loop", horizon=4)
    td4 = up4.reset()
    step4, _ = up4.step_and_maybe_reset(td4.set("action", torch.tensor([UP * 4] * 2)))
    assert torch.allclose(hit_reward, step4["next", "reward"].reshape(-1), atol=1e-5)
    # a chunk that reaches a goal mid-way reports the success, whatever its last actions do
    demo = chunk_env("open_loop", horizon=16)
    task = vector_env(demo)
    td = demo.reset()
    saved, actions = task.state.clone(), []
    for _ in range(16):  # the demonstrator's next 16 actions, planned on a copy of the state
        action = task.expert_action()
        actions.append(action)
        task.state = torch.cat([task.state[:, :2] + 0.1 * action, task.state[:, 2:]], dim=-1)
    task.state = saved
    demo.step_and_maybe_reset(td.set("action", torch.cat(actions, dim=-1)))
    assert task.extras["success"].all()


def test_receding_horizon_applies_only_the_first_action():
    env = chunk_env("receding")
    task = vector_env(env)
    td = env.reset()
    start = task.state[:, :2].clone()
    env.step_and_maybe_reset(td.set("action", torch.tensor([RIGHT + UP * 3] * 2)))
    assert torch.allclose(task.state[:, :2] - start, torch.tensor([[0.1, 0.0]] * 2), atol=1e-6)


def test_chunked_policies_train_and_gymnasium_tasks_refuse_chunks(tmp_path, capsys):
    for head in ("gaussian", "flow"):
        assert main(["train", "task=Gr00t-Two-Goals-v0", f"network.head={head}", "network.action_chunk=4",
                     "total_steps=1024", "eval_episodes=4", "progress_bar=false", f"run_dir={tmp_path / head}"]) == 0
    assert main(["train", "task=pendulum", "network.action_chunk=4", f"run_dir={tmp_path / 'p'}"]) == 2
    assert "runs on Isaac-API tasks" in capsys.readouterr().err
