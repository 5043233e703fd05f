"""gr00t-ppo export: the deployed policy (ONNX, TorchScript) acts as the trained PyTorch policy does."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import ExplorationType, set_exploration_type

from gr00t_torchrl import checkpoint as ckpt
from gr00t_torchrl.cli import main
from gr00t_torchrl.envs import find_transform, make_env
from gr00t_torchrl.pipeline import build_pipeline
from gr00t_torchrl.runner import train
from gr00t_torchrl.tasks import read_for_inspection, resolve_config
from gr00t_torchrl.transforms import RunningObservationNorm
from tests.conftest import TINY, merged
from tests.test_verify import MULTIMODAL

README = Path(__file__).resolve().parents[1] / "README.md"


def trained(tmp_path: Path, *words: str) -> Path:
    run_dir = tmp_path / "run"
    train(resolve_config(merged(*TINY, *words, "total_steps=256", "eval_episodes=0", f"run_dir={run_dir}")))
    return run_dir


def loaded(run_dir: Path):
    cfg = read_for_inspection(run_dir)
    pipeline = build_pipeline(cfg, L.Fabric(accelerator="cpu", devices=1))
    ckpt.load_for_inspection(pipeline, ckpt.load(ckpt.checkpoint_path(run_dir)), ckpt.checkpoint_path(run_dir))
    return cfg, pipeline


def runner_for(path: Path):
    """A function raw observations -> action, from the exported file alone."""
    if path.suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return lambda obs: torch.as_tensor(session.run(None, {n: obs[n].numpy() for n in names})[0])
    module = torch.jit.load(str(path))
    info = json.loads((path.parent / "policy.json").read_text())
    return lambda obs: module(*(obs[i["name"]] for i in info["inputs"]))


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_the_exported_policy_matches_the_trained_one_over_a_rollout_with_resets(tmp_path, fmt, capsys):
    run_dir = trained(tmp_path, "task=pendulum", "env.max_episode_steps=60")
    assert main(["export", f"run_dir={run_dir}", f"format={fmt}"]) == 0
    assert "policy.json" in capsys.readouterr().out
    info = json.loads((run_dir / "export" / "policy.json").read_text())
    assert info["inputs"] == [{"name": "observation", "shape": ["batch", 3], "dtype": "float32", "normalized_inside": True}]
    assert info["outputs"][0]["low"] == [-2.0] and info["outputs"][0]["high"] == [2.0]
    exported = runner_for(run_dir / "export" / info["file"])

    cfg, pipeline = loaded(run_dir)
    norm = find_transform(pipeline.env, RunningObservationNorm)
    assert float(norm.stats[0].count) > 0  # real statistics, so folding them in matters
    cfg.env.normalize_obs = False  # the robot's raw observations
    env = make_env(cfg, seed=123, num_envs=4, train=False)
    td, resets = env.reset(), 0
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        for _ in range(200):
            raw = td["observation"]
            reference = pipeline.module.actor(TensorDict(observation=norm.normalize(0, raw), batch_size=[4]))["action"]
            reference = reference.clamp(-2.0, 2.0)  # the env's clip (detail 27)
            action = exported({"observation": raw})
            assert torch.allclose(action, reference, atol=1e-5, rtol=0)
            stepped, td = env.step_and_maybe_reset(td.set("action", action))
            resets += int(stepped["next", "done"].sum())
    assert resets >= 4  # every env finished an episode and started another within the 200 steps


def test_a_multimodal_policy_exports_with_image_and_instruction_inputs(tmp_path):
    run_dir = trained(tmp_path, *MULTIMODAL)
    assert main(["export", f"run_dir={run_dir}"]) == 0
    info = json.loads((run_dir / "export" / "policy.json").read_text())
    dtypes = {i["name"]: i["dtype"] for i in info["inputs"]}
    assert dtypes == {"instruction": "int64", "image": "uint8", "observation": "float32"}
    exported = runner_for(run_dir / "export" / "policy.onnx")
    _, pipeline = loaded(run_dir)
    norm = find_transform(pipeline.env, RunningObservationNorm)
    cfg = read_for_inspection(run_dir)
    cfg.env.normalize_obs = False
    env = make_env(cfg, seed=5, num_envs=4, train=False)
    td = env.reset()
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        for _ in range(30):
            inputs = td.select("image", "instruction", "observation").clone()
            inputs.set("observation", norm.normalize(norm.in_keys.index("observation"), td["observation"]))
            reference = pipeline.module.actor(inputs)["action"].clamp(-1.0, 1.0)
            action = exported({key: td[key] for key in dtypes})
            assert torch.allclose(action, reference, atol=1e-5, rtol=0)
            td = env.step_and_maybe_reset(td.set("action", action))[1]


@pytest.mark.parametrize(("task", "kind"), [("cartpole", "discrete"), ("PointReachMultiDiscrete-v0", "multidiscrete")])
def test_discrete_policies_export_their_most_likely_action(tmp_path, task, kind):
    run_dir = trained(tmp_path, f"task={task}")
    assert main(["export", f"run_dir={run_dir}"]) == 0
    info = json.loads((run_dir / "export" / "policy.json").read_text())
    assert info["outputs"][0]["kind"] == kind
    exported = runner_for(run_dir / "export" / "policy.onnx")
    _, pipeline = loaded(run_dir)
    norm = find_transform(pipeline.env, RunningObservationNorm)
    raw = torch.randn(64, info["inputs"][0]["shape"][1])
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        reference = pipeline.module.actor(TensorDict(observation=norm.normalize(0, raw), batch_size=[64]))["action"]
    assert torch.equal(exported({"observation": raw}), reference)


def test_the_readme_snippet_runs_an_exported_policy_without_this_package(tmp_path):
    run_dir = trained(tmp_path, "task=pendulum")
    assert main(["export", f"run_dir={run_dir}"]) == 0
    snippet = re.search(r"<!-- export-snippet -->\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    code = snippet.replace("runs/pendulum/export", str(run_dir / "export"))
    # a fresh interpreter where importing this package fails
    guard = "import sys; sys.modules['gr00t_torchrl'] = None\n"
    out = subprocess.run([sys.executable, "-c", guard + code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    action = np.array(json.loads(out.stdout.strip().splitlines()[-1]))
    assert action.shape == (1, 1) and -2.0 <= action[0, 0] <= 2.0


def test_bad_export_requests_are_refused_with_exit_code_2(tmp_path, capsys):
    assert main(["export"]) == 2
    assert main(["export", f"run_dir={tmp_path}"]) == 2
    run_dir = trained(tmp_path, "task=pendulum")
    assert main(["export", f"run_dir={run_dir}", "format=tflite"]) == 2
    assert main(["export", f"run_dir={run_dir}", "opset=3"]) == 2
    err = capsys.readouterr().err
    assert "run_dir" in err and "tflite" in err and "opset" in err
    assert not (run_dir / "export" / "policy.onnx").exists()


@pytest.mark.parametrize(("kind", "fmt"), [("lstm", "onnx"), ("gru", "torchscript")])
def test_a_recurrent_policy_exports_its_hidden_state_as_inputs_and_outputs(tmp_path, kind, fmt):
    run_dir = trained(tmp_path, "task=pendulum", "env.hide_velocity=true", f"network.recurrent={kind}",
                      "network.recurrent_size=8", "env.max_episode_steps=60")
    assert main(["export", f"run_dir={run_dir}", f"format={fmt}"]) == 0
    info = json.loads((run_dir / "export" / "policy.json").read_text())
    names = [i["name"] for i in info["inputs"]]
    states = names[1:]
    assert names[0] == "observation" and states == (["actor_memory_state_h", "actor_memory_state_c"] if kind == "lstm"
                                                    else ["actor_memory_state_h"])
    assert [o["name"] for o in info["outputs"]] == ["action", *[f"next_{s}" for s in states]]
    path = run_dir / "export" / info["file"]
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        run = lambda feed: [torch.as_tensor(x) for x in session.run(None, {k: v.numpy() for k, v in feed.items()})]  # noqa: E731
    else:
        module = torch.jit.load(str(path))
        run = lambda feed: list(module(*(feed[n] for n in names)))  # noqa: E731

    cfg, pipeline = loaded(run_dir)
    env = make_env(cfg, seed=7, num_envs=4, train=False)  # the trained policy's own env: normalized, with its memory
    from gr00t_torchrl.pipeline import with_memory

    with_memory(env, pipeline.module.actor)
    find_transform(env, RunningObservationNorm).load_state_dict(find_transform(pipeline.env, RunningObservationNorm).state_dict())
    find_transform(env, RunningObservationNorm).freeze()
    cfg.env.normalize_obs = False
    raw = make_env(cfg, seed=7, num_envs=4, train=False)
    td, raw_td = env.reset(), raw.reset()
    state = {s: torch.zeros(4, *td[s].shape[1:]) for s in states}
    resets = 0
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        for _ in range(200):
            reference = pipeline.module.actor(td)["action"].clamp(-2.0, 2.0)  # in place: the next state is carried
            outputs = run({"observation": raw_td["observation"], **state})
            assert torch.allclose(outputs[0], reference, atol=1e-5, rtol=0)
            stepped, td = env.step_and_maybe_reset(td.set("action", reference))
            assert torch.allclose(td["actor_memory_state_h"], torch.where(stepped["next", "done"].unsqueeze(-1), 0.0,
                                  outputs[1]), atol=1e-5)  # the env's carried state is the exported policy's
            _, raw_td = raw.step_and_maybe_reset(raw_td.set("action", reference))
            done = stepped["next", "done"].reshape(-1, 1, 1)
            state = {s: torch.where(done, 0.0, out) for s, out in zip(states, outputs[1:])}  # zeros at a new episode
            resets += int(done.sum())
    assert resets >= 4
