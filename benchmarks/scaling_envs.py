"""Scaling with the number of envs: training steps/s and final return at a fixed env-step budget.

    python benchmarks/scaling_envs.py                         # pendulum, 1 / 4 / 16 / 64 envs, 50k steps, 3 seeds
    python benchmarks/scaling_envs.py --envs 4 64 --steps 100000 --seeds 5 --jobs 2

Each point is the preset with only `env.num_envs` changed (num_steps and the mini-batch count stay the
preset's, so a batch grows with the env count and a fixed budget buys fewer, larger updates). Runs
go through `common.run_one` (as learning.py); steps/s is the median over iterations of the whole training loop.
Writes benchmarks/results/scaling_envs_<task>.csv, .md and .png.
"""

from __future__ import annotations

import argparse
import statistics

from common import RESULTS, markdown_table, run_one, run_parallel, seed_list, threads_per_job, write_markdown, write_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="pendulum")
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (each gets cores // jobs threads)")
    args = parser.parse_args()
    threads = threads_per_job(args.jobs)
    seeds = range(1, args.seeds + 1)
    jobs = [(n, seed) for n in args.envs for seed in seeds]

    def run(job: tuple[int, int]) -> dict:
        n, seed = job
        return {"num_envs": n, **run_one(args.task, args.steps, seed, [f"env.num_envs={n}"], threads)}

    rows = run_parallel(run, jobs, args.jobs)
    stem = f"scaling_envs_{args.task}"
    write_rows(rows, stem)
    summary, table = [], []
    for n in args.envs:
        mine = [r for r in rows if r["num_envs"] == n]
        scores = [r["eval_return"] for r in mine]
        sps = statistics.median(r["sps"] for r in mine)
        std = statistics.stdev(scores) if len(scores) > 1 else 0.0
        summary.append((n, sps, statistics.mean(scores), std))
        table.append([n, f"{sps:.0f}", f"{statistics.mean(scores):.1f} +- {std:.1f}",
                      ", ".join(f"{x:.0f}" for x in scores)])
    text = write_markdown(stem, f"Scaling with the env count: {args.task}, {args.steps} env steps, {args.seeds} seeds", [
        f"Seeds {seed_list(seeds)} at every env count ({threads} thread(s) per run, {args.jobs} run(s) at a time).",
        "",
        *markdown_table(["envs", "training env steps/s (median over seeds)", "eval return mean +- std", "per seed"],
                        table),
    ])
    plot(summary, args.task, args.steps, RESULTS / f"{stem}.png")
    print(text)


def plot(summary: list[tuple[int, float, float, float]], task: str, steps: int, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs, sps, mean, std = zip(*summary)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(envs, sps, marker="o")
    left.set(xscale="log", xlabel="envs", ylabel="training env steps/s", title="throughput")
    right.errorbar(envs, mean, yerr=std, marker="o", capsize=3)
    right.set(xscale="log", xlabel="envs", ylabel="eval return", title=f"return at {steps} env steps")
    fig.suptitle(f"PPO on {task}: scaling with the env count")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
