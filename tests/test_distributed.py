"""Two CPU ranks (gloo DDP) through Lightning's launcher: identical state, different rollouts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gr00t_torchrl import checkpoint as ckpt
from gr00t_torchrl.cli import main
from gr00t_torchrl.distributed import env_statistics
from gr00t_torchrl.envs import make_env
from tests.conftest import TINY, merged, tiny_config

ROOT = Path(__file__).resolve().parents[1]
FABRIC = Path(sys.executable).with_name("fabric")


def fabric_run(script: Path, *args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(FABRIC), "run", "--accelerator", "cpu", "--devices", "2", str(script), *args],
        capture_output=True, text=True, cwd=cwd, timeout=300, env={**os.environ, **(env or {})},
    )


def assert_same(a, b, where: str) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{where} differs between ranks"
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    dumps, run_dir = tmp / "dumps", tmp / "run"
    dumps.mkdir()
    args = merged("task=pendulum", f"run_dir={run_dir}", "total_steps=512", *TINY)
    proc = fabric_run(ROOT / "tests" / "ddp_worker.py", str(dumps), *args, cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dumps, run_dir


def test_every_rank_holds_identical_weights_optimizer_and_statistics(ddp_run):
    dumps, _ = ddp_run
    for iteration in (1, 2, 4):
        rank0 = torch.load(dumps / f"rank0_iteration{iteration}.pt", weights_only=True)
        rank1 = torch.load(dumps / f"rank1_iteration{iteration}.pt", weights_only=True)
        for key in ("module", "optimizer", "stats"):
            assert_same(rank0[key], rank1[key], f"iteration {iteration} {key}")
        # each rank stepped its own envs with its own seeds
        assert not torch.equal(rank0["observations"], rank1["observations"])
        assert not torch.equal(rank0["actions"], rank1["actions"])


def test_a_non_finite_loss_on_one_rank_is_skipped_by_every_rank(tmp_path):
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    args = merged("task=pendulum", f"run_dir={tmp_path / 'run'}", "total_steps=128", *TINY, "eval_episodes=0")
    proc = fabric_run(ROOT / "tests" / "ddp_worker.py", str(dumps), *args, cwd=tmp_path,
                      env={"GR00T_TEST_POISON_RANK": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = torch.load(dumps / "rank0_iteration1.pt", weights_only=True)
    rank1 = torch.load(dumps / "rank1_iteration1.pt", weights_only=True)
    assert rank0["skipped_updates"] == rank1["skipped_updates"] == 1  # rank 0's loss was finite: it skipped too
    assert_same(rank0["module"], rank1["module"], "module after the poisoned mini-batch")
    assert_same(rank0["optimizer"], rank1["optimizer"], "optimizer after the poisoned mini-batch")


def test_statistics_merge_both_ranks_data(ddp_run):
    dumps, _ = ddp_run
    rank0 = torch.load(dumps / "rank0_iteration1.pt", weights_only=True)
    obs_count = rank0["stats"][0][0].item()
    assert obs_count == 2 * 2 * 32  # 2 ranks x 2 envs x 32 steps


def test_only_rank_zero_writes_and_totals_count_all_ranks(ddp_run):
    _, run_dir = ddp_run
    saved = ckpt.load(run_dir / "checkpoints" / "last.ckpt")
    assert saved["world_size"] == 2 and len(saved["ranks"]) == 2
    assert saved["env_steps"] == 512 and saved["iteration"] == 4  # 4 x 2 ranks x 2 envs x 32 steps
    assert "devices: 2" in (run_dir / "config.yaml").read_text()
    assert (run_dir / "eval.json").is_file()
    snapshots = [r["env_snapshot"]["observations"] for r in saved["ranks"]]
    assert not torch.equal(*snapshots)  # each rank's own env state is kept


def test_resuming_with_another_world_size_is_refused(ddp_run, capsys):
    _, run_dir = ddp_run
    assert main(["train", f"resume={run_dir}", "devices=1"]) == 2
    assert "devices=2" in capsys.readouterr().err


def test_a_distributed_run_can_be_evaluated_and_audited_in_one_process(ddp_run, capsys):
    _, run_dir = ddp_run
    assert main(["eval", f"run_dir={run_dir}", "episodes=2"]) == 0
    assert main(["verify", f"run_dir={run_dir}"]) == 0
    assert "every detail that applies is right" in capsys.readouterr().out


def test_deferred_statistics_change_only_when_merged():
    env = make_env(tiny_config(), seed=0)
    stats = env_statistics(env)[0]
    stats.defer_updates()
    env.rollout(5, break_when_any_done=False)
    assert stats.count.item() == 0 and stats.pending.count.item() == 10


def test_a_recurrent_policy_trains_with_ddp_and_ranks_stay_identical(tmp_path):
    dumps, run_dir = tmp_path / "dumps", tmp_path / "run"
    dumps.mkdir()
    args = merged("task=pendulum", "env.hide_velocity=true", "network.recurrent=gru", "network.recurrent_size=8",
                  f"run_dir={run_dir}", "total_steps=256", *TINY, "eval_episodes=0")
    proc = fabric_run(ROOT / "tests" / "ddp_worker.py", str(dumps), *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for iteration in (1, 2):
        rank0 = torch.load(dumps / f"rank0_iteration{iteration}.pt", weights_only=True)
        rank1 = torch.load(dumps / f"rank1_iteration{iteration}.pt", weights_only=True)
        assert_same(rank0["module"], rank1["module"], f"iteration {iteration} module")
        assert not torch.equal(rank0["observations"], rank1["observations"])
    saved = ckpt.load(run_dir / "checkpoints" / "last.ckpt")
    memories = [r["memory"]["actor_memory_state_h"] for r in saved["ranks"]]
    assert not torch.equal(*memories)  # each rank's own carried hidden state is kept
