"""Details 14-22 (Atari / pixel observations): not built yet, so each reports missing."""

from __future__ import annotations

from gr00t_torchrl.verify.registry import MISSING, detail

for _number, _name in [
    (14, "NoopReset"), (15, "MaxAndSkip"), (16, "EpisodicLife"), (17, "FireReset"), (18, "WarpFrame 84x84 gray"),
    (19, "ClipReward to sign"), (20, "FrameStack 4"), (21, "shared Nature-CNN trunk"), (22, "images scaled to [0, 1]"),
]:
    detail(_number, _name)(lambda audit: (MISSING, "pixel / Atari tasks are not built yet (this task has vector observations)"))
