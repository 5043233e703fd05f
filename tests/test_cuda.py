"""The GPU path: the built-in Isaac-API tasks train on CUDA with the whole iteration on the device.

Skipped where there is no CUDA device (CI has none). On a GPU machine: `python -m pytest
tests/test_cuda.py` (benchmarks/gpu_checks.sh runs it with the GPU benchmarks).
"""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from gr00t_torchrl import checkpoint as ckpt
from gr00t_torchrl.tasks import resolve_config
from gr00t_torchrl.envs.builtin import BUILTIN_TASKS
from gr00t_torchrl.host_syncs import is_project_code, record_host_syncs
from gr00t_torchrl.evaluate import evaluate_run
from gr00t_torchrl.pipeline import Pipeline, build_pipeline, make_collector
from gr00t_torchrl.runner import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

BUILTIN = list(BUILTIN_TASKS)
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "ppo_gr00t.py"
SMALL = ["env.num_envs=4", "ppo.num_steps=64", "total_steps=2048", "eval_episodes=2", "progress_bar=false"]


def gpu_pipeline(task: str) -> Pipeline:
    cfg = resolve_config([f"task={task}", "accelerator=cuda", "env.num_envs=64", "ppo.num_steps=16",
                          "progress_bar=false"])
    return build_pipeline(cfg, L.Fabric(accelerator="cuda", devices=1))


@pytest.mark.parametrize("task", BUILTIN)
def test_collection_gae_and_update_keep_every_tensor_on_the_gpu(task):
    p = gpu_pipeline(task)
    assert p.env.device.type == "cuda"
    collector = make_collector(p)
    batch = next(iter(collector))
    p.module.compute_advantages(batch)
    for key, value in batch.items(include_nested=True, leaves_only=True):
        assert value.device.type == "cuda", f"{key} was stored on {value.device}"  # no copy of the rollout to the host
    for name, buffer in p.env.transform.named_buffers():
        assert buffer.device.type == "cuda", name  # normalizer and reward-scaling statistics
    before = [param.detach().clone() for param in p.module.parameters()]
    p.module.update(batch, p.optimizer, p.fabric_module.training_step)
    after = list(p.module.parameters())
    assert all(param.device.type == "cuda" for param in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after))  # the update did run
    assert all(v.device.type == "cuda" for s in p.optimizer.state.values() for v in s.values() if torch.is_tensor(v)
               and v.dim() > 0)
    collector.shutdown()


@pytest.mark.parametrize("task", BUILTIN)
def test_a_rollout_makes_no_host_synchronisation_in_this_project_s_code(task):
    p = gpu_pipeline(task)
    collector = make_collector(p)
    batches = iter(collector)
    next(batches)  # the first batch also resets every env and warms up
    with record_host_syncs() as syncs:
        next(batches)
    # TorchRL's own per-step checks (e.g. whether any env is done) are out of this project's hands
    assert not [s.where() for s in syncs if is_project_code(s)]
    collector.shutdown()


def test_host_sync_recorder_sees_a_synchronisation():  # so the test above cannot pass vacuously
    x = torch.ones(3, device="cuda")
    with record_host_syncs() as syncs:
        x.sum().item()
    assert len(syncs) == 1 and syncs[0].filename == __file__


def test_resuming_a_gpu_run_gives_the_uninterrupted_result(tmp_path):
    args = ["task=Gr00t-Arm-Reach-v0", "accelerator=cuda", "env.num_envs=64", "ppo.num_steps=16",
            "total_steps=8192", "checkpoint_every=100", "eval_episodes=0", "progress_bar=false"]
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train(resolve_config([*args, f"run_dir={straight}"]))
    train(resolve_config([*args, f"run_dir={interrupted}"]), stop_after=4)
    train(resolve_config([f"resume={interrupted}"]))
    a = ckpt.load(straight / "checkpoints" / "last.ckpt")
    b = ckpt.load(interrupted / "checkpoints" / "last.ckpt")
    assert a["iteration"] == b["iteration"] == 8 and "cuda" in a["ranks"][0]["rng"]
    for key, value in a["module"].items():
        assert torch.equal(value, b["module"][key]), key
    rows = [list(csv.DictReader((d / "metrics.csv").open())) for d in (straight, interrupted)]
    assert [r["policy_loss"] for r in rows[0]] == [r["policy_loss"] for r in rows[1]]
    # a GPU run's checkpoint evaluates on a machine without one (weights are loaded to the CPU)
    assert evaluate_run(straight, episodes=2)["episodes"] == 2


@pytest.mark.parametrize("task", ["pendulum", "halfcheetah"])
def test_a_gymnasium_task_trains_with_its_networks_on_the_gpu(tmp_path, task):
    # the env steps on the CPU; the collector moves each step to the policy's device and stores there
    result = train(resolve_config([f"task={task}", "accelerator=cuda", f"run_dir={tmp_path}", *SMALL]))
    assert result["env_steps"] == 2048 and math.isfinite(result["eval_return_mean"])
    saved = ckpt.load(tmp_path / "checkpoints" / "last.ckpt")
    assert all(torch.isfinite(v).all() for v in saved["module"].values() if v.is_floating_point())


def test_the_lightning_launcher_trains_on_the_gpu(tmp_path):
    fabric_cli = shutil.which("fabric") or str(Path(sys.executable).with_name("fabric"))
    proc = subprocess.run(
        [fabric_cli, "run", "--accelerator", "cuda", "--devices", "1", str(RECIPE), "task=Gr00t-Cartpole-v0",
         "accelerator=cuda", f"run_dir={tmp_path}", *SMALL],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "done: Gr00t-Cartpole-v0" in proc.stdout and (tmp_path / "eval.json").is_file()


# The presets at their budgets, as tests/test_learning.py runs them on the CPU; a GPU draws other
# random numbers, so this is a different seed in effect, with the same thresholds.
@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "min_success"),
    [("Gr00t-Cartpole-v0", 0.8), ("Gr00t-Pendulum-SwingUp-v0", 0.8), ("Gr00t-Arm-Reach-v0", 0.6)],
)
def test_builtin_tasks_reach_their_success_criterion_on_the_gpu(tmp_path, task, min_success):
    cfg = resolve_config([f"task={task}", "accelerator=cuda", "seed=1", f"run_dir={tmp_path}", "progress_bar=false"])
    result = train(cfg)
    assert result["success_rate"] >= min_success, result
