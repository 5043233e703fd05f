"""Smoke tests of the benchmark scripts: each runs end to end on a tiny budget and writes its files.

The figures themselves come from full runs (benchmarks/results/); timing is never asserted here.
"""

from __future__ import annotations

import ast
import csv
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
HAS_MJLAB = importlib.util.find_spec("mjlab") is not None


def run_script(name: str, *args: str, out: Path) -> str:
    env = {**os.environ, "GR00T_BENCH_RESULTS": str(out), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(BENCHMARKS / name), *args], capture_output=True,
                          text=True, env=env, cwd=out, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_headers(out, f"python benchmarks/{name} {' '.join(args)}".strip())
    return proc.stdout


def assert_headers(out: Path, command: str) -> None:
    """Every results file the command wrote (the newest .md) states the command, date, machine and code version."""
    newest = max(out.glob("*.md"), key=lambda path: path.stat().st_mtime)
    lines = newest.read_text().splitlines()
    assert lines[0].startswith("# ")
    assert lines[2] == f"- Command: `{command}`", newest.name
    assert re.fullmatch(r"- Date: \d{4}-\d\d-\d\d \d\d:\d\d UTC", lines[3]), lines[3]
    assert lines[4].startswith(f"- Machine: {os.cpu_count()} CPU cores") and "torch " in lines[4] \
        and "torchrl " in lines[4] and "GPU: " in lines[4], lines[4]
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    assert re.fullmatch(rf"- Code version: `{head.strip()}(\+dirty)?`", lines[5]), lines[5]


def rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def table_rows(text: str) -> dict[str, list[str]]:
    """The cells of a markdown table's rows, by their first cell."""
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| ")]
    return {row[0]: row[1:] for row in cells[1:]}


