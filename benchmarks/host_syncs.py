"""Where the CPU waits for the GPU: host synchronisations per phase of a PPO iteration, by call site.

    python benchmarks/host_syncs.py                      # the built-in tasks, 512 envs, on cuda
    python benchmarks/host_syncs.py --tasks Gr00t-Arm-Reach-v0 --envs 4096

Needs a CUDA device. For each task: one batch is collected to warm up, then the next batch's
rollout, GAE and update are each run under PyTorch's sync debug mode (gr00t_torchrl.host_syncs),
counting every synchronising call and the Python line that made it. Writes
benchmarks/results/host_syncs[_<tag>].md.
"""

from __future__ import annotations

import argparse
import linecache
import warnings
from collections import Counter

import lightning as L
import torch

from learning import RESULTS

from gr00t_torchrl.envs.builtin import BUILTIN_TASKS

BUILTIN = list(BUILTIN_TASKS)


def site_label(where: str) -> str:
    """`package/file.py:line  source` with the path shortened to its last two parts."""
    filename, lineno = where.rsplit(":", 1)
    source = linecache.getline(filename, int(lineno)).strip()
    return f"`{'/'.join(filename.split('/')[-2:])}:{lineno}` `{source[:70]}`"


def measure(task: str, num_envs: int) -> tuple[dict[str, int], int, Counter]:
    """(syncs per phase, env steps per batch, syncs by call site) of one iteration of `task`."""
    from gr00t_torchrl.config import resolve_config
    from gr00t_torchrl.host_syncs import record_host_syncs
    from gr00t_torchrl.runner import build_pipeline, make_collector

    cfg = resolve_config([f"task={task}", f"env.num_envs={num_envs}", "accelerator=cuda", "progress_bar=false"])
    p = build_pipeline(cfg, L.Fabric(accelerator="cuda", devices=1))
    collector = make_collector(p)
    batches = iter(collector)
    warm = next(batches)
    p.module.compute_advantages(warm)
    p.module.update(warm, p.optimizer, p.fabric_module.training_step)
    phases: dict[str, int] = {}
    sites: Counter = Counter()
    with record_host_syncs() as rollout:
        batch = next(batches)
    with record_host_syncs() as gae:
        p.module.compute_advantages(batch)
    with record_host_syncs() as update:
        p.module.update(batch, p.optimizer, p.fabric_module.training_step)
    for name, syncs in (("rollout", rollout), ("gae", gae), ("update", update)):
        phases[name] = len(syncs)
        sites.update(f"{name}: {site_label(s.where())}" for s in syncs)
    collector.shutdown()
    return phases, cfg.ppo.num_steps, sites


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=BUILTIN)
    parser.add_argument("--envs", type=int, default=512)
    parser.add_argument("--tag", default="cuda", help="suffix of the result file")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("host_syncs.py needs a CUDA device (host synchronisations only exist on a GPU).")
    warnings.filterwarnings("ignore")
    lines = [
        f"# Host synchronisations per PPO iteration ({torch.cuda.get_device_name()}, {args.envs} envs)",
        "",
        f"Command: `python benchmarks/host_syncs.py --tasks {' '.join(args.tasks)} --envs {args.envs}`. "
        "A synchronisation makes the CPU wait for the GPU; rollout counts are for one batch of the "
        "preset's steps per env.",
        "",
        "| task | steps per env per batch | rollout | rollout per env step | GAE | update |",
        "|---|---|---|---|---|---|",
    ]
    all_sites: dict[str, Counter] = {}
    for task in args.tasks:
        phases, steps, sites = measure(task, args.envs)
        all_sites[task] = sites
        row = (f"| {task} | {steps} | {phases['rollout']} | {phases['rollout'] / steps:.1f} | {phases['gae']} | "
               f"{phases['update']} |")
        print(row, flush=True)
        lines.append(row)
    for task, sites in all_sites.items():
        lines += ["", f"## {task}: call sites", "", "| phase: site | syncs |", "|---|---|"]
        lines += [f"| {site} | {count} |" for site, count in sites.most_common(15)]
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"host_syncs_{args.tag}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
