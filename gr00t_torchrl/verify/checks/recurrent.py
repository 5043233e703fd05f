"""Details 32-36 (recurrent policies): measured on the live LSTM / GRU layers and a real rollout.

They read "not applicable" for feed-forward policies (`network.recurrent=none`).
"""

from __future__ import annotations

import torch
from torchrl.modules import set_recurrent_mode

from gr00t_torchrl.modules.recurrent import memory_layers, recurrent_state_keys
from gr00t_torchrl.verify.audit import Audit
from gr00t_torchrl.verify.registry import NA, OK, WRONG, detail

FEED_FORWARD = "feed-forward policy (network.recurrent=none)"


def _layers(audit: Audit) -> list[torch.nn.Module]:
    return memory_layers(audit.pipeline.module.actor) + memory_layers(audit.pipeline.module.critic)


def _is_orthogonal(weight: torch.Tensor) -> bool:
    w = weight.detach().double()
    q = w if w.shape[0] >= w.shape[1] else w.T
    return bool(torch.allclose(q.T @ q, torch.eye(q.shape[1], dtype=torch.float64), atol=1e-5))


@detail(32, "LSTM init: orthogonal weights, zero biases")
def check_memory_init(audit: Audit) -> tuple[str, str]:
    if not _layers(audit):
        return NA, FEED_FORWARD
    layers = audit.initial_memory
    weights = [(n, p) for layer in layers for n, p in layer.named_parameters() if "weight" in n]
    biases = [p for layer in layers for n, p in layer.named_parameters() if "bias" in n]
    orthogonal = all(_is_orthogonal(p) for _, p in weights)
    zero = all(bool((p == 0).all()) for p in biases)
    where = "fresh build of the run's config" if audit.trained else "as initialised"
    evidence = (f"{len(layers)} {type(layers[0]).__name__} layers, {len(weights)} weight matrices orthogonal: {orthogonal}, "
                f"{len(biases)} bias vectors zero: {zero} ({where})")
    return (OK if orthogonal and zero else WRONG), evidence


@detail(33, "initial LSTM state zeros")
def check_initial_state(audit: Audit) -> tuple[str, str]:
    layers = _layers(audit)
    if not layers:
        return NA, FEED_FORWARD
    first = audit.raw_batch[:, 0]  # the first step of the first rollout: every env just reset
    keys = recurrent_state_keys(audit.pipeline.collection_policy)
    zero = all(bool((first.get(key) == 0).all()) for key in keys)
    started = bool(first.get("is_init").all())
    evidence = f"at the first step of {first.shape[0]} envs: is_init {started}, hidden states {keys} all zero: {zero}"
    return (OK if zero and started else WRONG), evidence


@detail(34, "LSTM state reset where an episode ends")
def check_state_reset(audit: Audit) -> tuple[str, str]:
    if not _layers(audit):
        return NA, FEED_FORWARD
    batch = audit.raw_batch
    is_init = batch.get("is_init").squeeze(-1)
    restarted = is_init[:, 1:]  # first steps of later episodes, inside the rollout
    done_before = batch.get(("next", "done")).squeeze(-1)[:, :-1]
    flags_ok = bool(torch.equal(restarted, done_before))
    keys = recurrent_state_keys(audit.pipeline.collection_policy)
    if not restarted.any():
        return WRONG, f"no episode ended inside the {batch.shape[-1]}-step rollout: set a shorter env.max_episode_steps to see one"
    # what each step's layer received: zero where an episode starts, the carried state elsewhere
    received_zero = all(bool((batch.get(key)[:, 1:][restarted] == 0).all()) for key in keys)
    carried = all(bool((batch.get(key)[:, 1:][~restarted] != 0).any()) for key in keys)
    ok = flags_ok and received_zero and carried
    evidence = (f"{int(restarted.sum())} episode starts inside the rollout, flagged is_init exactly after each done: "
                f"{flags_ok}; the hidden state there is zero: {received_zero}, carried elsewhere: {carried}")
    return (OK if ok else WRONG), evidence


@detail(35, "mini-batches of whole env sequences")
def check_sequence_minibatches(audit: Audit) -> tuple[str, str]:
    if not _layers(audit):
        return NA, FEED_FORWARD
    envs, steps = audit.batch.shape
    minibatches = audit.update["minibatches"]
    index = torch.arange(envs * steps).reshape(envs, steps)
    whole = all(m.ndim == 2 and m.shape[-1] == steps and torch.equal(m, index[m[:, 0] // steps]) for m in minibatches)
    shapes = sorted({tuple(m.shape) for m in minibatches})
    evidence = f"{len(minibatches)} mini-batches of shape(s) {shapes} from a [{envs}, {steps}] batch; whole env sequences in time order: {whole}"
    return (OK if whole else WRONG), evidence


@detail(36, "hidden states recomputed during training")
def check_recomputed_states(audit: Audit) -> tuple[str, str]:
    if not _layers(audit):
        return NA, FEED_FORWARD
    batch = audit.raw_batch.clone()
    actor = audit.rollout_actor
    stored = batch.get(audit.pipeline.module.loss_module.tensor_keys.sample_log_prob)
    steps = batch.shape[-1]

    def error(window: slice) -> float:
        """The update's way over batch[:, window]: each sequence from its stored first state, in recurrent mode."""
        part = batch[:, window]
        with torch.no_grad(), set_recurrent_mode(True):
            recomputed = actor.get_dist(part.select(*actor.in_keys).clone()).log_prob(part.get("action"))
        return float((recomputed - stored[:, window]).abs().max())

    # before any update the recomputed log-probs must equal the rollout's: over whole sequences (episode
    # starts inside them reset the state), and from mid-rollout, where the stored first states are live memory
    whole, second_half = error(slice(None)), error(slice(steps // 2, None))
    ok = whole < 1e-4 and second_half < 1e-4 and audit.pipeline.module.recurrent
    evidence = (f"log-probs recomputed in recurrent mode match the rollout's to {whole:.1e} over whole sequences and to "
                f"{second_half:.1e} from the stored states at step {steps // 2}; the update runs in recurrent mode: "
                f"{audit.pipeline.module.recurrent}")
    return (OK if ok else WRONG), evidence
