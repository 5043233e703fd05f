"""Details 14-22 (pixel observations): the image details measured on a task with camera images.

Details 14-19 are Atari's own (no-op reset, frame skip, episodic life, fire reset, 84x84 gray,
reward sign): not built yet, so they report missing. Details 20-22 apply to any task whose
observations hold an image group, and read "not applicable" on state-only tasks.
"""

from __future__ import annotations

import torch

from gr00t_torchrl.modules.multimodal import ImageEncoder
from gr00t_torchrl.verify.audit import Audit
from gr00t_torchrl.verify.registry import MISSING, NA, OFF, OK, WRONG, detail

for _number, _name in [
    (14, "NoopReset"), (15, "MaxAndSkip"), (16, "EpisodicLife"), (17, "FireReset"), (18, "WarpFrame 84x84 gray"),
    (19, "ClipReward to sign"),
]:
    detail(_number, _name)(lambda audit: (MISSING, "Atari tasks are not built yet"))


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
