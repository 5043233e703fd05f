"""The flow-matching action head trained by FPO: sampling, the ratio, the loss path, settings."""

from __future__ import annotations

import json
import math

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import ExplorationType, set_exploration_type

from gr00t_torchrl.cli import main
from gr00t_torchrl.modules.flow import FLOW_CHAIN, FPO_NOISE, FPO_T, FlowActor, cfm_loss, chain_log_prob, pair_losses
from gr00t_torchrl.pipeline import build_pipeline, make_collector, make_fabric
from gr00t_torchrl.tasks import resolve_config
from gr00t_torchrl.verify import Audit
from tests.conftest import TINY, merged, tiny_config

FLOW = ("task=pendulum", "network.head=flow", "network.flow_samples=4")


def pipeline_and_batch(*words: str):
    """A tiny flow pipeline with these settings, and one batch its collector gathered."""
    cfg = resolve_config(merged(*TINY, *FLOW, *words))
    pipeline = build_pipeline(cfg, make_fabric(cfg))
    collector = make_collector(pipeline)
    batch = next(iter(collector)).clone()
    collector.shutdown()
    return pipeline, batch


def test_sampling_takes_k_euler_steps_and_evaluation_samples_or_starts_from_zero_noise():
    actor = FlowActor(3, 2, [16], "tanh", steps=3, samples=5, eval_noise="zero")
    calls = []
    actor.net.register_forward_hook(lambda module, args, out: calls.append(args[2].clone()))
    obs = torch.randn(6, 3)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        first = actor(TensorDict(observation=obs, batch_size=[6]))["action"]
        second = actor(TensorDict(observation=obs, batch_size=[6]))["action"]
        assert torch.equal(first, second) and first.shape == (6, 2)
        assert "fpo_t" not in actor(TensorDict(observation=obs, batch_size=[6])).keys()
        actor.eval_noise = "sample"  # GR00T's inference: fresh noise, so a multimodal policy keeps its modes
        third = actor(TensorDict(observation=obs, batch_size=[6]))["action"]
    assert not torch.allclose(first, third)
    assert torch.allclose(torch.stack([t[0] for t in calls[:3]]), torch.tensor([0.0, 1 / 3, 2 / 3]))  # t = k / K, K = 3
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        td = actor(TensorDict(observation=obs, batch_size=[6]))
    assert td[FPO_T].shape == (6, 5) and td[FPO_NOISE].shape == (6, 5, 2)
    assert bool(((td[FPO_T] >= 0) & (td[FPO_T] < 1)).all())


