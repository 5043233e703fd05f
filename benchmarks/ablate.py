"""Ablations: what each PPO detail buys, one detail switched off (or to its common wrong form) at a time.

    python benchmarks/ablate.py pendulum --steps 50000 --seeds 5 --jobs 2
    python benchmarks/ablate.py halfcheetah --steps 300000 --seeds 3 --jobs 2 --details no-obs-norm relu

Every variant is the task's preset plus a one-word config override (VARIANTS below); each (variant,
seed) is its own run of the recipe, evaluated deterministically at its end (`common.run_one`, as learning.py).
The change against the preset is paired by seed (same seeds, so the same env seeds), with a 95%
t-interval over seeds. Writes benchmarks/results/ablate_<task>.csv, .md and .png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading

from common import RESULTS, markdown_table, run_one, run_parallel, seed_list, threads_per_job, write_markdown, write_rows

VARIANTS: dict[str, list[str]] = {
    "preset": [],
    "adv-norm-minibatch": ["ppo.advantage_norm=minibatch"],  # detail 7: CleanRL's per-mini-batch form
    "adv-norm-none": ["ppo.advantage_norm=none"],
    "state-dependent-std": ["network.state_dependent_std=true"],  # detail 24
    "adam-eps-1e-8": ["ppo.adam_eps=1e-8"],  # detail 3: PyTorch's default
    "no-obs-norm": ["env.normalize_obs=false"],  # details 28-29
    "no-reward-scaling": ["env.scale_reward=false"],  # details 30-31
    "no-value-clip": ["ppo.clip_value=false"],  # detail 9
    "no-grad-clip": ["ppo.max_grad_norm=none"],  # detail 11
    "no-lr-anneal": ["ppo.anneal_lr=false"],  # detail 4
    "default-init": ["network.orthogonal_init=false"],  # detail 2: PyTorch's default init
    "relu": ["network.activation=relu"],  # detail 26: Tanh for robots
    "tanh": ["network.activation=tanh"],  # for presets with another activation (pendulum: ReLU)
    "64x64": ["network.hidden_sizes=64,64"],  # detail 26: 256x256 for robots
    "256x256": ["network.hidden_sizes=256,256"],  # for presets with smaller networks (pendulum)
}
# two-sided 95% t quantiles by degrees of freedom
T95 = {1: 12.71, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def paired_change(variant: list[float], preset: list[float]) -> tuple[float, float]:
    """Mean change against the preset, paired by seed, and the half-width of its 95% interval."""
    diffs = [v - p for v, p in zip(variant, preset)]
    if len(diffs) < 2:
        return diffs[0] if diffs else float("nan"), float("nan")
    half = T95.get(len(diffs) - 1, 1.96) * statistics.stdev(diffs) / len(diffs) ** 0.5
    return statistics.mean(diffs), half


def variants_in_preset(task: str, names: list[str]) -> list[str]:
    """The variants whose overrides leave the task's resolved config as it is (nothing to ablate)."""
    from gr00t_torchrl.tasks import resolve_config

    preset = resolve_config([f"task={task}"])
    return [name for name in names if resolve_config([f"task={task}", *VARIANTS[name]]) == preset]


def load_finished(path, steps: int) -> dict[tuple[str, int], dict]:
    """Runs of an interrupted study at this budget, by (variant, seed)."""
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["variant"], r["seed"]): r for r in rows if r["steps"] == steps}


def plot(summary: list[dict], title: str, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.4 * len(summary) + 1.2))
    names = [s["variant"] for s in summary][::-1]
    means = [s["mean"] for s in summary][::-1]
    stds = [s["std"] for s in summary][::-1]
    ax.barh(names, means, xerr=stds, color=["tab:green" if n == "preset" else "tab:gray" for n in names])
    ax.axvline(summary[0]["mean"], color="tab:green", linestyle="--", linewidth=1)
    ax.set_xlabel("eval return (mean +- std over seeds)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task")
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (each gets cores // jobs threads)")
    parser.add_argument("--details", nargs="*", choices=[v for v in VARIANTS if v != "preset"],
                        help="variants to run (default: all that change the preset)")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--resume", action="store_true",
                        help="reuse the runs an interrupted study of the same task, budget and tag finished")
    args = parser.parse_args()
    requested = args.details or [v for v in VARIANTS if v != "preset"]
    skipped = variants_in_preset(args.task, requested)
    names = ["preset", *(v for v in requested if v not in skipped)]
    threads = threads_per_job(args.jobs)
    seeds = range(1, args.seeds + 1)
    jobs = [(name, seed) for name in names for seed in seeds]
    stem = f"ablate_{args.task}{'_' + args.tag if args.tag else ''}"
    # every finished run is appended here at once, so hours of runs survive an interruption (--resume)
    finished_log = RESULTS / f"{stem}.runs.jsonl"
    if finished_log.exists() and not args.resume:
        sys.exit(f"An interrupted study left its finished runs in {finished_log}: pass --resume to reuse them, "
                 "or delete the file to start over.")
    finished = load_finished(finished_log, args.steps) if args.resume else {}
    RESULTS.mkdir(parents=True, exist_ok=True)
    log_lock = threading.Lock()

    def run(job: tuple[str, int]) -> dict:
        if job in finished:
            return finished[job]
        name, seed = job
        row = {"variant": name, **run_one(args.task, args.steps, seed, VARIANTS[name], threads)}
        with log_lock, finished_log.open("a") as f:
            f.write(json.dumps(row) + "\n")
        return row

    rows = run_parallel(run, jobs, args.jobs)
    write_rows(rows, stem)
    preset = [r["eval_return"] for r in rows if r["variant"] == "preset"]
    summary = []
    for name in names:
        scores = [r["eval_return"] for r in rows if r["variant"] == name]
        change, half = paired_change(scores, preset)
        summary.append({"variant": name, "mean": statistics.mean(scores),
                        "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                        "scores": scores, "change": change, "half": half})
    table = []
    for s in summary:
        override = " ".join(VARIANTS[s["variant"]]) or "-"
        change = "-" if s["variant"] == "preset" else \
            f"{s['change']:+.1f} [{s['change'] - s['half']:+.1f}, {s['change'] + s['half']:+.1f}]"
        table.append([s["variant"], f"`{override}`", f"{s['mean']:.1f} +- {s['std']:.1f}",
                      ", ".join(f"{x:.0f}" for x in s["scores"]), change])
    lines = [
        f"Seeds {seed_list(seeds)} for every variant ({threads} torch thread(s) per run, {args.jobs} run(s) at a "
        "time). Change: variant minus preset, paired by seed, with its 95% t-interval; an interval that excludes 0 "
        "is a clear effect.",
        "",
        *markdown_table(["variant", "override", "eval return mean +- std", "per seed", "change vs preset [95% CI]"],
                        table),
    ]
    if skipped:
        lines += ["", f"Not run, the preset has them already: {', '.join(skipped)}."]
    text = write_markdown(stem, f"Ablations: {args.task}, {args.steps} env steps, {args.seeds} seeds", lines)
    plot(summary, f"PPO ablations on {args.task}, {args.steps} env steps", RESULTS / f"{stem}.png")
    finished_log.unlink(missing_ok=True)  # the csv holds every run now
    print(text)


if __name__ == "__main__":
    main()
