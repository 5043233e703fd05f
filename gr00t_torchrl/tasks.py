"""Resolving a task into a run's full config: presets, action-space defaults, saved run configs.

This step sits above both the typed config (`config`) and the env factories (`envs`): it asks the
envs what kind of action space a task has, and builds the validated `Config` from, lowest first,
the dataclass defaults, the defaults for that action space, the task's preset and the user's
`key=value` overrides. A resumed run starts from its own `config.yaml` instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gr00t_torchrl.config import Config, ConfigError, build_dataclass, load_config_file, parse_overrides
from gr00t_torchrl.envs import action_space_kind
from gr00t_torchrl.presets import load_preset

# Generic defaults by action space, from the literature rather than tuned on one task:
# discrete follows CleanRL's ppo.py (classic control), continuous the robotics defaults of Config.
SPACE_DEFAULTS: dict[str, dict[str, Any]] = {
    "discrete": {
        "env": {"num_envs": 4},
        "network": {"hidden_sizes": [64, 64]},
        "ppo": {
            "num_steps": 128,
            "num_epochs": 4,
            "num_minibatches": 4,
            "lr": 2.5e-4,
            "entropy_coeff": 0.01,
        },
    },
    "continuous": {
        "env": {"num_envs": 1},
        "ppo": {"num_steps": 2048, "num_epochs": 10, "num_minibatches": 32, "lr": 3e-4, "entropy_coeff": 0.0},
    },
}

SPACE_DEFAULTS["multidiscrete"] = SPACE_DEFAULTS["discrete"]  # a categorical per dim: the same small-task defaults

# Settings a resumed run must keep: they shape the networks, the env batch or the saved statistics.
RESUME_FIXED = (
    "env.id",
    "env.num_envs",
    "env.normalize_obs",
    "env.scale_reward",
    "env.frame_stack",
    "env.hide_velocity",
    "network.hidden_sizes",
    "network.activation",
    "network.state_dependent_std",
    "network.asymmetric_critic",
    "network.encoder",
    "ppo.num_steps",
)


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with `update` merged in, section by section."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def read_run_config(run_dir: Path) -> Config:
    """The validated config a run directory was trained with (its `config.yaml`)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"'{run_dir}' holds no config.yaml (is it a run directory?).")
    return build_dataclass(Config, load_config_file(path))


def read_for_inspection(run_dir: Path) -> Config:
    """A run's config for evaluating or auditing it in one process (a DDP run from rank 0's state)."""
    cfg = read_run_config(run_dir)
    cfg.devices = cfg.num_nodes = 1
    return cfg


def resolve_config(argv: list[str]) -> Config:
    """The full, validated config of a run from command-line `key=value` words (probes the task's env)."""
    overrides = parse_overrides(argv)
    if overrides.get("resume"):
        return _resume_config(Path(str(overrides["resume"])), overrides)
    task = str(overrides.get("task", Config.task))
    preset = load_preset(task)
    env_id = str(overrides.get("env", {}).get("id") or preset.get("env", {}).get("id") or task)
    kind = action_space_kind(env_id, task)
    merged = deep_merge(deep_merge(deep_merge(Config().to_dict(), SPACE_DEFAULTS[kind]), preset), overrides)
    merged["task"] = task
    merged.setdefault("env", {})["id"] = env_id
    return build_dataclass(Config, merged).checked()


def _resume_config(run_dir: Path, overrides: dict[str, Any]) -> Config:
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"Cannot resume from '{run_dir}': it holds no config.yaml (is it a run directory?).")
    saved = read_run_config(run_dir).to_dict()
    if "task" in overrides and overrides["task"] != saved["task"]:
        raise ConfigError(f"Cannot resume '{run_dir}' as task '{overrides['task']}': it was trained on '{saved['task']}'.")
    cfg = build_dataclass(Config, deep_merge(saved, {**overrides, "run_dir": str(run_dir)})).checked()
    resumed = cfg.to_dict()
    for key in RESUME_FIXED:
        section, name = key.split(".")
        if resumed[section][name] != saved[section][name]:
            raise ConfigError(
                f"Cannot change '{key}' when resuming '{run_dir}' ({saved[section][name]} -> "
                f"{resumed[section][name]}): it fixes the shape of the saved networks, env batch or statistics. "
                "Start a new run instead."
            )
    return cfg
