"""The checks, one module per group of details; importing this package registers all 40.

core (1-13), pixels (14-22), continuous (23-31), recurrent (32-36), multidiscrete (37), and the
flow-matching head's own (38-40); `common` holds the helpers several groups share.
"""

from gr00t_torchrl.verify.checks import continuous, core, flow, multidiscrete, pixels, recurrent  # noqa: F401
