"""The typed run configuration: the single source of truth for every hyperparameter.

This module holds the typed dataclasses, the `key=value` grammar and validation only; turning a
task name into a full config (presets, action-space defaults, a saved run's config) is
`gr00t_torchrl.tasks`. Each PPO implementation detail (docs/ppo_details.md) is a named field; its
number is in the field's help text, which `gr00t-ppo train --help` prints.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from gr00t_torchrl.durable import write_text_atomic


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
    hide_velocity: bool = _field(
        False, "drop the velocity entries of a classic-control task's observation (partial observability, for recurrent policies)"
    )
    frame_stack: int = _field(1, "detail 20: the last N frames of each image group stacked along channels (TorchRL's CatFrames), or of a Gymnasium task's observation vector; 1: off", ge=1)


@dataclass
class EncoderConfig:
    """The multimodal encoder, built where a task's observations hold images or an instruction."""

    cnn_channels: list[int] = _field([32, 64, 64], "detail 21: channels of the image trunk's conv layers (Nature-CNN: 32,64,64)")
    cnn_kernels: list[int] = _field([8, 4, 3], "kernel size of each conv layer (Nature-CNN: 8,4,3)")
    cnn_strides: list[int] = _field([4, 2, 1], "stride of each conv layer (Nature-CNN: 4,2,1)")
    image_features: int = _field(512, "width of the linear layer after the conv layers (Nature-CNN: 512)", ge=1)
    image_pooling: Literal["flatten", "spatial_softmax"] = _field(
        "flatten", "how the last conv layer's maps become features: flattened (Nature-CNN), or one (x, y) keypoint per channel"
    )
    coordinates: bool = _field(False, "add each pixel's x, y as two more image channels (CoordConv): where things are is easier to read")
    proprio_sizes: list[int] = _field([64], "hidden widths of the MLP over the proprioception vector")
    language: Literal["learned", "model2vec"] = _field(
        "learned", "instruction branch: learned token embeddings mean-pooled, or a frozen model2vec model from disk"
    )
    text_model_path: str | None = _field(None, "local directory of the model2vec model (language=model2vec); never downloaded")
    token_dim: int = _field(32, "width of the learned token embeddings", ge=1)
    fusion: Literal["concat", "film"] = _field(
        "concat", "concat: branches concatenated, then an MLP; film: the instruction also scales and shifts each conv feature map"
    )
    fused_sizes: list[int] = _field([256], "hidden widths of the MLP after fusion; its output feeds the actor and critic heads")
    privileged_aux_coeff: float = _field(
        0.0, "weight of an auxiliary loss: a linear head on the shared features predicts the task's privileged "
        "`critic` group (normalized), which teaches the trunk what the inputs hide, e.g. where the named target is; 0: off",
        ge=0,
    )


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
    head: Literal["gaussian", "flow"] = _field(
        "gaussian", "the continuous actor: a Gaussian (details 23-25), or GR00T's flow-matching head trained by FPO"
    )
    flow_steps: int = _field(4, "Euler steps from noise to action of the flow head (GR00T: 4)", ge=1)
    flow_samples: int = _field(8, "(t, noise) pairs per action for the flow head's FPO ratio, drawn at collection", ge=1)
    flow_ratio: Literal["fpo", "chain"] = _field(
        "fpo", "the flow head's PPO ratio: FPO's flow-matching-loss difference, or ReinFlow's noisy Euler chain (exact)"
    )
    flow_noise_std: list[float] = _field(
        [0.05, 0.3], "flow_ratio=chain: the bounds [min, max] of the learned noise std of each Euler step"
    )
    flow_output_scale: float = _field(
        1.0, "the flow head's velocity is its MLP's output times this (FPO's reference: 0.25): smaller first steps", gt=0.0
    )
    flow_loss_weight: Literal["velocity", "noise"] = _field(
        "velocity", "flow_ratio=fpo: the CFM loss as the velocity's squared error, or as the noise's recovered from it "
        "(FPO's reference; t^2 times the velocity's, t = 1 at the action)"
    )
    flow_time_sampling: Literal["uniform", "grid"] = _field(
        "uniform", "flow_ratio=fpo: the stored pairs' t uniform in [0, 1), or on the K Euler steps' t = k / K (FPO's reference)"
    )
    flow_pair_ratios: Literal["averaged", "separate"] = _field(
        "averaged", "flow_ratio=fpo: one ratio per action from the loss averaged over its pairs, or one clipped ratio per "
        "pair, the PPO objective averaged over pairs (FPO's reference option; FPO++)"
    )
    flow_log_ratio_clip: float | None = _field(
        None, "flow_ratio=fpo: each log-ratio L_old - L_new bounded to [-c, c] before exp (FPO's reference with separate "
        "pair ratios: 3; none: off)", gt=0.0
    )
    flow_action_noise: float = _field(
        0.0, "flow_ratio=fpo: std of Gaussian noise added to each flow action while collecting (FPO's reference "
        "`feather_std`): exploration a collapsed flow keeps; 0: off", ge=0.0
    )
    flow_init_noise: float = _field(
        1.0, "std of the flow head's starting noise x_0 (GR00T: 1); smaller starts with a narrower action spread, as "
        "network.init_log_std does for the Gaussian", gt=0.0
    )
    flow_clip_actions: bool = _field(
        False, "flow_ratio=fpo: store each collected action clipped to the env's bounds (the action the env executes), so "
        "the FPO ratio trains the flow toward actions inside them"
    )
    flow_eval_noise: Literal["sample", "zero"] = _field(
        "sample", "the flow head's evaluation noise: sampled (as GR00T; keeps a multimodal policy's modes) or zero (its mean)"
    )
    action_chunk: int = _field(
        1, "actions per policy step (GR00T: chunks of 16); on Isaac-API tasks; executed as network.chunk_execution says", ge=1
    )
    chunk_execution: Literal["open_loop", "receding"] = _field(
        "open_loop", "a chunk's actions all applied in turn (rewards summed, discount per chunk), or only its first (replan each step)"
    )
    recurrent: Literal["none", "lstm", "gru"] = _field(
        "none", "details 32-36: an LSTM or GRU before the actor's and the critic's MLPs (each its own), for partial observability"
    )
    recurrent_size: int = _field(128, "hidden size of the recurrent layer (network.recurrent=lstm|gru)", ge=1)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)


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
    clip_epsilon_low: float | None = _field(
        None, "detail 8: the ratio's lower clip range (floor 1 - this) where it differs from clip_epsilon (TorchRL's "
        "asymmetric clip): smaller limits how far negative advantages push the policy away; none: clip_epsilon", gt=0.0, le=0.99
    )
    negative_advantages: Literal["clip", "spo"] = _field(
        "clip", "detail 8: how negative advantages are bounded: clip (the ratio's floor) or spo (SPO's pull-back "
        "|A| (r - 1)^2 / (2 eps) with eps the lower clip range, which pulls a ratio below 1 - eps back; FPO++'s "
        "asymmetric objective)"
    )
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
    seed: int = _field(
        1, "base seed: every stream (torch, envs of each rank, evaluation) is spawned from it by numpy's SeedSequence", ge=0
    )
    total_steps: int = _field(100_000, "env steps to train for, summed over all envs and ranks", ge=1)
    run_dir: str | None = _field(None, "where the run is saved (default runs/<task>-<time>)")
    resume: str | None = _field(None, "a run directory to continue from its last checkpoint")
    init_from: str | None = _field(
        None, "a run directory (a PPO run or a `gr00t-ppo bc` one) whose weights and observation statistics start this "
        "new run; the statistics then stay fixed"
    )
    overwrite: bool = _field(False, "start a new run in a run_dir that already holds one, deleting its files")
    accelerator: Literal["auto", "cpu", "cuda"] = _field("cpu", "Lightning accelerator")
    devices: int = _field(1, "processes / GPUs per machine (Lightning Fabric DDP when > 1)", ge=1)
    num_nodes: int = _field(1, "machines, for multi-node runs started by torchrun or SLURM", ge=1)
    checkpoint_every: int = _field(10, "save checkpoints/last.ckpt every this many iterations", ge=1)
    eval_episodes: int = _field(10, "deterministic evaluation episodes at the end", ge=0)
    progress_bar: bool = _field(True, "show a progress bar")
    compile: bool = _field(
        False, "torch.compile the PPO update, and on a GPU the policy step (compiled once per run, its time reported; "
        "off by default: compiling costs seconds at each start, which short runs do not win back)"
    )
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
        write_text_atomic(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    def checked(self) -> "Config":
        """This config, after the checks that involve more than one setting."""
        if self.ppo.num_minibatches > self.frames_per_batch:
            raise ConfigError(
                f"The setting 'ppo.num_minibatches' ({self.ppo.num_minibatches}) is larger than the batch "
                f"env.num_envs * ppo.num_steps = {self.frames_per_batch}."
            )
        if self.network.recurrent != "none" and self.ppo.num_minibatches > self.env.num_envs:
            raise ConfigError(
                f"With network.recurrent={self.network.recurrent} a mini-batch is a set of whole env sequences (detail 35): "
                f"'ppo.num_minibatches' ({self.ppo.num_minibatches}) cannot exceed env.num_envs ({self.env.num_envs})."
            )
        if self.init_from and self.resume:
            raise ConfigError("The settings 'init_from' (start a new run from a trained policy) and 'resume' (continue a run) exclude each other.")
        if self.network.head == "flow":
            if self.ppo.entropy_coeff:
                raise ConfigError(
                    f"network.head=flow has no closed-form entropy, so 'ppo.entropy_coeff' must be 0 (got {self.ppo.entropy_coeff})."
                )
            low_high = self.network.flow_noise_std
            if len(low_high) != 2 or not 0 < low_high[0] < low_high[1]:
                raise ConfigError(f"The setting 'network.flow_noise_std' needs [min, max] with 0 < min < max; got {low_high}.")
            if self.network.flow_ratio == "chain":
                net, base = self.network, NetworkConfig()
                fpo_only = [key for key in ("flow_loss_weight", "flow_time_sampling", "flow_pair_ratios", "flow_log_ratio_clip",
                                       "flow_action_noise", "flow_clip_actions")
                            if getattr(net, key) != getattr(base, key)]
                if fpo_only:
                    raise ConfigError(f"The setting 'network.{fpo_only[0]}' applies to network.flow_ratio=fpo only, not chain.")
            if self.network.recurrent != "none":
                raise ConfigError("network.head=flow does not work with network.recurrent yet.")
        if self.ppo.desired_kl is not None and self.ppo.anneal_lr:
            raise ConfigError(
                "The settings 'ppo.desired_kl' (an adaptive learning rate) and 'ppo.anneal_lr' (a linear one) exclude "
                "each other; set ppo.anneal_lr=false with ppo.desired_kl."
            )
        if min(self.network.hidden_sizes, default=1) < 1:  # empty: linear heads (e.g. on a shared CNN trunk)
            raise ConfigError("The setting 'network.hidden_sizes' needs widths >= 1.")
        encoder = self.network.encoder
        if not (len(encoder.cnn_channels) == len(encoder.cnn_kernels) == len(encoder.cnn_strides)) or not encoder.cnn_channels:
            raise ConfigError(
                "The settings 'network.encoder.cnn_channels', 'cnn_kernels' and 'cnn_strides' need one entry per conv "
                f"layer, at least one; got {len(encoder.cnn_channels)}, {len(encoder.cnn_kernels)} and {len(encoder.cnn_strides)}."
            )
        for key in ("cnn_channels", "cnn_kernels", "cnn_strides", "proprio_sizes", "fused_sizes"):
            if min(getattr(encoder, key), default=1) < 1:
                raise ConfigError(f"The setting 'network.encoder.{key}' needs widths >= 1.")
        if encoder.language == "model2vec" and not encoder.text_model_path:
            raise ConfigError(
                "network.encoder.language=model2vec needs network.encoder.text_model_path=<a local model2vec directory>: "
                "models are never downloaded at run time."
            )
        return self


# ----------------------------------------------------------------------------- parsing overrides


_INT = re.compile(r"[-+]?[0-9][0-9_]*")
_FLOAT = re.compile(r"[-+]?([0-9][0-9_]*\.?[0-9_]*|\.[0-9][0-9_]*)([eE][-+]?[0-9]+)?|[-+]?(nan|inf|infinity)", re.IGNORECASE)


def parse_value(raw: str) -> Any:
    """One command-line value, read by this project's small grammar rather than YAML 1.1.

    true / false, none / null, decimal numbers (`1e6` is the integer 1000000), lists in brackets or
    with commas (`[256,256]`, `256,256`); anything else is a string (so `yes`, `off` and `0x10` stay
    words, which a boolean or numeric setting then refuses by name).
    """
    text = raw.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null", "~"):
        return None
    if text.startswith("[") and text.endswith("]"):
        return [parse_value(part) for part in text[1:-1].split(",") if part.strip()]
    if "," in text:
        return [parse_value(part) for part in text.split(",") if part.strip()]
    if _INT.fullmatch(text):
        return int(text.replace("_", ""))
    if _FLOAT.fullmatch(text):
        number = float(text.replace("_", ""))
        if math.isfinite(number) and number.is_integer() and abs(number) < 2**53:
            return int(number)  # exact below 2**53
        return number
    return raw


def parse_overrides(argv: list[str]) -> dict[str, Any]:
    """Turns `key=value` words into a nested dict of raw values; a key given twice is refused."""
    nested: dict[str, Any] = {}
    seen: set[str] = set()
    for word in argv:
        if "=" not in word or word.startswith("="):
            raise ConfigError(f"Cannot read the argument '{word}': settings are written key=value, e.g. ppo.lr=1e-3.")
        key, raw = word.split("=", 1)
        if key in seen:
            raise ConfigError(f"The setting '{key}' is given twice; give it once.")
        seen.add(key)
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"The key '{key}' is set twice, once as a value and once as a section.")
        if isinstance(node.get(parts[-1]), dict):
            raise ConfigError(f"The key '{key}' is set twice, once as a value and once as a section.")
        node[parts[-1]] = parse_value(raw)
    return nested


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
        if value is None and "none" in args:
            value = "none"
        if isinstance(value, bool) or value not in args:
            raise ConfigError(f"The setting '{key}' must be one of {', '.join(map(str, args))}; got '{value}'.")
        return value
    if origin is list:
        if isinstance(value, str):
            value = parse_value(value)
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"The setting '{key}' must be a list such as 256,256; got '{value}'.")
        return [_coerce(v, args[0], key) for v in value]
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"The setting '{key}' must be true or false; got '{value}'.")
    if isinstance(value, str) and annotation in (int, float):
        value = parse_value(value)  # a YAML file's 1e6 or 3e-4 is a string to PyYAML
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        raise ConfigError(f"The setting '{key}' must be a whole number; got '{value}'.")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"The setting '{key}' must be a finite number; got {value}.")
            return float(value)
        raise ConfigError(f"The setting '{key}' must be a number; got '{value}'.")
    if annotation is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"The setting '{key}' must be a single word; got '{value}'.")
        return str(value)
    raise ConfigError(f"The setting '{key}' has an unsupported type {annotation}.")


