"""The flow-matching head against the Gaussian one: multimodal demonstrations, fine-tuning, PPO from scratch.

    python benchmarks/flow.py                                  # every part, 3 seeds (about 40 min here)
    python benchmarks/flow.py --parts multimodal finetune --seeds 3
    python benchmarks/flow.py --parts scratch --scratch-tasks pendulum --seeds 3

Parts, each per seed (seeds 1..N; every stream of a run is spawned from its seed):
  - multimodal: `Gr00t-Two-Goals-v0`, whose demonstrator goes left or right around an obstacle at random.
    1000 demonstrations (`gr00t-ppo collect`), behaviour cloning (`gr00t-ppo bc`, 100 epochs) of the flow
    head and of the Gaussian one; then PPO from scratch on the task with each head. Success over 500 episodes.
  - finetune: 10 noisy demonstrations (action noise 0.5) of the same task, the flow head cloned on them,
    then FPO fine-tuning from it (`train init_from=`); success before and after.
  - scratch: PPO from scratch on the given presets at their budgets, eval return and wall time, with the Gaussian
    head (the task's preset), the flow head at its defaults, and the task's flow preset (`<task>_flow`, e.g.
    `pendulum_flow`: one clipped ratio per (t, noise) pair and the settings tuned for the task);
    `--scratch-methods` picks some of them.
Writes benchmarks/results/<stem>.csv and .md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import markdown_table, read_run, seed_list, write_markdown, write_rows

TASK = "task=Gr00t-Two-Goals-v0"
FULL = {"eval": 500, "demos": 1000, "few": 10, "epochs": 100, "few_epochs": 300, "ppo_steps": 100_000,
        "finetune_steps": 102_400, "scratch": {"pendulum": 100_000, "halfcheetah": 1_000_000}}
SMOKE = {"eval": 8, "demos": 20, "few": 4, "epochs": 2, "few_epochs": 2, "ppo_steps": 1024, "finetune_steps": 1024,
         "scratch": {"pendulum": 512, "halfcheetah": 512}}
SIZES = dict(FULL)
FINETUNE_LR = "ppo.lr=5e-5"
# each method's task preset and settings; "{task}" is the scratch task (the flow presets: flow_scratch*.md)
SCRATCH_METHODS = {"gaussian": ("task={task}", "network.head=gaussian"), "flow": ("task={task}", "network.head=flow"),
                   "flow_fpo": ("task={task}_flow",)}
SCRATCH_NAMES = {"gaussian": "ppo gaussian", "flow": "ppo flow (defaults)", "flow_fpo": "ppo flow ({task}_flow preset)"}


def cli(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "gr00t_torchrl.cli", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"gr00t-ppo {' '.join(args)} failed:\n{proc.stderr[-2000:]}")


def success(run_dir: Path) -> float:
    return json.loads((run_dir / "eval.json").read_text())["success_rate"]


def multimodal(seed: int, tmp: Path) -> list[dict]:
    data = tmp / f"demos{seed}"
    cli("collect", TASK, f"episodes={SIZES['demos']}", f"out={data}", f"seed={seed}")
    rows = []
    for head in ("flow", "gaussian"):
        bc = tmp / f"bc_{head}{seed}"
        cli("bc", TASK, f"network.head={head}", f"data={data}", f"epochs={SIZES['epochs']}", f"seed={seed}",
            f"run_dir={bc}", f"eval_episodes={SIZES['eval']}")
        rows.append({"part": "multimodal", "method": f"bc {head}", "seed": seed, "success": success(bc)})
        ppo = tmp / f"ppo_{head}{seed}"
        start = time.perf_counter()
        cli("train", TASK, f"network.head={head}", f"seed={seed}", f"run_dir={ppo}", f"eval_episodes={SIZES['eval']}",
            f"total_steps={SIZES['ppo_steps']}", "progress_bar=false")
        rows.append({"part": "multimodal", "method": f"ppo {head}", "seed": seed, "success": success(ppo),
                     "wall_s": round(time.perf_counter() - start, 1)})
    return rows


def finetune(seed: int, tmp: Path) -> list[dict]:
    data, bc, ppo = tmp / f"few{seed}", tmp / f"bc_few{seed}", tmp / f"ft{seed}"
    cli("collect", TASK, f"episodes={SIZES['few']}", "noise=0.5", f"out={data}", f"seed={seed}")
    cli("bc", TASK, "network.head=flow", f"data={data}", f"epochs={SIZES['few_epochs']}", f"seed={seed}",
        f"run_dir={bc}", f"eval_episodes={SIZES['eval']}")
    cli("train", TASK, "network.head=flow", f"init_from={bc}", FINETUNE_LR, f"total_steps={SIZES['finetune_steps']}",
        f"seed={seed}", f"run_dir={ppo}", f"eval_episodes={SIZES['eval']}", "progress_bar=false")
    return [{"part": "finetune", "method": f"bc flow ({SIZES['few']} noisy demos)", "seed": seed, "success": success(bc)},
            {"part": "finetune", "method": "bc flow + fpo fine-tuning", "seed": seed, "success": success(ppo)}]


def scratch(task: str, seed: int, tmp: Path, methods: list[str]) -> list[dict]:
    rows = []
    for method in methods:
        run_dir = tmp / f"{task}_{method}{seed}"
        start = time.perf_counter()
        settings = [word.format(task=task) for word in SCRATCH_METHODS[method]]
        cli("train", *settings, f"total_steps={SIZES['scratch'][task]}", f"seed={seed}", f"run_dir={run_dir}",
            "eval_episodes=10", "progress_bar=false")
        run = read_run(run_dir)
        rows.append({"part": f"scratch {task}", "method": SCRATCH_NAMES[method].format(task=task), "seed": seed,
                     "eval_return": round(run["eval_return"], 1), "wall_s": round(time.perf_counter() - start, 1)})
    return rows


def table(rows: list[dict]) -> list[str]:
    lines = []
    for part in dict.fromkeys(r["part"] for r in rows):
        for method in dict.fromkeys(r["method"] for r in rows if r["part"] == part):
            mine = [r for r in rows if r["part"] == part and r["method"] == method]
            key = "success" if "success" in mine[0] else "eval_return"
            values = [r[key] for r in mine]
            wall = [r["wall_s"] for r in mine if "wall_s" in r]
            lines.append([part, method, seed_list([r["seed"] for r in mine]), key.replace("_", " "),
                          ", ".join(f"{v:.2f}" if key == "success" else f"{v:.1f}" for v in values),
                          f"{statistics.mean(values):.2f}" if key == "success" else f"{statistics.mean(values):.1f}",
                          f"{statistics.mean(wall):.0f}" if wall else ""])
    return markdown_table(["part", "method", "seeds", "measure", "per seed", "mean", "wall s"], lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", choices=["multimodal", "finetune", "scratch"],
                        default=["multimodal", "finetune", "scratch"])
    parser.add_argument("--scratch-tasks", nargs="+", choices=list(FULL["scratch"]), default=["pendulum"])
    parser.add_argument("--scratch-methods", nargs="+", choices=list(SCRATCH_METHODS), default=list(SCRATCH_METHODS))
    parser.add_argument("--scratch-steps", type=int, help="env steps of each scratch run (default: each task's budget)")
    parser.add_argument("--smoke", action="store_true", help="tiny budgets everywhere (the test suite's check)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--stem", default="flow_head")
    args = parser.parse_args()
    if args.smoke:
        SIZES.update(SMOKE)
    if args.scratch_steps:
        SIZES["scratch"] = {task: args.scratch_steps for task in SIZES["scratch"]}
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, args.seeds + 1):
            if "multimodal" in args.parts:
                rows += multimodal(seed, Path(tmp))
            if "finetune" in args.parts:
                rows += finetune(seed, Path(tmp))
            if "scratch" in args.parts:
                for task in args.scratch_tasks:
                    rows += scratch(task, seed, Path(tmp), args.scratch_methods)
            print("\n".join(table(rows)), flush=True)
    columns = ["part", "method", "seed", "success", "eval_return", "wall_s"]
    write_rows([{key: row.get(key, "") for key in columns} for row in rows], args.stem)
    write_markdown(args.stem, "Flow-matching head against the Gaussian head", table(rows))


if __name__ == "__main__":
    main()
