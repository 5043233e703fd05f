"""Checks 38-40 of the flow-matching head: the PPO ratio at the collection parameters, the K Euler
steps, and the noisy Euler chain's log-probability."""

from __future__ import annotations

import math

import torch
from tensordict import TensorDict
from torchrl.envs.utils import ExplorationType, set_exploration_type

from gr00t_torchrl.modules.flow import FLOW_CHAIN, EncodedFlowActor
from gr00t_torchrl.verify.audit import Audit
from gr00t_torchrl.verify.registry import NA, OK, WRONG, detail

GAUSSIAN = "not the flow head (network.head=gaussian or discrete actions)"


@detail(38, "flow head: the PPO ratio is exactly 1 at the collection parameters")
def check_flow_ratio(audit: Audit) -> tuple[str, str]:
    if audit.cfg.network.head != "flow":
        return NA, GAUSSIAN
    audit.raw_batch  # collects the real batch and measures the recomputed log-probs on it, before any update
    error = audit.log_prob_error
    ratio = audit.cfg.network.flow_ratio
    kind = "FPO: minus the flow-matching loss over the stored (t, noise) pairs" if ratio == "fpo" else \
        "the chain: the exact log-probability of the stored Euler chain"
    return (OK if error == 0.0 else WRONG), (f"{kind}; recomputed on the real batch, max |log-prob - stored| = {error:.2e} "
                                             "(exp of it is the ratio)")


@detail(39, "flow head: K Euler steps from noise to action")
def check_euler_steps(audit: Audit) -> tuple[str, str]:
    if audit.cfg.network.head != "flow":
        return NA, GAUSSIAN
    actor = audit.pipeline.module.actor
    inputs = audit.policy_inputs(4)  # outside the evaluation mode below: it may collect the batch
    times: list[torch.Tensor] = []
    hook = actor.net.register_forward_hook(lambda module, args, out: times.append(args[2].reshape(-1)[0].clone()))
    try:
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            actor(inputs)
    finally:
        hook.remove()
    steps = audit.cfg.network.flow_steps
    expected = [k / steps for k in range(steps)]
    seen = [round(float(t), 6) for t in times]
    ok = len(seen) == steps and all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(seen, expected))
    return (OK if ok else WRONG), (f"network.flow_steps={steps}; one action took {len(seen)} velocity evaluations "
                                   f"at t = {seen}")


@detail(40, "flow chain: log-probability is the sum of its Gaussian steps")
def check_chain_log_prob(audit: Audit) -> tuple[str, str]:
    if audit.cfg.network.head != "flow":
        return NA, GAUSSIAN
    if audit.cfg.network.flow_ratio != "chain":
        return NA, "network.flow_ratio=fpo: no chain is stored"
    flat = audit.raw_batch.reshape(-1)
    rows = flat[torch.linspace(0, flat.shape[0] - 1, 8).long()]
    rollout, chain = audit.rollout_actor, rows.get(FLOW_CHAIN)
    steps = chain.shape[-2] - 1
    by_hand = torch.zeros(len(rows), dtype=torch.float64)
    with torch.no_grad():  # on the collection weights: the stored log-probs were computed with them
        if isinstance(rollout, EncodedFlowActor):  # the head reads the shared encoder's features
            obs = rollout.encoder(rows.select(*rollout.in_keys).clone()).get(rollout.flow.in_keys[0])
        else:
            obs = rows.get(rollout.in_keys[0])
        net, noise_net = rollout.net, rollout.noise_net
        for k in range(steps):
            x, t = chain[:, k], torch.full((len(rows),), k / steps)
            mean, std = x + net(obs, x, t) / steps, noise_net(obs, x, t)
            z = (chain[:, k + 1] - mean) / std
            by_hand += (-0.5 * z.square() - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1).double()
        by_hand += (-0.5 * chain[:, 0].square() - 0.5 * math.log(2 * math.pi)).sum(-1).double()
    stored = rows.get("action_log_prob").double()
    error = float((stored - by_hand).abs().max())
    last_ok = bool(torch.equal(rows.get("action"), chain[:, -1]))
    ok = error < 1e-4 and last_ok and chain.shape[-2] == audit.cfg.network.flow_steps + 1
    return (OK if ok else WRONG), (f"8 real steps: chains of {chain.shape[-2]} points, the action is the last: {last_ok}; "
                                   f"stored log-prob against N(x_0; 0, I) + sum of the step Gaussians by hand: "
                                   f"max error {error:.1e}")
