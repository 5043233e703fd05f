"""Throughput benchmark: env steps/s of the training loop, of the rollout phase, and of raw stepping.

    python benchmarks/throughput.py                                  # Pendulum-v1, HalfCheetah-v5 at 1, 8, 32 envs
    python benchmarks/throughput.py --tasks pendulum --envs 8 --frames 16384
    python benchmarks/throughput.py --tasks Gr00t-Cartpole-v0 Gr00t-Pendulum-SwingUp-v0 Gr00t-Arm-Reach-v0 \
        --envs 64 512 4096 --frames 131072 --tag batched            # built-in tensor-batched tasks
    python benchmarks/throughput.py ... --device cuda --tag batched_cuda  # the same on a GPU

For each task and env count, measured one after the other in one process:
- raw: the same in-process Gymnasium vector env (or batched Isaac-API task) stepped with random
  actions (no TorchRL, no policy);
- rollout: the project's collector (TorchRL wrapper, transforms, policy sampling) alone;
- train: whole PPO iterations (rollout + GAE + epochs x mini-batches), the preset's update settings.
Ratios (rollout / raw, train / raw) are what to compare: this machine is shared and noisy.
Writes benchmarks/results/throughput[_<tag>].md and .csv.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from common import markdown_table, raw_task_sps, random_stepping, synchronize, write_markdown, write_rows


def raw_sps(env_id: str, num_envs: int, frames: int, device: str = "cpu") -> float:
    from gr00t_torchrl.envs.isaac_api import is_isaac_api_task

    if is_isaac_api_task(env_id):
        return raw_task_sps(env_id, num_envs, frames, device)

    env, step = random_stepping(env_id, num_envs)
    steps = max(frames // num_envs, 1)
    start = time.perf_counter()
    step(steps)
    elapsed = time.perf_counter() - start
    env.close()
    return steps * num_envs / elapsed


def pipeline_sps(task: str, num_envs: int, frames: int, device: str = "cpu",
                 settings: tuple[str, ...] = ()) -> tuple[float, float]:
    """(rollout-only steps/s, whole-training-loop steps/s) for `task` with `num_envs` envs (plus `settings`)."""
    from gr00t_torchrl.tasks import resolve_config
    from gr00t_torchrl.pipeline import build_pipeline, make_collector
    import lightning as L

    num_steps = max(frames // num_envs // 4, 16)
    accelerator = "cuda" if device.startswith("cuda") else "cpu"
    cfg = resolve_config([f"task={task}", f"env.num_envs={num_envs}", f"ppo.num_steps={num_steps}",
                          f"accelerator={accelerator}", *settings])
    p = build_pipeline(cfg, L.Fabric(accelerator=accelerator, devices=1))
    collector = make_collector(p)
    batches = iter(collector)
    warm = next(batches)  # warm-up: a rollout and an update (with compile=true, the one that compiles)
    p.module.compute_advantages(warm)
    p.module.update(warm, p.optimizer, p.fabric_module.training_step)
    iterations = max(frames // cfg.frames_per_batch, 1)

    start = time.perf_counter()
    for _ in range(iterations):
        next(batches)
    synchronize(device)
    rollout = iterations * cfg.frames_per_batch / (time.perf_counter() - start)

    start = time.perf_counter()
    for _ in range(iterations):
        batch = next(batches)
        p.module.compute_advantages(batch)
        p.module.update(batch, p.optimizer, p.fabric_module.training_step)
        p.scheduler.step()
    synchronize(device)
    train = iterations * cfg.frames_per_batch / (time.perf_counter() - start)
    collector.shutdown()
    return rollout, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["pendulum", "halfcheetah"])
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--frames", type=int, default=8192, help="env steps per measurement")
    parser.add_argument("--device", default="cpu", help="device of batched Isaac-API tasks and the networks (cpu, cuda)")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra settings, e.g. compile=true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from gr00t_torchrl.presets import load_preset

    rows = []
    for task in args.tasks:
        env_id = load_preset(task).get("env", {}).get("id", task)
        for n in args.envs:
            raw = raw_sps(env_id, n, args.frames, args.device)
            rollout, train = pipeline_sps(task, n, args.frames, args.device, tuple(args.set))
            row = {
                "task": task, "num_envs": n, "raw_sps": round(raw), "rollout_sps": round(rollout),
                "train_sps": round(train), "rollout_vs_raw": round(rollout / raw, 3), "train_vs_raw": round(train / raw, 3),
            }
            print(row, flush=True)
            rows.append(row)

    stem = f"throughput_{args.tag}" if args.tag else "throughput"
    write_rows(rows, stem)
    text = write_markdown(stem, f"Throughput (env steps/s, {'this CPU machine' if args.device == 'cpu' else args.device})", [
        f"Torch threads: {torch.get_num_threads()}." + (f" Settings: `{' '.join(args.set)}`." if args.set else ""),
        "",
        *markdown_table(["task", "envs", "raw random stepping", "rollout phase", "whole training loop",
                         "rollout / raw", "train / raw"], [
            [r["task"], r["num_envs"], r["raw_sps"], r["rollout_sps"], r["train_sps"], f"{r['rollout_vs_raw']:.2f}",
             f"{r['train_vs_raw']:.2f}"] for r in rows]),
    ])
    print(text)


if __name__ == "__main__":
    main()
