"""Learning benchmark: eval return of a task at fixed env-step budgets, over several seeds.

    python benchmarks/learning.py pendulum --steps 50000 --seeds 5
    python benchmarks/learning.py cartpole --steps 50000 100000 --seeds 5 --jobs 2
    python benchmarks/learning.py pendulum --steps 50000 --seeds 3 --set ppo.lr=3e-4   # extra settings
    python benchmarks/learning.py halfcheetah --steps 1000000 --seeds 3 --first-seed 3  # seeds 3, 4, 5
    python benchmarks/learning.py halfcheetah_flow --from-runs runs/a runs/b --tag mine  # finished runs, not trained here

Each (budget, seed) is a separate run of the preset with `total_steps=<budget>` (so the LR schedule
fits the budget), evaluated deterministically at its end. Prints a table and writes it, with the
per-seed figures, to benchmarks/results/learning_<task>.md and .csv. `--from-runs` reports finished run
directories of `gr00t-ppo train` instead (their eval.json, seed and env steps), with their training curves
plotted to learning_<task>.png; the wall time is then the run's own training time.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import yaml
from common import (RESULTS, markdown_table, plot_curves, read_run, run_one, run_parallel, seed_list, threads_per_job,
                    write_markdown, write_rows)


def from_run(task: str, run_dir: Path) -> dict:
    """A finished run's row, as `run_one` returns it, plus its learning curve."""
    run = read_run(run_dir)
    seed = yaml.safe_load((run_dir / "config.yaml").read_text())["seed"]
    return {"task": task, "steps": run["env_steps"], "seed": seed, "eval_return": run["eval_return"],
            "wall_s": run["train_s"], "sps": run["sps"], "curve": run["curve"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task")
    parser.add_argument("--steps", type=int, nargs="+", default=[50_000])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (each gets cores // jobs threads)")
    parser.add_argument("--first-seed", type=int, default=1, help="seeds are first-seed, first-seed + 1, ...")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], help="extra key=value settings")
    parser.add_argument("--from-runs", nargs="+", type=Path, default=None,
                        help="report these finished run directories instead of training")
    args = parser.parse_args()
    threads = threads_per_job(args.jobs)
    stem = f"learning_{args.task}{'_' + args.tag if args.tag else ''}"
    if args.from_runs:
        rows = [from_run(args.task, run_dir) for run_dir in args.from_runs]
        seeds, budgets = [r["seed"] for r in rows], sorted({r["steps"] for r in rows})
        plot_curves([{**r, "library": args.task} for r in rows], (args.task,), args.task, max(budgets),
                    RESULTS / f"{stem}.png")
        for r in rows:
            del r["curve"]
        how = f"reported from finished runs ({', '.join(str(d) for d in args.from_runs)}), wall s: each run's training time"
    else:
        seeds, budgets = range(args.first_seed, args.first_seed + args.seeds), args.steps
        jobs = [(s, seed) for s in budgets for seed in seeds]
        rows = run_parallel(lambda j: run_one(args.task, j[0], j[1], args.overrides, threads), jobs, args.jobs)
        how = f"{threads} torch thread(s) per run, {args.jobs} run(s) at a time"

    write_rows(rows, stem)
    table = []
    for steps in budgets:
        scores = [r["eval_return"] for r in rows if r["steps"] == steps]
        walls = [r["wall_s"] for r in rows if r["steps"] == steps]
        std = statistics.stdev(scores) if len(scores) > 1 else 0.0
        table.append([steps, len(scores), f"{statistics.mean(scores):.1f}", f"{std:.1f}", f"{min(scores):.1f}",
                      f"{max(scores):.1f}", ", ".join(f"{s:.0f}" for s in scores), f"{statistics.mean(walls):.0f}"])
    text = write_markdown(stem, f"Learning: {args.task} {' '.join(args.overrides)}".rstrip(), [
        f"Seeds {seed_list(seeds)} ({how}); each run evaluated deterministically at its end.",
        *([f"", f"![training return]({stem}.png)"] if args.from_runs else []),
        "",
        *markdown_table(["env steps", "seeds", "eval return mean", "std", "min", "max", "per seed", "wall s / run"],
                        table),
    ])
    print(text)


if __name__ == "__main__":
    main()