def test_the_fpo_log_prob_is_minus_the_conditional_flow_matching_loss():
    actor = FlowActor(3, 2, [16], "tanh", samples=4)
    obs, action = torch.randn(5, 3), torch.randn(5, 2)
    t, noise = torch.rand(5, 4), torch.randn(5, 4, 2)
    by_hand = torch.zeros(5)
    for i in range(4):  # x_t = (1 - t) e + t a, target a - e, squared error averaged over dims, then over pairs
        x_t = (1 - t[:, i:i + 1]) * noise[:, i] + t[:, i:i + 1] * action
        by_hand += (actor.net(obs, x_t, t[:, i]) - (action - noise[:, i])).square().mean(-1) / 4
    assert torch.allclose(cfm_loss(actor.net, obs, action, t, noise), by_hand, atol=1e-6)
    dist = actor.get_dist(TensorDict({"observation": obs, FPO_T: t, FPO_NOISE: noise}, batch_size=[5]))
    log_prob = dist.log_prob(action)
    assert torch.allclose(log_prob, -by_hand, atol=1e-6)
    log_prob.sum().backward()
    grads = [p.grad for p in actor.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_the_ratio_is_exactly_one_at_the_collection_parameters_and_moves_after_an_update():
    pipeline, batch = pipeline_and_batch()
    module = pipeline.module
    flat = batch.reshape(-1)
    with torch.no_grad():
        before = module.actor.get_dist(flat.clone()).log_prob(flat["action"])
    assert torch.equal(before, flat["action_log_prob"])  # exp(L_old - L_new) = 1 before any step
    stats = module.update(module.compute_advantages(batch), pipeline.optimizer)
    assert "entropy" not in stats and stats["clip_fraction"] >= 0
    with torch.no_grad():
        after = module.actor.get_dist(flat.clone()).log_prob(flat["action"])
    assert not torch.allclose(after, before)


def test_a_whole_audit_of_the_flow_head_has_no_failure():
    findings = {f.number: f for f in Audit(tiny_config(*FLOW)).run()}
    assert not [f for f in findings.values() if f.failed]
    assert all(findings[n].status == "not applicable" for n in (23, 24, 25))
    assert findings[27].status == "ok" and "stored log-probs are those of the stored actions: True" in findings[27].evidence


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_flow_policy_exports_its_euler_steps_unrolled_with_a_noise_input(tmp_path, fmt):
    from tests.test_export import loaded, runner_for, trained

    run_dir = trained(tmp_path, *FLOW, "network.flow_init_noise=0.5")
    assert main(["export", f"run_dir={run_dir}", f"format={fmt}"]) == 0
    info = json.loads((run_dir / "export" / "policy.json").read_text())
    assert [i["name"] for i in info["inputs"]] == ["observation", "noise"] and "Euler steps" in info["flow"]
    exported = runner_for(run_dir / "export" / info["file"])
    _, pipeline = loaded(run_dir)
    norm, actor = pipeline.obs_norm, pipeline.module.actor
    torch.manual_seed(0)
    raw = torch.randn(64, 3) * torch.tensor([1.0, 1.0, 4.0])
    for noise in (torch.zeros(64, 1), torch.randn(64, 1)):  # the mean action, and sampled ones
        with torch.no_grad():  # the exported input is N(0, I); the head's x_0 is N(0, 0.5^2)
            reference = actor.integrate(norm.normalize(0, raw), 0.5 * noise).clamp(-2.0, 2.0)
        assert torch.allclose(exported({"observation": raw, "noise": noise}), reference, atol=1e-5, rtol=0)


def test_flow_settings_are_checked(capsys, tmp_path):
    assert main(["train", *FLOW, "ppo.entropy_coeff=0.01"]) == 2
    assert main(["train", "task=cartpole", "network.head=flow", f"run_dir={tmp_path / 'r'}"]) == 2
    assert main(["train", *FLOW, "network.flow_steps=0"]) == 2
    err = capsys.readouterr().err
    assert "no closed-form entropy" in err and "continuous (Box) action space" in err and "flow_steps" in err


def test_the_noisy_euler_chain_log_prob_is_the_sum_of_its_gaussian_steps():
    torch.manual_seed(0)
    actor = FlowActor(3, 2, [16], "tanh", steps=3, ratio="chain", noise_std=(0.05, 0.3))
    obs = torch.randn(4, 3)
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        td = actor(TensorDict(observation=obs, batch_size=[4]))
    chain = td[FLOW_CHAIN]
    assert chain.shape == (4, 4, 2) and torch.equal(td["action"], chain[:, -1])
    by_hand = torch.zeros(4)
    for row in range(4):  # log N(x_0; 0, I) + sum_k log N(x_{k+1}; x_k + v_k / K, sigma_k^2), written out
        x0 = chain[row, 0]
        by_hand[row] = (-0.5 * x0.square() - 0.5 * math.log(2 * math.pi)).sum()
        for k in range(3):
            x, t = chain[row, k], torch.tensor(k / 3)
            mean = x + actor.net(obs[row], x, t) / 3
            std = actor.noise_net(obs[row], x, t)
            assert bool(((std >= 0.05 - 1e-6) & (std <= 0.3 + 1e-6)).all())
            z = (chain[row, k + 1] - mean) / std
            by_hand[row] += (-0.5 * z.square() - std.log() - 0.5 * math.log(2 * math.pi)).sum()
    assert torch.allclose(td["action_log_prob"], by_hand, atol=1e-5)
    log_prob = actor.get_dist(td).log_prob(td["action"])
    log_prob.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in actor.parameters())
    with set_exploration_type(ExplorationType.DETERMINISTIC):  # evaluation injects no step noise
        actor.eval_noise = "zero"
        assert torch.equal(actor(TensorDict(observation=obs, batch_size=[4]))["action"],
                           actor.integrate(obs, torch.zeros(4, 2)))