def numbers(cell: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", cell)]


def test_scripts_import_only_common_and_the_package():
    scripts = {path.stem for path in BENCHMARKS.glob("*.py")}
    for path in BENCHMARKS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            local = {name.split(".")[0] for name in names} & scripts
            assert local <= {"common"}, f"{path.name} imports {local - {'common'}}: shared code belongs in common.py"


def test_sb3_evaluation_starts_every_episode_where_this_projects_evaluation_does(monkeypatch):
    """compare_sb3 evaluates SB3 on the start states of this project's evaluation (gr00t_torchrl.evaluate)."""
    import lightning as L
    from torchrl.envs import TransformedEnv

    from gr00t_torchrl import evaluate as evaluation
    from gr00t_torchrl.envs import vector_env
    from gr00t_torchrl.pipeline import build_pipeline
    from gr00t_torchrl.tasks import resolve_config

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from compare_sb3 import sb3_eval_envs

    for task, seed in (("pendulum", 7), ("cartpole", 8)):
        pipeline = build_pipeline(resolve_config([f"task={task}", f"seed={seed}"]), L.Fabric(accelerator="cpu", devices=1))
        starts: list[np.ndarray] = []
        reset = TransformedEnv.reset

        def recording_reset(env, *args, **kwargs):  # the first starts the evaluation episodes (later: ended envs)
            td = reset(env, *args, **kwargs)
            starts.append(np.array([e.unwrapped.state for e in vector_env(env).envs]))
            return td

        with monkeypatch.context() as m:
            m.setattr(TransformedEnv, "reset", recording_reset)
            evaluation.evaluate_pipeline(pipeline, episodes=4)
        ours = starts[0]
        sb3 = np.array([env.unwrapped.state for env, _ in sb3_eval_envs(pipeline.cfg.env.id, seed, 4)])
        assert np.array_equal(ours, sb3), task
        other_seed = np.array([env.unwrapped.state for env, _ in sb3_eval_envs(pipeline.cfg.env.id, seed + 1, 4)])
        assert not np.isin(other_seed, sb3).any()  # seeds s and s + 1 share no start state


@pytest.mark.slow
def test_compare_sb3_trains_both_libraries_evaluates_alike_and_writes_table_csv_and_plot(tmp_path):
    pytest.importorskip("stable_baselines3")
    out = run_script("compare_sb3.py", "pendulum", "--steps", "1024", "--seeds", "2", "--first-seed", "4",
                     "--eval-episodes", "3", "--jobs", "2", out=tmp_path)
    text = (tmp_path / "compare_sb3_pendulum.md").read_text()
    assert text in out and "Seeds 4, 5, both libraries" in text
    runs = rows(tmp_path / "compare_sb3_pendulum.csv")
    assert sorted((r["library"], r["seed"]) for r in runs) == [("gr00t-torchrl", "4"), ("gr00t-torchrl", "5"),
                                                                ("sb3", "4"), ("sb3", "5")]
    assert [r["eval_episodes"] for r in runs] == ["3"] * 4  # both evaluated on the episodes asked for
    table = table_rows(text)
    for library in ("gr00t-torchrl", "sb3"):  # the table's per-seed figures are the runs', seed by seed
        returns = [float(r["eval_return"]) for r in runs if r["library"] == library]
        assert numbers(table[library][2]) == pytest.approx(returns, abs=0.51)  # the table rounds to units
        assert numbers(table[library][1]) == pytest.approx([np.mean(returns), np.std(returns, ddof=1)], abs=0.06)
    assert (tmp_path / "compare_sb3_pendulum.png").stat().st_size > 0


@pytest.mark.slow
def test_compare_sb3_trains_only_the_libraries_asked_for(tmp_path):
    pytest.importorskip("stable_baselines3")
    out = run_script("compare_sb3.py", "pendulum", "--steps", "1024", "--seeds", "1", "--libraries", "sb3",
                     "--same-shape", "--envs", "2", out=tmp_path)
    assert "| sb3 |" in out and "| gr00t-torchrl |" not in out and "batch shape with 2 envs" in out
    [row] = rows(tmp_path / "compare_sb3_pendulum_same_shape_envs2.csv")
    assert row["library"] == "sb3" and int(row["env_steps"]) == 4 * 2 * 128  # 4 rollouts of 2 envs x 128 steps


@pytest.mark.slow
def test_speed_bound_times_sb3_raw_stepping_the_floor_and_this_project_at_each_env_count(tmp_path):
    pytest.importorskip("stable_baselines3")
    out = run_script("speed_bound.py", "pendulum", "--envs", "2", "3", "--iterations", "1", "--compile", out=tmp_path)
    table = rows(tmp_path / "speed_bound_pendulum.csv")
    assert [r["num_envs"] for r in table] == ["2", "3"]
    for r in table:
        assert int(r["env_steps_per_iteration"]) == int(r["num_envs"]) * 128  # the preset's 128 steps per env
        parts = ["sb3_collect_ms", "sb3_train_ms", "raw_rollout_ms", "floor_policy_ms", "floor_update_ms"]
        assert all(float(r[name]) > 0 for name in parts)
        sb3 = float(r["sb3_collect_ms"]) + float(r["sb3_train_ms"])
        floor = float(r["raw_rollout_ms"]) + float(r["floor_policy_ms"]) + float(r["floor_update_ms"])
        assert float(r["bound"]) == pytest.approx(sb3 / floor, abs=0.01)
        for name in ("ours", "compiled"):  # eager and compile=true, each loop against SB3 and per mini-batch
            loop = sum(float(r[f"{name}_{part}_ms"]) for part in ("rollout", "advantages", "update"))
            assert float(r[f"{name}_vs_sb3"]) == pytest.approx(sb3 / loop, abs=0.01)
            assert float(r[f"{name}_update_per_minibatch_ms"]) == pytest.approx(float(r[f"{name}_update_ms"]) / 80, abs=1e-3)
    assert "| bound |" in out and "compile=true / floor" in out and (tmp_path / "speed_bound_pendulum.md").exists()


def test_speed_bound_refuses_a_task_sb3_cannot_train(tmp_path):
    env = {**os.environ, "GR00T_BENCH_RESULTS": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "speed_bound.py"), "Gr00t-Cartpole-v0"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode != 0 and "not a Gymnasium task" in proc.stderr


@pytest.mark.slow
def test_ablate_runs_the_preset_and_each_variant(tmp_path):
    run_script("ablate.py", "pendulum", "--steps", "512", "--seeds", "2", "--details", "tanh", out=tmp_path)
    table = rows(tmp_path / "ablate_pendulum.csv")
    assert [r["variant"] for r in table] == ["preset", "preset", "tanh", "tanh"]
    assert "change vs preset" in (tmp_path / "ablate_pendulum.md").read_text()
    assert (tmp_path / "ablate_pendulum.png").exists()


@pytest.mark.slow
def test_ablate_resumes_an_interrupted_study_and_skips_variants_the_preset_has(tmp_path):
    interrupted = {"variant": "preset", "task": "pendulum", "steps": 512, "seed": 1, "eval_return": -1.5,
                   "wall_s": 1.0, "sps": 1.0}
    log = tmp_path / "ablate_pendulum.runs.jsonl"
    log.write_text(json.dumps(interrupted) + "\n")
    refused = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ablate.py"), "pendulum", "--steps", "512",
                              "--seeds", "1", "--details", "tanh"], capture_output=True, text=True, cwd=tmp_path,
                             env={**os.environ, "GR00T_BENCH_RESULTS": str(tmp_path)}, timeout=600)
    assert refused.returncode != 0 and "--resume" in refused.stderr  # never overwrites finished runs silently
    # the pendulum preset has 64x64 ReLU networks already, so those variants are not run
    run_script("ablate.py", "pendulum", "--steps", "512", "--seeds", "1", "--details", "tanh", "64x64", "relu",
               "--resume", out=tmp_path)
    table = rows(tmp_path / "ablate_pendulum.csv")
    assert [r["variant"] for r in table] == ["preset", "tanh"]
    assert float(table[0]["eval_return"]) == -1.5  # reused from the log, not trained again
    assert float(table[1]["eval_return"]) != -1.5
    assert "Not run, the preset has them already: 64x64, relu" in (tmp_path / "ablate_pendulum.md").read_text()
    assert not log.exists()


