"""The training loop: Lightning Fabric drives collection, PPO updates, logging and checkpoints.

Fabric rather than Trainer: a PPO iteration is "collect, then several epochs over the fresh
batch", which does not fit Trainer's dataloader loop without contortions, while Fabric gives the
same launcher (`fabric run --devices N`), DDP strategy, loggers and rank-zero helpers with the loop
written in plain sight. What the loop trains with is built in `pipeline`; what a checkpoint holds
is `checkpoint`.
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase
from torchmetrics import MeanMetric, SumMetric
from torchrl.collectors import Collector
from tqdm import tqdm

from gr00t_torchrl import checkpoint as ckpt
from gr00t_torchrl.checkpoint import TrainState
from gr00t_torchrl.config import Config, ConfigError
from gr00t_torchrl.distributed import any_rank, sync_statistics
from gr00t_torchrl.evaluate import evaluate_pipeline, write_eval
from gr00t_torchrl.loggers import RunLogger
from gr00t_torchrl.pipeline import Pipeline, build_pipeline, launched_by_fabric_cli, make_collector, make_fabric
from gr00t_torchrl.ppo_module import NonFiniteUpdateError, explained_variance

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# what a run directory holds besides config.yaml; `overwrite=true` deletes these first
RUN_FILES = ("metrics.csv", "eval.json", "tensorboard", "checkpoints")


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
class Timer:
    """Wall-clock seconds of the named phases of one iteration."""

    seconds: dict[str, float] = field(default_factory=dict)

    def phase(self, name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        out = fn()
        self.seconds[name] = time.perf_counter() - start
        return out


# ----------------------------------------------------------------------------- the run directory


def claim_default_run_dir(task: str) -> Path:
    """A new `runs/<task>-<time>` directory; runs started in the same second get -2, -3, ..."""
    stem = Path("runs") / f"{task.replace('/', '_')}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        candidate = stem if n == 1 else stem.with_name(f"{stem.name}-{n}")
        try:
            candidate.mkdir()  # atomic: two runs never claim the same directory
            return candidate
        except FileExistsError:
            continue
    raise ConfigError(f"Cannot find a free run directory next to {stem}; pass run_dir=<dir>.")


def prepare_run_dir(cfg: Config, resuming: bool) -> Path:
    """The run directory of a new run or a resumed one; a used directory is refused without overwrite."""
    if resuming:
        return Path(cfg.run_dir)
    if cfg.run_dir is None:
        return claim_default_run_dir(cfg.task)
    run_dir = Path(cfg.run_dir)
    used = [name for name in ("config.yaml", *RUN_FILES) if (run_dir / name).exists()]
    if used and not cfg.overwrite:
        raise ConfigError(
            f"The run directory '{run_dir}' already holds a run ({', '.join(used)}): resume it with "
            f"resume={run_dir}, pick another run_dir, or add overwrite=true to replace it."
        )
    return run_dir


def release_claimed_run_dir(run_dir: Path) -> None:
    """Removes a default run directory this command claimed, if still empty: a refused run leaves none behind."""
    if not any(run_dir.iterdir()):
        run_dir.rmdir()


def clear_run_dir(run_dir: Path) -> None:
    for name in RUN_FILES:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- one iteration


def collect(batches: Iterator[TensorDictBase], state: TrainState, ckpt_path: Path) -> TensorDictBase:
    """The next rollout from the collector; an env failure is named with its iteration."""
    try:
        return next(batches)
    except ConfigError:  # bad input met while stepping (e.g. a token id the policy's vocabulary lacks)
        raise
    except Exception as err:  # the env failed: say so, name the iteration, keep the checkpoint
        raise RolloutError(
            f"The environment failed during the rollout of iteration {state.iteration + 1}: "
            f"{type(err).__name__}: {err}. The last good checkpoint is {ckpt_path}."
        ) from err


def compute_advantages(pipeline: Pipeline, batch: TensorDictBase) -> dict[str, float]:
    """GAE and the whole-batch normalization (details 5, 7); the critic's explained variance."""
    pipeline.module.compute_advantages(batch)
    return {"explained_variance": explained_variance(batch)}


