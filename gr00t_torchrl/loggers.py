"""Loggers for the run directory: metrics.csv and TensorBoard, through Lightning's loggers.

metrics.csv gets one row per iteration with every column. TensorBoard gets the same values as
grouped tags (`train/`, `loss/`, `perf/`) against env steps, the x-axis on which runs with
different env counts compare (CleanRL's `global_step`), and no point where a value is undefined
(NaN, e.g. no episode ended in an iteration).
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from lightning.fabric.loggers import CSVLogger, TensorBoardLogger
from lightning.fabric.loggers.csv_logs import _ExperimentWriter
from lightning.fabric.loggers.logger import rank_zero_experiment

if TYPE_CHECKING:
    from gr00t_torchrl.checkpoint import TrainState

# TensorBoard groups: a metrics.csv column -> its tag; columns not listed are not sent to TensorBoard
TENSORBOARD_TAGS = {
    **{name: f"train/{name}" for name in ("episode_return_mean", "episode_length_mean", "episodes", "lr",
                                           "epochs_run", "skipped_updates", "action_spread")},
    **{name: f"loss/{name}" for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "old_approx_kl",
                                          "clip_fraction", "value_clip_fraction", "grad_norm", "explained_variance")},
    **{name: f"perf/{name}" for name in ("sps", "rollout_sps", "time_rollout", "time_sync", "time_advantages",
                                          "time_update")},
}


class _KeepingWriter(_ExperimentWriter):
    """Lightning's CSV writer, minus its deletion of an existing metrics.csv on start.

    It also starts from the existing file's columns, so appending rows never drops old ones.
    """

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                self.metrics_keys = list(csv.DictReader(f).fieldnames or [])

    def _check_log_dir_exists(self) -> None:
        pass


class RunCSVLogger(CSVLogger):
    """Writes `<run_dir>/metrics.csv`, appending to the rows of a resumed run instead of deleting them."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(root_dir=run_dir, name="", version="", flush_logs_every_n_steps=1)

    @property
    @rank_zero_experiment
    def experiment(self) -> _ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self._root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(log_dir=self.log_dir)
        return self._experiment


def tensorboard_scalars(row: dict[str, float]) -> dict[str, float]:
    """The row's values under their TensorBoard tags, NaN and infinite values left out."""
    return {tag: float(row[name]) for name, tag in TENSORBOARD_TAGS.items() if name in row and math.isfinite(row[name])}


class RunLogger:
    """The run's two logs; on a resumed run, what was logged after its checkpoint is dropped."""

    def __init__(self, run_dir: Path, resumed_at: TrainState, enabled: bool = True) -> None:
        self.enabled = enabled
        if not enabled:  # a rank other than 0 logs nothing
            return
        if resumed_at.iteration > 0:
            truncate_metrics(run_dir / "metrics.csv", resumed_at.iteration)
        self.csv = RunCSVLogger(run_dir)
        # purge_step: TensorBoard drops the events of steps at or after it that an earlier session wrote
        purge = resumed_at.env_steps + 1 if resumed_at.iteration > 0 else None
        self.tensorboard = TensorBoardLogger(root_dir=run_dir, name="", version="tensorboard", purge_step=purge)

    def log(self, row: dict[str, float], iteration: int, env_steps: int) -> None:
        if not self.enabled:
            return
        self.csv.log_metrics(row, step=iteration)
        self.tensorboard.log_metrics(tensorboard_scalars(row), step=env_steps)

    def close(self) -> None:
        if self.enabled:
            self.csv.finalize("success")
            self.tensorboard.finalize("success")


def truncate_metrics(csv_path: Path, last_iteration: int) -> None:
    """Drops metric rows logged after the checkpoint a run resumes from (they will be redone)."""
    if not csv_path.is_file():
        return
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    kept = [row for row in rows if int(float(row["iteration"])) <= last_iteration]
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
