"""Task presets: one YAML file per task, each overriding the typed config's defaults.

Installed as `gr00t_torchrl.presets` so the `gr00t-ppo` console script finds them outside a checkout.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml


def preset_names() -> list[str]:
    """Names of the bundled presets (`task=<name>`)."""
    files = resources.files(__name__).iterdir()
    return sorted(f.name[: -len(".yaml")] for f in files if f.name.endswith(".yaml"))


def load_preset(task: str) -> dict[str, Any]:
    """The overrides of preset `task`, or {} when `task` is not a preset name.

    Only the bundled names are looked up, so a task is never read as a path (`task=../x`).
    """
    if task not in preset_names():
        return {}
    path = resources.files(__name__) / f"{task}.yaml"
    return yaml.safe_load(path.read_text()) or {}
