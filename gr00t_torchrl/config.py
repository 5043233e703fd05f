"""The typed run configuration: the single source of truth for every hyperparameter.

Precedence, lowest first: the dataclass defaults below (continuous robot control), the defaults
for the task's action space (`SPACE_DEFAULTS`), the task preset (`recipes/presets/<task>.yaml`),
then the user's `key=value` overrides. Each PPO implementation detail of
`shared/PPO_DETAILS.md` is a named field; its number is in the field's help text.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A bad configuration: unknown key, wrong type, out-of-range value or unknown task."""


def _field(default: Any, help: str, **rules: Any) -> Any:
    """A config field with its help text and validation rules (ge, gt, le, choices)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **rules})
    return field(default=default, metadata={"help": help, **rules})


@dataclass
class EnvConfig:
    """How the training envs are built and what the env transforms do."""

    id: str = _field("", "task id of the environment: Gymnasium, built-in Gr00t-*, Isaac-* or Mjlab-* (set by the preset or task=<id>)")
    num_envs: int = _field(8, "detail 1: envs stepped in lock-step as one batch", ge=1)
    vectorization: Literal["sync", "async"] = _field(
        "sync", "sync: every env in this process (fast for light envs, exact resume); async: a worker process per env"
    )
    max_episode_steps: int | None = _field(None, "override of the env's time limit (truncation)", ge=1)
    normalize_obs: bool = _field(True, "detail 28: normalize observations by running mean/std")
    obs_clip: float = _field(10.0, "detail 29: clip normalized observations to [-obs_clip, obs_clip]", gt=0)
    scale_reward: bool = _field(True, "detail 30: divide rewards by the running std of the discounted return")
    reward_clip: float = _field(10.0, "detail 31: clip scaled rewards to [-reward_clip, reward_clip]", gt=0)
    clip_actions: bool = _field(True, "detail 27: clip actions to the bounds inside env.step only")


@dataclass
class NetworkConfig:
    """Actor and critic networks."""

    hidden_sizes: list[int] = _field([256, 256], "detail 26: hidden layer widths of each MLP")
    activation: Literal["tanh", "relu", "elu"] = _field("tanh", "detail 26: hidden activation")
    orthogonal_init: bool = _field(True, "detail 2: orthogonal weights, zero biases")
    init_log_std: float = _field(0.0, "detail 24: initial value of the state-independent log std")
    state_dependent_std: bool = _field(
        False, "detail 24 off: the std becomes a network output (the common form; for ablations)"
    )
    asymmetric_critic: bool = _field(
        True, "the critic reads the env's privileged `critic` observation group where it has one (Isaac Lab API)"
    )


@dataclass
class PPOConfig:
    """The PPO update."""

    num_steps: int = _field(256, "detail 1: rollout length per env per iteration", ge=1)
    gamma: float = _field(0.99, "detail 5: discount", ge=0.0, le=1.0)
    lmbda: float = _field(0.95, "detail 5: GAE lambda", ge=0.0, le=1.0)
    num_epochs: int = _field(10, "detail 6: passes over the batch per iteration", ge=1)
    num_minibatches: int = _field(32, "detail 6: mini-batches per epoch", ge=1)
    advantage_norm: Literal["batch", "minibatch", "none"] = _field(
        "batch", "detail 7: normalize advantages over the whole batch, per mini-batch, or not at all"
    )
    clip_epsilon: float = _field(0.2, "detail 8: surrogate clip range", gt=0.0)
    clip_value: bool = _field(True, "detail 9: clip the value loss with the same clip range")
    vf_coef: float = _field(0.5, "detail 10: value loss weight (value loss = 0.5 * MSE)", gt=0.0)
    entropy_coeff: float = _field(0.0, "detail 10: entropy bonus weight", ge=0.0)
    max_grad_norm: float | None = _field(0.5, "detail 11: global grad-norm clip (none: off)", gt=0.0)
    lr: float = _field(3e-4, "Adam learning rate", gt=0.0)
    adam_eps: float = _field(1e-5, "detail 3: Adam epsilon", gt=0.0)
    anneal_lr: bool = _field(True, "detail 4: anneal the learning rate linearly to 0")
    desired_kl: float | None = _field(
        None, "rsl_rl's KL-adaptive learning rate instead of annealing: aim each mini-batch's KL at this (none: off)", gt=0.0
    )
    target_kl: float | None = _field(None, "stop the epoch loop when approx KL exceeds this (none: off)", gt=0.0)
    max_bad_updates: int = _field(
        10, "stop the run after this many consecutive non-finite updates (each is skipped)", ge=1
    )


@dataclass
class Config:
    """A whole training run."""

    task: str = _field(
        "pendulum", "preset name from recipes/presets, a built-in task (Gr00t-*), an Isaac-* / Mjlab-* task or a Gymnasium id"
    )
    seed: int = _field(1, "base seed; env i of rank r is seeded with seed + r * num_envs + i", ge=0)
    total_steps: int = _field(100_000, "env steps to train for, summed over all envs and ranks", ge=1)
    run_dir: str | None = _field(None, "where the run is saved (default runs/<task>-<time>)")
    resume: str | None = _field(None, "a run directory to continue from its last checkpoint")
    accelerator: Literal["auto", "cpu", "cuda"] = _field("cpu", "Lightning accelerator")
    devices: int = _field(1, "processes / GPUs per machine (Lightning Fabric DDP when > 1)", ge=1)
    num_nodes: int = _field(1, "machines, for multi-node runs started by torchrun or SLURM", ge=1)
    checkpoint_every: int = _field(10, "save checkpoints/last.ckpt every this many iterations", ge=1)
    eval_episodes: int = _field(10, "deterministic evaluation episodes at the end", ge=0)
    progress_bar: bool = _field(True, "show a progress bar")
    env: EnvConfig = field(default_factory=EnvConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)

    @property
    def frames_per_batch(self) -> int:
        """Env steps collected per iteration by one rank (detail 1)."""
        return self.env.num_envs * self.ppo.num_steps

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


# Generic defaults by action space, from the literature rather than tuned on one task:
# discrete follows CleanRL's ppo.py (classic control), continuous the robotics choices above.
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


# ----------------------------------------------------------------------------- parsing overrides


def parse_overrides(argv: list[str]) -> dict[str, Any]:
    """Turns `key=value` words into a nested dict of raw values (parsed as YAML scalars)."""
    nested: dict[str, Any] = {}
    for word in argv:
        if "=" not in word or word.startswith("="):
            raise ConfigError(f"Cannot read the argument '{word}': settings are written key=value, e.g. ppo.lr=1e-3.")
        key, raw = word.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"The key '{key}' is set twice, once as a value and once as a section.")
        node[parts[-1]] = value
    return nested


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with `update` merged in, section by section."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Checks (and where lossless, converts) a raw value to a field's annotated type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"The setting '{key}' must be one of {', '.join(map(str, args))}; got '{value}'.")
        return value
    if origin is list:
        if isinstance(value, str):
            value = [v for v in value.replace("[", "").replace("]", "").split(",") if v.strip()]
            value = [yaml.safe_load(v) for v in value]
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"The setting '{key}' must be a list such as 256,256; got '{value}'.")
        return [_coerce(v, args[0], key) for v in value]
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"The setting '{key}' must be true or false; got '{value}'.")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"The setting '{key}' must be a whole number; got '{value}'.")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"The setting '{key}' must be a number; got '{value}'.")
    if annotation is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"The setting '{key}' must be a single word; got '{value}'.")
        return str(value)
    raise ConfigError(f"The setting '{key}' has an unsupported type {annotation}.")


def _check_range(value: Any, meta: dict[str, Any], key: str) -> None:
    values = value if isinstance(value, list) else [value]
    for v in values:
        if v is None or isinstance(v, (str, bool)):
            continue
        if "ge" in meta and v < meta["ge"]:
            raise ConfigError(f"The setting '{key}' must be >= {meta['ge']}; got {v}.")
        if "gt" in meta and v <= meta["gt"]:
            raise ConfigError(f"The setting '{key}' must be > {meta['gt']}; got {v}.")
        if "le" in meta and v > meta["le"]:
            raise ConfigError(f"The setting '{key}' must be <= {meta['le']}; got {v}.")


def build_dataclass(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    """Builds `cls` from a nested dict, rejecting unknown keys and bad values by name."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        key = prefix + unknown[0]
        known = ", ".join(prefix + name for name in fields)
        raise ConfigError(f"Unknown setting '{key}'. Known settings here: {known}.")
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        key = prefix + name
        annotation = hints[name]
        if dataclasses.is_dataclass(annotation):
            if not isinstance(value, dict):
                raise ConfigError(f"'{key}' is a section; set its fields, e.g. {key}.<field>=value.")
            kwargs[name] = build_dataclass(annotation, value, prefix=key + ".")
            continue
        value = _coerce(value, annotation, key)
        _check_range(value, dict(fields[name].metadata), key)
        kwargs[name] = value
    return cls(**kwargs)


