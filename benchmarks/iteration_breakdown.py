"""Where one training iteration's time goes, in this project and in rsl_rl, on the same mjlab task.

    pip install -e ".[bench,mjlab]"
    python benchmarks/iteration_breakdown.py Mjlab-Cartpole-Balance --iterations 10

Each library trains its preset / mjlab config for 2 warm-up iterations, then `--iterations` timed
ones; the named parts are timed by wrapping the methods that do them (the wrappers cost a few
microseconds per call). Every part is a mean over the timed iterations, in ms; "rest" is the
iteration time no part accounts for (loop, storage, bookkeeping). Each library runs in its own
process, one after the other. Prints a table and writes benchmarks/results/iteration_breakdown_<task>.md.
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

from common import Stopwatch, rsl_rl_runner, write_markdown

WARMUP = 2


def snapshot(watch: Stopwatch) -> dict[str, float]:
    return {"time": time.perf_counter(), **watch.seconds}


def per_iteration(first: dict[str, float], last: dict[str, float], iterations: int) -> dict[str, float]:
    parts = {name: (last[name] - first[name]) / iterations * 1e3 for name in first}
    total = parts.pop("time")
    return {"iteration": total, **parts}


def breakdown_ours(task: str, iterations: int) -> dict[str, float]:
    from mjlab.envs.manager_based_rl_env import ManagerBasedRlEnv

    from gr00t_torchrl.tasks import resolve_config
    from gr00t_torchrl.envs.mjlab_adapter import MjlabAdapter
    from gr00t_torchrl.modules.actor_critic import GaussianSampler
    from gr00t_torchrl.ppo_module import PPOModule
    from gr00t_torchrl.runner import train
    from torchrl.envs import TransformedEnv

    watch = Stopwatch()
    watch.wrap(ManagerBasedRlEnv, "step", "mjlab env step")
    watch.wrap(MjlabAdapter, "step", "adapter step")
    watch.wrap(TransformedEnv, "step_and_maybe_reset", "TorchRL env step (incl. the above)")
    watch.wrap(GaussianSampler, "forward", "policy (collection)")
    watch.wrap(PPOModule, "compute_advantages", "advantages (GAE)")
    watch.wrap(PPOModule, "update", "update (epochs x mini-batches)")
    marks: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = resolve_config([f"task={task}", "eval_episodes=0", "progress_bar=false", f"run_dir={tmp}/run"])
        cfg.total_steps = cfg.frames_per_batch * (WARMUP + iterations)
        train(cfg, on_iteration=lambda *_: marks.append(snapshot(watch)))
    parts = per_iteration(marks[WARMUP - 1], marks[-1], iterations)
    parts["adapter step"] -= parts["mjlab env step"]
    parts["TorchRL env step (incl. the above)"] -= parts["adapter step"] + parts["mjlab env step"]
    parts["TorchRL env wrapper and transforms"] = parts.pop("TorchRL env step (incl. the above)")
    return parts


def breakdown_rsl_rl(task: str, iterations: int) -> dict[str, float]:
    from mjlab.envs.manager_based_rl_env import ManagerBasedRlEnv

    from gr00t_torchrl.tasks import resolve_config

    num_envs = resolve_config([f"task={task}"]).env.num_envs
    watch = Stopwatch()
    watch.wrap(ManagerBasedRlEnv, "step", "mjlab env step")
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as log_dir:  # rsl_rl's writer may still flush
        runner, _ = rsl_rl_runner(task, num_envs, 1, log_dir)
        watch.wrap(runner.env, "step", "env wrapper step (incl. the above)")
        watch.wrap(runner.alg, "act", "policy + critic (collection)")
        watch.wrap(runner.alg, "process_env_step", "storage")
        watch.wrap(runner.logger, "process_env_step", "episode bookkeeping")
        watch.wrap(runner.alg, "compute_returns", "advantages (GAE)")
        watch.wrap(runner.alg, "update", "update (epochs x mini-batches)")
        watch.wrap(runner.logger, "log", "logging")
        runner.learn(num_learning_iterations=WARMUP, init_at_random_ep_len=True)
        first = snapshot(watch)
        runner.learn(num_learning_iterations=iterations)
        last = snapshot(watch)
    parts = per_iteration(first, last, iterations)
    parts["env wrapper step (incl. the above)"] -= parts["mjlab env step"]
    parts["rsl_rl env wrapper"] = parts.pop("env wrapper step (incl. the above)")
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", help="an mjlab task with a preset here, e.g. Mjlab-Cartpole-Balance")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--worker", choices=["gr00t-torchrl", "rsl_rl"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run = breakdown_ours if args.worker == "gr00t-torchrl" else breakdown_rsl_rl
        args.out.write_text(json.dumps(run(args.task, args.iterations)))
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for library in ("gr00t-torchrl", "rsl_rl"):
            out = Path(tmp) / f"{library}.json"
            command = [sys.executable, __file__, args.task, "--iterations", str(args.iterations),
                       "--worker", library, "--out", str(out)]
            proc = subprocess.run(command, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"{library} failed:\n{proc.stderr[-3000:]}")
            results[library] = json.loads(out.read_text())
    lines = [f"{os.cpu_count()} cores, one library at a time.", ""]
    for library, parts in results.items():
        accounted = sum(value for name, value in parts.items() if name != "iteration")
        lines += [f"## {library}", "", "| part | ms |", "|---|---|"]
        lines += [f"| {name} | {value:.1f} |" for name, value in parts.items() if name != "iteration"]
        lines += [f"| rest | {parts['iteration'] - accounted:.1f} |", f"| **iteration** | {parts['iteration']:.1f} |",
                  f"| iteration beyond the mjlab env step | {parts['iteration'] - parts['mjlab env step']:.1f} |", ""]
    text = write_markdown(f"iteration_breakdown_{args.task}",
                          f"{args.task}: one training iteration, part by part (ms, mean of {args.iterations} iterations)",
                          lines)
    print(text)


if __name__ == "__main__":
    main()
