"""Atari (details 14-19): ale-py games with the preprocessing, the presets, and what breaks each check."""

from __future__ import annotations

import types

import pytest

pytest.importorskip("ale_py")
pytest.importorskip("cv2")

from gr00t_torchrl.cli import main  # noqa: E402
from gr00t_torchrl.envs import atari  # noqa: E402
from gr00t_torchrl.runner import train  # noqa: E402
from gr00t_torchrl.tasks import resolve_config  # noqa: E402
from gr00t_torchrl.verify import Audit  # noqa: E402
from gr00t_torchrl.verify.checks import pixels  # noqa: E402
from gr00t_torchrl.verify.registry import OK, WRONG  # noqa: E402
from tests.conftest import TINY, merged, tiny_config  # noqa: E402

SMALL = ("task=breakout", "env.num_envs=2", "ppo.num_steps=32", "ppo.num_minibatches=2", "ppo.num_epochs=1",
         "network.encoder.cnn_channels=8,8,8", "network.encoder.image_features=32", "network.encoder.fused_sizes=32")


def always_training_wrappers(monkeypatch):
    original = atari.make_atari
    patched = lambda env_id, train, *args: original(env_id, True, *args)  # noqa: E731
    for module in (atari, pixels):
        monkeypatch.setattr(module, "make_atari", patched)


BREAKERS = {
    14: lambda mp: mp.setattr(atari, "NOOP_MAX", 0),
    15: lambda mp: mp.setattr(atari, "FRAME_SKIP", 2),
    16: always_training_wrappers,
    17: lambda mp: mp.setattr(atari, "has_fire", lambda env: False),
    18: lambda mp: mp.setattr(atari, "SCREEN", 64),
    19: lambda mp: mp.setattr(atari, "np", types.SimpleNamespace(sign=lambda reward: reward)),  # no clip
}


@pytest.mark.parametrize("number", sorted(BREAKERS))
def test_each_atari_check_passes_and_fails_when_its_detail_is_broken(number, monkeypatch):
    healthy = Audit(tiny_config(*SMALL)).run([number])[0]
    assert healthy.status == OK, healthy.evidence
    BREAKERS[number](monkeypatch)
    broken = Audit(tiny_config(*SMALL)).run([number])[0]
    assert broken.status == WRONG and broken.failed, broken.evidence


def test_a_whole_audit_of_the_atari_preset_has_no_missing_or_failed_row():
    findings = Audit(tiny_config(*SMALL)).run()
    assert not [f for f in findings if f.failed]
    assert all(f.status != "missing" for f in findings)


def test_a_few_atari_iterations_train_evaluate_and_keep_frames_uint8(tmp_path):
    run_dir = tmp_path / "run"
    result = train(resolve_config(merged(*TINY, *SMALL, "total_steps=256", "eval_episodes=1",
                                         "env.max_episode_steps=2000", f"run_dir={run_dir}")))
    assert result["env_steps"] == 256 and result["episodes"] == 1
    cfg = resolve_config(["task=pong"])
    assert (cfg.env.num_envs, cfg.ppo.num_steps, cfg.ppo.num_minibatches, cfg.ppo.num_epochs) == (8, 128, 4, 4)
    assert (cfg.ppo.lr, cfg.ppo.clip_epsilon, cfg.ppo.entropy_coeff, cfg.env.frame_stack) == (2.5e-4, 0.1, 0.01, 4)


def test_atari_without_ale_py_says_how_to_install_it(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ale_py" else real(name, *a))
    assert main(["train", "task=breakout", "total_steps=64"]) == 2
    assert "pip install -e '.[atari]'" in capsys.readouterr().err
