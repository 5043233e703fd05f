"""Deterministic evaluation: mean actions, frozen observation statistics, held-out seeds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import torch
from tensordict import TensorDictBase
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import ProbabilisticActor

from gr00t_torchrl import checkpoint as ckpt
from gr00t_torchrl.config import Config
from gr00t_torchrl.durable import write_text_atomic
from gr00t_torchrl.envs import find_transform, make_env, vector_env
from gr00t_torchrl.pipeline import Pipeline, build_pipeline
from gr00t_torchrl.seeding import evaluation_seed
from gr00t_torchrl.tasks import read_for_inspection
from gr00t_torchrl.transforms import RunningObservationNorm

MAX_EVAL_STEPS = 100_000


@torch.no_grad()
def evaluate(
    cfg: Config,
    actor: ProbabilisticActor,
    obs_norm_state: dict[str, Any] | None,
    episodes: int,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """One episode in each of `episodes` envs on the run's evaluation seed stream; raw (unscaled) returns.

    Tasks that define success (the built-in tasks report a per-env `extras["success"]` on the step
    an episode ends) also get the fraction of episodes that succeeded. `device` is the actor's; an
    Isaac-API env runs there too, a Gymnasium env on the CPU.
    """
    env = make_env(cfg, seed=evaluation_seed(cfg.seed), num_envs=episodes, train=False, device=device)
    task = vector_env(env)
    has_success = getattr(task, "defines_success", False)
    norm = find_transform(env, RunningObservationNorm)
    if norm is not None and obs_norm_state is not None:
        norm.load_state_dict(obs_norm_state)
        norm.freeze()
    returns = torch.full((episodes,), float("nan"))
    successes = torch.zeros(episodes, dtype=torch.bool)
    finished = torch.zeros(episodes, dtype=torch.bool)
    td: TensorDictBase = env.reset()
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        for _ in range(MAX_EVAL_STEPS):
            # a Gymnasium env steps on the CPU while the actor may sit on a GPU; stepping as the
            # collector does, so an auto-resetting env (Isaac Lab API) is never asked to reset
            step, td = env.step_and_maybe_reset(actor(td.to(device)).to(env.device))
            done = step.get(("next", "done")).reshape(-1).cpu() & ~finished
            returns[done] = step.get(("next", "episode_return")).reshape(-1).cpu()[done]
            if has_success:  # per env, set by the step in which its episode ended
                successes[done] = task.extras["success"].reshape(-1).cpu()[done]
            finished |= done
            if finished.all():
                break
    env.close()
    if not finished.all():
        raise RuntimeError(f"Evaluation episodes did not end within {MAX_EVAL_STEPS} steps (no time limit?).")
    result: dict[str, float] = {
        "eval_return_mean": float(returns.mean()),
        "eval_return_std": float(returns.std(unbiased=False)),
        "episodes": episodes,
    }
    if has_success:
        result["success_rate"] = float(successes.float().mean())
    return result


def evaluate_pipeline(pipeline: Pipeline, episodes: int) -> dict[str, float]:
    """Evaluates a pipeline's actor with its current observation statistics."""
    norm = pipeline.obs_norm
    state = norm.state_dict() if norm is not None else None
    return evaluate(pipeline.cfg, pipeline.module.actor, state, episodes, pipeline.fabric.device)


def write_eval(run_dir: Path, env_steps: int, result: dict[str, float]) -> Path:
    path = run_dir / "eval.json"
    write_text_atomic(path, json.dumps({"env_steps": env_steps, **result}, indent=2) + "\n")
    return path


def evaluate_run(run_dir: Path, episodes: int | None = None) -> dict[str, Any]:
    """Evaluates the last checkpoint of `run_dir` in one CPU process and writes its eval.json."""
    cfg = read_for_inspection(run_dir)
    path = run_dir / "checkpoints" / "last.ckpt"
    saved = ckpt.load(path)
    pipeline = build_pipeline(cfg, L.Fabric(accelerator="cpu", devices=1))
    ckpt.load_for_inspection(pipeline, saved, path)
    scores = evaluate_pipeline(pipeline, episodes if episodes is not None else max(cfg.eval_episodes, 1))
    written = write_eval(run_dir, saved["env_steps"], scores)
    return {"env_steps": saved["env_steps"], **scores, "eval_path": str(written)}
