"""Deterministic evaluation: mean actions, frozen observation statistics, held-out seeds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import ProbabilisticActor

from gr00t_torchrl.config import Config
from gr00t_torchrl.envs import find_transform, make_env, vector_env
from gr00t_torchrl.transforms import ObservationNorm

EVAL_SEED_OFFSET = 1_000_000  # evaluation envs never share seeds with training envs
MAX_EVAL_STEPS = 100_000


@torch.no_grad()
def evaluate(
    cfg: Config,
    actor: ProbabilisticActor,
    obs_norm_state: dict[str, Any] | None,
    episodes: int,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """One episode in each of `episodes` envs seeded apart from training; raw (unscaled) returns.

    Tasks that define success (the built-in tasks report a per-env `extras["success"]` on the step
    an episode ends) also get the fraction of episodes that succeeded. `device` is the actor's; an
    Isaac-API env runs there too, a Gymnasium env on the CPU.
    """
    env = make_env(cfg, seed=cfg.seed + EVAL_SEED_OFFSET, num_envs=episodes, train=False, device=device)
    task = vector_env(env)
    has_success = getattr(task, "defines_success", False)
    norm = find_transform(env, ObservationNorm)
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


def write_eval(run_dir: Path, env_steps: int, result: dict[str, float]) -> Path:
    path = run_dir / "eval.json"
    path.write_text(json.dumps({"env_steps": env_steps, **result}, indent=2) + "\n")
    return path
