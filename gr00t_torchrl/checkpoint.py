"""A run's checkpoint, in one place: what it holds, how it is written, read, checked and restored.

A checkpoint carries the shared state (weights, optimizer, LR schedule, counters) once, and each
rank's own state (env snapshot, per-env transform buffers, RNG) gathered in rank order, so that
`resume=` continues a run exactly. Files are written atomically and durably and read with
`weights_only=True` (no pickled code runs).
"""

from __future__ import annotations

import pickle
import random
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gr00t_torchrl.distributed import gather_objects
from gr00t_torchrl.durable import write_atomic
from gr00t_torchrl.envs import env_snapshot, restore_env_snapshot
from gr00t_torchrl.modules.recurrent import recurrent_state_keys
from gr00t_torchrl.transforms import ResumableCatFrames, RunningObservationNorm

if TYPE_CHECKING:
    from gr00t_torchrl.pipeline import Pipeline

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: missing, corrupt, or made for another task."""


@dataclass
class TrainState:
    """Counters that a checkpoint carries besides the weights."""

    iteration: int = 0
    env_steps: int = 0


def checkpoint_path(run_dir: Path) -> Path:
    """Where a run directory keeps its (last) checkpoint."""
    return Path(run_dir) / "checkpoints" / "last.ckpt"


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Writes `state` durably: a kill or power loss mid-write leaves the previous file intact."""
    write_atomic(path, lambda f: torch.save(state, f))


def load(path: Path) -> dict[str, Any]:
    """Loads a checkpoint with `weights_only=True` (no arbitrary pickle code runs)."""
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, pickle.UnpicklingError) as err:
        raise CheckpointError(f"The checkpoint {path} is corrupt or truncated and cannot be read ({err}).") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path} is not a gr00t-torchrl checkpoint (format {FORMAT_VERSION}).")
    return state


