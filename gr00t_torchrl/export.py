"""A trained policy for deployment: one file (ONNX or TorchScript) and a JSON that says how to call it.

The exported module takes the raw observation groups the policy reads (the proprioception vector as
float32, images as uint8 [C, H, W], instructions as int64 token ids), normalizes the vector groups
with the run's frozen statistics (details 28-29, folded in), runs the deterministic actor (the
Gaussian's mean, the categorical's most likely action, or the flow head's K Euler steps unrolled from
a noise input the caller gives) and clips continuous actions to the action bounds, as the env step
does in training (detail 27). Nothing of this package is needed to run it: `onnxruntime` or
`torch.jit.load` is enough.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from gr00t_torchrl import checkpoint as ckpt
from gr00t_torchrl.config import ConfigError
from gr00t_torchrl.durable import write_text_atomic
from gr00t_torchrl.envs import action_bounds, find_transform
from gr00t_torchrl.modules import MultiModalEncoder
from gr00t_torchrl.modules.actor_critic import multidiscrete_nvec
from gr00t_torchrl.modules.flow import EncodedFlowActor, FlowActor, euler_integrate
from gr00t_torchrl.modules.multimodal import LearnedInstructionEncoder
from gr00t_torchrl.modules.recurrent import memory_layers, recurrent_state_keys
from gr00t_torchrl.pipeline import Pipeline, build_pipeline
from gr00t_torchrl.tasks import read_for_inspection
from gr00t_torchrl.transforms import RunningObservationNorm

FORMATS = {"onnx": "policy.onnx", "torchscript": "policy.pt"}
FLOW_NOISE_INPUT = "noise"  # a flow policy's noise input: zeros for its mean action, N(0, I) draws to sample it
OPSET = 17


class RecurrentCore(nn.Module):
    """One step of a TorchRL LSTMModule / GRUModule's network, its state as explicit tensors [batch, layers, hidden]."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.is_lstm = hasattr(layer, "lstm")
        self.rnn = layer.lstm if self.is_lstm else layer.gru

    def forward(self, x: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hidden = tuple(s.transpose(0, 1).contiguous() for s in state)  # the layout torch.nn's RNNs take
        out, new = self.rnn(x.unsqueeze(1), hidden if self.is_lstm else hidden[0])
        new = new if self.is_lstm else (new,)
        return (out[:, 0], *(s.transpose(0, 1) for s in new))


class FlowSampler(nn.Module):
    """The flow head's K Euler steps, unrolled: (observation features, noise) -> action.

    The noise input is N(0, I) whatever `network.flow_init_noise` is: it is scaled here to the head's x_0."""

    def __init__(self, net: nn.Module, steps: int, init_noise: float = 1.0) -> None:
        super().__init__()
        self.net, self.steps, self.init_noise = net, steps, init_noise

    def forward(self, features: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor]:
        start = noise * self.init_noise if self.init_noise != 1.0 else noise
        return (euler_integrate(self.net, features, start, self.steps),)  # as a Gaussian's (loc, scale): action first


class DeployedPolicy(nn.Module):
    """Raw observation groups in (in `input_names` order), the deterministic action out.

    A recurrent policy also takes its hidden state (zeros at an episode's start) and returns the next one
    after the action, as Isaac Lab's exporter does: (action, *next_state) = policy(observation, *state).
    """

    def __init__(
        self, encoder: nn.Module | None, head: nn.Module, discrete: bool, means: list[torch.Tensor | None],
        stds: list[torch.Tensor | None], clip: float, low: torch.Tensor | None, high: torch.Tensor | None,
        nvec: list[int] | None = None, memory: RecurrentCore | None = None, flow: bool = False,
    ) -> None:
        super().__init__()
        self.flow = flow  # a flow head: its last input is the noise the K Euler steps start from
        self.memory = memory
        self.state_names: list[str] = []  # the hidden-state inputs' names, after the observation's
        self.encoder = encoder
        self.head = head
        self.discrete = discrete
        self.nvec = nvec  # MultiDiscrete: the logits hold one slice per action dim
        self.normalized = [mean is not None for mean in means]
        for index, (mean, std) in enumerate(zip(means, stds)):
            if mean is not None:
                self.register_buffer(f"mean_{index}", mean.detach().clone().float())
                self.register_buffer(f"std_{index}", std.detach().clone().float())
        self.clip = clip
        self.bounded = low is not None
        if low is not None:
            self.register_buffer("low", low.detach().clone().float())
            self.register_buffer("high", high.detach().clone().float())

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        state: tuple[torch.Tensor, ...] = ()
        if self.memory is not None:  # the observation, then the hidden state
            inputs, state = inputs[:1], inputs[1:]
        noise: torch.Tensor | None = None
        if self.flow:
            inputs, noise = inputs[:-1], inputs[-1]
        xs = []
        for index, x in enumerate(inputs):
            if self.normalized[index]:
                mean, std = getattr(self, f"mean_{index}"), getattr(self, f"std_{index}")
                x = ((x - mean) / std).clamp(-self.clip, self.clip)
            xs.append(x)
        features = self.encoder(*xs) if self.encoder is not None else xs[0]
        if self.memory is not None:
            features, *state = self.memory(features, *state)
            return (self._action(features), *state)
        return self._action(features, noise)

    def _action(self, features: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if self.nvec is not None:
            return torch.stack([part.argmax(-1) for part in self.head(features).split(self.nvec, dim=-1)], dim=-1)
        if self.discrete:
            return self.head(features).argmax(-1)
        # (loc, scale): the mean is the deterministic action; a flow head: its action from the given noise
        action = self.head(features, noise)[0] if self.flow else self.head(features)[0]
        if self.bounded:
            action = torch.maximum(torch.minimum(action, self.high), self.low)
        return action


def deployed_policy(pipeline: Pipeline) -> tuple[DeployedPolicy, list[str]]:
    """The pipeline's actor as a `DeployedPolicy`, and the names of its inputs in call order."""
    actor = pipeline.module.actor
    encoders = [m for m in actor.modules() if isinstance(m, MultiModalEncoder)]
    encoder = encoders[0] if encoders else None
    for words in actor.modules():
        if isinstance(words, LearnedInstructionEncoder):
            words.by_lookup = True  # the same numbers through ops every exporter knows
    # the module that computes the distribution's parameters: (loc, scale) of a Gaussian, a categorical's logits
    params = [m for m in actor.modules() if list(getattr(m, "out_keys", [])) in (["loc", "scale"], ["logits"])]
    flow = isinstance(actor, (FlowActor, EncodedFlowActor))
    discrete = not flow and list(params[0].out_keys) == ["logits"]
    head = FlowSampler(actor.net, actor.steps, actor.init_noise) if flow else params[0].module
    input_names = list(encoder.in_keys) if encoder is not None else ["observation"]
    norm = find_transform(pipeline.env, RunningObservationNorm)
    means, stds, clip = [], [], 0.0
    for key in input_names:
        if norm is not None and key in norm.in_keys:
            stats = norm.stats[norm.in_keys.index(key)]
            means.append(stats.mean)
            stds.append(stats.std(norm.eps))
            clip = norm.clip
        else:
            means.append(None)
            stds.append(None)
    bounds = action_bounds(pipeline.env) if not discrete and pipeline.cfg.env.clip_actions else None
    low, high = bounds if bounds is not None else (None, None)
    nvec = multidiscrete_nvec(pipeline.env.action_spec)
    layers = memory_layers(actor)
    memory = RecurrentCore(layers[0]) if layers else None
    policy = DeployedPolicy(encoder.module if encoder is not None else None, head, discrete, means, stds, clip, low, high,
                            nvec, memory, flow)
    policy.state_names = recurrent_state_keys(actor)
    extra_inputs = [*policy.state_names, *([FLOW_NOISE_INPUT] if flow else [])]
    policy.normalized.extend([False] * len(extra_inputs))  # hidden states and the flow's noise are never normalized
    return policy.eval(), input_names + extra_inputs


def example_inputs(pipeline: Pipeline, names: list[str], batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Zero tensors of each input's shape and dtype, `batch` rows."""
    spec = input_specs(pipeline)
    return tuple(torch.zeros(batch, *spec[name].shape[1:], dtype=spec[name].dtype) for name in names)


def output_names(policy: DeployedPolicy) -> list[str]:
    """"action", then for a recurrent policy "next_<state>" for each hidden-state input."""
    return ["action", *[f"next_{name}" for name in policy.state_names]]


def input_specs(pipeline: Pipeline) -> dict[str, Any]:
    """Each input's spec: the observation groups, and a recurrent policy's hidden states (TorchRL's primers put
    those among the env's observation or state entries)."""
    env = pipeline.env
    specs = {key: spec for key, spec in env.full_state_spec.items()}
    specs.update({key: spec for key, spec in env.observation_spec.items()})
    specs[FLOW_NOISE_INPUT] = env.action_spec  # a flow policy's noise has the action's shape
    return specs


def description(pipeline: Pipeline, policy: DeployedPolicy, names: list[str], fmt: str, file: str) -> dict[str, Any]:
    spec = input_specs(pipeline)
    action_spec = pipeline.env.action_spec
    action: dict[str, Any]
    if policy.nvec is not None:
        action = {"name": "action", "kind": "multidiscrete", "shape": ["batch", len(policy.nvec)], "dtype": "int64",
                  "nvec": policy.nvec}
    elif policy.discrete:
        action = {"name": "action", "kind": "discrete", "shape": ["batch"], "dtype": "int64",
                  "n": int(action_spec.space.n)}
    else:
        action = {"name": "action", "kind": "continuous", "shape": ["batch", int(action_spec.shape[-1])],
                  "dtype": "float32", "clipped_to_bounds": policy.bounded}
        if policy.bounded:
            action.update(low=policy.low.tolist(), high=policy.high.tolist())
    return {
        "task": pipeline.cfg.task,
        "format": fmt,
        "file": file,
        "inputs": [
            {"name": name, "shape": ["batch", *[int(s) for s in spec[name].shape[1:]]],
             "dtype": str(spec[name].dtype).replace("torch.", ""), "normalized_inside": policy.normalized[i]}
            for i, name in enumerate(names)
        ],
        "outputs": [action, *[{"name": out, "shape": ["batch", *[int(x) for x in spec[out[5:]].shape[1:]]],
                                "dtype": "float32"} for out in output_names(policy)[1:]]],
        "deterministic": True,
        **({"recurrent": "pass zeros as each hidden state at an episode's first step, then the next_* outputs"}
           if policy.memory is not None else {}),
        **({"flow": f"{FLOW_NOISE_INPUT}: the Gaussian noise the {policy.head.steps} Euler steps start from; zeros give "
                    "the mean action, N(0, I) draws sample the policy as GR00T does"} if policy.flow else {}),
    }


def export_run(run_dir: Path, fmt: str) -> dict[str, Any]:
    """Writes `<run_dir>/export/policy.onnx` (or policy.pt) and policy.json from the last checkpoint."""
    if fmt not in FORMATS:
        raise ConfigError(f"The setting 'format' must be one of {', '.join(FORMATS)}; got '{fmt}'.")
    cfg = read_for_inspection(run_dir)
    path = ckpt.checkpoint_path(run_dir)
    saved = ckpt.load(path)
    pipeline = build_pipeline(cfg, L.Fabric(accelerator="cpu", devices=1))
    ckpt.load_for_inspection(pipeline, saved, path)
    policy, names = deployed_policy(pipeline)
    out_dir = run_dir / "export"
    out_dir.mkdir(exist_ok=True)
    target = out_dir / FORMATS[fmt]
    example = example_inputs(pipeline, names, batch=2)
    partial = target.with_name(target.name + ".partial")
    with torch.no_grad():
        if fmt == "onnx":
            write_onnx(policy, example, names, output_names(policy), partial)
        else:
            torch.jit.save(torch.jit.trace(policy, example), str(partial))
    partial.replace(target)  # a failed export never leaves a half-written policy under the final name
    info = description(pipeline, policy, names, fmt, target.name)
    json_path = out_dir / "policy.json"
    write_text_atomic(json_path, json.dumps(info, indent=1) + "\n")
    return {"path": str(target), "json": str(json_path), "env_steps": saved["env_steps"], **info}


def write_onnx(
    policy: DeployedPolicy, example: tuple[torch.Tensor, ...], names: list[str], outputs: list[str], path: Path
) -> None:
    try:
        import onnx  # noqa: F401  (torch.onnx needs it)
    except ImportError:
        raise ConfigError("format=onnx needs the onnx package: pip install -e '.[export]'.") from None
    torch.onnx.export(
        policy, example, str(path), input_names=names, output_names=outputs, opset_version=OPSET,
        dynamic_axes={name: {0: "batch"} for name in [*names, *outputs]}, dynamo=False,
    )


__all__ = ["DeployedPolicy", "deployed_policy", "export_run"]