def test_the_chain_ratio_is_exactly_one_at_the_collection_parameters():
    pipeline, batch = pipeline_and_batch("network.flow_ratio=chain")
    flat = batch.reshape(-1)
    with torch.no_grad():
        again = pipeline.module.actor.get_dist(flat.clone()).log_prob(flat["action"])
    assert torch.equal(again, flat["action_log_prob"])
    stats = pipeline.module.update(pipeline.module.compute_advantages(batch), pipeline.optimizer)
    assert "entropy" not in stats and torch.isfinite(torch.tensor(stats["policy_loss"]))
    assert main(["train", *FLOW, "network.flow_ratio=chain", "network.flow_noise_std=[0.3,0.1]"]) == 2


def test_verify_flow_rows_pass_and_each_breaks_with_its_detail(monkeypatch):
    from gr00t_torchrl.modules import flow
    from gr00t_torchrl.verify import NA, OK, WRONG

    fpo = {f.number: f for f in Audit(tiny_config(*FLOW)).run([38, 39, 40])}
    assert fpo[38].status == OK and fpo[39].status == OK and fpo[40].status == NA, fpo
    chain = {f.number: f for f in Audit(tiny_config(*FLOW, "network.flow_ratio=chain")).run([38, 39, 40])}
    assert all(f.status == OK for f in chain.values()), chain
    gaussian = Audit(tiny_config()).run([38, 39, 40])
    assert all(f.status == NA for f in gaussian)

    # 38: FPO pairs redrawn in the update instead of the stored ones: the ratio is not 1 at the old weights
    original = flow.FlowRatio.log_prob
    monkeypatch.setattr(flow.FlowRatio, "log_prob", lambda self, a: original(self, a) + 0.01 * torch.randn(a.shape[:-1]))
    assert Audit(tiny_config(*FLOW)).run([38])[0].status == WRONG
    monkeypatch.undo()
    # 39: one Euler step fewer than configured
    audit = Audit(tiny_config(*FLOW))
    audit.pipeline.module.actor.steps -= 1
    assert audit.run([39])[0].status == WRONG
    # 40: a chain log-prob off by a constant (a dropped normalizing term) on collection and update alike
    original_chain = flow.chain_log_prob
    monkeypatch.setattr(flow, "chain_log_prob", lambda *args: original_chain(*args) + 1.0)
    assert Audit(tiny_config(*FLOW, "network.flow_ratio=chain")).run([40])[0].status == WRONG