def check_compatible(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """Raises a CheckpointError naming the first mismatch between a checkpoint and the env."""
    labels = {
        "task": "task",
        "env_id": "environment",
        "obs_shape": "observation shape",
        "action": "action space",
        "num_envs": "env.num_envs",
        "hidden_sizes": "network.hidden_sizes",
        "inputs": "policy inputs",
    }
    for key, label in labels.items():
        if key in saved and saved[key] != current[key]:  # older checkpoints lack the last three
            raise CheckpointError(
                f"The checkpoint {path} was made for {label} {saved.get(key)}, but this run has {current[key]}."
            )


def rng_state() -> dict[str, Any]:
    """Torch (CPU and this process's CUDA device), NumPy and Python RNG states, in types that load
    under weights_only. A policy on a GPU samples its actions from the CUDA generator, so an exact
    resume needs that state too."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(int, np_state[2:4]), float(np_state[4])],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():  # a CPU resume of a GPU run has no CUDA generator to set
        torch.cuda.set_rng_state(state["cuda"])


# ----------------------------------------------------------------------------- a run's state


def rank_state(pipeline: Pipeline, collector: Any = None) -> dict[str, Any]:
    """What differs between ranks: env state, per-env transform buffers, RNG, a recurrent policy's memory."""
    return {
        "env_transforms": pipeline.env.transform.state_dict(),
        "env_snapshot": env_snapshot(pipeline.env),
        "rng": rng_state(),
        "memory": carried_memory(pipeline, collector),
    }


def memory_keys(pipeline: Pipeline) -> list[str]:
    """The hidden-state keys of a recurrent policy, and `is_init` (none for a feed-forward one)."""
    keys = recurrent_state_keys(pipeline.collection_policy)
    return [*keys, "is_init"] if keys else []


def carried_memory(pipeline: Pipeline, collector: Any) -> dict[str, torch.Tensor] | None:
    """The hidden states the collector carries into its next step (TorchRL keeps them in its `_carrier`)."""
    keys = memory_keys(pipeline)
    if not keys or collector is None:
        return None
    return {key: collector._carrier.get(key).clone() for key in keys}


def restore_memory(pipeline: Pipeline, collector: Any, memory: dict[str, torch.Tensor] | None) -> None:
    """Puts saved hidden states back into a new collector, whose first reset set them to zero."""
    if memory is not None and memory_keys(pipeline):
        for key, value in memory.items():
            collector._carrier.set(key, value.to(collector._carrier.device or value.device))


def checkpoint_state(pipeline: Pipeline, state: TrainState, collector: Any = None) -> dict[str, Any]:
    """The whole checkpoint (call on every rank: it gathers each rank's own state)."""
    return {
        "format": FORMAT_VERSION,
        **pipeline.signature,
        "world_size": pipeline.fabric.world_size,
        "iteration": state.iteration,
        "env_steps": state.env_steps,
        "module": pipeline.module.state_dict(),
        "optimizer": pipeline.optimizer.state_dict(),
        "scheduler": pipeline.scheduler.state_dict(),
        "skipped_updates": pipeline.module.skipped_updates,
        "ranks": gather_objects(pipeline.fabric, rank_state(pipeline, collector)),
        "config": pipeline.cfg.to_dict(),
    }


def restore(pipeline: Pipeline, saved: dict[str, Any], path: Path) -> TrainState:
    """Loads a checkpoint into a freshly built pipeline (RNG states are set by the caller, last)."""
    check_compatible(saved, pipeline.signature, path)
    world_size = pipeline.fabric.world_size
    if saved["world_size"] != world_size:
        raise CheckpointError(
            f"The checkpoint {path} was written by {saved['world_size']} process(es); resume it with "
            f"devices={saved['world_size']} (this run has {world_size})."
        )
    rank = pipeline.fabric.global_rank
    _load_shared_state(pipeline, saved, rank=rank)
    pipeline.module.skipped_updates = saved["skipped_updates"]
    if not restore_env_snapshot(pipeline.env, saved["ranks"][rank]["env_snapshot"]):
        warnings.warn("This env's state cannot be saved: the resumed run starts new episodes.", stacklevel=2)
    else:  # the restored episodes go on: so do their stacked frames
        for transform in pipeline.env.transform:
            if isinstance(transform, ResumableCatFrames):
                transform.continue_after_restore()
    return TrainState(saved["iteration"], saved["env_steps"])


def load_for_inspection(pipeline: Pipeline, saved: dict[str, Any], path: Path) -> None:
    """Loads weights, optimizer and rank 0's normalizer statistics into a one-process pipeline.

    For evaluating or auditing a finished run of any world size (every rank holds the same weights
    and merged statistics); training on from it needs `restore` and the same world size.
    """
    check_compatible(saved, pipeline.signature, path)
    _load_shared_state(pipeline, saved, rank=0)


def initialize_from(pipeline: Pipeline, run_dir: Path) -> None:
    """Starts a new run from another run's weights (actor and critic) and observation statistics.

    The other run must have the same task, spaces and networks; its env count may differ. Its optimizer,
    schedule, counters and other per-env buffers are left behind: this is a new run.
    """
    path = checkpoint_path(run_dir)
    saved = load(path)
    check_compatible({k: v for k, v in saved.items() if k != "num_envs"}, pipeline.signature, path)
    try:  # the networks only: the loss's settings (clip range, coefficients) are this run's own
        for name in ("actor", "critic"):
            getattr(pipeline.module, name).load_state_dict(_under(saved["module"], name))
    except RuntimeError:
        raise CheckpointError(
            f"The weights in {path} do not fit this run's networks: start it with the network settings of "
            f"{run_dir}/config.yaml (network.head, network.recurrent, ...)."
        ) from None
    source = saved["ranks"][0]["env_transforms"]
    for index, transform in enumerate(pipeline.env.transform):
        if isinstance(transform, RunningObservationNorm):
            transform.load_state_dict(_under(source, f"transforms.{index}"))


def _under(state: dict[str, Any], name: str) -> dict[str, Any]:
    """The entries of a state dict under the submodule `name`, with the prefix removed."""
    prefix = f"{name}."
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def _load_shared_state(pipeline: Pipeline, saved: dict[str, Any], rank: int) -> None:
    """Weights, optimizer, LR schedule, and the normalizer buffers `rank` saved."""
    pipeline.module.load_state_dict(saved["module"])
    pipeline.optimizer.load_state_dict(saved["optimizer"])
    pipeline.scheduler.load_state_dict(saved["scheduler"])
    transforms = saved["ranks"][rank]["env_transforms"]
    materialize_lazy_buffers(pipeline.env.transform, transforms)
    pipeline.env.transform.load_state_dict(transforms)


def materialize_lazy_buffers(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Gives lazy buffers the saved shapes, so that the saved values load into them.

    TorchRL's `CatFrames` (frame stacking) keeps its frame history in an `UninitializedBuffer` until its
    first step; a freshly built env's has no shape, and `load_state_dict` cannot copy into it.
    """
    for name, buffer in list(module.named_buffers()):
        if isinstance(buffer, torch.nn.parameter.UninitializedBuffer) and name in state:
            buffer.materialize(state[name].shape, dtype=state[name].dtype)
