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
from gr00t_torchrl.config import Config, ConfigError
from gr00t_torchrl.durable import write_text_atomic
from gr00t_torchrl.envs import find_transform, make_env, vector_env
from gr00t_torchrl.modules.multimodal import policy_inputs_by_kind
from gr00t_torchrl.pipeline import Pipeline, build_pipeline, with_memory
from gr00t_torchrl.seeding import evaluation_seed
from gr00t_torchrl.tasks import read_for_inspection
from gr00t_torchrl.transforms import RunningObservationNorm
from gr00t_torchrl.video import VideoRecorder, pictures_of, rendered_frames

MAX_EVAL_STEPS = 100_000
VIDEO_EPISODES = 4  # episodes side by side in an evaluation video


# what each `blank=` word names, as the encoder sorts the policy's inputs
BLANKED_KIND = {"image": "image", "language": "tokens", "proprio": "proprio"}


def blanked_keys(observation_spec: Any, blank: str | None) -> list[str]:
    """The observation entries that `blank` names: every image group, every instruction, or the proprioception."""
    if blank is None:
        return []
    keys = policy_inputs_by_kind(observation_spec)[BLANKED_KIND[blank]]
    if not keys:
        raise ConfigError(f"blank={blank}: this task's policy has no {blank} input to blank.")
    return keys


def end_first_episodes(
    step: TensorDictBase, task: Any, finished: torch.Tensor, successes: torch.Tensor
) -> torch.Tensor:
    """The envs whose first episode ended in `step`, now also marked in `finished`.

    Where the task defines success, `successes` gets each one's outcome: the built-in tasks set a per-env
    `extras["success"]` on the step in which its episode ended.
    """
    done = step.get(("next", "done")).reshape(-1).cpu() & ~finished
    if getattr(task, "defines_success", False):
        successes[done] = task.extras["success"].reshape(-1).cpu()[done]
    finished |= done
    return done


@torch.no_grad()
def evaluate(
    cfg: Config,
    actor: ProbabilisticActor,
    obs_norm_state: dict[str, Any] | None,
    episodes: int,
    device: str | torch.device = "cpu",
    blank: str | None = None,
    video: Path | None = None,
) -> dict[str, float]:
    """One episode in each of `episodes` envs on the run's evaluation seed stream; raw (unscaled) returns.

    Tasks that define success (the built-in tasks report a per-env `extras["success"]` on the step
    an episode ends) also get the fraction of episodes that succeeded. `device` is the actor's; an
    Isaac-API env runs there too, a Gymnasium env on the CPU. `blank` ("image", "language",
    "proprio") replaces that input of the policy by zeros at every step: how much the score falls
    shows how much the policy reads it. `video` (a .gif path) records the first few episodes.
    """
    env = make_env(cfg, seed=evaluation_seed(cfg.seed), num_envs=episodes, train=False, device=device,
                   render=video is not None)
    with_memory(env, actor)  # a recurrent actor's hidden states start at zero and reset with each episode
    zeroed = blanked_keys(env.observation_spec, blank)
    task = vector_env(env)
    inputs = policy_inputs_by_kind(env.observation_spec)
    images, tokens = inputs["image"], inputs["tokens"]
    recorder = None if video is None else VideoRecorder(video, min(episodes, VIDEO_EPISODES), getattr(task, "vocabulary", None))
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
            if recorder is not None and not finished[: recorder.count].all():
                if tokens:
                    recorder.caption_from(td.get(tokens[0]))
                recorder.add(pictures_of(td.get(images[0])) if images else rendered_frames(task))
            for key in zeroed:
                td.set(key, torch.zeros_like(td.get(key)))
            # a Gymnasium env steps on the CPU while the actor may sit on a GPU; stepping as the
            # collector does, so an auto-resetting env (Isaac Lab API) is never asked to reset
            step, td = env.step_and_maybe_reset(actor(td.to(device)).to(env.device))
            done = end_first_episodes(step, task, finished, successes)
            returns[done] = step.get(("next", "episode_return")).reshape(-1).cpu()[done]
            if recorder is not None:
                recorder.mark_finished(done, successes if has_success else None)
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
    if blank is not None:
        result["blank"] = blank
    if recorder is not None:
        result["video"] = str(recorder.write())
    return result


def evaluate_pipeline(
    pipeline: Pipeline, episodes: int, blank: str | None = None, video: Path | None = None
) -> dict[str, float]:
    """Evaluates a pipeline's actor with its current observation statistics."""
    norm = pipeline.obs_norm
    state = norm.state_dict() if norm is not None else None
    return evaluate(pipeline.cfg, pipeline.module.actor, state, episodes, pipeline.fabric.device, blank, video)


def write_eval(run_dir: Path, env_steps: int, result: dict[str, float]) -> Path:
    """eval.json; an evaluation with a blanked input goes to eval_blank-<input>.json beside it."""
    path = run_dir / ("eval.json" if "blank" not in result else f"eval_blank-{result['blank']}.json")
    write_text_atomic(path, json.dumps({"env_steps": env_steps, **result}, indent=2) + "\n")
    return path


def evaluate_run(
    run_dir: Path, episodes: int | None = None, blank: str | None = None, video: bool = False
) -> dict[str, Any]:
    """Evaluates the last checkpoint of `run_dir` in one CPU process and writes its eval.json."""
    cfg = read_for_inspection(run_dir)
    path = ckpt.checkpoint_path(run_dir)
    saved = ckpt.load(path)
    pipeline = build_pipeline(cfg, L.Fabric(accelerator="cpu", devices=1))
    ckpt.load_for_inspection(pipeline, saved, path)
    video_path = run_dir / ("eval_video.gif" if blank is None else f"eval_video_blank-{blank}.gif") if video else None
    scores = evaluate_pipeline(pipeline, episodes if episodes is not None else max(cfg.eval_episodes, 1), blank, video_path)
    written = write_eval(run_dir, saved["env_steps"], scores)
    return {"env_steps": saved["env_steps"], **scores, "eval_path": str(written)}
