"""Detail 37 (MultiDiscrete action spaces): not built yet, so it reports missing."""

from __future__ import annotations

from gr00t_torchrl.verify.registry import MISSING, detail

detail(37, "MultiDiscrete: a categorical per action dim, log-probs summed")(
    lambda audit: (MISSING, "MultiDiscrete action spaces are not supported yet (refused at config time)")
)
