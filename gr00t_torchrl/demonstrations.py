"""Demonstrations: recorded from a trained run or a task's scripted demonstrator, and behaviour cloning on them.

`record` plays one episode in each of N envs and keeps every step of those episodes: the raw
(unnormalized) observations and the actions taken, as a flat TensorDict saved as a memory-mapped
TensorDict directory (`save` / `load`, with a `demonstrations.json` describing it). `clone` fits a
pipeline's actor to such a set: the flow head by its conditional flow-matching loss, a Gaussian or
categorical actor by maximum likelihood; the observation normalizer is fitted to the set first, so
the cloned policy reads observations as a PPO run started from it (`init_from=`) will feed them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.envs.utils import ExplorationType, set_exploration_type

from gr00t_torchrl.config import Config, ConfigError
from gr00t_torchrl.envs import make_env, vector_env
from gr00t_torchrl.evaluate import end_first_episodes
from gr00t_torchrl.modules.flow import EncodedFlowActor, FlowActor
from gr00t_torchrl.pipeline import Pipeline
from gr00t_torchrl.seeding import evaluation_seed
from gr00t_torchrl.transforms import RunningObservationNorm

MAX_STEPS = 100_000
META = "demonstrations.json"
Policy = Callable[[TensorDictBase, Any], torch.Tensor]  # (raw observations, the batched task) -> actions


def policy_of_run(pipeline: Pipeline) -> Policy:
    """A trained run's deterministic actor, fed through its own (frozen) observation statistics."""
    norm = pipeline.obs_norm
    actor = pipeline.module.actor

    def act(td: TensorDictBase, task: Any) -> torch.Tensor:
        td = td.clone()
        if norm is not None:
            for index, key in enumerate(norm.in_keys):
                td.set(key, norm.normalize(index, td.get(key)))
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            return actor(td).get("action")

    return act


def demonstrator_of_task(task: Any, task_id: str) -> Policy:
    """The scripted demonstrator a built-in task carries (`expert_action`); a clear error where it has none."""
    if not hasattr(task, "expert_action"):
        raise ConfigError(f"The task '{task_id}' has no scripted demonstrator: collect from a trained run with run_dir=<dir>.")
    return lambda td, task: task.expert_action().to(td.device)


def observation_keys(env: Any) -> list[str]:
    """The env's observation entries (not the episode statistics the project's transform adds)."""
    return [str(key) for key in env.observation_spec.keys() if key not in ("episode_return", "episode_length")]


@torch.no_grad()
def record(cfg: Config, policy: Policy | None, episodes: int, noise: float = 0.0, seed: int | None = None) -> TensorDict:
    """One episode in each of `episodes` envs (evaluation seeds), every step kept: raw observations, actions taken.

    `policy` None means the task's scripted demonstrator. `noise` adds N(0, noise^2) to each action
    taken (and recorded): a noisy demonstration set. Returns a flat TensorDict [steps], episode after
    episode, each in time order, with the
    observation entries, "action", "episode" (which env's episode) and the episodes' "success"
    (per step, the outcome of its episode) where the task defines success.
    """
    raw_cfg = dataclasses.replace(cfg, env=dataclasses.replace(cfg.env, normalize_obs=False))
    env = make_env(raw_cfg, seed=evaluation_seed(cfg.seed if seed is None else seed), num_envs=episodes, train=False)
    task = vector_env(env)
    act = policy or demonstrator_of_task(task, cfg.env.id)
    keys = observation_keys(env)
    has_success = getattr(task, "defines_success", False)
    finished = torch.zeros(episodes, dtype=torch.bool)
    success = torch.zeros(episodes, dtype=torch.bool)
    steps: list[TensorDict] = []
    td = env.reset()
    for _ in range(MAX_STEPS):
        action = act(td, task).reshape(td.batch_size + env.action_spec.shape[-1:])
        if noise > 0:
            action = action + noise * torch.randn_like(action)
        row = TensorDict({key: td.get(key) for key in keys}, batch_size=td.batch_size).cpu()
        row.set("action", action.cpu())
        row.set("valid", ~finished.clone())
        steps.append(row)
        td.set("action", action)
        step, td = env.step_and_maybe_reset(td)
        end_first_episodes(step, task, finished, success)
        if finished.all():
            break
    env.close()
    if not finished.all():
        raise RuntimeError(f"Demonstration episodes did not end within {MAX_STEPS} steps (no time limit?).")
    stacked = torch.stack(steps, dim=1)  # [envs, time]: each episode's steps together, in order
    stacked.set("episode", torch.arange(episodes).unsqueeze(1).expand(stacked.batch_size).clone())
    if has_success:
        stacked.set("success", success.unsqueeze(1).expand(stacked.batch_size).clone())
    valid = stacked.get("valid")
    del stacked["valid"]
    return stacked[valid]