@pytest.mark.parametrize("ratio", ["fpo", "chain"])
def test_the_flow_head_on_the_multimodal_encoder_trains_audits_and_exports(tmp_path, ratio):
    from tests.test_export import loaded, runner_for
    from tests.test_verify import MULTIMODAL
    from gr00t_torchrl.runner import train

    words = (*MULTIMODAL, "network.head=flow", f"network.flow_ratio={ratio}")
    findings = {f.number: f for f in Audit(tiny_config(*words)).run()}
    assert not [f for f in findings.values() if f.failed], findings
    assert findings[21].status == "ok" and findings[38].status == "ok"  # one shared encoder; ratio 1
    run_dir = tmp_path / "run"
    train(resolve_config(merged(*TINY, *words, "total_steps=128", "eval_episodes=2", f"run_dir={run_dir}")))
    _, pipeline = loaded(run_dir)
    actor = pipeline.module.actor
    encoder_params = {id(p) for p in actor.encoder.parameters()}
    assert encoder_params <= {id(p) for p in pipeline.module.critic.parameters()}  # the critic shares it
    assert main(["export", f"run_dir={run_dir}"]) == 0
    info = json.loads((run_dir / "export" / "policy.json").read_text())
    names = [i["name"] for i in info["inputs"]]
    assert names[-1] == "noise" and len(names) >= 3  # image, proprioception, instruction ..., noise
    exported = runner_for(run_dir / "export" / info["file"])
    batch = next(iter(make_collector(pipeline))).reshape(-1)[:8]
    noise = torch.randn(8, info["outputs"][0]["shape"][1])
    with torch.no_grad():
        features = actor.encoder(batch.select(*actor.in_keys).clone()).get("features")
        reference = actor.integrate(features, noise)
    low, high = torch.tensor(info["outputs"][0]["low"]), torch.tensor(info["outputs"][0]["high"])
    inputs = {name: batch.get(name) for name in names[:-1]}
    norm = pipeline.obs_norm
    for index, key in enumerate(norm.in_keys):  # the exported policy takes raw readings: undo the env's normalization
        if key in inputs:
            stats = norm.stats[index]
            inputs[key] = (inputs[key] * stats.std(norm.eps) + stats.mean).float()
    # 1e-3: the raw readings here are rebuilt from normalized ones in float32, then normalized again inside
    assert torch.allclose(exported({**inputs, "noise": noise}), torch.maximum(torch.minimum(reference, high), low), atol=1e-3)


# ----------------------------------------------------------------------------- FPO's reference options


def test_the_output_scale_multiplies_the_velocity():
    torch.manual_seed(0)
    plain = FlowActor(3, 2, [16], "tanh")
    scaled = FlowActor(3, 2, [16], "tanh", output_scale=0.25)
    scaled.load_state_dict(plain.state_dict())
    obs, x, t = torch.randn(5, 3), torch.randn(5, 2), torch.rand(5)
    assert torch.allclose(scaled.net(obs, x, t), 0.25 * plain.net(obs, x, t), atol=1e-7)


def test_the_noise_weighted_loss_is_the_error_of_the_recovered_noise():
    torch.manual_seed(0)
    actor = FlowActor(3, 2, [16], "tanh", samples=4, loss_weight="noise")
    obs, action = torch.randn(5, 3), torch.randn(5, 2)
    t, noise = torch.rand(5, 4), torch.randn(5, 4, 2)
    by_hand = torch.zeros(5, 4)
    for i in range(4):  # e_hat = x_t - t v(x_t, t): the noise the velocity implies; its squared error, mean over dims
        x_t = (1 - t[:, i:i + 1]) * noise[:, i] + t[:, i:i + 1] * action
        recovered = x_t - t[:, i:i + 1] * actor.net(obs, x_t, t[:, i])
        by_hand[:, i] = (recovered - noise[:, i]).square().mean(-1)
    assert torch.allclose(pair_losses(actor.net, obs, action, t, noise, "noise"), by_hand, atol=1e-6)
    velocity_error = pair_losses(actor.net, obs, action, t, noise)
    assert torch.allclose(by_hand, t.square() * velocity_error, atol=1e-6)  # = t^2 times the velocity's error
    assert torch.allclose(cfm_loss(actor.net, obs, action, t, noise, "noise"), by_hand.mean(-1), atol=1e-6)
    assert torch.allclose(actor.get_dist(TensorDict({"observation": obs, FPO_T: t, FPO_NOISE: noise}, batch_size=[5]))
                          .log_prob(action), -by_hand.mean(-1), atol=1e-6)


