"""Evaluation videos: the first few evaluation episodes side by side, written as a GIF.

Image tasks show what the policy saw (each image group, enlarged), captioned with the instruction and,
once an episode has ended, whether it succeeded; Gymnasium tasks show their `rgb_array` renders.
`imageio` (the `video` extra) writes the file; nothing here is imported by training.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from gr00t_torchrl.config import ConfigError

SCALE = 6  # pixels per image pixel in the video
FPS = 15


class VideoRecorder:
    """Collects frames of the first `count` envs of an evaluation batch, then writes them as a GIF."""

    def __init__(self, path: Path, count: int, vocabulary: Sequence[str] | None = None) -> None:
        try:
            import imageio  # noqa: F401
        except ImportError:
            raise ConfigError("video=true needs imageio: pip install -e '.[video]'.") from None
        self.path, self.count, self.vocabulary = path, count, vocabulary
        self.frames: list[np.ndarray] = []
        self.captions: list[str] = [""] * count
        self.outcome: list[str] = [""] * count

    def caption_from(self, tokens: torch.Tensor) -> None:
        """The instruction of each recorded env, decoded from its token ids (unknown words shown as '?')."""
        if self.vocabulary is None:
            return
        for i, row in enumerate(tokens[: self.count].tolist()):
            words = [self.vocabulary[t] if t < len(self.vocabulary) and self.vocabulary[t] else "?" for t in row if t != 0]
            self.captions[i] = " ".join(words)

    def mark_finished(self, done: torch.Tensor, success: torch.Tensor | None) -> None:
        for i in range(min(self.count, done.shape[0])):
            if bool(done[i]) and not self.outcome[i]:
                self.outcome[i] = "done" if success is None else ("success" if bool(success[i]) else "missed")

    def add(self, images: Sequence[np.ndarray]) -> None:
        """One video frame from the recorded envs' pictures (H x W x 3 uint8 each), tiled left to right."""
        from PIL import Image, ImageDraw

        tiles = []
        for i, picture in enumerate(images[: self.count]):
            tile = Image.fromarray(np.ascontiguousarray(picture))
            if tile.width < 160:  # small camera images: enlarge, keep the pixels sharp
                tile = tile.resize((tile.width * SCALE, tile.height * SCALE), Image.NEAREST)
            canvas = Image.new("RGB", (tile.width, tile.height + 28))
            canvas.paste(tile, (0, 0))
            draw = ImageDraw.Draw(canvas)
            draw.text((3, tile.height + 2), self.captions[i][:40], fill=(255, 255, 255))
            colour = (80, 220, 80) if self.outcome[i] == "success" else (240, 90, 90)
            draw.text((3, tile.height + 14), self.outcome[i], fill=colour)
            tiles.append(np.asarray(canvas))
        self.frames.append(np.concatenate(tiles, axis=1))

    def write(self) -> Path:
        import imageio

        self.path.parent.mkdir(parents=True, exist_ok=True)
        imageio.mimsave(self.path, self.frames, duration=1000 / FPS, loop=0)
        return self.path


def rendered_frames(vector_env: object) -> list[np.ndarray]:
    """A Gymnasium vector env's `rgb_array` frames; a clear error where its renderer cannot run here."""
    import gymnasium as gym

    try:
        return list(vector_env.render())
    except (gym.error.DependencyNotInstalled, ImportError, RuntimeError) as err:
        raise ConfigError(f"video=true: this task's frames cannot be drawn here ({err}).") from None


def pictures_of(image: torch.Tensor) -> list[np.ndarray]:
    """[N, C, H, W] images (uint8, or float in [0, 1]) as H x W x 3 uint8 arrays."""
    if image.is_floating_point():
        image = (image.clamp(0, 1) * 255).to(torch.uint8)
    image = image[:, :3] if image.shape[1] >= 3 else image[:, :1].expand(-1, 3, -1, -1)
    return list(image.permute(0, 2, 3, 1).cpu().numpy())
