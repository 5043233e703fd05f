"""Running mean and variance with exact batch merges (Chan et al.'s parallel algorithm)."""

from __future__ import annotations

import torch
from torch import nn


class RunningMeanStd(nn.Module):
    """Mean and variance of every sample seen so far, kept in float64 buffers.

    `update` folds in a batch; `merge_` folds in another set of statistics (e.g. another rank's),
    with the same formula, so merging is exact rather than an average of averages.

    With `deferred = True` (data-parallel runs), `update` only accumulates into `pending`, and the
    statistics in use change when `merge_` folds in every rank's pending part, in rank order: all
    ranks then normalize with bit-identical statistics.
    """

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.deferred = False
        self.pending: RunningMeanStd | None = None

    def defer_updates(self) -> None:
        """Switches to deferred updates (see the class docstring)."""
        self.deferred = True
        self.__dict__["pending"] = RunningMeanStd(tuple(self.mean.shape)).to(self.mean.device)

    @torch.no_grad()
    def update(self, batch: torch.Tensor) -> None:
        """Folds in `batch`, whose leading dimensions are samples and trailing ones match `shape`."""
        batch = batch.reshape(-1, *self.mean.shape).to(torch.float64)
        count = torch.tensor(float(batch.shape[0]), dtype=torch.float64, device=batch.device)
        target = self.pending if self.deferred else self
        target.merge_(count, batch.mean(0), batch.var(0, unbiased=False))

    @torch.no_grad()
    def merge_(self, count: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> None:
        """Folds in the statistics of `count` other samples with the given mean and variance."""
        total = self.count + count
        if total == 0:
            return
        delta = mean - self.mean
        m2 = self.var * self.count + var * count + delta.pow(2) * self.count * count / total
        self.mean.add_(delta * count / total)
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def std(self, eps: float) -> torch.Tensor:
        return torch.sqrt(self.var + eps)
