"""Where the CPU waits for the GPU: host synchronisations per phase of a PPO iteration, by call site.

    python benchmarks/host_syncs.py                      # the built-in tasks, 512 envs, on cuda
    python benchmarks/host_syncs.py --tasks Gr00t-Arm-Reach-v0 --envs 4096
    python benchmarks/host_syncs.py --device cpu         # without a GPU: host reads, the CPU stand-in

For each task: one batch is collected to warm up, then the next batch's rollout, GAE and update are
each run under PyTorch's sync debug mode (gr00t_torchrl.host_syncs), counting every synchronising
call and the Python line that made it. With `--device cpu` the same runs count host reads instead
(`record_host_reads`: every op whose value the host reads, which on a GPU would synchronise;
host-to-device copies are not seen there). Writes benchmarks/results/host_syncs_<tag>.md (tag: the
device unless given).
"""

from __future__ import annotations

import argparse
import linecache
import warnings
from collections import Counter

import lightning as L
import torch

from common import write_markdown

from gr00t_torchrl.envs.builtin import BUILTIN_TASKS

BUILTIN = list(BUILTIN_TASKS)


def site_label(where: str) -> str:
    """`package/file.py:line  source` with the path shortened to its last two parts."""
    filename, lineno = where.rsplit(":", 1)
    source = linecache.getline(filename, int(lineno)).strip()
    return f"`{'/'.join(filename.split('/')[-2:])}:{lineno}` `{source[:70]}`"


def measure(task: str, num_envs: int, device: str) -> tuple[dict[str, int], int, Counter]:
    """(syncs per phase, env steps per batch, syncs by call site) of one iteration of `task`."""
    from gr00t_torchrl.tasks import resolve_config
    from gr00t_torchrl.host_syncs import record_host_reads, record_host_syncs
    from gr00t_torchrl.pipeline import build_pipeline, make_collector

    record = record_host_syncs if device == "cuda" else record_host_reads
    cfg = resolve_config([f"task={task}", f"env.num_envs={num_envs}", f"accelerator={device}", "progress_bar=false"])
    p = build_pipeline(cfg, L.Fabric(accelerator=device, devices=1))
    collector = make_collector(p)
    batches = iter(collector)
    warm = next(batches)
    p.module.compute_advantages(warm)
    p.module.update(warm, p.optimizer, p.fabric_module.training_step)
    phases: dict[str, int] = {}
    sites: Counter = Counter()
    with record() as rollout:
        batch = next(batches)
    with record() as gae:
        p.module.compute_advantages(batch)
    with record() as update:
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
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--tag", default=None, help="suffix of the result file (default: the device)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("host_syncs.py needs a CUDA device for --device cuda; --device cpu counts host reads instead.")
    warnings.filterwarnings("ignore")
    what, where = (("synchronisations", torch.cuda.get_device_name()) if args.device == "cuda"
                   else ("reads (the CPU stand-in for synchronisations)", "CPU"))
    lines = [
        "A synchronisation makes the CPU wait for the GPU; a host read is an op "
        "whose value the host reads, a synchronisation on a GPU (host-to-device copies are not counted "
        "on a CPU). Rollout counts are for one batch of the preset's steps per env.",
        "",
        "| task | steps per env per batch | rollout | rollout per env step | GAE | update |",
        "|---|---|---|---|---|---|",
    ]
    all_sites: dict[str, Counter] = {}
    for task in args.tasks:
        phases, steps, sites = measure(task, args.envs, args.device)
        all_sites[task] = sites
        row = (f"| {task} | {steps} | {phases['rollout']} | {phases['rollout'] / steps:.1f} | {phases['gae']} | "
               f"{phases['update']} |")
        print(row, flush=True)
        lines.append(row)
    for task, sites in all_sites.items():
        unit = "syncs" if args.device == "cuda" else "host reads"
        lines += ["", f"## {task}: call sites", "", f"| phase: site | {unit} |", "|---|---|"]
        lines += [f"| {site} | {count} |" for site, count in sites.most_common(15)]
    text = write_markdown(f"host_syncs_{args.tag or args.device}",
                          f"Host {what} per PPO iteration ({where}, {args.envs} envs)", lines)
    print(text)


if __name__ == "__main__":
    main()