@pytest.mark.slow
def test_scaling_envs_and_learning_benchmarks(tmp_path):
    run_script("scaling_envs.py", "--envs", "1", "2", "--steps", "512", "--seeds", "1", out=tmp_path)
    assert [r["num_envs"] for r in rows(tmp_path / "scaling_envs_pendulum.csv")] == ["1", "2"]
    run_script("learning.py", "cartpole", "--steps", "512", "--seeds", "2", "--first-seed", "3", "--jobs", "2",
               out=tmp_path)
    runs = rows(tmp_path / "learning_cartpole.csv")
    assert [r["seed"] for r in runs] == ["3", "4"]
    text = (tmp_path / "learning_cartpole.md").read_text()
    assert "Seeds 3, 4 " in text
    assert numbers(table_rows(text)["512"][5]) == pytest.approx([float(r["eval_return"]) for r in runs], abs=0.51)


def test_the_learning_benchmark_reports_finished_runs_with_their_curves(tmp_path):
    for seed in (5, 6):
        subprocess.run([sys.executable, "-m", "gr00t_torchrl.cli", "train", "task=pendulum", "total_steps=1024",
                        "env.num_envs=2", "ppo.num_steps=128", "eval_episodes=1", f"seed={seed}",
                        f"run_dir={tmp_path / f'run{seed}'}", "progress_bar=false"], check=True, capture_output=True)
    run_script("learning.py", "pendulum", "--from-runs", str(tmp_path / "run5"), str(tmp_path / "run6"), "--tag", "mine",
               out=tmp_path)
    runs = rows(tmp_path / "learning_pendulum_mine.csv")
    assert [r["seed"] for r in runs] == ["5", "6"] and {r["steps"] for r in runs} == {"1024"}
    evals = [json.loads((tmp_path / f"run{seed}" / "eval.json").read_text())["eval_return_mean"] for seed in (5, 6)]
    assert [float(r["eval_return"]) for r in runs] == pytest.approx(evals)
    text = (tmp_path / "learning_pendulum_mine.md").read_text()
    assert "Seeds 5, 6 (reported from finished runs" in text and (tmp_path / "learning_pendulum_mine.png").stat().st_size > 0


@pytest.mark.slow
def test_throughput_and_ddp_scaling_benchmarks(tmp_path):
    run_script("throughput.py", "--tasks", "pendulum", "--envs", "2", "--frames", "512", out=tmp_path)
    assert (tmp_path / "throughput.md").exists()
    out = run_script("scaling_ddp.py", "--steps", "3072", out=tmp_path)
    layouts = [r["layout"] for r in rows(tmp_path / "scaling_ddp_pendulum.csv")]
    assert len(layouts) == 3 and layouts[-1].startswith("2 ranks")
    assert "all-reduce" in out


