"""Loggers for the run directory: metrics.csv and TensorBoard, through Lightning's loggers."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from lightning.fabric.loggers import CSVLogger, TensorBoardLogger
from lightning.fabric.loggers.csv_logs import _ExperimentWriter
from lightning.fabric.loggers.logger import rank_zero_experiment


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


def run_loggers(run_dir: Path) -> list:
    return [RunCSVLogger(run_dir), TensorBoardLogger(root_dir=run_dir, name="", version="tensorboard")]


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
