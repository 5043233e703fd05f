"""The training run: Lightning Fabric drives collection, PPO updates, logging and checkpoints.

Fabric rather than Trainer: a PPO iteration is "collect, then several epochs over the fresh
batch", which does not fit Trainer's dataloader loop without contortions, while Fabric gives the
same launcher (`fabric run --devices N`), DDP strategy, loggers and rank-zero helpers with the loop
written in plain sight.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.seed import seed_everything
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchmetrics import MeanMetric, SumMetric
from torchrl.collectors import Collector
from torchrl.envs import TransformedEnv
from torchrl.modules import ProbabilisticActor
from tqdm import tqdm

from gr00t_torchrl import checkpoint as ckpt
from gr00t_torchrl.config import Config, ConfigError
from gr00t_torchrl.distributed import any_rank, gather_objects, prepare_statistics, sync_statistics
from gr00t_torchrl.envs import env_snapshot, find_transform, make_env, restore_env_snapshot
from gr00t_torchrl.evaluate import evaluate, write_eval
from gr00t_torchrl.loggers import run_loggers, truncate_metrics
from gr00t_torchrl.modules import GaussianActor, make_actor_critic
from gr00t_torchrl.ppo_module import NonFiniteUpdateError, PPOModule, explained_variance
from gr00t_torchrl.transforms import ObservationNorm

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class TrainState:
    """Counters that a checkpoint carries besides the weights."""

    iteration: int = 0
    env_steps: int = 0


class RolloutError(RuntimeError):
    """The environment raised while collecting a rollout."""


class EpisodeMetrics(torch.nn.Module):
    """Return and length of the episodes finished in an iteration, averaged over all ranks."""

    def __init__(self) -> None:
        super().__init__()
        self.episode_return = MeanMetric()
        self.episode_length = MeanMetric()
        self.episodes = SumMetric()

    def __call__(self, batch: TensorDictBase) -> dict[str, float]:
        done = batch.get(("next", "done")).reshape(-1)
        self.episode_return.update(batch.get(("next", "episode_return")).reshape(-1)[done].double())
        self.episode_length.update(batch.get(("next", "episode_length")).reshape(-1)[done].double())
        self.episodes.update(done.sum().double())
        # compute() syncs across ranks; NaN where no episode ended (keeps metrics.csv's columns fixed)
        stats = {"episodes": float(self.episodes.compute()), "episode_return_mean": float("nan"),
                 "episode_length_mean": float("nan")}
        if stats["episodes"] > 0:
            stats["episode_return_mean"] = float(self.episode_return.compute())
            stats["episode_length_mean"] = float(self.episode_length.compute())
        for metric in (self.episode_return, self.episode_length, self.episodes):
            metric.reset()
        return stats


class StopRequest:
    """Turns SIGINT / SIGTERM into a request honoured at the end of the current iteration."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.signal = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class Pipeline:
    """Everything one rank trains with, built from the config."""

    cfg: Config
    fabric: L.Fabric
    env: TransformedEnv
    module: PPOModule
    fabric_module: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    num_iterations: int
    signature: dict[str, Any]

    @property
    def obs_norm(self) -> ObservationNorm | None:
        return find_transform(self.env, ObservationNorm)


def default_run_dir(task: str) -> str:
    return str(Path("runs") / f"{task}-{datetime.now().strftime('%Y%m%d-%H%M%S')}")


def launched_by_fabric_cli() -> bool:
    return os.environ.get("LT_CLI_USED", "0") == "1"


def make_fabric(cfg: Config, run_dir: Path | None) -> L.Fabric:
    """Fabric for this run; under `fabric run` its flags (accelerator, devices, nodes) decide."""
    if cfg.accelerator == "cuda" and not launched_by_fabric_cli() and not torch.cuda.is_available():
        raise ConfigError(
            f"accelerator=cuda, but this machine has no CUDA device PyTorch can use (the '{cfg.task}' preset "
            "asks for a GPU): run it where there is one, or add accelerator=cpu."
        )
    loggers = run_loggers(run_dir) if run_dir is not None else []
    if launched_by_fabric_cli():
        fabric = L.Fabric(loggers=loggers)
        cfg.num_nodes = getattr(fabric.strategy, "num_nodes", 1)
        cfg.devices = fabric.world_size // cfg.num_nodes  # recorded in config.yaml
        return fabric
    strategy = "ddp" if cfg.devices * cfg.num_nodes > 1 else "auto"
    return L.Fabric(
        accelerator=cfg.accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes, strategy=strategy, loggers=loggers
    )


