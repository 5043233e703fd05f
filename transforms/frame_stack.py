"""Frame stacking that survives a resume (detail 20)."""

from __future__ import annotations

from tensordict import TensorDictBase
from torchrl.envs.transforms import CatFrames


class ResumableCatFrames(CatFrames):
    """TorchRL's `CatFrames`, whose frame history carries over an exact resume.

    A resumed run restores its envs' states, and the collector's first reset continues the restored
    episodes; `CatFrames` would restart every stack there from the current frame alone. After
    `continue_after_restore()` (called once the checkpoint's history is loaded), that first reset returns
    the loaded stacks instead; every later reset is TorchRL's own.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._continue = False

    def continue_after_restore(self) -> None:
        self._continue = True

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        if not self._continue:
            return super()._reset(tensordict, tensordict_reset)
        self._continue = False
        for in_key, out_key in zip(self.in_keys, self.out_keys, strict=True):
            tensordict_reset.set(out_key, getattr(self, f"_cat_buffers_{in_key}").clone())
        return tensordict_reset
