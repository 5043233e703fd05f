"""Throughput and memory of the multimodal preset by env count: rendering, rollout, whole iteration, storage.

    python benchmarks/multimodal_throughput.py                       # 64, 256, 1024 envs, on the CPU
    python benchmarks/multimodal_throughput.py --envs 64 --device cuda --iterations 3

For each env count: env steps/s of the raw task stepping with random actions (its physics and the
batched image rendering), of the rollout (TorchRL's collector with the policy), and of whole training
iterations (rollout, GAE, PPO update); the rollout storage's size (the batch as the update reads it)
with the images as stored (uint8) and what they would take as float32; the process's peak resident
memory. Writes benchmarks/results/<stem>.csv and .md.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from common import markdown_table, synchronize, write_markdown, write_rows

TASK = "Gr00t-Reach-Language-v0"


def measure(num_envs: int, device: str, iterations: int) -> dict:
    from gr00t_torchrl.envs import vector_env
    from gr00t_torchrl.pipeline import build_pipeline, make_collector, make_fabric
    from gr00t_torchrl.tasks import resolve_config

    cfg = resolve_config([f"task={TASK}", f"env.num_envs={num_envs}", f"accelerator={device}", "progress_bar=false"])
    pipeline = build_pipeline(cfg, make_fabric(cfg))
    task = vector_env(pipeline.env)
    steps = cfg.ppo.num_steps
    action = torch.zeros(num_envs, task.action_dim, device=task.device)
    task.reset()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        task.step(action.uniform_(-1, 1))
    synchronize(device)
    raw = num_envs * steps / (time.perf_counter() - start)

    collector = make_collector(pipeline)
    batches = iter(collector)
    next(batches)  # warm-up
    rollout_s, iteration_s = [], []
    for _ in range(iterations):
        start = time.perf_counter()
        batch = next(batches)
        synchronize(device)
        rollout_s.append(time.perf_counter() - start)
        pipeline.module.compute_advantages(batch)
        pipeline.module.update(batch, pipeline.optimizer, pipeline.fabric_module.training_step)
        synchronize(device)
        iteration_s.append(time.perf_counter() - start)
    collector.shutdown()
    frames = num_envs * steps
    image_bytes = batch.get("image").numel() + batch.get(("next", "image")).numel()  # uint8: a byte each
    return {
        "envs": num_envs, "device": device, "raw_sps": round(raw), "rollout_sps": round(frames / min(rollout_s)),
        "iteration_sps": round(frames / min(iteration_s)), "batch_mb": round(batch.bytes() / 2**20, 1),
        "image_mb_uint8": round(image_bytes / 2**20, 2), "image_mb_if_float32": round(4 * image_bytes / 2**20, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--iterations", type=int, default=2, help="timed iterations per env count (best taken)")
    parser.add_argument("--stem", default="multimodal_throughput")
    args = parser.parse_args()
    rows = []
    for n in args.envs:
        rows.append(measure(n, args.device, args.iterations))
        print(rows[-1], flush=True)
    write_rows(rows, args.stem)
    columns = list(rows[0])
    body = [f"{TASK} preset, {args.iterations} timed iteration(s) per env count after one warm-up, best taken; "
            "peak resident memory is the process's so far (it only grows with the env count).", "",
            *markdown_table(columns, [[r[c] for c in columns] for r in rows])]
    print(write_markdown(args.stem, f"{TASK}: throughput and rollout memory by env count", body))


if __name__ == "__main__":
    main()
