"""Atari learning curves at the budget this machine allows, beside CleanRL's published 10M-step scores.

    pip install -e ".[atari]"
    python benchmarks/atari.py --games breakout --steps 800000 --seeds 1 --threads 1   # about 1.5 h on one core here
    python benchmarks/atari.py --games breakout pong --steps 10000000 --seeds 3 --set accelerator=cuda   # a GPU box

Each (game, seed) trains the game's preset (CleanRL's ppo_atari settings, with the LR annealed over the budget
given) and is evaluated on whole games with deterministic actions. The curve is the training return, which is
per life and sign-clipped (details 16 and 19), so it sits far below game scores; the evaluation column is the
game score CleanRL reports. Writes benchmarks/results/<stem>.csv, .md and <stem>_<game>.png. `--from-runs <dir> ...` reports run directories
instead (a run stopped before its budget, at its last checkpoint: evaluated then).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from common import (
    EVAL_EPISODES, RESULTS, markdown_table, ours_overrides, plot_curves, read_run, run_parallel, seed_list,
    threads_per_job, train_recipe, write_markdown, write_rows,
)

CLEANRL_10M = {"breakout": "414.7 +- 28.1", "pong": "20.4 +- 0.2"}  # ppo_atari.py, 3 seeds, its docs


def run_job(job: tuple[str, int, int, list[str], int]) -> dict:
    game, steps, seed, overrides, threads = job
    run = train_recipe(game, steps, seed, [*ours_overrides(), *overrides], threads)
    print(f"{game} seed {seed}: eval {run['eval_return']:.1f} after {run['env_steps']} steps "
          f"({run['train_s']:.0f} s training, {run['sps']:.0f} steps/s)", flush=True)
    return {"game": game, "seed": seed, "env_steps": run["env_steps"], "eval_return": round(run["eval_return"], 1),
            "train_s": round(run["train_s"], 1), "sps": round(run["sps"], 1), "curve": run["curve"]}


def from_run(run_dir: Path) -> dict:
    """A run stopped before its budget (its last checkpoint): evaluated now on whole games, read as `run_job` reads one."""
    subprocess.run([sys.executable, "-m", "gr00t_torchrl.cli", "eval", f"run_dir={run_dir}", f"episodes={EVAL_EPISODES}"],
                   check=True)
    run = read_run(run_dir)
    game = next(g for g in CLEANRL_10M if g in (run_dir / "config.yaml").read_text())
    seed = int(next(line.split(":")[1] for line in (run_dir / "config.yaml").read_text().splitlines()
                    if line.startswith("seed:")))
    return {"game": game, "seed": seed, "env_steps": run["env_steps"], "eval_return": round(run["eval_return"], 1),
            "train_s": round(run["train_s"], 1), "sps": round(run["sps"], 1), "curve": run["curve"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", nargs="+", choices=list(CLEANRL_10M), default=["breakout"])
    parser.add_argument("--steps", type=int, default=800_000)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run (default: cores // jobs)")
    parser.add_argument("--stem", default="atari")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], help="extra key=value settings")
    parser.add_argument("--from-runs", nargs="+", type=Path, default=None,
                        help="report these run directories (e.g. runs stopped before their budget) instead of training")
    args = parser.parse_args()
    threads = args.threads or threads_per_job(args.jobs)
    if args.from_runs:
        rows = [from_run(run_dir) for run_dir in args.from_runs]
        args.games = list(dict.fromkeys(r["game"] for r in rows))
    else:
        jobs = [(game, args.steps, seed, args.overrides, threads)
                for game in args.games for seed in range(1, args.seeds + 1)]
        rows = run_parallel(run_job, jobs, args.jobs)
    write_rows([{k: v for k, v in r.items() if k != "curve"} for r in rows], args.stem)
    table = []
    for game in args.games:
        mine = [r for r in rows if r["game"] == game]
        scores = [r["eval_return"] for r in mine]
        table.append([game, mine[0]["env_steps"], seed_list([r["seed"] for r in mine]),
                      ", ".join(f"{x:.1f}" for x in scores), f"{statistics.mean(scores):.1f}",
                      f"{statistics.mean(r['train_s'] for r in mine):.0f}", f"{statistics.mean(r['sps'] for r in mine):.0f}",
                      CLEANRL_10M[game]])
        steps = max(r["env_steps"] for r in mine) if args.from_runs else args.steps
        plot_curves([{**r, "library": "gr00t-torchrl"} for r in mine], ("gr00t-torchrl",),
                    f"{game} (return per life, clipped)", steps, RESULTS / f"{args.stem}_{game}.png")
    body = markdown_table(["game", "env steps", "seeds", "eval game score per seed", "mean", "train s", "steps/s",
                           "CleanRL at 10M steps"], table)
    print("\n".join(body))
    write_markdown(args.stem, "Atari: learning curves at this machine's budget", body)


if __name__ == "__main__":
    main()
