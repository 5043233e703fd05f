"""The checks, one module per group of details; importing this package registers all 37.

core (1-13), pixels (14-22), continuous (23-31), recurrent (32-36), multidiscrete (37); `common`
holds the helpers several groups share.
"""

from gr00t_torchrl.verify.checks import continuous, core, multidiscrete, pixels, recurrent  # noqa: F401
