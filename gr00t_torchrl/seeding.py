"""Every random stream of a run, derived from its one base seed with `numpy.random.SeedSequence`.

Streams are told apart by their SeedSequence spawn key, not by adding offsets to the seed: with
`seed + i` sub-env seeds, base seeds s and s+1 would share most env streams and evaluation start
states, and a multi-seed table would be correlated. Here two different base seeds, two ranks, or
training and evaluation never share a stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# the first word of a spawn key: which part of the run a stream belongs to
_RANK, _EVALUATION = 0, 1
# the second word under a rank: what it seeds
_TORCH, _ENVS = 0, 1


def _draw(base_seed: int, *spawn_key: int) -> int:
    """A 32-bit seed from the SeedSequence child `spawn_key` of `base_seed`."""
    return int(np.random.SeedSequence(base_seed, spawn_key=spawn_key).generate_state(1)[0])


@dataclass(frozen=True)
class RankSeeds:
    """The seeds one rank of a run uses: torch / NumPy / Python RNGs, and its training envs."""

    torch: int
    envs: int


def rank_seeds(base_seed: int, rank: int = 0) -> RankSeeds:
    return RankSeeds(torch=_draw(base_seed, _RANK, rank, _TORCH), envs=_draw(base_seed, _RANK, rank, _ENVS))


def evaluation_seed(base_seed: int) -> int:
    """The seed of a run's evaluation envs (held apart from every training stream)."""
    return _draw(base_seed, _EVALUATION)


def sub_env_seeds(batch_seed: int, num_envs: int) -> list[int]:
    """One independent seed per env of a batch that seeds its envs one by one (Gymnasium)."""
    return [int(s) for s in np.random.SeedSequence(batch_seed).generate_state(num_envs)]