def _check_range(value: Any, meta: dict[str, Any], key: str) -> None:
    """Applies a field's ge / gt / le rules (its other metadata, e.g. help, is ignored)."""
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


def validated(value: Any, annotation: Any, key: str, **rules: Any) -> Any:
    """One value checked as a config field of type `annotation` with `rules` (ge, gt, le) would be."""
    value = _coerce(value, annotation, key)
    _check_range(value, rules, key)
    return value


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
        kwargs[name] = validated(value, annotation, key, **fields[name].metadata)
    return cls(**kwargs)


def _type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is Literal:
        return "|".join(map(str, args))
    if origin is list:
        return f"list[{_type_name(args[0])}]"
    return "none" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def settings_help(cls: type = None, prefix: str = "") -> str:
    """Every setting, section by section: key, type, default and help text (for `--help`)."""
    cls = cls or Config
    hints = typing.get_type_hints(cls)
    lines = [f"[{prefix.rstrip('.') or 'run'}] {cls.__doc__.strip().splitlines()[0]}"]
    sections = []
    defaults = cls()
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            sections.append((hints[f.name], prefix + f.name + "."))
            continue
        default = getattr(defaults, f.name)
        lines.append(f"  {prefix + f.name:<24} {_type_name(hints[f.name]):<22} default {default!s:<10} {f.metadata['help']}")
    for section, section_prefix in sections:
        lines += ["", settings_help(section, section_prefix)]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- reading a config file


def load_config_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"Cannot read the config file {path}: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"The config file {path} does not hold a mapping of settings.")
    return data