def build_pipeline(cfg: Config, fabric: L.Fabric) -> Pipeline:
    """Env, actor-critic, PPO module and optimizer for this rank (seeded per rank)."""
    rank, world = fabric.global_rank, fabric.world_size
    seed_everything(cfg.seed + rank, verbose=False)
    env = make_env(cfg, seed=cfg.seed + rank * cfg.env.num_envs, device=fabric.device)
    prepare_statistics(fabric, env)
    obs_shape = tuple(env.observation_spec["observation"].shape[1:])
    critic_obs = None
    if cfg.network.asymmetric_critic and "critic" in env.observation_spec.keys():
        critic_obs = ("critic", env.observation_spec["critic"].shape[-1])
    actor, critic = make_actor_critic(
        obs_shape[0],
        env.action_spec,
        cfg.network.hidden_sizes,
        cfg.network.activation,
        cfg.network.orthogonal_init,
        cfg.network.init_log_std,
        cfg.network.state_dependent_std,
        critic_obs,
    )
    num_iterations = max(cfg.total_steps // (cfg.frames_per_batch * world), 1)
    module = PPOModule(cfg.ppo, actor, critic, num_iterations)
    optimizer, scheduler = module.configure_optimizers()
    fabric_module, optimizer = fabric.setup(module, optimizer)
    signature = ckpt.task_signature(cfg.task, cfg.env.id, obs_shape, env.action_spec)
    return Pipeline(cfg, fabric, env, module, fabric_module, optimizer, scheduler, num_iterations, signature)


def collection_policy(actor: ProbabilisticActor) -> TensorDictModuleBase:
    """What the collector calls each env step: a Gaussian actor's one-pass sampler, else the actor."""
    return actor.sampler() if isinstance(actor, GaussianActor) else actor


def make_collector(p: Pipeline) -> Collector:
    """TorchRL's collector of `frames_per_batch` env steps per batch, with the current policy."""
    return Collector(
        p.env,
        collection_policy(p.module.actor),
        frames_per_batch=p.cfg.frames_per_batch,
        total_frames=-1,
        track_traj_ids=False,
        auto_register_policy_transforms=False,
        # rollouts are stored where the update runs: for an Isaac-API env on a GPU, the env's own
        # device, so nothing goes through the host
        env_device=p.env.device,
        policy_device=p.fabric.device,
        storing_device=p.fabric.device,
    )


def rank_state(p: Pipeline) -> dict[str, Any]:
    """What differs between ranks: env state, per-env transform buffers, RNG."""
    return {
        "env_transforms": p.env.transform.state_dict(),
        "env_snapshot": env_snapshot(p.env),
        "rng": ckpt.rng_state(),
    }


def checkpoint_state(p: Pipeline, state: TrainState) -> dict[str, Any]:
    """The whole checkpoint (call on every rank: it gathers each rank's own state)."""
    return {
        "format": ckpt.FORMAT_VERSION,
        **p.signature,
        "world_size": p.fabric.world_size,
        "iteration": state.iteration,
        "env_steps": state.env_steps,
        "module": p.module.state_dict(),
        "optimizer": p.optimizer.state_dict(),
        "scheduler": p.scheduler.state_dict(),
        "skipped_updates": p.module.skipped_updates,
        "ranks": gather_objects(p.fabric, rank_state(p)),
        "config": p.cfg.to_dict(),
    }


def restore(p: Pipeline, saved: dict[str, Any], path: Path) -> TrainState:
    """Loads a checkpoint into a freshly built pipeline (RNG states are set by the caller)."""
    ckpt.check_compatible(saved, p.signature, path)
    if saved["world_size"] != p.fabric.world_size:
        raise ckpt.CheckpointError(
            f"The checkpoint {path} was written by {saved['world_size']} process(es); resume it with "
            f"devices={saved['world_size']} (this run has {p.fabric.world_size})."
        )
    _load_shared_state(p, saved, rank=p.fabric.global_rank)
    p.module.skipped_updates = saved["skipped_updates"]
    mine = saved["ranks"][p.fabric.global_rank]
    if not restore_env_snapshot(p.env, mine["env_snapshot"]):
        warnings.warn("This env's state cannot be saved: the resumed run starts new episodes.", stacklevel=2)
    return TrainState(saved["iteration"], saved["env_steps"])


def load_for_inspection(p: Pipeline, saved: dict[str, Any], path: Path) -> None:
    """Loads weights, optimizer and rank 0's normalizer statistics into a one-process pipeline.

    For evaluating or auditing a finished run of any world size (every rank holds the same weights
    and merged statistics); training on from it needs `restore` and the same world size.
    """
    ckpt.check_compatible(saved, p.signature, path)
    _load_shared_state(p, saved, rank=0)


def _load_shared_state(p: Pipeline, saved: dict[str, Any], rank: int) -> None:
    """Weights, optimizer, LR schedule, and the normalizer buffers `rank` saved."""
    p.module.load_state_dict(saved["module"])
    p.optimizer.load_state_dict(saved["optimizer"])
    p.scheduler.load_state_dict(saved["scheduler"])
    p.env.transform.load_state_dict(saved["ranks"][rank]["env_transforms"])


def train(
    cfg: Config,
    stop_after: int | None = None,
    on_iteration: Callable[[Pipeline, TrainState, TensorDictBase], None] | None = None,
) -> dict[str, Any]:
    """Trains, checkpoints, evaluates; returns the eval result plus where the run went.

    `on_iteration(pipeline, state, batch)` is called on every rank after each update.

    SIGINT / SIGTERM (or `stop_after=k`, after iteration k) interrupt the run as a preemption
    would: the checkpoint is saved at the end of the iteration and the run returns unevaluated,
    with `interrupted` set; `resume=<run_dir>` then finishes it.
    """
    resuming = cfg.resume is not None
    run_dir = Path(cfg.run_dir or default_run_dir(cfg.task))
    fabric = make_fabric(cfg, run_dir)
    if not launched_by_fabric_cli():  # `fabric run` has already started one process per device
        fabric.launch()
    run_dir = Path(fabric.broadcast(str(run_dir)))
    ckpt_path = run_dir / "checkpoints" / "last.ckpt"
    if fabric.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg.run_dir = str(run_dir)
        cfg.save(run_dir / "config.yaml")

    p = build_pipeline(cfg, fabric)
    state = TrainState()
    saved = None
    if resuming:
        saved = ckpt.load(ckpt_path)
        state = restore(p, saved, ckpt_path)
        if fabric.is_global_zero:
            truncate_metrics(run_dir / "metrics.csv", state.iteration)
    collector = make_collector(p)
    if saved is not None:  # after every construction step that may draw random numbers
        ckpt.set_rng_state(saved["ranks"][fabric.global_rank]["rng"])

    world = fabric.world_size
    steps_per_iteration = cfg.frames_per_batch * world
    episode_metrics = EpisodeMetrics().to(fabric.device)
    bar = tqdm(
        total=p.num_iterations * steps_per_iteration,
        initial=state.env_steps,
        unit="step",
        disable=not (cfg.progress_bar and fabric.is_global_zero),
        dynamic_ncols=True,
    )
    last_return = float("nan")
    interrupted: str | None = None
    batches = iter(collector)
    try:
        with StopRequest() as stop_request:
            while state.iteration < p.num_iterations:
                start = time.perf_counter()
                try:
                    batch = next(batches)
                except Exception as err:  # the env failed: say so, name the iteration, keep the checkpoint
                    raise RolloutError(
                        f"The environment failed during the rollout of iteration {state.iteration + 1}: "
                        f"{type(err).__name__}: {err}. The last good checkpoint is {ckpt_path}."
                    ) from err
                rollout_time = time.perf_counter() - start
                sync_start = time.perf_counter()
                sync_statistics(fabric, p.env)
                sync_time = time.perf_counter() - sync_start
                state.env_steps += steps_per_iteration
                row: dict[str, float] = {"iteration": state.iteration + 1, "env_steps": state.env_steps}
                row.update(episode_metrics(batch))
                update_start = time.perf_counter()
                p.module.compute_advantages(batch)
                row["explained_variance"] = explained_variance(batch)
                row["lr"] = p.optimizer.param_groups[0]["lr"]
                try:
                    row.update(p.module.update(batch, p.optimizer, p.fabric_module.training_step))
                except NonFiniteUpdateError as err:
                    raise NonFiniteUpdateError(
                        f"Stopped at iteration {state.iteration + 1}: {err}. "
                        f"The last good checkpoint is {ckpt_path}."
                    ) from None
                p.scheduler.step()
                state.iteration += 1
                elapsed = time.perf_counter() - start
                row.update(
                    sps=steps_per_iteration / elapsed,
                    rollout_sps=steps_per_iteration / rollout_time,
                    time_rollout=rollout_time,
                    time_sync=sync_time,
                    time_update=time.perf_counter() - update_start,
                )
                fabric.log_dict(row, step=state.iteration)
                if on_iteration is not None:
                    on_iteration(p, state, batch)
                if row["episodes"] > 0:
                    last_return = row["episode_return_mean"]
                bar.update(steps_per_iteration)
                bar.set_postfix(ret=f"{last_return:.1f}", sps=f"{row['sps']:.0f}")
                if any_rank(fabric, stop_request.signal is not None):
                    interrupted = signal.Signals(stop_request.signal or signal.SIGTERM).name
                elif state.iteration == stop_after:
                    interrupted = "stop_after"
                last = state.iteration == p.num_iterations
                if state.iteration % cfg.checkpoint_every == 0 or last or interrupted:
                    full_state = checkpoint_state(p, state)  # collective: every rank takes part
                    if fabric.is_global_zero:
                        ckpt.save_atomic(full_state, ckpt_path)
                if interrupted:
                    break
    finally:
        bar.close()
        collector.shutdown()
        for logger in fabric.loggers:
            logger.finalize("success")

    result: dict[str, Any] = {
        "env_steps": state.env_steps,
        "iteration": state.iteration,
        "run_dir": str(run_dir),
        "checkpoint": str(ckpt_path),
        "global_zero": fabric.is_global_zero,
        "interrupted": interrupted,
    }
    if fabric.is_global_zero and cfg.eval_episodes > 0 and not interrupted:
        norm = p.obs_norm
        scores = evaluate(cfg, p.module.actor, norm.state_dict() if norm else None, cfg.eval_episodes, fabric.device)
        result.update(scores)
        result["eval_path"] = str(write_eval(run_dir, state.env_steps, scores))
    if fabric.world_size > 1:
        fabric.barrier()  # the other ranks wait here while rank 0 evaluates
        # an explicit teardown: a rank left to tear gloo down at interpreter exit sometimes aborts (SIGABRT)
        torch.distributed.destroy_process_group()
    return result


def evaluate_run(run_dir: Path, episodes: int | None = None) -> dict[str, Any]:
    """Evaluates the last checkpoint of `run_dir` and writes its eval.json."""
    from gr00t_torchrl.config import build_dataclass, load_config_file

    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise ConfigError(f"'{run_dir}' holds no config.yaml (is it a run directory?).")
    cfg = build_dataclass(Config, load_config_file(config_path))
    cfg.devices = cfg.num_nodes = 1  # a DDP run is evaluated from rank 0's state, in one process
    path = run_dir / "checkpoints" / "last.ckpt"
    saved = ckpt.load(path)
    p = build_pipeline(cfg, L.Fabric(accelerator="cpu", devices=1))
    load_for_inspection(p, saved, path)
    norm = p.obs_norm
    episodes = int(episodes) if episodes is not None else max(cfg.eval_episodes, 1)
    scores = evaluate(cfg, p.module.actor, norm.state_dict() if norm else None, episodes)
    path = write_eval(run_dir, saved["env_steps"], scores)
    return {"env_steps": saved["env_steps"], **scores, "eval_path": str(path)}
