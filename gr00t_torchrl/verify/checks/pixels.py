"""Details 14-22 (pixel observations): the image details measured on a task with camera images.

Details 14-19 are Atari's own (no-op reset, frame skip, episodic life, fire reset, 84x84 gray,
reward sign), measured on the game envs and a real rollout; "not applicable" on other tasks.
Details 20-22 apply to any task whose observations hold an image group.
"""

from __future__ import annotations

import torch

import gymnasium as gym

from gr00t_torchrl.envs import vector_env
from gr00t_torchrl.envs.atari import (
    FRAME_SKIP, NOOP_MAX, SCREEN, AtariFrames, EpisodicLife, FireReset, has_fire, is_atari_task, make_atari,
)
from gr00t_torchrl.envs.gym import PIXELS
from gr00t_torchrl.modules.multimodal import ImageEncoder
from gr00t_torchrl.verify.audit import Audit
from gr00t_torchrl.verify.registry import NA, OFF, OK, WRONG, detail

def _wrappers(env: gym.Env) -> list[gym.Env]:
    """A Gymnasium env's wrapper chain, outermost first."""
    chain = [env]
    while hasattr(chain[-1], "env"):
        chain.append(chain[-1].env)
    return chain


def _atari_chains(audit: Audit) -> tuple[list[gym.Env], list[gym.Env]] | None:
    """The wrapper chains of a training sub-env and a fresh evaluation env (its outermost wrapper first, a game
    the checks may play), or None for a task that is not Atari."""
    if not is_atari_task(audit.cfg.env.id):
        return None
    train_env = vector_env(audit.pipeline.env).envs[0]
    eval_env = make_atari(audit.cfg.env.id, train=False)
    return _wrappers(train_env), _wrappers(eval_env)


def _has(chain: list[gym.Env], kind: type) -> bool:
    return any(isinstance(w, kind) for w in chain)


NOT_ATARI = "not an Atari task"


@detail(14, "NoopReset: up to 30 random no-ops after a reset")
def check_noop_reset(audit: Audit) -> tuple[str, str]:
    chains = _atari_chains(audit)
    if chains is None:
        return NA, NOT_ATARI
    game = chains[1][0]  # the evaluation env: no episodic life, whole games
    starts = []
    for seed in range(8):  # the frame each episode starts at: random no-ops make them differ
        game.reset(seed=seed)
        starts.append(game.unwrapped.ale.getEpisodeFrameNumber())
    noop_max = next(w.noop_max for w in chains[0] if isinstance(w, AtariFrames))
    ok = noop_max == NOOP_MAX and len(set(starts)) > 1
    return (OK if ok else WRONG), f"noop_max {noop_max}; first frames of 8 episodes {starts}"


@detail(15, "MaxAndSkip: each action repeated over 4 frames, max of the last two")
def check_max_and_skip(audit: Audit) -> tuple[str, str]:
    chains = _atari_chains(audit)
    if chains is None:
        return NA, NOT_ATARI
    game = chains[1][0]  # the evaluation env: no episodic life, whole games
    game.reset(seed=0)
    before = game.unwrapped.ale.getEpisodeFrameNumber()
    game.step(0)
    skipped = game.unwrapped.ale.getEpisodeFrameNumber() - before
    frames = next(w for w in chains[0] if isinstance(w, AtariFrames))
    pooled = len(frames.obs_buffer) == 2
    base_skip = chains[0][-1].unwrapped._frameskip
    ok = skipped == FRAME_SKIP and pooled and base_skip == 1
    return (OK if ok else WRONG), f"one step advances {skipped} frames (the emulator's own skip {base_skip}); max over 2 frames: {pooled}"


@detail(16, "EpisodicLife: a lost life ends the training episode, not the game")
def check_episodic_life(audit: Audit) -> tuple[str, str]:
    chains = _atari_chains(audit)
    if chains is None:
        return NA, NOT_ATARI
    train, evaluation = _has(chains[0], EpisodicLife), _has(chains[1], EpisodicLife)
    return (OK if train and not evaluation else WRONG), f"in the training envs: {train}; in evaluation (whole games): {evaluation}"


@detail(17, "FireReset: FIRE after a reset where the game waits for it")
def check_fire_reset(audit: Audit) -> tuple[str, str]:
    chains = _atari_chains(audit)
    if chains is None:
        return NA, NOT_ATARI
    needs = has_fire(chains[0][-1])
    present = _has(chains[0], FireReset) and _has(chains[1], FireReset)
    return (OK if present == needs else WRONG), f"the game's action 1 is FIRE: {needs}; FireReset in training and evaluation: {present}"


@detail(18, "WarpFrame: 84x84 grayscale frames")
def check_warp_frame(audit: Audit) -> tuple[str, str]:
    if _atari_chains(audit) is None:
        return NA, NOT_ATARI
    pixels = audit.raw_batch.get(PIXELS)
    frames = audit.cfg.env.frame_stack
    ok = pixels.dtype == torch.uint8 and tuple(pixels.shape[-3:]) == (frames, SCREEN, SCREEN)
    return (OK if ok else WRONG), f"the rollout's frames: {str(pixels.dtype).replace('torch.', '')} {list(pixels.shape[-3:])} ({frames} stacked gray frames)"