def update(pipeline: Pipeline, batch: TensorDictBase, state: TrainState, ckpt_path: Path) -> dict[str, float]:
    """The PPO epochs over the batch, then one step of the LR schedule."""
    try:
        stats = pipeline.module.update(batch, pipeline.optimizer, pipeline.fabric_module.training_step)
    except NonFiniteUpdateError as err:
        raise NonFiniteUpdateError(
            f"Stopped at iteration {state.iteration + 1}: {err}. The last good checkpoint is {ckpt_path}."
        ) from None
    stats["lr"] = pipeline.optimizer.param_groups[0]["lr"]  # the LR this update ended with
    pipeline.scheduler.step()
    return stats


@dataclass
class Run:
    """One rank's open run: its pipeline, where it writes, and how far it has got."""

    cfg: Config
    pipeline: Pipeline
    run_dir: Path
    state: TrainState
    collector: Collector
    logger: RunLogger
    episode_metrics: EpisodeMetrics

    @property
    def ckpt_path(self) -> Path:
        return ckpt.checkpoint_path(self.run_dir)

    @property
    def finished(self) -> bool:
        return self.state.iteration >= self.pipeline.num_iterations


def open_run(cfg: Config) -> Run:
    """Launches the ranks, builds the pipeline, restores a resumed run; then, all checked, writes config.yaml.

    Nothing is written to the run directory before the config and, on resume, the checkpoint have
    been checked against each other: a refused run leaves the directory as it was.
    """
    resuming = cfg.resume is not None
    fabric = make_fabric(cfg)
    if not launched_by_fabric_cli():  # `fabric run` has already started one process per device
        fabric.launch()
    claimed = not cfg.run_dir  # a new default directory, made here
    run_dir = Path(fabric.broadcast(str(prepare_run_dir(cfg, resuming)) if fabric.is_global_zero else None))
    cfg.run_dir = str(run_dir)
    try:
        pipeline = build_pipeline(cfg, fabric)
    except ConfigError:
        if claimed and fabric.is_global_zero:
            release_claimed_run_dir(run_dir)
        raise
    state, saved = TrainState(), None
    if resuming:
        path = ckpt.checkpoint_path(run_dir)
        saved = ckpt.load(path)
        state = ckpt.restore(pipeline, saved, path)
    elif cfg.init_from:
        ckpt.initialize_from(pipeline, Path(cfg.init_from))
    if cfg.init_from and pipeline.obs_norm is not None:
        # the started policy reads its inputs through these statistics: moving them would move its actions
        pipeline.obs_norm.freeze()
    collector = make_collector(pipeline)
    if saved is not None:  # after every construction step that may draw random numbers
        ckpt.restore_memory(pipeline, collector, saved["ranks"][fabric.global_rank].get("memory"))
        ckpt.set_rng_state(saved["ranks"][fabric.global_rank]["rng"])
    if fabric.is_global_zero:
        if cfg.overwrite and not resuming:
            clear_run_dir(run_dir)
        cfg.save(run_dir / "config.yaml")
    logger = RunLogger(run_dir, resumed_at=state, enabled=fabric.is_global_zero)
    return Run(cfg, pipeline, run_dir, state, collector, logger, EpisodeMetrics().to(fabric.device))


