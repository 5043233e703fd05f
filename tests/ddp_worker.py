"""Run by tests/test_distributed.py under `fabric run`: trains and dumps each rank's state."""

import sys
from pathlib import Path

import torch

from gr00t_torchrl.tasks import resolve_config
from gr00t_torchrl.distributed import env_statistics
from gr00t_torchrl.runner import train


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
            },
            out / f"rank{p.fabric.global_rank}_iteration{state.iteration}.pt",
        )

    train(resolve_config(sys.argv[2:]), on_iteration=dump)


if __name__ == "__main__":
    main()