def check_new_directory(out: Path) -> None:
    """Refuses an `out` that exists as a file or a non-empty directory: nothing already written is changed."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"'{out}' already holds files; choose a new out=<dir> (nothing was written).")


def save(data: TensorDict, out: Path, meta: dict[str, Any]) -> None:
    """Writes the set as a memory-mapped TensorDict under `out`, with `demonstrations.json` beside it."""
    check_new_directory(out)
    data.memmap(out / "data")
    (out / META).write_text(json.dumps(meta, indent=2) + "\n")


def load(path: Path) -> tuple[TensorDict, dict[str, Any]]:
    """A saved demonstration set and its description; a clear error for a directory that holds none."""
    if not (path / META).is_file():
        raise ConfigError(f"'{path}' holds no demonstrations ({META} is missing): write them with gr00t-ppo collect.")
    return TensorDict.load_memmap(path / "data").to_tensordict(), json.loads((path / META).read_text())


def summary(data: TensorDict) -> dict[str, Any]:
    """Episodes, steps and (where defined) the demonstrator's success rate."""
    episodes = int(data.get("episode").max()) + 1
    out: dict[str, Any] = {"episodes": episodes, "steps": int(data.shape[0])}
    if "success" in data.keys():
        per_episode = torch.zeros(episodes, dtype=torch.bool)
        per_episode[data.get("episode")] = data.get("success")
        out["success_rate"] = float(per_episode.float().mean())
    return out


def fit_normalizer(norm: RunningObservationNorm | None, data: TensorDict) -> None:
    """Sets the observation statistics to those of the demonstrations (where the run normalizes)."""
    if norm is None:
        return
    for index, key in enumerate(norm.in_keys):
        if key not in data.keys():
            raise ConfigError(f"The demonstrations have no '{key}' entry, which this task's policy reads.")
        stats = norm.stats[index]
        stats.count.zero_(), stats.mean.zero_(), stats.var.fill_(1.0)
        stats.update(data.get(key))


def imitation_loss(actor: Any, batch: TensorDictBase) -> torch.Tensor:
    """The flow head's flow-matching loss on fresh (t, noise) draws; otherwise minus the log-likelihood."""
    if isinstance(actor, (FlowActor, EncodedFlowActor)):
        return actor.flow_matching_loss(batch).mean()
    return -actor.get_dist(batch).log_prob(batch.get("action")).mean()


def clone(pipeline: Pipeline, data: TensorDict, epochs: int, batch_size: int, lr: float,
          generator: torch.Generator | None = None) -> list[float]:
    """Behaviour cloning of the pipeline's actor on `data`; returns the mean loss of each epoch."""
    norm = pipeline.obs_norm
    fit_normalizer(norm, data)
    inputs = data.clone()
    if norm is not None:
        for index, key in enumerate(norm.in_keys):
            inputs.set(key, norm.normalize(index, inputs.get(key)).to(torch.float32))
    device = pipeline.fabric.device
    inputs = inputs.to(device)
    actor = pipeline.module.actor
    optimizer = torch.optim.Adam(actor.parameters(), lr=lr, eps=pipeline.cfg.ppo.adam_eps)
    losses = []
    for _ in range(epochs):
        order = torch.randperm(inputs.shape[0], generator=generator).to(device)
        total, count = 0.0, 0
        for start in range(0, len(order), batch_size):
            batch = inputs[order[start:start + batch_size]]
            loss = imitation_loss(actor, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(batch), count + len(batch)
        losses.append(total / count)
    return losses


def clone_run(cfg: Config, data_dir: Path, epochs: int, batch_size: int, lr: float) -> dict[str, Any]:
    """`gr00t-ppo bc`: clones `cfg`'s actor on the set in `data_dir` and saves it as a run directory.

    The directory holds what a PPO run's does (config.yaml, checkpoints/last.ckpt, eval.json), plus
    bc.json (the set, the settings, the loss per epoch): `gr00t-ppo eval` and `export` read it, and
    `train init_from=<dir>` starts PPO from it.
    """
    import lightning as L

    from gr00t_torchrl import checkpoint as ckpt
    from gr00t_torchrl.evaluate import evaluate_pipeline, write_eval
    from gr00t_torchrl.pipeline import build_pipeline
    from gr00t_torchrl.runner import prepare_run_dir, release_claimed_run_dir

    data, meta = load(data_dir)
    if meta.get("env_id") not in (None, cfg.env.id):
        raise ConfigError(f"The demonstrations in '{data_dir}' are of {meta['env_id']}, but this run's task is {cfg.env.id}.")
    claimed = not cfg.run_dir
    run_dir = prepare_run_dir(cfg, resuming=False)
    cfg.run_dir = str(run_dir)
    try:
        pipeline = build_pipeline(cfg, L.Fabric(accelerator="cpu", devices=1))
        action_dim = pipeline.env.action_spec.shape[-1]
        if pipeline.signature["action"]["kind"] == "continuous" and data.get("action").shape[-1:] != (action_dim,):
            raise ConfigError(f"The demonstrations' actions have shape {list(data.get('action').shape[1:])}; "
                              f"this run's are [{action_dim}] (network.action_chunk?).")
    except ConfigError:
        if claimed:
            release_claimed_run_dir(run_dir)
        raise
    generator = torch.Generator().manual_seed(cfg.seed)
    losses = clone(pipeline, data, epochs, batch_size, lr, generator)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir / "config.yaml")
    ckpt.save_atomic(ckpt.checkpoint_state(pipeline, ckpt.TrainState()), ckpt.checkpoint_path(run_dir))
    demo = {f"demonstration_{key}": value for key, value in summary(data).items()}
    report = {"data": str(data_dir), **demo, "epochs": epochs, "batch_size": batch_size, "lr": lr,
              "loss_per_epoch": losses}
    (run_dir / "bc.json").write_text(json.dumps(report, indent=2) + "\n")
    result: dict[str, Any] = {"run_dir": str(run_dir), "final_loss": losses[-1], **demo}
    if cfg.eval_episodes > 0:
        scores = evaluate_pipeline(pipeline, cfg.eval_episodes)
        result.update(scores, eval_path=str(write_eval(run_dir, 0, scores)))
    return result
