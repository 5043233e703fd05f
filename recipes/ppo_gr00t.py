"""The main job: train a PPO policy.

    python recipes/ppo_gr00t.py [key=value ...]                      # one process
    fabric run --accelerator cpu --devices 2 recipes/ppo_gr00t.py    # DDP through Lightning's launcher

With no arguments it trains the `pendulum` preset. See README.md for the settings.
"""

import sys

from gr00t_torchrl.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main(sys.argv[1:]))