def test_host_syncs_benchmark_counts_host_reads_without_a_gpu(tmp_path):
    out = run_script("host_syncs.py", "--device", "cpu", "--tasks", "Gr00t-Cartpole-v0", "--envs", "8", out=tmp_path)
    table = (tmp_path / "host_syncs_cpu.md").read_text()
    assert "| Gr00t-Cartpole-v0 | 32 |" in out and "## Gr00t-Cartpole-v0: call sites" in table
    assert "update: " in table  # the update reads values on the host (e.g. whether the loss is finite)


def test_wrapper_step_ab_pairs_both_steps_and_refuses_a_gymnasium_task(tmp_path):
    out = run_script("wrapper_step_ab.py", "--tasks", "Gr00t-Cartpole-v0", "--envs", "8", "--pairs", "2", out=tmp_path)
    [row] = rows(tmp_path / "wrapper_step_ab.csv")
    assert row["task"] == "Gr00t-Cartpole-v0" and row["pairs"] == "2" and "| Gr00t-Cartpole-v0 | 8 | 32 |" in out
    assert float(row["torchrl_step_ms"]) > 0 and float(row["own_step_ms"]) > 0 and float(row["rollout_sps_ratio"]) > 0
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "wrapper_step_ab.py"), "--tasks", "pendulum",
                           "--envs", "2", "--pairs", "1"], capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env={**os.environ, "GR00T_BENCH_RESULTS": str(tmp_path)})
    assert proc.returncode != 0 and "not an Isaac-API task" in proc.stderr


@pytest.mark.slow
def test_batched_throughput_benchmark(tmp_path):
    run_script("throughput.py", "--tasks", "Gr00t-Cartpole-v0", "--envs", "16", "--frames", "1024",
               "--tag", "batched", "--set", "compile=true", out=tmp_path)
    assert "Settings: `compile=true`" in (tmp_path / "throughput_batched.md").read_text()
    [row] = rows(tmp_path / "throughput_batched.csv")
    assert row["task"] == "Gr00t-Cartpole-v0" and float(row["raw_sps"]) > 0 and float(row["train_sps"]) > 0


@pytest.mark.slow
@pytest.mark.skipif(not (HAS_MJLAB or os.environ.get("CI")), reason="mjlab is not installed (pip install -e '.[mjlab]')")
def test_compare_rsl_rl_trains_both_libraries(tmp_path):
    out = run_script("compare_rsl_rl.py", "Mjlab-Cartpole-Balance", "--steps", "8192", "--seeds", "1", "--envs", "128",
                     "--set", "compile=true", out=tmp_path)
    assert "| gr00t-torchrl |" in out and "| rsl_rl |" in out and "runs with: `compile=true`" in out
    table = rows(tmp_path / "compare_rsl_rl_Mjlab-Cartpole-Balance.csv")
    assert {r["library"] for r in table} == {"gr00t-torchrl", "rsl_rl"}
    for row in table:  # the simulator's share is measured inside each library's training time, within the command's
        assert 0 < float(row["env_s"]) < float(row["train_s"]) < float(row["wall_s"])
        assert float(row["overhead_ms_per_iteration"]) > 0 and int(row["env_steps"]) == 8192  # 2 x 128 envs x 32
    assert (tmp_path / "compare_rsl_rl_Mjlab-Cartpole-Balance.png").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.skipif(not (HAS_MJLAB or os.environ.get("CI")), reason="mjlab is not installed (pip install -e '.[mjlab]')")
def test_iteration_breakdown_times_the_parts_of_both_libraries(tmp_path):
    out = run_script("iteration_breakdown.py", "Mjlab-Cartpole-Balance", "--iterations", "1", out=tmp_path)
    text = (tmp_path / "iteration_breakdown_Mjlab-Cartpole-Balance.md").read_text()
    assert "## gr00t-torchrl" in text and "## rsl_rl" in text and text in out
    for part in ("mjlab env step", "policy (collection)", "update (epochs x mini-batches)", "advantages (GAE)"):
        value = float(text.split(f"| {part} | ")[1].split(" |")[0])
        assert value > 0, part


