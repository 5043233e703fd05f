"""Demonstrations: the two-goal task, `gr00t-ppo collect`, `gr00t-ppo bc` and `train init_from=`."""

from __future__ import annotations

import json

import pytest
import torch

from gr00t_torchrl import checkpoint as ckpt
from gr00t_torchrl import demonstrations as demos
from gr00t_torchrl.cli import main
from gr00t_torchrl.envs.builtin import make_builtin_task
from gr00t_torchrl.runner import open_run, train
from gr00t_torchrl.tasks import resolve_config
from tests.conftest import TINY, merged

TWO_GOALS = "task=Gr00t-Two-Goals-v0"


def play(task, act) -> float:
    """Success rate of one episode per env under `act(task)`."""
    task.reset()
    done = torch.zeros(task.num_envs, dtype=torch.bool)
    success = torch.zeros_like(done)
    while not done.all():
        _, _, terminated, truncated, extras = task.step(act(task))
        success |= extras["success"] & ~done
        done |= terminated | truncated
    return float(success.float().mean())


def test_two_goals_either_side_succeeds_and_their_average_hits_the_obstacle():
    task = make_builtin_task("Gr00t-Two-Goals-v0", 256, "cpu", seed=3)
    assert play(task, lambda t: t.expert_action()) == 1.0
    sides = task.state[:, 2]
    assert 0.3 < float((sides > 0).float().mean()) < 0.7  # the demonstrator picks both sides
    assert play(task, lambda t: torch.tensor([[0.0, 1.0]]).expand(t.num_envs, 2)) == 0.0  # straight up: the disc


def test_collect_writes_raw_observations_and_refuses_bad_input(tmp_path, capsys):
    out = tmp_path / "demos"
    assert main(["collect", TWO_GOALS, "episodes=20", f"out={out}"]) == 0
    data, meta = demos.load(out)
    assert meta["episodes"] == 20 and meta["success_rate"] == 1.0 and meta["source"] == "scripted demonstrator"
    assert set(data.keys()) >= {"observation", "action", "episode", "success"}
    first = data[torch.cat([torch.ones(1, dtype=torch.bool), data["episode"][1:] != data["episode"][:-1]])]
    assert len(first) == 20 and torch.allclose(first["observation"][:, 1], torch.full((20,), -0.6), atol=0.051)  # raw y
    before = sorted(p.name for p in out.rglob("*"))
    assert main(["collect", TWO_GOALS, "episodes=5", f"out={out}"]) == 2  # nothing already written is changed
    assert sorted(p.name for p in out.rglob("*")) == before
    assert main(["collect", "task=pendulum", "episodes=2", f"out={tmp_path / 'p'}"]) == 2
    assert main(["collect", "episodes=2", f"out={tmp_path / 'q'}"]) == 2
    assert main(["bc", TWO_GOALS, f"data={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "already holds files" in err and "no scripted demonstrator" in err and "either run_dir" in err
    assert "holds no demonstrations" in err


def test_collect_from_a_trained_run_records_what_its_policy_does(tmp_path):
    run_dir = tmp_path / "run"
    train(resolve_config(merged("task=pendulum", "total_steps=128", *TINY, f"run_dir={run_dir}")))
    out = tmp_path / "demos"
    assert main(["collect", f"run_dir={run_dir}", "episodes=2", f"out={out}"]) == 0
    data, meta = demos.load(out)
    assert meta["steps"] == 400 and meta["source"] == str(run_dir)  # two 200-step episodes
    cos_sin = data["observation"][:, :2]
    assert torch.allclose(cos_sin.norm(dim=-1), torch.ones(len(data)), atol=1e-5)  # raw, not normalized
    cfg = resolve_config(merged("task=pendulum", *TINY, f"resume={run_dir}"))
    run = open_run(cfg)
    replay = demos.policy_of_run(run.pipeline)(data[:50].select("observation"), None)
    assert torch.allclose(replay, data["action"][:50], atol=1e-6)


def test_bc_keeps_both_modes_with_the_flow_head_a_gaussian_averages_them_and_ppo_starts_from_it(tmp_path, capsys):
    data_dir = tmp_path / "demos"
    assert main(["collect", TWO_GOALS, "episodes=1000", f"out={data_dir}", "seed=5"]) == 0
    bc_dir, gaussian_dir = tmp_path / "bc", tmp_path / "bc_gaussian"
    assert main(["bc", TWO_GOALS, "network.head=flow", f"data={data_dir}", "epochs=100", f"run_dir={bc_dir}",
                 "eval_episodes=300"]) == 0
    assert main(["bc", TWO_GOALS, f"data={data_dir}", "epochs=100", f"run_dir={gaussian_dir}", "eval_episodes=300"]) == 0
    flow = json.loads((bc_dir / "eval.json").read_text())["success_rate"]
    gaussian = json.loads((gaussian_dir / "eval.json").read_text())["success_rate"]
    report = json.loads((bc_dir / "bc.json").read_text())
    assert report["loss_per_epoch"][-1] < report["loss_per_epoch"][0] and report["demonstration_episodes"] == 1000
    assert flow >= 0.88 and gaussian <= 0.75 and flow - gaussian >= 0.15, (flow, gaussian)

    # PPO starts from the cloned head: its weights and statistics, its own loss settings, statistics frozen
    cfg = resolve_config(merged(TWO_GOALS, "network.head=flow", *TINY, f"init_from={bc_dir}", "ppo.clip_epsilon=0.1",
                                f"run_dir={tmp_path / 'ppo'}"))
    run = open_run(cfg)
    saved = ckpt.load(ckpt.checkpoint_path(bc_dir))
    for key, value in run.pipeline.module.actor.state_dict().items():
        assert torch.equal(value, saved["module"][f"actor.{key}"])
    norm = run.pipeline.obs_norm
    assert norm.frozen and torch.equal(norm.stats[0].mean, saved["ranks"][0]["env_transforms"]["transforms.3.stats.0.mean"])
    assert float(run.pipeline.module.loss_module.clip_epsilon) == pytest.approx(0.1)
    run.collector.shutdown()

    assert main(["train", TWO_GOALS, f"init_from={bc_dir}", f"run_dir={tmp_path / 'g'}"]) == 2  # a Gaussian head
    assert main(["bc", TWO_GOALS, f"data={data_dir}", "network.action_chunk=4", f"run_dir={tmp_path / 'c'}"]) == 2
    assert main(["train", TWO_GOALS, f"init_from={bc_dir}", f"resume={bc_dir}"]) == 2
    err = capsys.readouterr().err
    assert "do not fit this run's networks" in err and "exclude each other" in err and "network.action_chunk" in err
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())