@detail(19, "ClipReward: training rewards replaced by their sign")
def check_clip_reward(audit: Audit) -> tuple[str, str]:
    chains = _atari_chains(audit)
    if chains is None:
        return NA, NOT_ATARI
    rewards = audit.raw_batch.get(("next", "reward"))
    values = sorted({float(v) for v in rewards.unique()})
    signs = set(values) <= {-1.0, 0.0, 1.0}
    clips = [w.func for w in chains[0] if isinstance(w, gym.wrappers.TransformReward)]
    probe = [float(clips[0](r)) for r in (7.0, 0.0, -3.0)] if clips else []  # rewards of a game, through the clip
    clipped_in_train = probe == [1.0, 0.0, -1.0]
    clipped_in_eval = any(isinstance(w, gym.wrappers.TransformReward) for w in chains[1])
    ok = signs and clipped_in_train and not clipped_in_eval and not audit.cfg.env.scale_reward
    return (OK if ok else WRONG), (f"training rewards on a real rollout take the values {values}; the training envs' "
                                   f"clip maps 7, 0, -3 to {probe}; clipped in evaluation (game score): {clipped_in_eval}")


def _image_encoders(audit: Audit) -> list[ImageEncoder]:
    encoder = audit.encoder
    return [] if encoder is None else [m for m in encoder.modules() if isinstance(m, ImageEncoder)]


def _image_keys(audit: Audit) -> list[str]:
    encoder = audit.encoder
    return [] if encoder is None else [key for key, kind in encoder.kinds.items() if kind == "image"]


@detail(20, "frame stacking of image observations")
def check_frame_stack(audit: Audit) -> tuple[str, str]:
    keys = _image_keys(audit)
    if not keys:
        return NA, "no image observations"
    frames = audit.pipeline.cfg.env.frame_stack
    key = keys[0]
    channels = int(audit.pipeline.env.observation_spec[key].shape[-3])
    if frames == 1:
        return OFF, f"one frame per step (env.frame_stack=1; '{key}' has {channels} channels)"
    # on a real rollout: within an episode, the next stack is this one shifted by one frame
    batch = audit.raw_batch  # [envs, time]
    now, after = batch.get(key), batch.get(("next", key))
    done = batch.get(("next", "done")).squeeze(-1)
    per_frame = channels // frames
    shifted = bool(torch.equal(after[~done][:, : channels - per_frame], now[~done][:, per_frame:]))
    moving = bool((after[~done][:, channels - per_frame:] != now[~done][:, channels - per_frame:]).any())
    ok = channels % frames == 0 and shifted and moving
    evidence = (f"'{key}' holds {frames} frames of {per_frame} channels; on {int((~done).sum())} rollout steps the "
                f"next stack is this one moved by one frame: {shifted}, with a new newest frame: {moving}")
    return (OK if ok else WRONG), evidence


@detail(21, "one image trunk shared by policy and value")
def check_shared_trunk(audit: Audit) -> tuple[str, str]:
    trunks = _image_encoders(audit)
    if not trunks:
        return NA, "no image observations"
    trunk = {id(q) for t in trunks for q in t.parameters()}
    actor = {id(q) for q in audit.actor_params()}
    critic = {id(q) for q in audit.pipeline.module.critic.parameters()}
    optimized = [id(q) for g in audit.pipeline.optimizer.param_groups for q in g["params"] if id(q) in trunk]
    # both losses must reach the trunk: the critic's value loss alone, then the actor's log-prob alone
    grads = {}
    minibatch = audit.batch.reshape(-1)[:32].clone()
    for label, loss in (
        ("value", lambda: audit.pipeline.module.critic(minibatch.clone()).get("state_value").sum()),
        ("policy", lambda: audit.pipeline.module.actor.get_dist(minibatch.clone()).log_prob(minibatch.get("action")).sum()),
    ):
        audit.pipeline.module.zero_grad(set_to_none=True)
        loss().backward()
        grads[label] = any(q.grad is not None and bool(q.grad.abs().sum() > 0) for t in trunks for q in t.parameters())
    audit.pipeline.module.zero_grad(set_to_none=True)
    ok = trunk <= actor and trunk <= critic and len(optimized) == len(trunk) and all(grads.values())
    evidence = (f"{len(trunk)} trunk tensors in the actor: {trunk <= actor}, in the critic: {trunk <= critic}, "
                f"once in the optimizer: {len(optimized) == len(trunk)}; gradient from the value loss: "
                f"{grads['value']}, from the policy: {grads['policy']}")
    return (OK if ok else WRONG), evidence


@detail(22, "images scaled to [0, 1]")
def check_image_scaling(audit: Audit) -> tuple[str, str]:
    trunks, keys = _image_encoders(audit), _image_keys(audit)
    if not trunks:
        return NA, "no image observations"
    stored = {key: str(audit.raw_batch.get(key).dtype).replace("torch.", "") for key in keys}
    inputs = audit.policy_inputs(16)  # before the hook: building the batch runs the critic's trunk too
    pixels = inputs.get(keys[0]).clone()
    seen: list[torch.Tensor] = []
    hooks = [t.conv.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach())) for t in trunks]
    try:
        with torch.no_grad():
            audit.pipeline.module.actor(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    expected = pixels.float() / 255.0 if not pixels.dtype.is_floating_point else pixels
    scaled = seen[0][:, : expected.shape[1]]  # CoordConv's coordinate channels follow the image's
    low, high = float(scaled.min()), float(scaled.max())
    matches = bool(torch.allclose(scaled, expected))
    ok = all(dtype == "uint8" for dtype in stored.values()) and 0.0 <= low and high <= 1.0 and matches
    evidence = (f"rollout stores {stored}; the CNN's input on a real batch lies in [{low:.3f}, {high:.3f}] "
                f"and equals pixels / 255: {matches}")
    return (OK if ok else WRONG), evidence