def run_iteration(run: Run, batches: Iterator[TensorDictBase]) -> tuple[TensorDictBase, dict[str, float]]:
    """Collect, merge statistics, advantages, update, log: one PPO iteration."""
    pipeline, state = run.pipeline, run.state
    timer = Timer()
    batch = timer.phase("rollout", lambda: collect(batches, state, run.ckpt_path))
    timer.phase("sync", lambda: sync_statistics(pipeline.fabric, pipeline.env))
    row: dict[str, float] = {"iteration": state.iteration + 1, "env_steps": state.env_steps + pipeline.steps_per_iteration}
    row.update(run.episode_metrics(batch))
    row.update(timer.phase("advantages", lambda: compute_advantages(pipeline, batch)))
    row.update(timer.phase("update", lambda: update(pipeline, batch, state, run.ckpt_path)))
    state.iteration += 1
    state.env_steps += pipeline.steps_per_iteration
    log_iteration(run, row, timer)
    return batch, row


def log_iteration(run: Run, row: dict[str, float], timer: Timer) -> None:
    steps = run.pipeline.steps_per_iteration
    row.update(
        sps=steps / sum(timer.seconds.values()),
        rollout_sps=steps / timer.seconds["rollout"],
        **{f"time_{name}": seconds for name, seconds in timer.seconds.items()},
    )
    run.logger.log(row, iteration=run.state.iteration, env_steps=run.state.env_steps)


def save_checkpoint(run: Run) -> None:
    full_state = ckpt.checkpoint_state(run.pipeline, run.state, run.collector)  # collective: every rank takes part
    if run.pipeline.fabric.is_global_zero:
        ckpt.save_atomic(full_state, run.ckpt_path)


def progress_bar(run: Run) -> tqdm:
    return tqdm(
        total=run.pipeline.num_iterations * run.pipeline.steps_per_iteration,
        initial=run.state.env_steps,
        unit="step",
        disable=not (run.cfg.progress_bar and run.pipeline.fabric.is_global_zero),
        dynamic_ncols=True,
    )


def finish_run(run: Run, interrupted: str | None) -> dict[str, Any]:
    """Evaluates a completed run on rank 0 (writing eval.json) and closes the process group."""
    fabric, state = run.pipeline.fabric, run.state
    result: dict[str, Any] = {
        "env_steps": state.env_steps,
        "iteration": state.iteration,
        "run_dir": str(run.run_dir),
        "checkpoint": str(run.ckpt_path),
        "global_zero": fabric.is_global_zero,
        "interrupted": interrupted,
        "compile_seconds": run.pipeline.module.compile_seconds,
    }
    if fabric.is_global_zero and run.cfg.eval_episodes > 0 and not interrupted:
        scores = evaluate_pipeline(run.pipeline, run.cfg.eval_episodes)
        result.update(scores)
        result["eval_path"] = str(write_eval(run.run_dir, state.env_steps, scores))
    if fabric.world_size > 1:
        fabric.barrier()  # the other ranks wait here while rank 0 evaluates
        # an explicit teardown: a rank left to tear gloo down at interpreter exit sometimes aborts (SIGABRT)
        torch.distributed.destroy_process_group()
    return result


# ----------------------------------------------------------------------------- the run


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
    run = open_run(cfg)
    fabric, state = run.pipeline.fabric, run.state
    bar, last_return, interrupted = progress_bar(run), float("nan"), None
    batches = iter(run.collector)
    try:
        with StopRequest() as stop_request:
            while not run.finished:
                batch, row = run_iteration(run, batches)
                if on_iteration is not None:
                    on_iteration(run.pipeline, state, batch)
                last_return = row["episode_return_mean"] if row["episodes"] > 0 else last_return
                bar.update(run.pipeline.steps_per_iteration)
                bar.set_postfix(ret=f"{last_return:.1f}", sps=f"{row['sps']:.0f}")
                if any_rank(fabric, stop_request.signal is not None):
                    interrupted = signal.Signals(stop_request.signal or signal.SIGTERM).name
                elif state.iteration == stop_after:
                    interrupted = "stop_after"
                if state.iteration % cfg.checkpoint_every == 0 or run.finished or interrupted:
                    save_checkpoint(run)
                if interrupted:
                    break
    finally:
        bar.close()
        run.collector.shutdown()
        run.logger.close()
    return finish_run(run, interrupted)
