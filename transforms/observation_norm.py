"""Observation normalization by running mean/std, then clipping (details 28-29)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torchrl.data import Composite, Unbounded
from torchrl.envs.transforms import Transform

from gr00t_torchrl.transforms.running_stats import RunningMeanStd


class RunningObservationNorm(Transform):
    """Normalizes observations with the running mean/std of all observations stepped so far.

    Statistics are updated from the observations returned by `step` only: reset observations are
    normalized but not counted, so a resumed run sees exactly the statistics of an uninterrupted
    one. With `count_done_rows=False` (envs that reset inside `step`, the Isaac Lab API), a done
    row holds the next episode's first observation, a reset observation, so it is not counted
    either. Rows holding NaN (a faulty env) are never counted. `freeze()` stops updates
    (evaluation); the statistics live in buffers, so they travel in `state_dict()` and hence in
    checkpoints. TorchRL's VecNorm uses an exponential decay and has no clipping, hence this
    transform.
    """

    def __init__(
        self,
        in_keys: Sequence[NestedKey],
        shapes: Sequence[tuple[int, ...]],
        clip: float = 10.0,
        eps: float = 1e-8,
        count_done_rows: bool = True,
    ) -> None:
        super().__init__(in_keys=list(in_keys), out_keys=list(in_keys))
        self.stats = torch.nn.ModuleList(RunningMeanStd(tuple(shape)) for shape in shapes)
        self.clip = clip
        self.eps = eps
        self.count_done_rows = count_done_rows
        self.frozen = False

    def freeze(self) -> "RunningObservationNorm":
        self.frozen = True
        return self

    def unfreeze(self) -> "RunningObservationNorm":
        self.frozen = False
        return self

    def normalize(self, index: int, obs: torch.Tensor) -> torch.Tensor:
        stats = self.stats[index]
        mean = stats.mean.to(obs.dtype)
        std = stats.std(self.eps).to(obs.dtype)
        return ((obs - mean) / std).clamp(-self.clip, self.clip)  # detail 29

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        not_done = None if self.count_done_rows else ~next_tensordict.get("done").reshape(-1)
        for index, key in enumerate(self.in_keys):
            obs = next_tensordict.get(key)
            if not self.frozen:
                valid = torch.isfinite(obs).flatten(1).all(-1)
                self.stats[index].update(obs, valid=valid if not_done is None else valid & not_done)
            next_tensordict.set(key, self.normalize(index, obs))
        return next_tensordict

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        for index, key in enumerate(self.in_keys):
            tensordict_reset.set(key, self.normalize(index, tensordict_reset.get(key)))
        return tensordict_reset

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        for key in self.in_keys:
            spec = observation_spec[key]
            observation_spec[key] = Unbounded(shape=spec.shape, dtype=spec.dtype, device=spec.device)
        return observation_spec
