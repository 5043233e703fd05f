"""Shared fixtures: small configs that build fast."""

from __future__ import annotations

import warnings

import pytest
import torch

from gr00t_torchrl.config import Config
from gr00t_torchrl.tasks import resolve_config

warnings.filterwarnings("ignore", message=".*Experiment logs directory.*")

TINY = [
    "env.num_envs=2",
    "ppo.num_steps=32",
    "ppo.num_minibatches=2",
    "ppo.num_epochs=2",
    "eval_episodes=2",
    "progress_bar=false",
]


@pytest.fixture(autouse=True)
def _fixed_threads() -> None:
    torch.set_num_threads(1)


def merged(*words: str) -> list[str]:
    """`key=value` words where a later word replaces an earlier one of the same key.

    The command line refuses a key given twice; tests build their arguments from shared lists plus
    their own, so they merge them first.
    """
    by_key = {word.split("=", 1)[0]: word for word in words}
    return list(by_key.values())


def tiny_config(*overrides: str) -> Config:
    """A pendulum config of a few iterations, plus `overrides`."""
    return resolve_config(merged("task=pendulum", "total_steps=256", *TINY, *overrides))
