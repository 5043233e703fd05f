"""The PPO update: gradient clipping, KL early stop, non-finite updates skipped."""

from __future__ import annotations

import pytest
import torch
from torchrl.envs.utils import ExplorationType, set_exploration_type

from gr00t_torchrl.envs import make_env
from gr00t_torchrl.modules import make_actor_critic
from gr00t_torchrl.ppo_module import NonFiniteUpdateError, PPOModule
from tests.conftest import tiny_config


def module_and_batch(*overrides: str):
    cfg = tiny_config(*overrides)
    env = make_env(cfg, seed=0)
    actor, critic = make_actor_critic(3, env.action_spec, [16])
    module = PPOModule(cfg.ppo, actor, critic, num_iterations=1)
    optimizer, _ = module.configure_optimizers()
    with set_exploration_type(ExplorationType.RANDOM), torch.no_grad():
        batch = env.rollout(32, actor, break_when_any_done=False)
    module.compute_advantages(batch)
    return module, optimizer, batch


def parameters(module):
    return [p.detach().clone() for p in module.parameters()]


def test_update_changes_weights_and_reports_debug_variables():
    module, optimizer, batch = module_and_batch("ppo.num_epochs=2", "ppo.num_minibatches=4")
    before = parameters(module)
    stats = module.update(batch, optimizer)
    assert any(not torch.equal(a, b) for a, b in zip(before, parameters(module)))
    for key in ("policy_loss", "value_loss", "entropy", "approx_kl", "old_approx_kl", "clip_fraction", "grad_norm"):
        assert key in stats and stats[key] == stats[key], key  # present and not NaN
    assert stats["epochs_run"] == 2


def test_global_grad_norm_is_clipped():
    module, optimizer, batch = module_and_batch("ppo.max_grad_norm=1e-3", "ppo.num_epochs=1", "ppo.num_minibatches=1")
    seen = []
    original = optimizer.step

    def step_and_record(*args, **kwargs):
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        seen.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())
        return original(*args, **kwargs)

    optimizer.step = step_and_record
    stats = module.update(batch, optimizer)
    assert stats["grad_norm"] > 1e-3  # the norm measured before clipping
    assert seen and seen[0] == pytest.approx(1e-3, rel=1e-3)  # what the optimizer applied


def test_target_kl_stops_the_epoch_loop():
    module, optimizer, batch = module_and_batch("ppo.num_epochs=10", "ppo.target_kl=1e-9", "ppo.lr=1e-2")
    assert module.update(batch, optimizer)["epochs_run"] < 10


def test_non_finite_updates_are_skipped_then_stop_the_run():
    module, optimizer, batch = module_and_batch("ppo.max_bad_updates=2", "ppo.num_epochs=1", "ppo.num_minibatches=2")
    batch["observation"][0, 0, 0] = float("nan")  # poisons one of the two mini-batches
    before = parameters(module)
    stats = module.update(batch, optimizer)
    assert stats["skipped_updates"] == 1
    assert all(torch.isfinite(p).all() for p in parameters(module))
    assert any(not torch.equal(a, b) for a, b in zip(before, parameters(module)))  # the clean one applied
    batch["observation"][:] = float("nan")
    with pytest.raises(NonFiniteUpdateError, match="2 consecutive"):
        module.update(batch, optimizer)
    assert all(torch.isfinite(p).all() for p in parameters(module))


def test_kl_adaptive_learning_rate_follows_the_measured_kl(monkeypatch):
    from gr00t_torchrl.config import ConfigError

    module, optimizer, batch = module_and_batch("ppo.anneal_lr=false", "ppo.desired_kl=0.01", "ppo.lr=1e-3")
    measured = {"kl": 0.0}
    monkeypatch.setattr(module, "policy_kl", lambda minibatch: torch.tensor(measured["kl"]))

    def adapt(kl: float) -> None:
        measured["kl"] = kl
        module._adapt_lr(optimizer, batch)

    adapt(0.001)  # far below the target: faster
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1.5e-3)
    adapt(0.05)  # far above: slower
    adapt(0.05)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 / 1.5)
    adapt(0.01)  # on target: unchanged
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 / 1.5)
    for _ in range(40):
        adapt(0.0001)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-2)  # rsl_rl's bounds
    assert module.lr_factor(5) == pytest.approx(10.0)  # the per-iteration scheduler keeps the adapted LR
    assert float(module.state_dict()["adaptive_lr_scale"]) == pytest.approx(10.0)  # checkpointed
    with pytest.raises(ConfigError, match="desired_kl.*anneal_lr"):
        tiny_config("ppo.desired_kl=0.01")


