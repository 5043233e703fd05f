"""Detail 37 (MultiDiscrete action spaces): a categorical per action dim, log-probs and entropies summed."""

from __future__ import annotations

import torch

from gr00t_torchrl.modules.actor_critic import multidiscrete_nvec
from gr00t_torchrl.verify.audit import Audit
from gr00t_torchrl.verify.registry import NA, OK, WRONG, detail


@detail(37, "MultiDiscrete: a categorical per action dim, log-probs summed")
def check_multidiscrete(audit: Audit) -> tuple[str, str]:
    nvec = multidiscrete_nvec(audit.pipeline.env.action_spec)
    if nvec is None:
        return NA, "no MultiDiscrete action space"
    # on the real batch: the policy's log-prob and entropy against a hand computation from its logits
    inputs = audit.policy_inputs(16)
    flat = audit.batch.reshape(-1)
    actions = flat.get("action")[torch.linspace(0, flat.shape[0] - 1, 16).long()]
    with torch.no_grad():
        dist = audit.pipeline.module.actor.get_dist(inputs.clone())
        logits = audit.pipeline.module.actor(inputs.clone()).get("logits")
    log_softmax = [part.log_softmax(-1) for part in logits.split(nvec, dim=-1)]
    by_hand = sum(lp.gather(-1, a.unsqueeze(-1)).squeeze(-1) for lp, a in zip(log_softmax, actions.unbind(-1)))
    entropy = sum(-(lp.exp() * lp).sum(-1) for lp in log_softmax)
    log_prob_ok = bool(torch.allclose(dist.log_prob(actions), by_hand, atol=1e-5))
    entropy_ok = bool(torch.allclose(dist.entropy(), entropy, atol=1e-5))
    shape_ok = list(actions.shape[-1:]) == [len(nvec)] and bool((actions >= 0).all() and (actions < torch.tensor(nvec)).all())
    ok = log_prob_ok and entropy_ok and shape_ok
    evidence = (f"{len(nvec)} dims of {nvec} choices, logits {logits.shape[-1]} wide; on 16 real steps the log-prob is the sum "
                f"of each dim's categorical log-prob: {log_prob_ok}, the entropy the sum of theirs: {entropy_ok}; "
                f"actions in range: {shape_ok}")
    return (OK if ok else WRONG), evidence
