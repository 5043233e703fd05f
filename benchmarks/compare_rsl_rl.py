"""This project against rsl_rl (Isaac Lab's and mjlab's default PPO) on an mjlab task, on this CPU.

    pip install -e ".[bench,mjlab]"
    python benchmarks/compare_rsl_rl.py Mjlab-Cartpole-Balance --seeds 3
    python benchmarks/compare_rsl_rl.py Mjlab-Cartpole-Balance --seeds 1 --envs 1024 --set compile=true --tag compile

Both train the same mjlab env (same task config, number of envs and env-step budget, seeds) on the
CPU: this project through its Isaac Lab path with its preset (`recipes/presets/<task>.yaml`, taken from
mjlab's rsl_rl config), rsl_rl through mjlab's own `MjlabOnPolicyRunner` with mjlab's registered
config (`init_at_random_ep_len=True`, as mjlab trains). The budget is rounded down to whole
iterations of rsl_rl's rollout. Seeds are the base seeds 1, 2, ... (distinct base seeds: this project
spawns every stream of a run from its base seed with numpy's SeedSequence). Both are evaluated the
same way: the mean action, one episode in each of 10 envs of one mjlab env seeded
`evaluation_seed(seed)` (gr00t_torchrl.seeding, as this project's evaluation seeds it), raw rewards. Training env steps/s = env steps / the sum of each
library's own per-iteration times (rollout + advantages + update; start-up, logging, checkpoints and
evaluation left out, for both); the whole command's wall time (each run's process from start-up, env
creation and training to the end of its evaluation) is reported beside it. `--envs` sets both libraries'
number of envs; `--set` passes settings to this project's runs only (e.g. `compile=true`); `--device cuda` runs
both on a GPU (there the env-step stopwatch times launches, not GPU work: read the overhead as approximate). Raw stepping of the same env with random actions is measured in
the same run, so the ratio train / raw is each library's pipeline overhead. Each run is its own
process, one at a time.
Writes benchmarks/results/compare_rsl_rl_<task>.csv, .md and .png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (EVAL_EPISODES, RESULTS, Stopwatch, markdown_table, ours_args, plot_curves, raw_task_sps,
                    read_run, rsl_rl_runner, seed_list, summarize, write_markdown, write_rows)

from gr00t_torchrl.envs.mjlab_adapter import make_mjlab_env
from gr00t_torchrl.seeding import evaluation_seed

RAW_STEPS = 60  # batched steps timed for the raw-stepping figure
LIBRARIES = ("gr00t-torchrl", "rsl_rl")


def tensorboard_curve(log_dir: Path, tag: str, steps_per_iteration: int) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    if tag not in events.Tags().get("scalars", []):
        return []
    return [((e.step + 1) * steps_per_iteration, e.value) for e in events.Scalars(tag)]


def env_clock() -> Stopwatch:
    """A stopwatch on mjlab's env step, under the part name "env"."""
    from mjlab.envs.manager_based_rl_env import ManagerBasedRlEnv

    clock = Stopwatch()
    clock.wrap(ManagerBasedRlEnv, "step", "env")
    return clock


def run_ours(task: str, steps: int, seed: int, out: Path, settings: list[str]) -> None:
    from gr00t_torchrl.tasks import resolve_config
    from gr00t_torchrl.runner import train

    clock = env_clock()
    env_seconds: list[float] = []  # at the end of each iteration: evaluation's steps are left out
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        train(resolve_config([*ours_args(task, steps, seed, run_dir), *settings]),
              on_iteration=lambda *_: env_seconds.append(clock.seconds["env"]))
        result = read_run(run_dir)
    out.write_text(json.dumps({**result, "env_s": env_seconds[-1]}))


