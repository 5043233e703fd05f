"""Finding host synchronisations in GPU code: every point where the CPU waits for the GPU.

On a GPU the training loop is fast only while the host queues work without waiting: an `.item()`,
a device-to-host copy, a host-to-device copy from a Python list or a data-dependent shape (boolean
indexing) each stall it until the GPU catches up. `record_host_syncs` lists them with the Python
line that made each, using PyTorch's sync debug mode. Without a GPU, `record_host_reads` lists the
same kind of call on the CPU (where it costs nothing and so goes unnoticed), so CPU-only tests can
guard the GPU hot path.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

SYNC_WARNING = "synchronizing CUDA operation"  # the text of PyTorch's sync debug warning
# ops whose result the host must read (a Python scalar or bool, a data-dependent shape): each one
# waits for the GPU there; `.item()`, `bool(t)` and `if t.any():` all end in _local_scalar_dense
HOST_READ_OPS = frozenset({"_local_scalar_dense", "nonzero", "masked_select", "equal"})


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


def _indexes_by_mask(func: torch._ops.OpOverload, args: tuple) -> bool:
    """`t[mask]` and `t[mask] = v`: the result's shape (or the positions written) depends on the mask."""
    if func.overloadpacket.__name__ not in ("index", "index_put", "index_put_") or len(args) < 2:
        return False
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1])


class _HostReadRecorder(TorchDispatchMode):
    """Sees every ATen op of the block; keeps the host reads, each with the Python line outside torch."""

    def __init__(self, reads: list[HostSync]) -> None:
        super().__init__()
        self.reads = reads
        self.torch_dir = str(Path(torch.__file__).resolve().parent) + "/"  # not torchrl/

    def __torch_dispatch__(
        self, func: torch._ops.OpOverload, types: tuple, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        if func.overloadpacket.__name__ in HOST_READ_OPS or _indexes_by_mask(func, args):
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_filename.startswith(self.torch_dir):
                frame = frame.f_back
            if frame is not None:
                self.reads.append(HostSync(frame.f_code.co_filename, frame.f_lineno))
        return func(*args, **(kwargs or {}))


@contextmanager
def record_host_reads() -> Iterator[list[HostSync]]:
    """The CPU stand-in for `record_host_syncs`: every op in the block whose value the host reads.

    On a GPU each of them is a synchronisation. Host-to-device copies, the other kind, are not seen
    (there is no device). Works on any device; the list fills as the block runs.
    """
    reads: list[HostSync] = []
    with _HostReadRecorder(reads):
        yield reads
