"""The multimodal preset: success on held-out phrasings, and what each input is worth (blanked evaluations).

    python benchmarks/multimodal.py                                  # Gr00t-Reach-Language-v0 preset, 3 seeds
    python benchmarks/multimodal.py --steps 300000 --seeds 1 --episodes 100 --stem multimodal_smoke
    python benchmarks/multimodal.py --set network.head=flow --stem multimodal_reach_language_flow

Each seed trains the preset (`recipes/presets/Gr00t-Reach-Language-v0.yaml`) in its own process, then
evaluates the final policy on held-out phrasings four times: as trained, and with the image, the
instruction or the proprioception replaced by zeros (`gr00t-ppo eval blank=...`). With the language or
the image blanked, a policy that reads them should fall to about chance (25%: one of four targets).
Writes benchmarks/results/<stem>.csv, .md and .png (learning curves of success on training episodes
are not logged by the trainer; the curve is the training episode return).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import RECIPE, RESULTS, markdown_table, read_run, seed_list, write_markdown, write_rows

TASK = "Gr00t-Reach-Language-v0"
BLANKS = ("none", "image", "language", "proprio")


def run_seed(seed: int, steps: int | None, episodes: int, settings: tuple[str, ...] = ()) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        args = [f"task={TASK}", f"seed={seed}", f"run_dir={run_dir}", "progress_bar=false", "eval_episodes=0"]
        if steps is not None:
            args.append(f"total_steps={steps}")
        args.extend(settings)
        train = subprocess.run([sys.executable, str(RECIPE), *args], capture_output=True, text=True, env=os.environ)
        if train.returncode != 0:
            raise RuntimeError(f"seed {seed} failed:\n{train.stderr[-2000:]}")
        success = {}
        for blank in BLANKS:
            extra = [] if blank == "none" else [f"blank={blank}"]
            cmd = [sys.executable, "-m", "gr00t_torchrl.cli", "eval", f"run_dir={run_dir}", f"episodes={episodes}", *extra]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"eval {blank} failed:\n{proc.stderr[-2000:]}")
            name = "eval.json" if blank == "none" else f"eval_blank-{blank}.json"
            success[blank] = json.loads((run_dir / name).read_text())["success_rate"]
        run = read_run(run_dir)
    return {"seed": seed, "env_steps": run["env_steps"], "train_s": round(run["train_s"], 1), "sps": f"{run['sps']:.0f}",
            **{f"success_{blank}": success[blank] for blank in BLANKS}, "curve": run["curve"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=1, help="seeds are first-seed, first-seed + 1, ...")
    parser.add_argument("--steps", type=int, default=None, help="env steps per seed (default: the preset's)")
    parser.add_argument("--episodes", type=int, default=200, help="held-out evaluation episodes per condition")
    parser.add_argument("--stem", default="multimodal_reach_language")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra settings, e.g. network.head=flow")
    args = parser.parse_args()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    rows = []
    for seed in seeds:  # one at a time: each run uses the machine's cores
        rows.append(run_seed(seed, args.steps, args.episodes, tuple(args.set)))
        print({k: v for k, v in rows[-1].items() if k != "curve"}, flush=True)
    write_rows([{k: v for k, v in r.items() if k != "curve"} for r in rows], args.stem)
    table = markdown_table(
        ["seed", "env steps", "train s", "steps/s", "success (held-out phrasings)", "image blanked", "language blanked",
         "proprioception blanked"],
        [[r["seed"], r["env_steps"], r["train_s"], r["sps"], *(f"{r[f'success_{b}']:.2f}" for b in BLANKS)] for r in rows],
    )
    body = [f"Seeds {seed_list(seeds)}; {args.episodes} evaluation episodes per condition, held-out phrasings; "
            "chance (a random one of the four targets) is 0.25."
            + (f" Settings: `{' '.join(args.set)}`." if args.set else ""), "", *table]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for r in rows:
            steps, returns = zip(*r["curve"]) if r["curve"] else ((), ())
            ax.plot(steps, returns, label=f"seed {r['seed']}")
        ax.set_xlabel("env steps")
        ax.set_ylabel("training episode return")
        ax.set_title(TASK)
        ax.legend()
        fig.tight_layout()
        fig.savefig(RESULTS / f"{args.stem}.png", dpi=100)
        body += ["", f"![learning curves]({args.stem}.png)"]
    except ImportError:
        pass
    print(write_markdown(args.stem, f"{TASK}: success and blanked inputs", body))


if __name__ == "__main__":
    main()
