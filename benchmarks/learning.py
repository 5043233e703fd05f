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
import statistics

from common import markdown_table, run_one, run_parallel, seed_list, threads_per_job, write_markdown, write_rows


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
    threads = threads_per_job(args.jobs)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    jobs = [(s, seed) for s in args.steps for seed in seeds]
    rows = run_parallel(lambda j: run_one(args.task, j[0], j[1], args.overrides, threads), jobs, args.jobs)

    stem = f"learning_{args.task}{'_' + args.tag if args.tag else ''}"
    write_rows(rows, stem)
    table = []
    for steps in args.steps:
        scores = [r["eval_return"] for r in rows if r["steps"] == steps]
        walls = [r["wall_s"] for r in rows if r["steps"] == steps]
        std = statistics.stdev(scores) if len(scores) > 1 else 0.0
        table.append([steps, len(scores), f"{statistics.mean(scores):.1f}", f"{std:.1f}", f"{min(scores):.1f}",
                      f"{max(scores):.1f}", ", ".join(f"{s:.0f}" for s in scores), f"{statistics.mean(walls):.0f}"])
    text = write_markdown(stem, f"Learning: {args.task} {' '.join(args.overrides)}".rstrip(), [
        f"Seeds {seed_list(seeds)} ({threads} torch thread(s) per run, {args.jobs} run(s) at a time); each run "
        "evaluated deterministically at its end.",
        "",
        *markdown_table(["env steps", "seeds", "eval return mean", "std", "min", "max", "per seed", "wall s / run"],
                        table),
    ])
    print(text)


if __name__ == "__main__":
    main()
