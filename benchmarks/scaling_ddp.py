"""Scaling benchmark: env steps/s of 1 vs 2 DDP ranks, and the cost of the cross-rank traffic.

    python benchmarks/scaling_ddp.py                                   # pendulum, 40,960 env steps per layout
    python benchmarks/scaling_ddp.py --task halfcheetah --steps 65536 --accelerator cuda --devices 1

Runs the recipe, one after the other in this process's machine, as:
- 1 rank with all the cores as torch threads (`python recipes/ppo_gr00t.py`),
- 1 rank with 1 thread (the per-rank share of the 2-rank layout),
- N ranks with 1 thread each (`fabric run --devices N recipes/ppo_gr00t.py`, gloo on CPU),
each with the preset's per-rank settings (so N ranks collect N times the env steps per iteration), and
reads the per-iteration times the run logs in metrics.csv: rollout, statistics merge across ranks
(`time_sync`) and update (which holds the gradient all-reduces of DDP). It then times the gradient
all-reduce alone: one all-reduce of a flat tensor the size of the actor + critic, as DDP does per
mini-batch (one bucket at these sizes). The first iteration (warm-up) is left out.
Writes benchmarks/results/scaling_ddp_<task>.md and .csv.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RECIPE, markdown_table, write_markdown, write_rows

FABRIC = Path(sys.executable).with_name("fabric")


def run_layout(task: str, steps: int, ranks: int, threads: int, accelerator: str, extra: list[str]) -> dict:
    """Train `steps` env steps (all ranks together) and summarise metrics.csv."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        args = [f"task={task}", f"total_steps={steps}", f"run_dir={run_dir}", "progress_bar=false",
                "eval_episodes=1", f"accelerator={accelerator}", *extra]
        if ranks == 1:
            command = [sys.executable, str(RECIPE), *args, "devices=1"]
        else:
            command = [str(FABRIC), "run", "--accelerator", accelerator, "--devices", str(ranks), str(RECIPE), *args]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{ranks}-rank run failed:\n{proc.stderr[-3000:]}")
        with (run_dir / "metrics.csv").open() as f:
            rows = [r for r in csv.DictReader(f) if r.get("sps")][1:]  # the first iteration warms up
    if not rows:
        raise RuntimeError("too few iterations to measure: raise --steps")

    def median(key: str) -> float:
        return statistics.median(float(r[key]) for r in rows)

    return {
        "layout": f"{ranks} rank{'s' if ranks > 1 else ''} x {threads} thread{'s' if threads > 1 else ''}",
        "ranks": ranks, "threads": threads, "iterations": len(rows),
        "steps_per_iteration": int(float(rows[1]["env_steps"]) - float(rows[0]["env_steps"])) if len(rows) > 1 else 0,
        "sps": median("sps"), "time_rollout_ms": 1e3 * median("time_rollout"),
        "time_sync_ms": 1e3 * median("time_sync"), "time_update_ms": 1e3 * median("time_update"),
        "wall_s": wall,
    }


def allreduce_worker(out: str, task: str, repeats: int) -> None:
    """Under `fabric run`: time all-reduces of a tensor the size of the task's actor + critic."""
    import lightning as L
    import torch
    import torch.distributed as dist

    from gr00t_torchrl.tasks import resolve_config
    from gr00t_torchrl.pipeline import build_pipeline

    fabric = L.Fabric()  # under `fabric run`: the CLI has started the processes, Fabric joins them
    pipeline = build_pipeline(resolve_config([f"task={task}"]), fabric)
    numel = sum(p.numel() for p in pipeline.module.parameters() if p.requires_grad)
    flat = torch.randn(numel, device=fabric.device)
    for _ in range(10):
        dist.all_reduce(flat)
    fabric.barrier()
    start = time.perf_counter()
    for _ in range(repeats):
        dist.all_reduce(flat)
    elapsed = (time.perf_counter() - start) / repeats
    if fabric.is_global_zero:
        Path(out).write_text(json.dumps({"parameters": numel, "allreduce_ms": 1e3 * elapsed}))
    fabric.barrier()
    # Leave without tearing gloo down: on a loaded machine a rank whose peer (holding the store) has
    # already gone sometimes aborts in the teardown ("terminate called without an active exception",
    # SIGABRT), failing a measurement that is complete and written. Nothing is left to flush here.
    os._exit(0)


def time_allreduce(task: str, ranks: int, accelerator: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "allreduce.json"
        command = [str(FABRIC), "run", "--accelerator", accelerator, "--devices", str(ranks), __file__,
                   "--allreduce-worker", str(out), "--task", task]
        proc = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if proc.returncode != 0:
            raise RuntimeError(f"all-reduce timing failed:\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="pendulum")
    parser.add_argument("--steps", type=int, default=40_960, help="env steps per layout, all ranks together")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], help="extra key=value settings")
    parser.add_argument("--allreduce-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.allreduce_worker:
        allreduce_worker(args.allreduce_worker, args.task, repeats=200)
        return

    cores = os.cpu_count() or 1
    layouts = [(1, cores), (1, 1), (args.ranks, max(cores // args.ranks, 1))]
    rows = [run_layout(args.task, args.steps, r, t, args.accelerator, args.overrides) for r, t in layouts]
    comm = time_allreduce(args.task, args.ranks, args.accelerator)
    base = rows[0]["sps"]
    for row in rows:
        row["speedup"] = row["sps"] / base

    stem = f"scaling_ddp_{args.task}"
    write_rows(rows, stem)
    text = write_markdown(stem, f"DDP scaling: {args.task}, {args.steps} env steps per layout, {args.accelerator}, "
                                f"{cores} cores", [
        "Medians over iterations (the first left out); speed-up against the first row.",
        "",
        *markdown_table(["layout", "env steps / iteration", "env steps/s", "speed-up", "rollout ms", "stats merge ms",
                         "update ms", "wall s"], [
            [r["layout"], r["steps_per_iteration"], f"{r['sps']:.0f}", f"{r['speedup']:.2f}",
             f"{r['time_rollout_ms']:.0f}", f"{r['time_sync_ms']:.2f}", f"{r['time_update_ms']:.0f}",
             f"{r['wall_s']:.0f}"] for r in rows]),
        "",
        f"Gradient all-reduce over {args.ranks} ranks of {comm['parameters']} float32 parameters "
        f"(actor + critic): {comm['allreduce_ms']:.3f} ms each; DDP runs one per mini-batch.",
    ])
    print(text)


if __name__ == "__main__":
    main()
