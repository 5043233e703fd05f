"""The run: directory contents, checkpoints, exact resume, evaluation, the CLI."""

from __future__ import annotations

import csv
import json
import math
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
    # evaluation is deterministic: the same weights on the same held-out start states score the same
    assert main(["eval", f"run_dir={run_dir}", "episodes=2"]) == 0
    assert json.loads((run_dir / "eval.json").read_text())["eval_return_mean"] == evaluation["eval_return_mean"]


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
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary file left behind


@pytest.mark.parametrize("task", ["pendulum", "cartpole", "halfcheetah", "Gr00t-Arm-Reach-v0", "pendulum-frames"])
def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path, task):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    extra = ("checkpoint_every=100", "eval_episodes=0")
    if task == "pendulum-frames":  # a Gymnasium task over 4 stacked observations: the stacks carry over too
        task, extra = "pendulum", (*extra, "env.hide_velocity=true", "env.frame_stack=4")
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


def test_lightning_run_model_launches_two_ddp_ranks_as_documented(tmp_path):
    lightning_cli = Path(sys.executable).with_name("lightning")  # installed by this package
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [str(lightning_cli), "run", "model", "--accelerator", "cpu", "--devices", "2", str(RECIPE),
         *run_args("cartpole", run_dir)],
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


def test_a_used_run_directory_is_refused_unless_overwrite(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", *run_args("pendulum", run_dir, "eval_episodes=0")]) == 0
    before = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert main(["train", *run_args("pendulum", run_dir, "eval_episodes=0", "seed=5")]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "overwrite=true" in err
    after = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after == before  # nothing touched

    assert main(["train", *run_args("pendulum", run_dir, "eval_episodes=0", "seed=5", "overwrite=true")]) == 0
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [int(r["iteration"]) for r in rows] == list(range(1, 9))  # a fresh log, not appended
    assert "seed: 5" in (run_dir / "config.yaml").read_text()


def test_default_run_directories_never_collide(tmp_path, monkeypatch):
    from gr00t_torchrl.runner import claim_default_run_dir

    monkeypatch.chdir(tmp_path)
    claimed = [claim_default_run_dir("pendulum") for _ in range(3)]  # within the same second
    assert len(set(claimed)) == 3 and all(d.is_dir() for d in claimed)


def test_a_refused_resume_changes_nothing_and_a_plain_resume_still_works(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(resolve_config(run_args("pendulum", run_dir, "eval_episodes=0", "checkpoint_every=100")), stop_after=4)
    config_before = (run_dir / "config.yaml").read_text()
    for override in ("env.num_envs=3", "network.hidden_sizes=32,32", "ppo.num_steps=16"):
        assert main(["train", f"resume={run_dir}", override]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and override.split("=")[0] in err
        assert (run_dir / "config.yaml").read_text() == config_before
    # a resume the checkpoint refuses (here: a truncated one) leaves the config as it was, too
    path = run_dir / "checkpoints" / "last.ckpt"
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    assert main(["train", f"resume={run_dir}", "ppo.lr=5e-4"]) == 2
    assert (run_dir / "config.yaml").read_text() == config_before  # validated first, written after
    path.write_bytes(good)
    assert main(["train", f"resume={run_dir}"]) == 0
    assert ckpt.load(run_dir / "checkpoints" / "last.ckpt")["iteration"] == 8


def tensorboard_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_logs_grouped_tags_against_env_steps_without_nan(tmp_path):
    run_dir = tmp_path / "run"
    train(resolve_config(run_args("pendulum", run_dir, "eval_episodes=0")))  # 2 envs x 32 steps a batch
    scalars = tensorboard_scalars(run_dir)
    assert {tag.split("/")[0] for tag in scalars} == {"train", "loss", "perf"}
    assert [step for step, _ in scalars["loss/policy_loss"]] == [64 * i for i in range(1, 9)]
    # 200-step episodes end in iteration 7 only: metrics.csv keeps NaN for the others, TensorBoard no point
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    ended = [int(r["env_steps"]) for r in rows if math.isfinite(float(r["episode_return_mean"]))]
    assert ended == [448] and len(rows) == 8
    assert [step for step, _ in scalars["train/episode_return_mean"]] == ended
    assert all(math.isfinite(value) for points in scalars.values() for _, value in points)


def test_resume_drops_the_tensorboard_points_of_redone_iterations(tmp_path):
    run_dir = tmp_path / "run"
    train(resolve_config(run_args("pendulum", run_dir, "eval_episodes=0", "checkpoint_every=3")), stop_after=5)
    assert ckpt.load(run_dir / "checkpoints" / "last.ckpt")["iteration"] == 5
    # a crash after iteration 5's log but before its checkpoint: rewind the checkpoint to iteration 3's state
    train(resolve_config(run_args("pendulum", tmp_path / "other", "eval_episodes=0", "checkpoint_every=3")), stop_after=3)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes((tmp_path / "other" / "checkpoints" / "last.ckpt").read_bytes())
    train(resolve_config([f"resume={run_dir}"]))
    steps = [step for step, _ in tensorboard_scalars(run_dir)["loss/policy_loss"]]
    assert steps == [64 * i for i in range(1, 9)]  # iterations 4 and 5 appear once, from the resumed run
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [int(r["iteration"]) for r in rows] == list(range(1, 9))


def test_an_interrupted_checkpoint_write_leaves_the_previous_one_loadable(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    train(resolve_config(run_args("pendulum", run_dir, "eval_episodes=0", "checkpoint_every=100")), stop_after=2)
    path = run_dir / "checkpoints" / "last.ckpt"
    previous = path.read_bytes()
    real_save = torch.save

    def dies_mid_file(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.seek(0)
        f.truncate(1000)  # half-written
        raise OSError("simulated power loss")

    monkeypatch.setattr(torch, "save", dies_mid_file)
    with pytest.raises(OSError, match="power loss"):
        train(resolve_config([f"resume={run_dir}"]), stop_after=3)
    monkeypatch.undo()
    assert path.read_bytes() == previous
    assert ckpt.load(path)["iteration"] == 2
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


def test_eval_json_and_config_yaml_are_written_atomically(tmp_path, monkeypatch):
    from gr00t_torchrl import durable
    from gr00t_torchrl.evaluate import write_eval

    write_eval(tmp_path, 10, {"eval_return_mean": 1.0})
    before = (tmp_path / "eval.json").read_text()

    def dies(fd):
        raise OSError("simulated disk failure")

    monkeypatch.setattr(durable.os, "fsync", dies)
    with pytest.raises(OSError):
        write_eval(tmp_path, 20, {"eval_return_mean": 2.0})
    with pytest.raises(OSError):
        resolve_config(["task=pendulum"]).save(tmp_path / "config.yaml")
    assert (tmp_path / "eval.json").read_text() == before
    assert not (tmp_path / "config.yaml").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.json"]


def test_the_logged_lr_is_the_one_each_update_ran_with(tmp_path):
    run_dir = tmp_path / "run"
    train(resolve_config(run_args("pendulum", run_dir, "eval_episodes=0", "ppo.lr=1e-3")))
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [float(r["lr"]) for r in rows] == pytest.approx([1e-3 * (1 - i / 8) for i in range(8)])

    adaptive = tmp_path / "adaptive"
    train(resolve_config(run_args("pendulum", adaptive, "eval_episodes=0", "ppo.lr=1e-3", "ppo.anneal_lr=false",
                                  "ppo.desired_kl=0.001")))
    last = list(csv.DictReader((adaptive / "metrics.csv").open()))[-1]
    scale = float(ckpt.load(adaptive / "checkpoints" / "last.ckpt")["module"]["adaptive_lr_scale"])
    assert float(last["lr"]) == pytest.approx(1e-3 * scale) and scale != 1.0


def test_seeds_are_independent_streams(tmp_path):
    from gr00t_torchrl.envs import make_env
    from gr00t_torchrl.seeding import evaluation_seed, rank_seeds

    def start_states(seed: int) -> set[tuple[float, ...]]:
        cfg = resolve_config(["task=pendulum", f"seed={seed}", "env.normalize_obs=false"])
        obs = make_env(cfg, seed=evaluation_seed(seed), num_envs=10, train=False).reset()["observation"]
        return {tuple(round(v, 6) for v in row.tolist()) for row in obs}

    assert len(start_states(1)) == 10 and not start_states(1) & start_states(2)  # seed + i shared 9 of 10
    streams = [rank_seeds(s, r) for s in (1, 2) for r in (0, 1)]
    seeds = [x for st in streams for x in (st.torch, st.envs)] + [evaluation_seed(1), evaluation_seed(2)]
    assert len(set(seeds)) == len(seeds)
    assert rank_seeds(1, 0) == rank_seeds(1, 0)  # and reproducible