def test_adaptive_lr_measures_the_exact_gaussian_kl_as_rsl_rl_does():
    module, optimizer, batch = module_and_batch("ppo.anneal_lr=false", "ppo.desired_kl=0.01", "ppo.num_minibatches=1")
    flat = batch.reshape(-1).select(*module.loss_keys)
    assert float(module.policy_kl(flat)) == pytest.approx(0.0, abs=1e-7)  # at the rollout's own parameters
    with torch.no_grad():
        module.actor.head.log_std.add_(0.3)
        next(p for p in module.actor.head.mean_net.parameters()).add_(0.05)
    old_mu, old_sigma = flat["loc"], flat["scale"]
    mu, sigma = module.actor.head(flat["observation"])
    # rsl_rl's closed form, summed over action dims, averaged over the mini-batch
    by_hand = (torch.log(sigma / old_sigma) + (old_sigma**2 + (old_mu - mu) ** 2) / (2 * sigma**2) - 0.5).sum(-1).mean()
    assert float(module.policy_kl(flat)) == pytest.approx(float(by_hand), rel=1e-5)
    assert float(by_hand) > 0.01  # the change above is visible, so the comparison means something
    # the update adapts the LR from that KL: far above the target, it must fall below the initial LR
    module.update(batch, optimizer)
    assert optimizer.param_groups[0]["lr"] < module.cfg.lr


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_advantage_normalization_modes_act_on_the_advantages(norm):
    module, _, batch = module_and_batch(f"ppo.advantage_norm={norm}")
    raw = module.estimate_advantages(batch.clone()).get("advantage")
    advantage = batch.get("advantage")
    if norm == "none":
        assert torch.equal(advantage, raw)
        assert abs(float(raw.mean())) > 1e-3  # GAE's raw output is not already normalized
    else:
        assert torch.allclose(advantage, (raw - raw.mean()) / (raw.std() + 1e-8))
        assert float(advantage.mean()) == pytest.approx(0.0, abs=1e-5)
        assert float(advantage.std()) == pytest.approx(1.0, abs=1e-4)


def test_an_asymmetric_clip_floors_the_ratio_at_its_low_range_and_keeps_the_value_clip(capsys):
    from gr00t_torchrl.cli import main
    from gr00t_torchrl.verify import Audit

    findings = {f.number: f for f in Audit(tiny_config("ppo.clip_epsilon_low=0.1")).run([8, 9])}
    assert findings[8].status == "ok" and "[1 - 0.1, 1 + 0.2]" in findings[8].evidence  # ratios 1.5 / 0.6 by hand
    assert findings[9].status == "ok"  # the value clip keeps the upper range, 0.2
    module, _, batch = module_and_batch("ppo.clip_epsilon_low=0.1")
    flat = batch.reshape(-1)
    with torch.no_grad():  # every ratio at 0.5 with a negative advantage: the objective is floored at 0.9 * A
        log_prob = module.actor.get_dist(flat.clone()).log_prob(flat["action"])
        flat.set("action_log_prob", log_prob - torch.log(torch.tensor(0.5)))
        flat.set("advantage", -torch.ones_like(flat["advantage"]))
        assert float(module.loss_module(flat)["loss_objective"]) == pytest.approx(0.9, rel=1e-5)
    assert main(["train", "task=pendulum", "ppo.clip_epsilon_low=1.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'ppo.clip_epsilon_low'" in err and "\n" not in err


def test_spo_pulls_negative_advantages_back_and_keeps_the_clip_for_positive_ones(capsys):
    from gr00t_torchrl.cli import main
    from gr00t_torchrl.verify import Audit

    findings = {f.number: f for f in Audit(tiny_config("ppo.negative_advantages=spo")).run([8])}
    assert findings[8].status == "ok" and "SPO" in findings[8].evidence  # ratios 1.5 / 0.6, computed by hand
    module, optimizer, batch = module_and_batch("ppo.negative_advantages=spo", "ppo.clip_epsilon_low=0.1")
    flat = batch.reshape(-1)

    def objective(ratio: float, advantage: float) -> torch.Tensor:
        probe = flat.clone()
        log_prob = module.actor.get_dist(probe.clone()).log_prob(probe["action"])
        probe.set("action_log_prob", (log_prob - torch.log(torch.tensor(ratio))).detach())
        probe.set("advantage", torch.full_like(probe["advantage"], advantage))
        return module.loss_module(probe)["loss_objective"]

    with torch.no_grad():
        # A = -1, r = 0.5: r A - |A| (r - 1)^2 / (2 * 0.1) = -0.5 - 1.25; the clip would have floored it at -0.9
        assert float(objective(0.5, -1.0)) == pytest.approx(1.75, rel=1e-5)
        # A = 1, r = 1.5: PPO's ceiling, 1.2 A
        assert float(objective(1.5, 1.0)) == pytest.approx(-1.2, rel=1e-5)
    # below the floor the clip's gradient is 0; SPO's pulls the ratio back up (the loss falls as log pi rises)
    loss = objective(0.5, -1.0)
    grads = torch.autograd.grad(loss, [p for p in module.actor.parameters() if p.requires_grad], allow_unused=True)
    assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)
    stats = module.update(batch, optimizer)  # the whole update runs with it
    assert stats["policy_loss"] == stats["policy_loss"]
    assert main(["train", "task=pendulum", "ppo.negative_advantages=quadratic"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'ppo.negative_advantages'" in err and "\n" not in err