def test_grid_time_sampling_stores_the_euler_steps_times():
    actor = FlowActor(3, 2, [16], "tanh", steps=4, samples=64, time_sampling="grid")
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        td = actor(TensorDict(observation=torch.randn(32, 3), batch_size=[32]))
    assert set(td[FPO_T].unique().tolist()) == {0.0, 0.25, 0.5, 0.75}


@pytest.mark.parametrize("clip", [None, 3.0])
def test_separate_pair_ratios_are_exactly_one_at_collection_and_bounded_after(clip):
    torch.manual_seed(0)
    actor = FlowActor(3, 2, [16], "tanh", samples=5, pairs="separate", log_ratio_clip=clip, loss_weight="noise",
                      time_sampling="grid", output_scale=0.25, action_noise=0.3)
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        td = actor(TensorDict(observation=torch.randn(6, 3), batch_size=[6]))
    assert td["action_log_prob"].shape == (6, 5)  # one per pair
    with torch.no_grad():
        again = actor.get_dist(td).log_prob(td["action"])
    assert torch.equal(again, td["action_log_prob"])  # each pair's ratio exp(L_old - L_new) is exactly 1
    with torch.no_grad():
        for p in actor.parameters():
            p.add_(torch.randn_like(p) * 3.0)
    moved = actor.get_dist(td).log_prob(td["action"]) - td["action_log_prob"]
    assert moved.abs().max() > 0
    if clip is not None:
        assert moved.abs().max() <= clip + 1e-5


def test_clip_ppo_loss_averages_the_clipped_objective_over_separate_pairs():
    from torchrl.objectives import ClipPPOLoss

    from gr00t_torchrl.modules.actor_critic import Critic

    torch.manual_seed(0)
    actor = FlowActor(3, 1, [16], "tanh", samples=4, pairs="separate")
    critic = Critic(3, [16], "tanh", True)
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        td = actor(TensorDict(observation=torch.randn(8, 3), batch_size=[8]))
    td["advantage"] = torch.randn(8, 1)
    td["value_target"] = torch.randn(8, 1)
    with torch.no_grad():
        for p in actor.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    loss = ClipPPOLoss(actor, critic, clip_epsilon=0.2, entropy_bonus=False, functional=False)
    objective = loss(td)["loss_objective"]
    with torch.no_grad():
        ratio = (actor.get_dist(td).log_prob(td["action"]) - td["action_log_prob"]).exp()  # [8, 4]
        advantage = td["advantage"]  # [8, 1]: broadcast over the pairs
        by_hand = -torch.minimum(ratio * advantage, ratio.clamp(0.8, 1.2) * advantage).mean()
    assert torch.allclose(objective, by_hand, atol=1e-6)


def test_action_noise_perturbs_collected_actions_only():
    torch.manual_seed(0)
    actor = FlowActor(3, 1, [16], "tanh", samples=2, action_noise=0.5, eval_noise="zero")
    obs = torch.randn(2000, 3)
    torch.manual_seed(1)
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        noisy = actor(TensorDict(observation=obs, batch_size=[2000]))["action"]
    torch.manual_seed(1)
    with torch.no_grad():
        clean = actor.integrate(obs, torch.randn(2000, 1))  # the same first draw: the flow's own action
    assert abs(float((noisy - clean).std()) - 0.5) < 0.03
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        assert torch.equal(actor(TensorDict(observation=obs, batch_size=[2000]))["action"],
                           actor.integrate(obs, torch.zeros(2000, 1)))


