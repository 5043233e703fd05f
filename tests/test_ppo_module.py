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


def test_kl_adaptive_learning_rate_follows_the_measured_kl():
    from tensordict import TensorDict

    from gr00t_torchrl.config import ConfigError

    module, optimizer, batch = module_and_batch("ppo.anneal_lr=false", "ppo.desired_kl=0.01", "ppo.lr=1e-3")

    def losses(kl: float) -> TensorDict:  # k3 estimator: mean_ratio - 1 + kl_approx
        return TensorDict({"mean_ratio": torch.tensor(1.0), "kl_approx": torch.tensor(kl)}, [])

    module._adapt_lr(optimizer, losses(0.001))  # far below the target: faster
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1.5e-3)
    module._adapt_lr(optimizer, losses(0.05))  # far above: slower
    module._adapt_lr(optimizer, losses(0.05))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 / 1.5)
    module._adapt_lr(optimizer, losses(0.01))  # on target: unchanged
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 / 1.5)
    for _ in range(40):
        module._adapt_lr(optimizer, losses(0.0001))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-2)  # rsl_rl's bounds
    assert module.lr_factor(5) == pytest.approx(10.0)  # the per-iteration scheduler keeps the adapted LR
    assert float(module.state_dict()["adaptive_lr_scale"]) == pytest.approx(10.0)  # checkpointed
    stats = module.update(batch, optimizer)  # a real update runs with it
    assert stats["epochs_run"] >= 1
    with pytest.raises(ConfigError, match="desired_kl.*anneal_lr"):
        tiny_config("ppo.desired_kl=0.01")
