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
    def update(self, batch: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        """Folds in `batch`, whose leading dimensions are samples and trailing ones match `shape`.

        `valid` (a bool per sample) leaves out the samples marked False, e.g. the NaN placeholders of
        lost final observations, without a host synchronisation.
        """
        batch = batch.reshape(-1, *self.mean.shape).to(torch.float64)
        if valid is None:
            count = torch.full((), batch.shape[0], dtype=torch.float64, device=batch.device)  # no host copy
            mean, var = batch.mean(0), batch.var(0, unbiased=False)
        else:
            weight = valid.reshape(-1, *([1] * self.mean.dim())).to(torch.float64)
            count = weight.sum()
            batch = torch.where(weight > 0, batch, 0.0)
            mean = batch.sum(0) / count.clamp_min(1)
            var = ((batch - mean).square() * weight).sum(0) / count.clamp_min(1)
        target = self.pending if self.deferred else self
        target.merge_(count, mean, var)

    @torch.no_grad()
    def merge_(self, count: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> None:
        """Folds in the statistics of `count` other samples with the given mean and variance."""
        total = self.count + count
        safe_total = total.clamp_min(1)  # no branch on the count: no host synchronisation on a GPU
        delta = mean - self.mean
        m2 = self.var * self.count + var * count + delta.pow(2) * self.count * count / safe_total
        self.mean.add_(delta * count / safe_total)
        self.var.copy_(torch.where(total > 0, m2 / safe_total, self.var))
        self.count.copy_(total)

    def std(self, eps: float) -> torch.Tensor:
        return torch.sqrt(self.var + eps)