def test_the_initial_noise_scales_sampling_the_pairs_and_the_chains_start():
    torch.manual_seed(0)
    actor = FlowActor(3, 2, [16], "tanh", samples=4, init_noise=0.3)
    obs = torch.randn(4000, 3)
    torch.manual_seed(1)
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        td = actor(TensorDict(observation=obs, batch_size=[4000]))
    torch.manual_seed(1)
    with torch.no_grad():
        assert torch.equal(td["action"], actor.integrate(obs, 0.3 * torch.randn(4000, 2)))  # x_0 ~ N(0, 0.3^2)
    assert abs(float(td[FPO_NOISE].std()) - 0.3) < 0.01
    chain_actor = FlowActor(3, 2, [16], "tanh", steps=2, ratio="chain", init_noise=0.3)
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        chain = chain_actor(TensorDict(observation=obs[:4], batch_size=[4]))
    start = chain[FLOW_CHAIN][:, 0]
    unit_start = chain_log_prob(chain_actor.net, chain_actor.noise_net, obs[:4], chain[FLOW_CHAIN])
    # the start's density is N(0, 0.3^2): the log-prob differs from a unit start by exactly that term
    shift = (-0.5 * (start / 0.3).square() - math.log(0.3) + 0.5 * start.square()).sum(-1)
    assert torch.allclose(chain["action_log_prob"], unit_start + shift, atol=1e-5)


def test_clipped_actions_are_stored_inside_the_bounds_with_the_ratio_one_there(capsys, monkeypatch):
    torch.manual_seed(0)
    bounds = (torch.tensor([-0.1, -0.2]), torch.tensor([0.1, 0.2]))
    actor = FlowActor(3, 2, [16], "tanh", samples=4, action_noise=1.0, bounds=bounds, pairs="separate")
    obs = torch.randn(500, 3)
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        td = actor(TensorDict(observation=obs, batch_size=[500]))
    action = td["action"]
    assert bool(((action >= bounds[0]) & (action <= bounds[1])).all())
    assert bool((action == bounds[1]).any() and (action == bounds[0]).any())  # noise 1 crosses them often
    with torch.no_grad():  # the stored log-prob is the clipped action's: ratio 1 at collection
        assert torch.equal(actor.get_dist(td).log_prob(action), td["action_log_prob"])
    cfg = resolve_config(merged(*TINY, *FLOW, "network.flow_clip_actions=true"))
    low, high = build_pipeline(cfg, make_fabric(cfg)).module.actor.bounds
    assert low.tolist() == [-2.0] and high.tolist() == [2.0]  # Pendulum's torque bounds
    monkeypatch.setattr("gr00t_torchrl.pipeline.action_bounds", lambda env: None)
    assert main(["train", *FLOW, "network.flow_clip_actions=true"]) == 2
    err = capsys.readouterr().err.strip()
    assert "network.flow_clip_actions needs an env whose action space has finite bounds" in err and "\n" not in err


def test_the_kl_adaptive_lr_measures_the_flow_by_its_ratio_estimate():
    pipeline, batch = pipeline_and_batch("network.flow_pair_ratios=separate", "ppo.anneal_lr=false", "ppo.desired_kl=0.01")
    module = pipeline.module
    flat = module.compute_advantages(batch).reshape(-1)
    minibatch = flat.select(*module.actor.in_keys, *module.dist_keys)
    assert float(module.policy_kl(minibatch)) == 0.0  # every ratio is exactly 1 at the rollout's parameters
    with torch.no_grad():
        module.actor.net.mlp[-1].bias.add_(0.3)  # every velocity moves by 0.3
        log_ratio = module.actor.get_dist(flat).log_prob(flat["action"]) - flat["action_log_prob"]
    by_hand = (log_ratio.exp() - 1 - log_ratio).mean()  # the k3 estimate of KL(old || new) over the stored pairs
    assert float(by_hand) > 1e-3 and float(module.policy_kl(minibatch)) == pytest.approx(float(by_hand), rel=1e-6)
    lr = pipeline.optimizer.param_groups[0]["lr"]
    module.update(flat.reshape(batch.shape), pipeline.optimizer)
    assert pipeline.optimizer.param_groups[0]["lr"] != lr and module.lr_factor(1) != 1.0  # the LR adapted


