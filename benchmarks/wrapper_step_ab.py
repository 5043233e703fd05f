"""The Isaac-API wrapper's own env step against TorchRL's generic one, paired in one process.

    python benchmarks/wrapper_step_ab.py --tasks Gr00t-Cartpole-v0 Gr00t-Arm-Reach-v0 --envs 64 512 4096 --pairs 16
    python benchmarks/wrapper_step_ab.py --tasks Mjlab-Cartpole-Balance --envs 256 --pairs 20 --tag mjlab

`IsaacLabApiWrapper._step` replaces TorchRL's `GymLikeEnv._step` for every Isaac-API env (see its
docstring). For each task and env count this builds the task's preset pipeline and one collector,
then collects batch after batch, switching the wrapper's step between TorchRL's (A) and the
project's (B) before each batch, in A B B A order so that slow spells of the shared machine fall on
both alike. Each batch is timed beyond the raw task's own step (for mjlab: beyond the adapter's
step, mjlab's included), which both variants call the same way. Reported: the median of each
variant, the median of the paired differences B - A with their range, and the rollout env steps/s
ratio of the two medians of whole batches. Writes benchmarks/results/wrapper_step_ab[_<tag>].md and .csv.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torchrl.envs.gym_like import GymLikeEnv

from common import Stopwatch, markdown_table, write_markdown, write_rows


def paired_batches(collect: Callable[[], None], use_own_step: Callable[[bool], None], watch: Stopwatch,
                   pairs: int) -> dict[str, list[float]]:
    """Per variant, the seconds of each batch beyond the raw task step, and of each whole batch."""
    seconds: dict[str, list[float]] = {"A": [], "B": [], "A_total": [], "B_total": []}
    for i in range(pairs):
        for variant in ("AB" if i % 2 == 0 else "BA"):
            use_own_step(variant == "B")
            raw_before = watch.seconds["raw"]
            start = time.perf_counter()
            collect()
            total = time.perf_counter() - start
            seconds[variant].append(total - (watch.seconds["raw"] - raw_before))
            seconds[f"{variant}_total"].append(total)
    return seconds


def measure(task: str, num_envs: int, pairs: int) -> dict:
    from gr00t_torchrl.tasks import resolve_config
    from gr00t_torchrl.envs import vector_env
    from gr00t_torchrl.envs.isaac_api import IsaacLabApiWrapper, is_isaac_api_task
    from gr00t_torchrl.pipeline import build_pipeline, make_collector, make_fabric

    cfg = resolve_config([f"task={task}", f"env.num_envs={num_envs}", "eval_episodes=0", "progress_bar=false"])
    if not is_isaac_api_task(cfg.env.id):
        raise SystemExit(f"'{task}' is not an Isaac-API task: it does not go through IsaacLabApiWrapper.")
    p = build_pipeline(cfg, make_fabric(cfg))
    wrapper = p.env.base_env
    own_step = IsaacLabApiWrapper._step.__get__(wrapper)
    generic_step = GymLikeEnv._step.__get__(wrapper)

    def use_own_step(own: bool) -> None:
        wrapper._step = own_step if own else generic_step

    watch = Stopwatch()
    watch.wrap(vector_env(p.env), "step", "raw")  # the raw task's own step
    collector = make_collector(p)
    batches = iter(collector)
    next(batches), next(batches)  # warm-up; the first batch also resets every env
    try:
        s = paired_batches(lambda: next(batches), use_own_step, watch, pairs)
    finally:
        collector.shutdown()
    ms = {key: [x * 1e3 for x in values] for key, values in s.items()}
    differences = [b - a for a, b in zip(ms["A"], ms["B"], strict=True)]
    return {
        "task": task, "num_envs": num_envs, "steps_per_batch": cfg.ppo.num_steps, "pairs": pairs,
        "torchrl_step_ms": round(statistics.median(ms["A"]), 2),
        "own_step_ms": round(statistics.median(ms["B"]), 2),
        "paired_difference_ms": round(statistics.median(differences), 2),
        "difference_min_ms": round(min(differences), 2), "difference_max_ms": round(max(differences), 2),
        "rollout_sps_ratio": round(statistics.median(ms["A_total"]) / statistics.median(ms["B_total"]), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["Gr00t-Cartpole-v0", "Gr00t-Pendulum-SwingUp-v0", "Gr00t-Arm-Reach-v0"])
    parser.add_argument("--envs", type=int, nargs="+", default=[64, 512, 4096])
    parser.add_argument("--pairs", type=int, default=16, help="A/B pairs of batches per task and env count")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    args = parser.parse_args()
    rows = []
    for task in args.tasks:
        for num_envs in args.envs:
            rows.append(measure(task, num_envs, args.pairs))
            print(rows[-1], flush=True)
    stem = "_".join(filter(None, ["wrapper_step_ab", args.tag]))
    write_rows(rows, stem)
    text = write_markdown(stem, "IsaacLabApiWrapper's own env step (B) against TorchRL's generic step (A), paired in "
                          "one process", [
        f"Torch threads: {torch.get_num_threads()}. Milliseconds per batch of the preset's "
        "steps per env, beyond the raw task's own step, medians; B - A is the median of the paired differences "
        "(its range in brackets: all negative means every pair was faster with the wrapper's step); the last "
        "column is A's whole-batch median over B's, i.e. B's rollout env steps/s over A's.",
        "",
        *markdown_table(["task", "envs", "steps per batch", "TorchRL's step (A)", "own step (B)", "B - A [min, max]",
                         "rollout env steps/s, B / A"], [
            [r["task"], r["num_envs"], r["steps_per_batch"], r["torchrl_step_ms"], r["own_step_ms"],
             f"{r['paired_difference_ms']} [{r['difference_min_ms']}, {r['difference_max_ms']}]",
             f"{r['rollout_sps_ratio']:.2f}x"] for r in rows]),
    ])
    print(text)


if __name__ == "__main__":
    main()
