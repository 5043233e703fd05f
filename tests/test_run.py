"""The run: directory contents, checkpoints, exact resume, evaluation, the CLI."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gr00t_torchrl import checkpoint as ckpt
from gr00t_torchrl.cli import main
from gr00t_torchrl.tasks import resolve_config
from gr00t_torchrl.runner import train
from tests.conftest import TINY, merged

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "ppo_gr00t.py"


def run_args(task: str, run_dir: Path, *extra: str) -> list[str]:
    return merged(f"task={task}", f"run_dir={run_dir}", "total_steps=512", *TINY, *extra)


def test_run_directory_contract(tmp_path):
    run_dir = tmp_path / "run"
    result = train(resolve_config(run_args("pendulum", run_dir, "checkpoint_every=3")))
    assert (run_dir / "config.yaml").is_file()
    assert resolve_config([f"resume={run_dir}"]).env.num_envs == 2  # the saved config is complete
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [int(float(r["iteration"])) for r in rows] == list(range(1, 9))
    for column in ("env_steps", "episode_return_mean", "sps", "policy_loss", "value_loss", "entropy",
                   "approx_kl", "old_approx_kl", "clip_fraction", "explained_variance", "grad_norm", "lr"):
        assert column in rows[0], column
    assert float(rows[-1]["env_steps"]) == 512
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert set(evaluation) == {"env_steps", "eval_return_mean", "eval_return_std", "episodes"}
    assert evaluation["episodes"] == 2 and evaluation["env_steps"] == 512
    assert result["eval_return_mean"] == evaluation["eval_return_mean"]
    # Pendulum returns over 200 steps lie in [-3300, 0]
    assert -3300 < evaluation["eval_return_mean"] <= 0


def test_checkpoint_round_trip_loads_with_weights_only(tmp_path):
    run_dir = tmp_path / "run"
    train(resolve_config(run_args("cartpole", run_dir)))
    path = run_dir / "checkpoints" / "last.ckpt"
    state = torch.load(path, weights_only=True)  # no arbitrary pickle code
    assert state["iteration"] == 8 and state["env_steps"] == 512
    assert state["task"] == "cartpole" and state["action"] == {"kind": "discrete", "n": 2}
    for key in ("module", "optimizer", "scheduler", "ranks"):
        assert key in state
    assert len(state["ranks"]) == 1
    for key in ("env_transforms", "env_snapshot", "rng"):
        assert key in state["ranks"][0]
    assert any("stats.0.mean" in k for k in state["ranks"][0]["env_transforms"])  # normalizer statistics
    assert not path.with_name("last.ckpt.tmp").exists()


@pytest.mark.parametrize("task", ["pendulum", "cartpole", "halfcheetah", "Gr00t-Arm-Reach-v0"])
def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path, task):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    extra = ("checkpoint_every=100", "eval_episodes=0")
    train(resolve_config(run_args(task, straight, *extra)))
    train(resolve_config(run_args(task, interrupted, *extra)), stop_after=4)
    assert ckpt.load(interrupted / "checkpoints" / "last.ckpt")["iteration"] == 4
    train(resolve_config([f"resume={interrupted}"]))

    a = ckpt.load(straight / "checkpoints" / "last.ckpt")
    b = ckpt.load(interrupted / "checkpoints" / "last.ckpt")
    assert a["iteration"] == b["iteration"] == 8
    for group, sa, sb in (("module", a, b), ("env_transforms", a["ranks"][0], b["ranks"][0])):
        for key, value in sa[group].items():
            assert torch.equal(value, sb[group][key]), f"{group}.{key} differs"
    rows_a = list(csv.DictReader((straight / "metrics.csv").open()))
    rows_b = list(csv.DictReader((interrupted / "metrics.csv").open()))
    assert [r["iteration"] for r in rows_b] == [r["iteration"] for r in rows_a]
    assert [r["policy_loss"] for r in rows_b] == [r["policy_loss"] for r in rows_a]


def test_corrupt_and_foreign_checkpoints_give_clear_errors(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(resolve_config(run_args("pendulum", run_dir, "eval_episodes=0")))
    path = run_dir / "checkpoints" / "last.ckpt"
    data = path.read_bytes()

    path.write_bytes(data[: len(data) // 2])
    assert main(["train", f"resume={run_dir}"]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err

    # a checkpoint of another task dropped into this run directory
    other = tmp_path / "other"
    train(resolve_config(run_args("cartpole", other, "eval_episodes=0")))
    path.write_bytes((other / "checkpoints" / "last.ckpt").read_bytes())
    assert main(["train", f"resume={run_dir}"]) == 2
    assert "was made for task cartpole" in capsys.readouterr().err

    assert main(["train", f"resume={run_dir}", "task=cartpole"]) == 2
    assert "trained on 'pendulum'" in capsys.readouterr().err


def test_eval_command_writes_eval_json(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(resolve_config(run_args("pendulum", run_dir, "eval_episodes=0")))
    assert not (run_dir / "eval.json").exists()
    assert main(["eval", f"run_dir={run_dir}", "episodes=3"]) == 0
    assert "over 3 episodes" in capsys.readouterr().out
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert evaluation["episodes"] == 3 and evaluation["env_steps"] == 512
    assert main(["eval", f"run_dir={tmp_path / 'missing'}"]) == 2
    assert main(["eval", f"run_dir={run_dir}", "bogus=1"]) == 2


def test_recipe_runs_end_to_end_and_prints_a_summary(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(RECIPE), *run_args("cartpole", tmp_path / "run")],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("done: cartpole 512 env steps, eval return") and str(tmp_path / "run") in last


def test_lightning_launcher_runs_two_ddp_ranks(tmp_path):
    fabric_cli = Path(sys.executable).with_name("fabric")
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [str(fabric_cli), "run", "--accelerator", "cpu", "--devices", "2", str(RECIPE), *run_args("cartpole", run_dir)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("done: cartpole") == 1  # only rank 0 reports
    assert "devices: 2" in (run_dir / "config.yaml").read_text()
    assert ckpt.load(run_dir / "checkpoints" / "last.ckpt")["world_size"] == 2
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert float(rows[-1]["env_steps"]) == 512  # total_steps counts both ranks' env steps


def test_checkpoint_mismatches_name_what_differs(tmp_path):
    from gr00t_torchrl.checkpoint import CheckpointError, check_compatible

    current = {"task": "pendulum", "env_id": "Pendulum-v1", "obs_shape": [3], "action": {"kind": "continuous", "dim": 1}}
    check_compatible(dict(current), current, tmp_path)  # the same signature loads
    for key, value, words in [
        ("obs_shape", [5], "observation shape [5]"),
        ("action", {"kind": "discrete", "n": 2}, "action space {'kind': 'discrete', 'n': 2}"),
        ("env_id", "Pendulum-v0", "environment Pendulum-v0"),
    ]:
        with pytest.raises(CheckpointError, match=re.escape(words)):
            check_compatible({**current, key: value}, current, tmp_path)