def test_fpo_options_train_and_are_checked(capsys):
    words = (*FLOW, "network.flow_pair_ratios=separate", "network.flow_log_ratio_clip=3", "network.flow_loss_weight=noise",
             "network.flow_time_sampling=grid", "network.flow_output_scale=0.25", "network.flow_action_noise=0.1")
    cfg = resolve_config(merged(*TINY, *words))
    pipeline = build_pipeline(cfg, make_fabric(cfg))
    actor = pipeline.module.actor
    assert (actor.pairs, actor.log_ratio_clip, actor.loss_weight, actor.time_sampling, actor.net.output_scale,
            actor.action_noise) == ("separate", 3.0, "noise", "grid", 0.25, 0.1)
    collector = make_collector(pipeline)
    batch = next(iter(collector)).clone()
    collector.shutdown()
    assert batch["action_log_prob"].shape[-1] == 4
    stats = pipeline.module.update(pipeline.module.compute_advantages(batch), pipeline.optimizer)
    assert torch.isfinite(torch.tensor(stats["policy_loss"])) and stats["clip_fraction"] >= 0
    assert {f.number: f for f in Audit(tiny_config(*words)).run([38])}[38].status == "ok"
    capsys.readouterr()
    bad_values = {"flow_output_scale": "0", "flow_loss_weight": "eps", "flow_time_sampling": "random",
                  "flow_pair_ratios": "each", "flow_log_ratio_clip": "-1", "flow_action_noise": "-0.1",
                  "flow_init_noise": "0", "flow_clip_actions": "maybe"}
    for key, value in bad_values.items():  # each refused by name, in one line
        assert main(["train", *FLOW, f"network.{key}={value}"]) == 2
        err = capsys.readouterr().err.strip()
        assert f"'network.{key}'" in err and "\n" not in err, err
    for fpo_only in ("network.flow_pair_ratios=separate", "network.flow_clip_actions=true"):
        assert main(["train", *FLOW, "network.flow_ratio=chain", fpo_only]) == 2
        err = capsys.readouterr().err.strip()
        assert "applies to network.flow_ratio=fpo only" in err and "\n" not in err


def test_the_action_spread_is_the_std_over_noise_draws_and_each_update_logs_it():
    pipeline, batch = pipeline_and_batch("network.flow_init_noise=0.5")
    module = pipeline.module
    module.compute_advantages(batch)
    flat = batch.reshape(-1)
    with torch.no_grad():  # a zero velocity field: each action is its starting noise, whose std is init_noise
        module.actor.net.mlp[-1].weight.zero_()
        module.actor.net.mlp[-1].bias.zero_()
    rng = torch.get_rng_state()
    assert float(module.actor.action_spread(flat[:64])) == pytest.approx(0.5, rel=0.05)
    assert torch.equal(rng, torch.get_rng_state())  # its own generator: training's randomness is untouched
    stats = module.update(batch, pipeline.optimizer)  # logged after the epochs, on the batch's first 64 states
    assert stats["action_spread"] == pytest.approx(float(module.actor.action_spread(flat[:64])), rel=1e-6)
    assert stats["action_spread"] != pytest.approx(0.5, rel=1e-3)  # the update moved the field


def test_verify_audits_pair_ratios_spo_and_stored_clipped_actions():
    # the halfcheetah_flow preset's kind of flow head: one ratio per pair, SPO, clipped actions stored by design
    cfg = tiny_config(*FLOW, "network.flow_pair_ratios=separate", "network.flow_log_ratio_clip=3",
                      "network.flow_clip_actions=true", "network.flow_action_noise=1.0", "ppo.negative_advantages=spo",
                      "ppo.clip_epsilon_low=0.05")
    findings = {f.number: f for f in Audit(cfg).run([8, 27])}
    assert findings[8].status == "ok" and "SPO" in findings[8].evidence  # ratios 1.5 / 0.6 on every pair of a row
    assert findings[27].status == "off by config" and "network.flow_clip_actions" in findings[27].evidence
    assert findings[27].evidence.startswith("0 of ")  # none outside the bounds, though noise 1 crosses them
