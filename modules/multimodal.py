"""The multimodal encoder: camera images, proprioception and a language instruction, fused.

GR00T-style policies act on what the robot sees, what it feels and what it is told. The encoder
reads each observation group the task provides, through a branch chosen from the group's spec:

- an image group ([C, H, W], uint8 or float): a CNN (Nature-CNN-sized by default) over pixels scaled
  to [0, 1] on the networks' device (detail 22), so rollouts store uint8;
- the proprioception vector ("observation"): an MLP;
- an instruction (integer token ids, 0 = padding): learned token embeddings, mean-pooled over the
  words (`torch.nn.EmbeddingBag`), or a frozen model2vec model's word vectors loaded from local disk.

Fusion is concatenation followed by an MLP; with `fusion="film"` the instruction also scales and
shifts each image feature (FiLM), which lets a word select what to look for. The encoder writes one
"features" entry that the actor's and the critic's heads both read: they share it (detail 21).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.data import Composite, TensorSpec
from torchrl.modules import MLP, ConvNet

from gr00t_torchrl.config import ConfigError
from gr00t_torchrl.modules.init import HIDDEN_GAIN, orthogonal_init_

PROPRIO_KEY = "observation"
FEATURES_KEY = "features"
PRIVILEGED_KEY = "critic"  # read by the critic's head only (asymmetric actor-critic)
PREDICTION_KEY = "privileged_prediction"  # the auxiliary head's guess of the privileged group
# observation entries that are not the task's: the running episode statistics of the env's transforms
NOT_INPUTS = ("episode_return", "episode_length")


def input_groups(observation_spec: Composite) -> dict[str, TensorSpec]:
    """The task's observation groups, without the entries the env's transforms add."""
    return {str(key): spec for key, spec in observation_spec.items() if key not in NOT_INPUTS}


def policy_inputs_by_kind(observation_spec: Composite) -> dict[str, list[str]]:
    """The keys the policy reads, sorted, by kind: "tokens" (instructions), "image" and "proprio".

    The privileged critic group is not among them: only the critic's head reads it.
    """
    groups = {key: spec for key, spec in sorted(input_groups(observation_spec).items()) if key != PRIVILEGED_KEY}
    return {
        "tokens": [key for key, spec in groups.items() if is_token_spec(spec)],
        "image": [key for key, spec in groups.items() if is_image_spec(spec)],
        "proprio": [PROPRIO_KEY] if PROPRIO_KEY in groups else [],
    }


IMAGE_DTYPES = (torch.uint8, torch.float32)


def is_image_spec(spec: TensorSpec) -> bool:
    return len(spec.shape) == 4  # [num_envs, C, H, W]


def check_image_spec(key: str, spec: TensorSpec) -> None:
    """A clear error for an image group this encoder cannot read (dtype, or a channels-last layout)."""
    channels, height, width = spec.shape[1:]
    if spec.dtype not in IMAGE_DTYPES:
        raise ConfigError(f"The image group '{key}' holds {spec.dtype}; images must be uint8 (0-255) or float32 (0-1).")
    if channels > 4 and width <= 4:
        raise ConfigError(
            f"The image group '{key}' has shape {list(spec.shape[1:])}: images must be channels-first [C, H, W] "
            f"(e.g. [{width}, {channels}, {height}])."
        )


def is_token_spec(spec: TensorSpec) -> bool:
    return len(spec.shape) == 2 and not spec.dtype.is_floating_point


def has_multimodal_groups(observation_spec: Composite) -> bool:
    """Whether a task's observations hold an image or an instruction (and so need this encoder)."""
    return any(is_image_spec(spec) or is_token_spec(spec) for spec in input_groups(observation_spec).values())


class SpatialSoftmax(nn.Module):
    """Feature maps [..., C, h, w] -> the expected (x, y) of each channel's softmax over its pixels, [..., 2C].

    The keypoint head of robot-learning vision encoders (Levine et al. 2016; robomimic): a channel
    that responds to one thing (a red disc) reports where that thing is, in [-1, 1].
    """

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        self.register_buffer("xy", torch.stack([xs.flatten(), ys.flatten()], dim=-1), persistent=False)  # [hw, 2]
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(maps.flatten(-2) / self.log_temperature.exp(), dim=-1)  # [..., C, hw]
        return (weights @ self.xy).flatten(-2)  # [..., C * 2]


