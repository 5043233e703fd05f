"""Finding host synchronisations in GPU code: every point where the CPU waits for the GPU.

On a GPU the training loop is fast only while the host queues work without waiting: an `.item()`,
a device-to-host copy, a host-to-device copy from a Python list or a data-dependent shape (boolean
indexing) each stall it until the GPU catches up. `record_host_syncs` lists them with the Python
line that made each, using PyTorch's sync debug mode.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

SYNC_WARNING = "synchronizing CUDA operation"  # the text of PyTorch's sync debug warning


@dataclass(frozen=True)
class HostSync:
    """One synchronising CUDA call and the Python line that made it."""

    filename: str
    lineno: int

    def where(self) -> str:
        return f"{self.filename}:{self.lineno}"


@functools.cache
def project_dirs() -> tuple[Path, ...]:
    """Where this project's code lives, installed or not (the package and its mapped sub-packages)."""
    import gr00t_torchrl
    import gr00t_torchrl.modules
    import gr00t_torchrl.transforms

    return tuple(Path(m.__file__).resolve().parent for m in (gr00t_torchrl, gr00t_torchrl.modules, gr00t_torchrl.transforms))


def is_project_code(sync: HostSync) -> bool:
    path = Path(sync.filename).resolve()
    return any(path.is_relative_to(d) for d in project_dirs())


@contextmanager
def record_host_syncs() -> Iterator[list[HostSync]]:
    """Collects the host synchronisations of the CUDA calls made inside the block.

    The list is filled when the block exits. Needs a CUDA device.
    """
    syncs: list[HostSync] = []
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield syncs
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    syncs.extend(HostSync(w.filename, w.lineno) for w in caught if SYNC_WARNING in str(w.message))
