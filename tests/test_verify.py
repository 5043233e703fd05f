"""`gr00t-ppo verify`: every check passes on the real pipeline and fails on one broken on purpose."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torchrl.modules import TanhNormal

from gr00t_torchrl import ppo_module
from gr00t_torchrl.cli import main
from gr00t_torchrl.envs import find_transform
from gr00t_torchrl.modules.actor_critic import StateIndependentGaussianHead
from gr00t_torchrl.transforms import RunningObservationNorm, RewardScaling
from gr00t_torchrl.verify import NA, OFF, OK, WRONG, Audit
from tests.conftest import TINY, tiny_config


def audit(*overrides: str) -> Audit:
    return Audit(tiny_config(*overrides))


def linears(net: nn.Module) -> list[nn.Linear]:
    return [m for m in net.modules() if isinstance(m, nn.Linear)]


def gaussian_head(a: Audit) -> StateIndependentGaussianHead:
    return next(m for m in a.pipeline.module.actor.modules() if isinstance(m, StateIndependentGaussianHead))


def set_distribution(a: Audit, cls: type) -> None:
    for m in a.pipeline.module.actor.modules():
        if hasattr(m, "distribution_class"):
            m.distribution_class = cls


def clamp_stored_actions(a: Audit) -> None:
    batch = a.raw_batch.clone()
    batch.set("action", batch.get("action").clamp(-2.0, 2.0))  # what a pipeline storing clipped actions holds
    a._raw_batch = batch


def relu_critic(a: Audit) -> None:
    for m in a.pipeline.module.critic.modules():
        if isinstance(m, nn.Sequential):
            for i, child in enumerate(m):
                if isinstance(child, nn.Tanh):
                    m[i] = nn.ReLU()


def no_grad_clip(a: Audit, monkeypatch) -> None:
    clip = a.pipeline.module._clip_gradients
    monkeypatch.setattr(a.pipeline.module, "_clip_gradients", lambda optimizer, max_norm: clip(optimizer, float("inf")))


def state_dependent_std(a: Audit) -> None:
    head = gaussian_head(a)
    head.forward = lambda obs: (head.mean_net(obs), head.log_std.exp() * (1.0 + obs[..., :1].abs()))


# detail number -> (extra settings, a function that breaks exactly what the check checks)
BREAKERS: dict[int, tuple[tuple[str, ...], Callable]] = {
    1: ((), lambda a, mp: setattr(a, "_raw_batch", a.raw_batch[:, :16])),
    2: ((), lambda a, mp: nn.init.kaiming_uniform_(linears(a.pipeline.module.actor)[0].weight)),
    3: ((), lambda a, mp: a.pipeline.optimizer.param_groups[0].update(eps=1e-8)),
    4: ((), lambda a, mp: a.pipeline.scheduler.lr_lambdas.__setitem__(0, lambda k: 1.0)),
    5: ((), lambda a, mp: a.pipeline.module.advantage_module.set_keys(terminated="truncated")),
    6: ((), lambda a, mp: mp.setattr(torch, "randperm", lambda n, **kw: torch.arange(n))),
    7: ((), lambda a, mp: mp.setattr(a.pipeline.module, "_global_mean_std", lambda x: (torch.zeros(()), torch.ones(())))),
    8: ((), lambda a, mp: a.pipeline.module.loss_module.clip_epsilon.fill_(10.0)),
    9: ((), lambda a, mp: setattr(a.pipeline.module.loss_module, "clip_value", None)),
    10: ((), lambda a, mp: a.pipeline.module.loss_module.entropy_coeff.fill_(0.5)),
    11: (("ppo.max_grad_norm=0.001",), no_grad_clip),
    12: ((), lambda a, mp: mp.setattr(ppo_module, "debug_variables", lambda losses, vf, aux: {"approx_kl": torch.zeros(())})),
    13: ((), lambda a, mp: setattr(linears(a.pipeline.module.critic)[0], "weight", linears(a.pipeline.module.actor)[0].weight)),
    23: ((), lambda a, mp: set_distribution(a, TanhNormal)),
    24: ((), lambda a, mp: state_dependent_std(a)),
    25: ((), lambda a, mp: set_distribution(a, torch.distributions.Normal)),
    26: (("network.hidden_sizes=256,256", "network.activation=tanh"), lambda a, mp: relu_critic(a)),
    27: ((), lambda a, mp: clamp_stored_actions(a)),
    28: ((), lambda a, mp: find_transform(a.pipeline.env, RunningObservationNorm).freeze()),
    29: ((), lambda a, mp: setattr(find_transform(a.pipeline.env, RunningObservationNorm), "clip", float("inf"))),
    30: ((), lambda a, mp: setattr(find_transform(a.pipeline.env, RewardScaling), "gamma", 0.0)),
    31: ((), lambda a, mp: setattr(find_transform(a.pipeline.env, RewardScaling), "clip", float("inf"))),
}


@pytest.mark.parametrize("number", sorted(BREAKERS))
def test_each_check_passes_on_the_pipeline_and_fails_when_its_detail_is_broken(number, monkeypatch):
    settings, breaker = BREAKERS[number]
    healthy = audit(*settings).run([number])[0]
    assert healthy.status == OK, healthy.evidence
    broken_audit = audit(*settings)
    breaker(broken_audit, monkeypatch)
    broken = broken_audit.run([number])[0]
    assert broken.status == WRONG, broken.evidence
    assert broken.failed


def test_the_multidiscrete_check_and_what_breaks_it(monkeypatch):
    from gr00t_torchrl.modules import IndependentCategoricals

    healthy = Audit(tiny_config("task=PointReachMultiDiscrete-v0")).run([37])[0]
    assert healthy.status == OK and "2 dims of [3, 3] choices" in healthy.evidence, healthy.evidence
    original = IndependentCategoricals.log_prob
    monkeypatch.setattr(IndependentCategoricals, "log_prob", lambda self, a: original(self, a) / len(self.nvec))  # a mean
    broken = Audit(tiny_config("task=PointReachMultiDiscrete-v0")).run([37])[0]
    assert broken.status == WRONG and broken.failed, broken.evidence


def test_a_whole_audit_of_each_action_space_has_no_failure():
    for task in ("pendulum", "cartpole", "PointReachMultiDiscrete-v0"):
        findings = Audit(tiny_config(f"task={task}")).run()
        assert [f.number for f in findings] == list(range(1, 41))
        assert not [f for f in findings if f.failed], task
        assert all(f.status == NA for f in findings[37:])  # the flow head's own rows
        statuses = {f.number: f.status for f in findings}
        if task != "pendulum":
            assert all(statuses[n] == NA for n in (23, 24, 25, 27))
        assert statuses[37] == (OK if task == "PointReachMultiDiscrete-v0" else NA)
        assert all(statuses[n] == NA for n in (*range(14, 20), *range(32, 37)))  # not Atari, not recurrent
        assert "missing" not in statuses.values()
        assert all(statuses[n] == NA for n in (20, 21, 22))  # no images: the pixel details do not apply


# a small multimodal pipeline: images, proprioception and an instruction
MULTIMODAL = ("task=Gr00t-Reach-Language-v0", "ppo.num_steps=16", "ppo.num_minibatches=2", "ppo.num_epochs=1",
              "env.num_envs=4", "network.encoder.cnn_channels=8,8", "network.encoder.cnn_kernels=4,3",
              "network.encoder.cnn_strides=2,2", "network.encoder.image_features=32",
              "network.encoder.fused_sizes=32", "network.hidden_sizes=16")


def scaling_skipped(monkeypatch) -> None:
    from gr00t_torchrl.modules.multimodal import ImageEncoder

    original = ImageEncoder.scaled
    monkeypatch.setattr(ImageEncoder, "scaled", lambda self, image: original(self, image) * 255.0)  # raw pixel values


def critic_with_its_own_trunk(a) -> None:
    import copy

    critic = a.pipeline.module.critic
    critic.module[0] = copy.deepcopy(critic.module[0])


def frames_not_shifted(monkeypatch) -> None:
    from torchrl.envs import CatFrames

    original = CatFrames._call

    def newest_everywhere(self, td, _reset=None):  # every slot of the stack holds the newest frame
        td = original(self, td, _reset=_reset)
        stack = td.get(self.out_keys[0])
        newest = stack[:, -(stack.shape[-3] // self.N):]
        return td.set(self.out_keys[0], newest.repeat(1, self.N, 1, 1))

    monkeypatch.setattr(CatFrames, "_call", newest_everywhere)


@pytest.mark.parametrize(("number", "breaker"), [
    (20, lambda a, mp: None),  # frames_not_shifted, below: the transform is broken before the env is built
    (21, lambda a, mp: critic_with_its_own_trunk(a)),
    (22, lambda a, mp: scaling_skipped(mp)),
    (13, lambda a, mp: critic_with_its_own_trunk(a)),
])
def test_the_image_details_on_a_multimodal_task_and_what_breaks_them(number, breaker, monkeypatch):
    stacked = ("env.frame_stack=3",) if number == 20 else ()
    healthy = Audit(tiny_config(*MULTIMODAL, *stacked)).run([number])[0]
    assert healthy.status == OK, healthy.evidence
    if number == 20:
        frames_not_shifted(monkeypatch)
    broken_audit = Audit(tiny_config(*MULTIMODAL, *stacked))
    breaker(broken_audit, monkeypatch)
    broken = broken_audit.run([number])[0]
    assert broken.status == WRONG, broken.evidence


def test_a_whole_audit_of_the_multimodal_task_has_no_failure():
    findings = {f.number: f for f in Audit(tiny_config(*MULTIMODAL)).run()}
    assert not [f for f in findings.values() if f.failed]
    assert {n: findings[n].status for n in (20, 21, 22)} == {20: OFF, 21: OK, 22: OK}
    stacked = Audit(tiny_config(*MULTIMODAL, "env.frame_stack=2")).run([20])[0]
    assert stacked.status == OK and "2 frames of 3 channels" in stacked.evidence


def test_details_switched_off_by_config_say_so():
    findings = {f.number: f for f in audit(
        "ppo.adam_eps=1e-8", "ppo.advantage_norm=minibatch", "ppo.anneal_lr=false", "ppo.clip_value=false",
        "env.scale_reward=false", "network.orthogonal_init=false",
    ).run([2, 3, 4, 7, 9, 30, 31])}
    assert {n: f.status for n, f in findings.items()} == {n: OFF for n in (2, 3, 4, 7, 9, 30, 31)}
    assert not any(f.failed for f in findings.values())


def test_verify_command_prints_a_table_and_json_and_audits_a_finished_run(tmp_path, capsys):
    assert main(["verify", "task=pendulum", *TINY]) == 0
    table = capsys.readouterr().out
    assert "Adam epsilon" in table and "every detail that applies is right" in table

    run_dir = tmp_path / "run"
    assert main(["train", "task=pendulum", "total_steps=128", f"run_dir={run_dir}", *TINY]) == 0
    capsys.readouterr()
    assert main(["verify", f"run_dir={run_dir}", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and len(report["details"]) == 40
    assert report["details"][2]["status"] == OK and "1e-05" in report["details"][2]["evidence"]


def test_verify_rejects_bad_input_with_exit_code_2(tmp_path, capsys):
    assert main(["verify", "task=NoSuchTask-v0"]) == 2
    assert main(["verify", f"run_dir={tmp_path}"]) == 2
    assert main(["verify", "ppo.bogus=1"]) == 2
    err = capsys.readouterr().err
    assert "NoSuchTask-v0" in err and "config.yaml" in err and "bogus" in err


def test_a_whole_audit_of_a_builtin_batched_task_has_no_failure():
    findings = {f.number: f for f in Audit(tiny_config("task=Gr00t-Arm-Reach-v0", "env.max_episode_steps=8")).run()}
    assert not [f for f in findings.values() if f.failed]
    assert findings[5].status == "ok" and "lost final observation" in findings[5].evidence  # auto-reset time-outs
    assert findings[27].status == "ok" and "saturates" in findings[27].evidence
    assert "critic 13x" in findings[26].evidence  # the asymmetric critic reads the privileged group
