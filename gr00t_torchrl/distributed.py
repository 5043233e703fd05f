"""What data-parallel ranks share beyond gradients: normalizer statistics, rank states, stop flags.

DDP (through Lightning Fabric) averages gradients; every rank starts from rank 0's weights, so
weights and optimizer states stay identical. Env-side statistics are not gradients: each rank
accumulates its own share and `sync_statistics` merges them, in rank order, every iteration.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from torchrl.envs import TransformedEnv

from gr00t_torchrl.transforms import RunningMeanStd


def env_statistics(env: TransformedEnv) -> list[RunningMeanStd]:
    """The running statistics of the env's transforms (observation and return), in a fixed order."""
    return [m for m in env.transform.modules() if isinstance(m, RunningMeanStd)]


def prepare_statistics(fabric: L.Fabric, env: TransformedEnv) -> None:
    """On more than one rank, statistics change only when merged (so ranks never diverge)."""
    if fabric.world_size > 1:
        for stats in env_statistics(env):
            stats.defer_updates()


@torch.no_grad()
def sync_statistics(fabric: L.Fabric, env: TransformedEnv) -> None:
    """Folds every rank's pending statistics into the shared ones, identically on every rank."""
    if fabric.world_size == 1:
        return
    all_stats = env_statistics(env)
    parts = []
    for stats in all_stats:
        pending = stats.pending
        parts += [pending.count.reshape(1), pending.mean.reshape(-1), pending.var.reshape(-1)]
    gathered = fabric.all_gather(torch.cat(parts).to(fabric.device)).cpu()  # [world_size, size]
    for rank_row in gathered:
        offset = 0
        for stats in all_stats:
            size = stats.mean.numel()
            count = rank_row[offset]
            mean = rank_row[offset + 1 : offset + 1 + size].reshape(stats.mean.shape)
            var = rank_row[offset + 1 + size : offset + 1 + 2 * size].reshape(stats.mean.shape)
            stats.merge_(*(t.to(stats.mean.device) for t in (count, mean, var)))
            offset += 1 + 2 * size
    for stats in all_stats:
        stats.defer_updates()  # a fresh, empty pending part


def gather_objects(fabric: L.Fabric, obj: Any) -> list[Any]:
    """Every rank's `obj` (pickled over the process group), in rank order."""
    if fabric.world_size == 1:
        return [obj]
    out: list[Any] = [None] * fabric.world_size
    dist.all_gather_object(out, obj)
    return out


def any_rank(fabric: L.Fabric, flag: bool) -> bool:
    """True on every rank when `flag` is true on at least one (e.g. a stop request)."""
    if fabric.world_size == 1:
        return flag
    return bool(fabric.all_reduce(torch.tensor(float(flag), device=fabric.device), reduce_op="sum").item() > 0)