def run_rsl_rl(task: str, num_envs: int, steps: int, seed: int, out: Path, device: str) -> None:
    import torch
    from mjlab.rl import RslRlVecEnvWrapper

    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as log_dir:  # rsl_rl's writer may still flush
        runner, agent = rsl_rl_runner(task, num_envs, seed, log_dir, device)
        steps_per_iteration = num_envs * agent.num_steps_per_env
        iterations = max(steps // steps_per_iteration, 1)
        clock = env_clock()
        runner.learn(num_learning_iterations=iterations, init_at_random_ep_len=True)
        env_s = clock.seconds["env"]
        curve = tensorboard_curve(Path(log_dir), "Train/mean_reward", steps_per_iteration)
        # rsl_rl's own per-iteration timers (rollout; returns + update), as this project's metrics.csv
        # times each iteration: logging and checkpoint saving are left out for both
        train_s = sum(value for tag in ("Perf/collection_time", "Perf/learning_time")
                      for _, value in tensorboard_curve(Path(log_dir), tag, steps_per_iteration))
        policy = runner.get_inference_policy(device=device)
    eval_env = RslRlVecEnvWrapper(make_mjlab_env(task, EVAL_EPISODES, device, evaluation_seed(seed)).env)
    obs = eval_env.get_observations()
    returns = torch.zeros(EVAL_EPISODES, device=device)
    finished = torch.zeros(EVAL_EPISODES, dtype=torch.bool, device=device)
    with torch.inference_mode():
        while not finished.all():
            obs, reward, done, _ = eval_env.step(policy(obs))
            returns += reward * ~finished
            finished |= done.bool()
    out.write_text(json.dumps({"eval_return": float(returns.mean()), "train_s": train_s, "env_s": env_s,
                               "env_steps": iterations * steps_per_iteration, "curve": curve}))


def overhead_ms(row: dict, rollout: int) -> float:
    """Training time beyond the env step, per iteration of `rollout` env steps, in ms."""
    return (row["train_s"] - row["env_s"]) / (row["env_steps"] / rollout) * 1e3


def run_job(library: str, task: str, steps: int, seed: int, passed: list[str]) -> dict:
    """One run in its own process (`passed`: the --envs / --set arguments); its result and the process's wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, __file__, "--worker", library, task, "--steps", str(steps),
                   "--seed", str(seed), "--out", str(out), *passed]
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{library} seed {seed} failed:\n{proc.stderr[-3000:]}")
        return {"library": library, "seed": seed, **json.loads(out.read_text()), "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", help="an mjlab task with a preset here, e.g. Mjlab-Cartpole-Balance")
    parser.add_argument("--steps", type=int, default=None, help="env-step budget (default: the preset's)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--envs", type=int, default=None, help="number of envs for both libraries (default: the preset's)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where both libraries run")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="settings for this project's runs only")
    parser.add_argument("--worker", choices=LIBRARIES, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    try:
        import mjlab  # noqa: F401
    except ImportError:
        sys.exit("compare_rsl_rl needs mjlab (which brings rsl_rl): pip install -e '.[bench,mjlab]'")

    from gr00t_torchrl.tasks import resolve_config

    settings = [*([f"env.num_envs={args.envs}"] if args.envs else []),
                *(["accelerator=cuda"] if args.device == "cuda" else []), *args.set]
    cfg = resolve_config([f"task={args.task}", *settings])
    num_envs = cfg.env.num_envs
    from mjlab.tasks.registry import load_rl_cfg

    rollout = num_envs * load_rl_cfg(args.task).num_steps_per_env
    steps = max((args.steps or cfg.total_steps) // rollout, 1) * rollout
    if args.worker == "gr00t-torchrl":
        return run_ours(args.task, steps, args.seed, args.out, settings)
    if args.worker == "rsl_rl":
        return run_rsl_rl(args.task, num_envs, steps, args.seed, args.out, args.device)

    raw = raw_task_sps(args.task, num_envs, frames=RAW_STEPS * num_envs, device=args.device)
    seeds = range(1, args.seeds + 1)
    passed = [*(["--envs", str(args.envs)] if args.envs else []), "--device", args.device,
              *(["--set", *args.set] if args.set else [])]
    rows = [run_job(lib, args.task, steps, seed, passed) for seed in seeds for lib in LIBRARIES]
    stem = f"compare_rsl_rl_{args.task}{'_' + args.tag if args.tag else ''}"
    write_rows([{"library": r["library"], "seed": r["seed"], "env_steps": r["env_steps"],
                 "eval_return": f"{r['eval_return']:.2f}", "train_s": f"{r['train_s']:.1f}", "env_s": f"{r['env_s']:.1f}",
                 "sps": f"{r['env_steps'] / r['train_s']:.0f}", "raw_sps": f"{raw:.0f}",
                 "overhead_ms_per_iteration": f"{overhead_ms(r, rollout):.0f}", "wall_s": f"{r['wall_s']:.1f}",
                 "compile_s": f"{r.get('compile_s', 0.0):.1f}"}
                for r in rows], stem)
    table = []
    for library in LIBRARIES:
        s = summarize(rows, library)
        overheads = ", ".join(f"{overhead_ms(r, rollout):.0f}" for r in rows if r["library"] == library)
        walls = [r["wall_s"] for r in rows if r["library"] == library]
        compiles = [r.get("compile_s", 0.0) for r in rows if r["library"] == library]
        table.append([library, f"{s['mean']:.1f} +- {s['std']:.1f}", ", ".join(f"{x:.1f}" for x in s["returns"]),
                      f"{s['train_s']:.0f}", f"{s['sps']:.0f}", f"{s['sps'] / raw:.0%}", overheads,
                      f"{sum(walls) / len(walls):.0f}", f"{sum(compiles) / len(compiles):.1f}"])
    text = write_markdown(stem, f"{args.task}: gr00t-torchrl vs rsl_rl, {num_envs} envs, {steps} env steps, "
                                f"{args.device.upper()}", [
        *([f"This project's runs with: `{' '.join(args.set)}`.", ""] if args.set else []),
        f"Seeds {seed_list(seeds)}, both libraries (one run at a time, {os.cpu_count()} cores). Raw stepping of the "
        f"same env with random actions: {raw:.0f} env steps/s. Eval: mean action, {EVAL_EPISODES} held-out "
        "episodes, env seeded `evaluation_seed(seed)` for both.",
        "",
        f"Overhead: training time beyond mjlab's own env step, per iteration of {rollout} env steps.",
        "",
        *markdown_table(["library", "eval return, mean +- std", "per seed", "train s, mean", "train env steps/s",
                         "of raw", "overhead ms / iteration, per seed", "whole command wall s, mean",
                         "of train s: compiling, mean"], table),
    ])
    plot_curves(rows, LIBRARIES, f"PPO on {args.task}, {num_envs} envs", steps, RESULTS / f"{stem}.png")
    print(text)


if __name__ == "__main__":
    main()