class ImageEncoder(nn.Module):
    """Pixels -> features: scale to [0, 1] (detail 22), TorchRL's ConvNet, a linear layer, ReLU.

    With `condition_dim`, an instruction's embedding scales and shifts each channel of the last
    conv layer's feature maps (FiLM) before they are pooled, so that a word can select which
    feature maps, e.g. which colour, the rest of the network sees. The maps are flattened (Nature-CNN)
    or reduced to one keypoint per channel (`pooling="spatial_softmax"`). With `coordinates`, two channels
    holding each pixel's x and y in [-1, 1] are added to the image (CoordConv), which makes where
    something is in the picture easy for the convolutions to report.
    """

    def __init__(
        self, image_shape: Sequence[int], channels: Sequence[int], kernels: Sequence[int], strides: Sequence[int],
        out_features: int, condition_dim: int | None = None, coordinates: bool = False, pooling: str = "flatten",
    ) -> None:
        super().__init__()
        in_channels, height, width = image_shape
        self.coordinates = coordinates
        if coordinates:
            ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
            self.register_buffer("grid", torch.stack([xs, ys]), persistent=False)
        self.conv = ConvNet(
            in_features=in_channels + 2 * coordinates, num_cells=list(channels), kernel_sizes=list(kernels),
            strides=list(strides), activation_class=nn.ReLU, aggregator_class=None,
        )
        self.film = FiLM(condition_dim, channels[-1]) if condition_dim else None
        try:
            with torch.no_grad():
                maps = self.conv(torch.zeros(1, in_channels + 2 * coordinates, height, width))
        except RuntimeError as err:
            raise ConfigError(
                f"Images of shape {list(image_shape)} are too small for the conv layers (kernels {list(kernels)}, strides "
                f"{list(strides)}): set network.encoder.cnn_kernels / cnn_strides to fit ({err})."
            ) from None
        self.pool = SpatialSoftmax(*maps.shape[-2:]) if pooling == "spatial_softmax" else nn.Flatten(-3)
        flat = self.pool(maps).shape[-1]
        self.project = nn.Sequential(nn.Linear(flat, out_features), nn.ReLU())
        self.out_features = out_features

    def scaled(self, image: torch.Tensor) -> torch.Tensor:
        """uint8 in storage, floats in [0, 1] only here, on the networks' device (detail 22)."""
        pixels = image.float() / 255.0 if not image.dtype.is_floating_point else image
        if self.coordinates:
            pixels = torch.cat([pixels, self.grid.expand(*pixels.shape[:-3], *self.grid.shape)], dim=-3)
        return pixels

    def forward(self, image: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        maps = self.conv(self.scaled(image))
        if self.film is not None:
            gamma, beta = self.film.scale_shift(condition)
            maps = maps * (1 + gamma[..., None, None]) + beta[..., None, None]
        return self.project(self.pool(maps))


class LearnedInstructionEncoder(nn.Module):
    """Token ids -> the mean of learned word embeddings (padding, id 0, is left out of the mean)."""

    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab_size, dim, mode="mean", padding_idx=0)
        self.vocab_size = vocab_size
        self.out_features = dim
        self.by_lookup = False  # True: `pooled_by_lookup` (for export: ONNX has no EmbeddingBag with padding)

    def pooled_by_lookup(self, tokens: torch.Tensor) -> torch.Tensor:
        """The same mean as the EmbeddingBag's, from a plain lookup and a mask (0 where all is padding)."""
        words = tokens != 0
        vectors = nn.functional.embedding(tokens.long(), self.embedding.weight) * words.unsqueeze(-1)
        return vectors.sum(-2) / words.sum(-1, keepdim=True).clamp_min(1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.by_lookup:
            return self.pooled_by_lookup(tokens)
        try:
            pooled = self.embedding(tokens.long().reshape(-1, tokens.shape[-1]))
        except (IndexError, RuntimeError) as err:  # the CPU kernel's own bounds check: no extra host read per step
            if "idx" not in str(err) and "index" not in str(err).lower():
                raise
            raise ConfigError(
                f"An instruction holds a token id outside the vocabulary of {self.vocab_size} ids (ids seen: "
                f"{int(tokens.min())} to {int(tokens.max())}); the task and the policy disagree on the vocabulary."
            ) from None
        return pooled.reshape(*tokens.shape[:-1], -1)


class FrozenInstructionEncoder(LearnedInstructionEncoder):
    """A pretrained model2vec model's word vectors for the task's vocabulary, frozen.

    model2vec embeds a sentence as the mean of static token vectors, so looking the vectors up once
    for each word of the task's vocabulary and mean-pooling them at run time computes the same kind of
    embedding without the model (or any string) on the hot path.
    """

    def __init__(self, vocabulary: Sequence[str], model_path: str) -> None:
        path = Path(model_path)
        if not path.is_dir():
            raise ConfigError(
                f"network.encoder.text_model_path={model_path} is not a directory: put a model2vec model there "
                "(e.g. on a machine with internet: `python -c \"from model2vec import StaticModel; "
                "StaticModel.from_pretrained('minishlab/potion-base-8M').save_pretrained('<dir>')\"`, then copy <dir>), "
                "or use network.encoder.language=learned."
            )
        try:
            from model2vec import StaticModel
        except ImportError:
            raise ConfigError(
                "network.encoder.language=model2vec needs the model2vec package: pip install -e '.[language]'."
            ) from None
        model = StaticModel.from_pretrained(str(path))
        vectors = torch.as_tensor(model.encode([word or " " for word in vocabulary]), dtype=torch.float32)
        super().__init__(len(vocabulary), vectors.shape[-1])
        with torch.no_grad():
            self.embedding.weight.copy_(vectors)
            self.embedding.weight[0].zero_()
        self.embedding.weight.requires_grad_(False)


class FiLM(nn.Module):
    """Feature-wise linear modulation: a condition's (gamma, beta) per feature, starting at the identity."""

    def __init__(self, condition_dim: int, features: int) -> None:
        super().__init__()
        self.to_scale_shift = nn.Linear(condition_dim, 2 * features)
        nn.init.zeros_(self.to_scale_shift.weight)  # features * (1 + 0) + 0 at first
        nn.init.zeros_(self.to_scale_shift.bias)

    def scale_shift(self, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gamma, beta = self.to_scale_shift(condition).chunk(2, dim=-1)
        return gamma, beta


class MultiModalNet(nn.Module):
    """The encoder's network: one branch per input, in the order of `kinds` ("image", "proprio", "tokens").

    With FiLM fusion the instruction branch runs first and conditions every image branch.
    """

    def __init__(self, branches: Sequence[nn.Module], kinds: Sequence[str], fused_sizes: Sequence[int],
                 activation: type[nn.Module]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.kinds = list(kinds)
        self.conditioned = any(isinstance(b, ImageEncoder) and b.film is not None for b in branches)
        width = sum(branch.out_features for branch in branches)
        self.fuse = MLP(in_features=width, out_features=fused_sizes[-1], num_cells=list(fused_sizes[:-1]),
                        activation_class=activation, activate_last_layer=True)
        self.out_features = fused_sizes[-1]
        orthogonal_init_(self.fuse, HIDDEN_GAIN)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        condition = None
        if self.conditioned:
            index = self.kinds.index("tokens")
            condition = self.branches[index](inputs[index])
        parts = []
        for branch, kind, x in zip(self.branches, self.kinds, inputs):
            if kind == "image":
                parts.append(branch(x, condition))
            elif kind == "tokens" and condition is not None:
                parts.append(condition)
            else:
                parts.append(branch(x))
        return self.fuse(torch.cat(parts, dim=-1))


class MultiModalEncoder(TensorDictModule):
    """A TensorDict module: the task's image, proprioception and instruction entries -> "features"."""

    @classmethod
    def from_spec(
        cls,
        observation_spec: Composite,
        cfg: object,
        activation: type[nn.Module] = nn.Tanh,
        vocab_sizes: dict[str, int] | None = None,
        vocabulary: Sequence[str] | None = None,
    ) -> "MultiModalEncoder":
        """Branches chosen from the observation spec; `cfg` is the config's `network.encoder` section.

        `vocab_sizes` gives each instruction group's number of token ids (the env's own space says it;
        TorchRL's specs may not keep the bound); `vocabulary` lists the words, for a pretrained model.
        """
        groups = input_groups(observation_spec)
        kinds_of = policy_inputs_by_kind(observation_spec)
        token_keys, image_keys = kinds_of["tokens"], kinds_of["image"]
        if cfg.fusion == "film" and not (token_keys and image_keys):
            raise ConfigError("network.encoder.fusion=film needs a task with both an image and an instruction.")
        branches: list[nn.Module] = []
        kinds: list[str] = []
        in_keys: list[str] = []
        for key in token_keys:
            branches.append(cls._instruction_branch(key, cfg, vocab_sizes, vocabulary))
            kinds.append("tokens")
            in_keys.append(key)
        condition_dim = branches[0].out_features if cfg.fusion == "film" else None
        for key in image_keys:
            check_image_spec(key, groups[key])
            branches.append(ImageEncoder(groups[key].shape[1:], cfg.cnn_channels, cfg.cnn_kernels, cfg.cnn_strides,
                                         cfg.image_features, condition_dim, cfg.coordinates, cfg.image_pooling))
            kinds.append("image")
            in_keys.append(key)
        if kinds_of["proprio"]:
            width = groups[PROPRIO_KEY].shape[-1]
            if cfg.proprio_sizes:
                mlp = MLP(in_features=width, out_features=cfg.proprio_sizes[-1], num_cells=list(cfg.proprio_sizes[:-1]),
                          activation_class=activation, activate_last_layer=True)
                orthogonal_init_(mlp, HIDDEN_GAIN)
                mlp.out_features = cfg.proprio_sizes[-1]
                branches.append(mlp)
            else:
                branches.append(_Identity(width))
            kinds.append("proprio")
            in_keys.append(PROPRIO_KEY)
        net = MultiModalNet(branches, kinds, cfg.fused_sizes, activation)
        encoder = cls(net, in_keys=in_keys, out_keys=[FEATURES_KEY])
        encoder.kinds = dict(zip(in_keys, kinds))
        return encoder

    @staticmethod
    def _instruction_branch(key: str, cfg: object, vocab_sizes: dict[str, int] | None,
                            vocabulary: Sequence[str] | None) -> nn.Module:
        if cfg.language == "model2vec":
            if vocabulary is None:
                raise ConfigError("network.encoder.language=model2vec needs a task that lists its vocabulary.")
            return FrozenInstructionEncoder(vocabulary, cfg.text_model_path)
        vocab_size = (vocab_sizes or {}).get(key)
        if vocab_size is None:
            raise ConfigError(f"The instruction group '{key}' has no known vocabulary size.")
        return LearnedInstructionEncoder(vocab_size, cfg.token_dim)

    @property
    def out_features(self) -> int:
        return self.module.out_features


def make_privileged_predictor(encoder: MultiModalEncoder, privileged_dim: int) -> TensorDictSequential:
    """The shared encoder, then a linear head that predicts the privileged group from "features".

    The model of the auxiliary loss (`network.encoder.privileged_aux_coeff`): regressing what the
    critic is told (where the targets are) on what the policy sees gives the image trunk a dense,
    supervised signal that the PPO losses alone carry only weakly.
    """
    head = TensorDictModule(nn.Linear(encoder.out_features, privileged_dim), in_keys=[FEATURES_KEY],
                            out_keys=[PREDICTION_KEY])
    return TensorDictSequential(encoder, head)


class _Identity(nn.Identity):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.out_features = width
