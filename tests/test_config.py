"""The typed config: presets, precedence, and clear errors for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from gr00t_torchrl.config import Config, ConfigError, build_dataclass
from gr00t_torchrl.tasks import resolve_config

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "ppo_gr00t.py"


def test_defaults_presets_and_overrides():
    cfg = resolve_config([])
    assert cfg.task == "pendulum" and cfg.env.id == "Pendulum-v1"
    assert cfg.ppo.adam_eps == 1e-5 and cfg.ppo.advantage_norm == "batch" and cfg.ppo.max_grad_norm == 0.5
    assert resolve_config(["task=cartpole"]).env.id == "CartPole-v1"
    assert resolve_config(["task=halfcheetah"]).env.id == "HalfCheetah-v5"
    cfg = resolve_config(["task=pendulum", "ppo.lr=1e-3", "env.num_envs=3", "network.hidden_sizes=32,16", "ppo.target_kl=none"])
    assert cfg.ppo.lr == 1e-3 and cfg.env.num_envs == 3 and cfg.network.hidden_sizes == [32, 16]
    assert cfg.ppo.target_kl is None


def test_any_gymnasium_id_gets_the_defaults_of_its_action_space():
    discrete = resolve_config(["task=Acrobot-v1"])
    assert discrete.env.id == "Acrobot-v1" and discrete.ppo.num_steps == 128 and discrete.ppo.num_epochs == 4
    continuous = resolve_config(["task=MountainCarContinuous-v0"])
    assert continuous.ppo.num_steps == 2048 and continuous.ppo.num_minibatches == 32


def test_config_round_trips_through_yaml(tmp_path):
    cfg = resolve_config(["task=cartpole", "seed=7"])
    cfg.save(tmp_path / "config.yaml")
    again = build_dataclass(Config, yaml.safe_load((tmp_path / "config.yaml").read_text()))
    assert again == cfg


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["ppo.learning_rate=1e-3"], "ppo.learning_rate"),  # unknown key
        (["bogus=1"], "bogus"),
        (["ppo.num_epochs=ten"], "ppo.num_epochs"),  # wrong type
        (["env.normalize_obs=maybe"], "env.normalize_obs"),
        (["ppo.lr=abc"], "ppo.lr"),
        (["ppo.gamma=1.5"], "ppo.gamma"),  # out of range
        (["env.num_envs=0"], "env.num_envs"),
        (["ppo.clip_epsilon=-0.1"], "ppo.clip_epsilon"),
        (["ppo.advantage_norm=sometimes"], "ppo.advantage_norm"),  # not one of the choices
        (["ppo=3"], "ppo"),  # a section given a value
        (["ppo.lr"], "ppo.lr"),  # not key=value
        (["ppo.num_minibatches=100000"], "ppo.num_minibatches"),  # inconsistent with the batch
    ],
)
def test_bad_settings_are_rejected_by_name(argv, named):
    with pytest.raises(ConfigError) as err:
        resolve_config(argv)
    assert named in str(err.value)


def test_unknown_task_names_the_task_and_the_presets():
    with pytest.raises(ConfigError) as err:
        resolve_config(["task=NoSuchTask-v9"])
    assert "NoSuchTask-v9" in str(err.value) and "pendulum" in str(err.value)
    with pytest.raises(ConfigError) as err:
        resolve_config(["task=Isaac-Cartpole-v0"])
    assert "Isaac Lab" in str(err.value)


def test_resume_from_a_directory_without_a_run():
    with pytest.raises(ConfigError, match="config.yaml"):
        resolve_config(["resume=/nonexistent/run"])


@pytest.mark.parametrize("argv", [["ppo.lr=abc"], ["task=NoSuchTask-v9"], ["oops"]])
def test_command_line_errors_exit_2_without_traceback(argv, tmp_path):
    proc = subprocess.run([sys.executable, str(RECIPE), *argv], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ")
    assert not (tmp_path / "runs").exists()  # nothing ran


def test_a_gpu_run_without_a_gpu_stops_with_a_clear_error(tmp_path, monkeypatch, capsys):
    from gr00t_torchrl.cli import train_main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also on a machine that has one
    monkeypatch.chdir(tmp_path)
    assert train_main(["task=Gr00t-Cartpole-v0", "accelerator=cuda", "total_steps=64"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: accelerator=cuda") and "accelerator=cpu" in err and "Gr00t-Cartpole-v0" in err
    assert not (tmp_path / "runs").exists()  # nothing ran, no empty run directory


def test_every_preset_is_a_valid_config():
    from gr00t_torchrl.presets import load_preset, preset_names
    from gr00t_torchrl.tasks import deep_merge

    names = preset_names()
    assert {"Isaac-Cartpole-v0", "Isaac-Ant-v0", "Isaac-Velocity-Flat-Anymal-D-v0", "Isaac-Lift-Cube-Franka-v0",
            "Mjlab-Cartpole-Balance", "Gr00t-Arm-Reach-v0"} <= set(names)
    for name in names:
        preset = load_preset(name)
        cfg = build_dataclass(Config, deep_merge(Config().to_dict(), preset))  # unknown keys or bad values raise
        assert cfg.env.id == preset["env"]["id"], name


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["ppo.lr=nan"], "ppo.lr"),  # NaN passes every range comparison: refused as non-finite
        (["ppo.gamma=nan"], "ppo.gamma"),
        (["ppo.lr=inf"], "ppo.lr"),
        (["env.obs_clip=-inf"], "env.obs_clip"),
        (["seed=1", "seed=2"], "seed"),  # given twice: never silently the last
        (["progress_bar=yes"], "progress_bar"),  # YAML 1.1 would read these as booleans
        (["env.normalize_obs=off"], "env.normalize_obs"),
        (["seed=0x10"], "seed"),  # YAML 1.1 would read this as 16
        (["ppo.advantage_norm=true"], "ppo.advantage_norm"),
    ],
)
def test_values_yaml_or_nan_would_let_through_are_rejected(argv, named):
    with pytest.raises(ConfigError) as err:
        resolve_config(argv)
    assert f"'{named}'" in str(err.value)


def test_numbers_are_read_exactly():
    cfg = resolve_config(["total_steps=1e6", "ppo.lr=3e-4", "seed=1_000", "ppo.max_grad_norm=none", "ppo.advantage_norm=none"])
    assert cfg.total_steps == 1_000_000 and isinstance(cfg.total_steps, int)
    assert cfg.ppo.lr == 3e-4 and cfg.seed == 1000
    assert cfg.ppo.max_grad_norm is None and cfg.ppo.advantage_norm == "none"
    with pytest.raises(ConfigError, match="'total_steps' must be a whole number"):
        resolve_config(["total_steps=1500.5"])


def test_a_task_name_is_never_read_as_a_path(tmp_path, monkeypatch):
    outside = tmp_path / "evil.yaml"
    outside.write_text("ppo:\n  lr: 0.5\nenv:\n  id: CartPole-v1\n")
    from gr00t_torchrl.presets import load_preset

    relative = Path("..") / ".." / outside.relative_to("/")
    assert load_preset(str(relative)[: -len(".yaml")]) == {}
    with pytest.raises(ConfigError, match="Unknown task"):
        resolve_config([f"task={str(outside)[: -len('.yaml')]}"])


def test_help_lists_every_setting_with_type_default_and_help():
    import dataclasses

    proc = subprocess.run([sys.executable, str(RECIPE), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()

    def check(section: object, prefix: str) -> int:
        count = 0
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if dataclasses.is_dataclass(value):
                count += check(value, f"{prefix}{f.name}.")
                continue
            line = next((line for line in lines if line.split()[:1] == [prefix + f.name]), None)
            assert line is not None, prefix + f.name
            assert f"default {value}" in line and f.metadata["help"] in line
            count += 1
        return count

    assert check(Config(), "") > 40
    assert any("detail 7" in line for line in lines)


def test_config_command_prints_the_resolved_config_without_training(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "gr00t_torchrl.cli", "config", "task=cartpole", "ppo.lr=1e-3"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    printed = build_dataclass(Config, yaml.safe_load(proc.stdout))
    assert printed == resolve_config(["task=cartpole", "ppo.lr=1e-3"])
    assert not (tmp_path / "runs").exists()


def test_hide_velocity_keeps_the_position_entries_of_classic_control_tasks(capsys):
    from gr00t_torchrl.cli import main
    from gr00t_torchrl.envs import make_env

    for task, width in (("CartPole-v1", 2), ("Pendulum-v1", 2), ("Acrobot-v1", 4)):
        cfg = resolve_config([f"task={task}", "env.hide_velocity=true", "env.num_envs=2"])
        env = make_env(cfg, seed=0)
        assert env.observation_spec["observation"].shape == (2, width)
        full = make_env(resolve_config([f"task={task}", "env.num_envs=2", "env.normalize_obs=false"]), seed=0).reset()
        hidden = make_env(resolve_config([f"task={task}", "env.num_envs=2", "env.normalize_obs=false",
                                          "env.hide_velocity=true"]), seed=0).reset()
        keep = {"CartPole-v1": [0, 2], "Pendulum-v1": [0, 1], "Acrobot-v1": [0, 1, 2, 3]}[task]
        assert torch.equal(hidden["observation"], full["observation"][:, keep])  # the same states, velocities gone
    assert main(["train", "task=HalfCheetah-v5", "env.hide_velocity=true", "total_steps=64"]) == 2
    assert main(["train", "task=Gr00t-Arm-Reach-v0", "env.hide_velocity=true", "total_steps=64"]) == 2
    err = capsys.readouterr().err
    assert "HalfCheetah-v5" in err and "CartPole-v1" in err and "Gr00t-Arm-Reach-v0" in err


def test_frame_stack_on_a_vector_task_keeps_the_last_observations():
    from gr00t_torchrl.envs import make_env

    cfg = resolve_config(["task=Pendulum-v1", "env.hide_velocity=true", "env.frame_stack=4", "env.num_envs=2",
                          "env.normalize_obs=false"])
    env = make_env(cfg, seed=0)
    assert env.observation_spec["observation"].shape == (2, 8)
    td = env.reset()
    assert torch.equal(td["observation"][:, :2], td["observation"][:, 6:])  # a new episode repeats its first frame
    stepped, _ = env.step_and_maybe_reset(td.set("action", torch.zeros(2, 1)))
    assert torch.equal(stepped["next", "observation"][:, :6], td["observation"][:, 2:])  # one frame older
