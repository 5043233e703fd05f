"""Runs that survive faults: kills, preemption signals, NaNs, failing envs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gr00t_torchrl import checkpoint as ckpt
from gr00t_torchrl.cli import main
from tests.conftest import TINY, merged
from tests.faulty_envs import register

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "ppo_gr00t.py"
LONG_RUN = merged("task=pendulum", "total_steps=5120", "checkpoint_every=1", *TINY, "eval_episodes=0")  # 80 iterations


def recipe(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(RECIPE), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def wait_for_iterations(run_dir: Path, proc: subprocess.Popen, iterations: int) -> None:
    metrics = run_dir / "metrics.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if metrics.is_file() and len(metrics.read_text().splitlines()) > iterations:
            return
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    raise AssertionError("the run did not get going")


def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_result(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    first = recipe(*LONG_RUN, f"run_dir={straight}")
    assert first.wait(timeout=300) == 0, first.stderr.read()

    victim = recipe(*LONG_RUN, f"run_dir={killed}")
    wait_for_iterations(killed, victim, 10)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    saved = ckpt.load(killed / "checkpoints" / "last.ckpt")  # still loadable after the kill
    assert 1 <= saved["iteration"] < 80

    resumed = recipe(f"resume={killed}")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    a = ckpt.load(straight / "checkpoints" / "last.ckpt")
    b = ckpt.load(killed / "checkpoints" / "last.ckpt")
    assert a["iteration"] == b["iteration"] == 80
    for key, value in a["module"].items():
        assert torch.equal(value, b["module"][key]), key


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_preemption_signal_saves_a_checkpoint_and_says_how_to_resume(tmp_path, sig):
    run_dir = tmp_path / "run"
    proc = recipe(*merged(*LONG_RUN, f"run_dir={run_dir}", "checkpoint_every=1000"))
    wait_for_iterations(run_dir, proc, 3)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig.value, err
    assert "Traceback" not in err
    assert f"interrupted ({sig.name})" in out and f"resume={run_dir}" in out
    saved = ckpt.load(run_dir / "checkpoints" / "last.ckpt")
    assert 3 <= saved["iteration"] < 80  # saved at the interruption, not at checkpoint_every


def test_nan_observations_never_reach_the_weights(tmp_path, capsys):
    register()
    run_dir = tmp_path / "run"
    # NaNs appear after 150 env steps: the 5th iteration of 2 envs x 32 steps
    args = merged("task=Gr00tTest-NaNPendulum-v0", f"run_dir={run_dir}", "total_steps=1024", *TINY,
                  "ppo.num_steps=32", "ppo.num_epochs=4", "ppo.num_minibatches=4", "ppo.max_bad_updates=5",
                  "checkpoint_every=1")
    assert main(["train", *args]) == 1
    err = capsys.readouterr().err
    assert "Stopped at iteration 5" in err and "5 consecutive updates had a non-finite" in err
    saved = ckpt.load(run_dir / "checkpoints" / "last.ckpt")
    assert saved["iteration"] == 4  # the last good checkpoint is intact
    assert all(torch.isfinite(v).all() for v in saved["module"].values() if v.is_floating_point())


def test_an_env_failing_in_a_worker_process_stops_the_run_with_its_message(tmp_path, capsys):
    register()
    args = merged("task=tests.faulty_envs:Gr00tTest-CrashingPendulum-v0", f"run_dir={tmp_path / 'run'}",
                  "total_steps=1024", *TINY, "env.vectorization=async")
    started = time.monotonic()
    assert main(["train", *args]) == 1
    err = capsys.readouterr().err
    assert "simulated sensor failure in the test env" in err and "iteration 2" in err
    assert time.monotonic() - started < 120  # no hang
