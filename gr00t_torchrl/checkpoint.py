"""Checkpoint files: atomic writes, safe loads (weights_only) and task-compatibility checks."""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: missing, corrupt, or made for another task."""


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Writes `state` to a temporary file, then renames it: a kill leaves the old file intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


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


def task_signature(task: str, env_id: str, obs_shape: tuple[int, ...], action_spec: Any) -> dict[str, Any]:
    """What a checkpoint must agree on with the env it is loaded into."""
    n = getattr(getattr(action_spec, "space", None), "n", None)
    action = {"kind": "discrete", "n": int(n)} if n is not None else {"kind": "continuous", "dim": int(action_spec.shape[-1])}
    return {"task": task, "env_id": env_id, "obs_shape": list(obs_shape), "action": action}


def check_compatible(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """Raises a CheckpointError naming the first mismatch between a checkpoint and the env."""
    labels = {"task": "task", "env_id": "environment", "obs_shape": "observation shape", "action": "action space"}
    for key, label in labels.items():
        if saved.get(key) != current[key]:
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