def _check_consistency(cfg: Config) -> None:
    if cfg.ppo.num_minibatches > cfg.frames_per_batch:
        raise ConfigError(
            f"The setting 'ppo.num_minibatches' ({cfg.ppo.num_minibatches}) is larger than the batch "
            f"env.num_envs * ppo.num_steps = {cfg.frames_per_batch}."
        )
    if cfg.ppo.desired_kl is not None and cfg.ppo.anneal_lr:
        raise ConfigError(
            "The settings 'ppo.desired_kl' (an adaptive learning rate) and 'ppo.anneal_lr' (a linear one) exclude "
            "each other; set ppo.anneal_lr=false with ppo.desired_kl."
        )
    if not cfg.network.hidden_sizes or min(cfg.network.hidden_sizes) < 1:
        raise ConfigError("The setting 'network.hidden_sizes' needs at least one layer of width >= 1.")


# ----------------------------------------------------------------------------- resolving a run


def load_config_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"Cannot read the config file {path}: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"The config file {path} does not hold a mapping of settings.")
    return data


def resolve_config(argv: list[str]) -> Config:
    """The full config of a run from command-line overrides (validated; probes the task's env)."""
    from gr00t_torchrl.presets import load_preset
    from gr00t_torchrl.envs import action_space_kind

    overrides = parse_overrides(argv)
    if overrides.get("resume"):
        run_dir = Path(str(overrides["resume"]))
        saved_path = run_dir / "config.yaml"
        if not saved_path.is_file():
            raise ConfigError(f"Cannot resume from '{run_dir}': it holds no config.yaml (is it a run directory?).")
        saved = load_config_file(saved_path)
        if "task" in overrides and overrides["task"] != saved.get("task"):
            raise ConfigError(
                f"Cannot resume '{run_dir}' as task '{overrides['task']}': it was trained on '{saved.get('task')}'."
            )
        merged = deep_merge(saved, overrides)
        merged["run_dir"] = str(run_dir)
        cfg = build_dataclass(Config, merged)
        _check_consistency(cfg)
        return cfg

    task = str(overrides.get("task", Config.task))
    preset = load_preset(task)
    env_id = str(overrides.get("env", {}).get("id") or preset.get("env", {}).get("id") or task)
    kind = action_space_kind(env_id, task)
    base = Config().to_dict()
    merged = deep_merge(deep_merge(deep_merge(base, SPACE_DEFAULTS[kind]), preset), overrides)
    merged["task"] = task
    merged.setdefault("env", {})["id"] = env_id
    cfg = build_dataclass(Config, merged)
    _check_consistency(cfg)
    return cfg