@pytest.mark.slow
def test_multimodal_benchmark_trains_then_evaluates_each_blanked_input(tmp_path):
    run_script("multimodal.py", "--seeds", "1", "--steps", "2048", "--episodes", "4", "--stem", "mm", out=tmp_path)
    table = rows(tmp_path / "mm.csv")
    assert [int(r["seed"]) for r in table] == [1] and int(table[0]["env_steps"]) == 2048
    for blank in ("none", "image", "language", "proprio"):
        assert 0.0 <= float(table[0][f"success_{blank}"]) <= 1.0
    cells = table_rows((tmp_path / "mm.md").read_text())["1"]
    assert [float(c) for c in cells[3:7]] == [float(table[0][f"success_{b}"]) for b in ("none", "image", "language", "proprio")]


@pytest.mark.slow
def test_multimodal_throughput_measures_each_env_count_and_the_uint8_storage(tmp_path):
    run_script("multimodal_throughput.py", "--envs", "4", "8", "--iterations", "1", "--stem", "mmt", out=tmp_path)
    table = rows(tmp_path / "mmt.csv")
    assert [int(r["envs"]) for r in table] == [4, 8]
    for r in table:
        assert float(r["image_mb_if_float32"]) == pytest.approx(4 * float(r["image_mb_uint8"]), abs=0.05)
        assert all(float(r[k]) > 0 for k in ("raw_sps", "rollout_sps", "iteration_sps", "batch_mb"))


def test_recurrent_benchmark_trains_every_learner_without_velocities(tmp_path):
    run_script("recurrent.py", "--tasks", "cartpole", "--steps", "256", "--seeds", "1", "--jobs", "2",
               "--learners", "lstm", "sb3_recurrent_ppo", "--stem", "rec", out=tmp_path)
    table = rows(tmp_path / "rec.csv")
    assert [r["learner"] for r in table] == ["lstm", "sb3_recurrent_ppo"]
    assert all(int(r["env_steps"]) >= 256 and float(r["eval_return"]) > 0 for r in table)
    assert (tmp_path / "rec_cartpole.png").is_file()


def test_flow_benchmark_runs_every_part_on_tiny_budgets(tmp_path):
    run_script("flow.py", "--smoke", "--seeds", "1", "--stem", "flow", out=tmp_path)
    table = rows(tmp_path / "flow.csv")
    methods = [r["method"] for r in table]
    assert methods == ["bc flow", "ppo flow", "bc gaussian", "ppo gaussian", "bc flow (4 noisy demos)",
                       "bc flow + fpo fine-tuning", "ppo gaussian", "ppo flow (defaults)",
                       "ppo flow (pendulum_flow preset)"]
    assert all(0.0 <= float(r["success"]) <= 1.0 for r in table if r["success"])


def test_atari_benchmark_trains_a_game_and_reports_it_beside_cleanrl(tmp_path):
    run_script("atari.py", "--games", "breakout", "--steps", "1024", "--set", "env.max_episode_steps=400",
               "--stem", "atari", out=tmp_path)
    table = rows(tmp_path / "atari.csv")
    assert table[0]["game"] == "breakout" and int(table[0]["env_steps"]) == 1024
    assert (tmp_path / "atari_breakout.png").is_file()
    assert "414.7" in (tmp_path / "atari.md").read_text()  # CleanRL's 10M figure beside ours


@pytest.mark.slow
def test_op_counts_counts_both_libraries_and_compile_launches_fewer_update_ops(tmp_path):
    pytest.importorskip("mjlab")
    run_script("op_counts.py", "Mjlab-Cartpole-Balance", "--envs", "4", out=tmp_path)
    eager, compiled, rsl = rows(tmp_path / "op_counts_Mjlab-Cartpole-Balance.csv")
    assert [r["library"] for r in (eager, compiled, rsl)] == ["gr00t-torchrl", "gr00t-torchrl compile=true", "rsl_rl"]
    assert float(eager["env_step_ops"]) > 0 and float(rsl["env_step_ops"]) > 0  # the env's own, counted apart
    assert 0 < float(compiled["per_minibatch"]) < float(eager["per_minibatch"])  # fused kernels replace op chains
    assert all(float(r["per_env_step"]) > 0 and int(r["returns_per_iteration"]) > 0 for r in (eager, compiled, rsl))
