"""Learning benchmark: eval return of a task at fixed env-step budgets, over several seeds.

    python benchmarks/learning.py pendulum --steps 50000 --seeds 5
    python benchmarks/learning.py cartpole --steps 50000 100000 --seeds 5 --jobs 2
    python benchmarks/learning.py pendulum --steps 50000 --seeds 3 --set ppo.lr=3e-4   # extra settings
    python benchmarks/learning.py halfcheetah --steps 1000000 --seeds 3 --first-seed 3  # seeds 3, 4, 5

Each (budget, seed) is a separate run of the preset with `total_steps=<budget>` (so the LR schedule
fits the budget), evaluated deterministically at its end. Prints a table and writes it, with the
per-seed figures, to benchmarks/results/learning_<task>.md and .csv.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# where result files go; GR00T_BENCH_RESULTS redirects them (the smoke tests do)
RESULTS = Path(os.environ.get("GR00T_BENCH_RESULTS", Path(__file__).resolve().parent / "results"))
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "ppo_gr00t.py"


def run_parallel(fn, jobs: list, parallel: int) -> list:
    """`fn` over `jobs`, `parallel` at a time (each job is a subprocess, so threads suffice)."""
    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(fn, jobs))


def write_rows(rows: list[dict], stem: str) -> Path:
    """Writes `rows` to RESULTS/<stem>.csv, creating the folder."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{stem}.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def summarize(rows: list[dict], library: str) -> dict:
    """One library's rows of a comparison: eval returns per seed, their mean and std, mean train time and steps/s."""
    mine = [r for r in rows if r["library"] == library]
    returns = [r["eval_return"] for r in mine]
    return {
        "returns": returns,
        "mean": statistics.mean(returns),
        "std": statistics.stdev(returns) if len(returns) > 1 else 0.0,
        "env_steps": mine[0]["env_steps"],
        "train_s": statistics.mean(r["train_s"] for r in mine),
        "sps": statistics.mean(r["env_steps"] / r["train_s"] for r in mine),
    }


def plot_curves(rows: list[dict], libraries: tuple[str, ...], title: str, steps: int, path: Path) -> None:
    """Mean +- std over seeds of each library's learning curve (rows hold "library" and "curve")."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.linspace(0, steps, 50)
    fig, ax = plt.subplots(figsize=(6, 4))
    for library in libraries:
        curves = [np.asarray(r["curve"], dtype=float) for r in rows if r["library"] == library and r["curve"]]
        if not curves:
            continue
        ys = np.stack([np.interp(grid, c[:, 0], c[:, 1], left=np.nan) for c in curves])
        mean, std = np.nanmean(ys, axis=0), np.nanstd(ys, axis=0)
        ax.plot(grid, mean, label=f"{library} ({len(curves)} seeds)")
        ax.fill_between(grid, mean - std, mean + std, alpha=0.25)
    ax.set_xlabel("env steps")
    ax.set_ylabel("training episode return")
    ax.set_title(f"{title}: mean +- std over seeds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def recipe_args(task: str, steps: int, seed: int, run_dir: Path, overrides: list[str] = ()) -> list[str]:
    """The recipe's settings for one benchmark run of `task` (budget, seed, where it writes), then `overrides`."""
    return [f"task={task}", f"total_steps={steps}", f"seed={seed}", f"run_dir={run_dir}", "progress_bar=false",
            *overrides]


def read_run(run_dir: Path) -> dict:
    """A finished run's eval return, env steps, training time (its iterations' times summed), median steps/s
    after the first iteration (which warms up) and learning curve (env steps, training episode return)."""
    result = json.loads((run_dir / "eval.json").read_text())
    with (run_dir / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("sps")]
    train_time = sum((float(b["env_steps"]) - float(a["env_steps"])) / float(b["sps"])
                     for a, b in zip([{"env_steps": 0}, *rows], rows))
    curve = [(int(float(r["env_steps"])), float(r["episode_return_mean"])) for r in rows
             if r.get("episode_return_mean") not in (None, "", "nan")]
    sps = [float(r["sps"]) for r in rows][1:]
    return {"eval_return": result["eval_return_mean"], "eval_episodes": result["episodes"], "train_s": train_time,
            "env_steps": int(float(rows[-1]["env_steps"])),
            "sps": statistics.median(sps) if sps else float("nan"), "curve": curve}


def train_recipe(task: str, steps: int, seed: int, overrides: list[str] = (), threads: int | None = None) -> dict:
    """Trains the recipe in a subprocess (`threads` torch threads) and reads the finished run (`read_run`), plus its wall time."""
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(RECIPE), *recipe_args(task, steps, seed, run_dir, overrides)],
                              capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"run failed ({task} steps={steps} seed={seed}):\n{proc.stderr[-2000:]}")
        return {**read_run(run_dir), "wall_s": wall}


def run_one(task: str, steps: int, seed: int, overrides: list[str], threads: int) -> dict:
    """One row of a learning table: the run's eval return, wall time and median steps/s."""
    run = train_recipe(task, steps, seed, overrides, threads)
    return {"task": task, "steps": steps, "seed": seed, "eval_return": run["eval_return"], "wall_s": run["wall_s"],
            "sps": run["sps"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task")
    parser.add_argument("--steps", type=int, nargs="+", default=[50_000])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (each gets cores // jobs threads)")
    parser.add_argument("--first-seed", type=int, default=1, help="seeds are first-seed, first-seed + 1, ...")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], help="extra key=value settings")
    args = parser.parse_args()
    threads = max((os.cpu_count() or 1) // args.jobs, 1)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    jobs = [(s, seed) for s in args.steps for seed in seeds]
    rows = run_parallel(lambda j: run_one(args.task, j[0], j[1], args.overrides, threads), jobs, args.jobs)

    stem = f"learning_{args.task}{'_' + args.tag if args.tag else ''}"
    write_rows(rows, stem)
    lines = [
        f"# Learning: {args.task} {' '.join(args.overrides)}",
        "",
        f"Command: `python benchmarks/learning.py {' '.join(sys.argv[1:])}` (seeds {seeds[0]}-{seeds[-1]})",
        "",
        "| env steps | seeds | eval return mean | std | min | max | per seed | wall s / run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for steps in args.steps:
        scores = [r["eval_return"] for r in rows if r["steps"] == steps]
        walls = [r["wall_s"] for r in rows if r["steps"] == steps]
        std = statistics.stdev(scores) if len(scores) > 1 else 0.0
        lines.append(
            f"| {steps} | {len(scores)} | {statistics.mean(scores):.1f} | {std:.1f} | {min(scores):.1f} | "
            f"{max(scores):.1f} | {', '.join(f'{s:.0f}' for s in scores)} | {statistics.mean(walls):.0f} |"
        )
    text = "\n".join(lines) + "\n"
    (RESULTS / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
