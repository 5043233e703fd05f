"""Run by tests/test_distributed.py under `fabric run`: trains and dumps each rank's state.

With GR00T_TEST_POISON_RANK=r, rank r alone sees a non-finite loss in its first mini-batch (its
gradients stay finite), as a rank whose data went bad would.
"""

import os
import sys
from pathlib import Path

import torch

from gr00t_torchrl.distributed import env_statistics
from gr00t_torchrl.ppo_module import PPOModule
from gr00t_torchrl.runner import train
from gr00t_torchrl.tasks import resolve_config


def poison_first_loss_on(rank: int) -> None:
    original = PPOModule.training_step
    calls = {"count": 0}

    def training_step(self, minibatch):
        losses = original(self, minibatch)
        calls["count"] += 1
        if self.fabric.global_rank == rank and calls["count"] == 1:
            losses.set("loss_objective", losses["loss_objective"] + float("inf"))  # a constant: no gradient
        return losses

    PPOModule.training_step = training_step


def main() -> None:
    out = Path(sys.argv[1])

    def dump(p, state, batch):
        torch.save(
            {
                "module": p.module.state_dict(),
                "optimizer": p.optimizer.state_dict(),
                "stats": [(s.count.clone(), s.mean.clone(), s.var.clone()) for s in env_statistics(p.env)],
                "actions": batch["action"].clone(),
                "observations": batch["next", "observation"].clone(),
                "skipped_updates": p.module.skipped_updates,
            },
            out / f"rank{p.fabric.global_rank}_iteration{state.iteration}.pt",
        )

    if "GR00T_TEST_POISON_RANK" in os.environ:
        poison_first_loss_on(int(os.environ["GR00T_TEST_POISON_RANK"]))
    train(resolve_config(sys.argv[2:]), on_iteration=dump)


if __name__ == "__main__":
    main()
