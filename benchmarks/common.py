"""What the benchmark scripts share: where results go, the header every results file states, table,
CSV and plot writing, running the recipe (one run per subprocess, several in parallel) and reading a
finished run, the shared evaluation settings, timers and random stepping of a task.

Every script in benchmarks/ imports from here (and from the package), never from another script.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# where result files go; GR00T_BENCH_RESULTS redirects them (the smoke tests do)
RESULTS = Path(os.environ.get("GR00T_BENCH_RESULTS", Path(__file__).resolve().parent / "results"))
RECIPE = ROOT / "recipes" / "ppo_gr00t.py"

# evaluation of the comparisons (issue 4's protocol): deterministic actions, frozen observation
# statistics, raw rewards, one episode in each of EVAL_EPISODES envs seeded from
# gr00t_torchrl.seeding.evaluation_seed(seed); --eval-episodes takes more for a less noisy estimate
EVAL_EPISODES = 10


# --------------------------------------------------------------------------- results files
def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that ran this benchmark, as typed from the repository root."""
    argv = list(sys.argv if argv is None else argv)
    return shlex.join(["python", f"benchmarks/{Path(argv[0]).name}", *argv[1:]])


def code_version() -> str:
    """`git rev-parse --short HEAD`, plus "+dirty" when the tree differs from it outside benchmarks/results."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        changes = git("status", "--porcelain", "--", ".", ":(exclude)benchmarks/results")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + ("+dirty" if changes else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> str:
    """CPU count (and model), torch and torchrl versions, and the GPU if torch sees one."""
    import torch

    model = _cpu_model()
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    return (f"{os.cpu_count()} CPU cores{f' ({model})' if model else ''}, torch {_version('torch')}, "
            f"torchrl {_version('torchrl')}, GPU: {gpu}")


def header_lines(command: str | None = None) -> list[str]:
    """What every results file states first: the command, the date, the machine and the code version."""
    return [
        f"- Command: `{command or command_line()}`",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine()}",
        f"- Code version: `{code_version()}`",
    ]


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A markdown table's lines: the column names, the rule, one line per row (cells as given)."""
    return [f"| {' | '.join(columns)} |", "|" + "---|" * len(columns),
            *(f"| {' | '.join(str(cell) for cell in row)} |" for row in rows)]


def write_markdown(stem: str, title: str, body: Sequence[str], command: str | None = None) -> str:
    """Writes RESULTS/<stem>.md: the title, the header (`header_lines`), then `body`; returns the text."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = "\n".join([f"# {title}", "", *header_lines(command), "", *body]).rstrip("\n") + "\n"
    (RESULTS / f"{stem}.md").write_text(text)
    return text


def write_rows(rows: list[dict], stem: str) -> Path:
    """Writes `rows` to RESULTS/<stem>.csv, creating the folder."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{stem}.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def seed_list(seeds: Sequence[int]) -> str:
    """"1, 2, 3": every seed of a table, for its text."""
    return ", ".join(str(s) for s in seeds)


def plot_curves(rows: list[dict], libraries: tuple[str, ...], title: str, steps: int, path: Path) -> None:
    """Mean +- std over seeds of each library's learning curve (rows hold "library" and "curve")."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(0, steps, 50)
    fig, ax = plt.subplots(figsize=(6, 4))
    for library in libraries:
        curves = [np.asarray(r["curve"], dtype=float) for r in rows if r["library"] == library and r["curve"]]
        if not curves:
            continue
        ys = np.stack([np.interp(grid, c[:, 0], c[:, 1], left=np.nan) for c in curves])
        mean, std = np.nanmean(ys, axis=0), np.nanstd(ys, axis=0)
        ax.plot(grid, mean, label=f"{library} ({len(curves)} seeds)")
        ax.fill_between(grid, mean - std, mean + std, alpha=0.25)
    ax.set_xlabel("env steps")
    ax.set_ylabel("training episode return")
    ax.set_title(f"{title}: mean +- std over seeds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def sb3_schedule(value: Any) -> Any:
    """An RL-Zoo hyperparameter as SB3 takes it: "lin_<x>" becomes a linear schedule from x to 0."""
    if isinstance(value, str) and value.startswith("lin_"):
        start = float(value[4:])
        return lambda progress_remaining: progress_remaining * start
    return value


def sb3_curve_callback(curve: list[tuple[int, float]]) -> Any:
    """An SB3 callback that appends (env steps, mean return of the episodes that ended) after each rollout."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Curve(BaseCallback):
        def _on_rollout_start(self) -> None:
            self.returns: list[float] = []

        def _on_step(self) -> bool:
            self.returns += [float(info["episode"]["r"]) for info in self.locals["infos"] if "episode" in info]
            return True

        def _on_rollout_end(self) -> None:
            if self.returns:
                curve.append((self.num_timesteps, float(np.mean(self.returns))))

    return Curve()


# --------------------------------------------------------------------------- runs of the recipe
def threads_per_job(jobs: int) -> int:
    """Torch threads of each of `jobs` runs in parallel: the cores shared out."""
    return max((os.cpu_count() or 1) // jobs, 1)


def run_parallel(fn, jobs: list, parallel: int) -> list:
    """`fn` over `jobs`, `parallel` at a time (each job is a subprocess, so threads suffice)."""
    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(fn, jobs))


def recipe_args(task: str, steps: int, seed: int, run_dir: Path, overrides: Sequence[str] = ()) -> list[str]:
    """The recipe's settings for one benchmark run of `task` (budget, seed, where it writes), then `overrides`."""
    return [f"task={task}", f"total_steps={steps}", f"seed={seed}", f"run_dir={run_dir}", "progress_bar=false",
            *overrides]


def ours_overrides(eval_episodes: int = EVAL_EPISODES, envs: int | None = None) -> list[str]:
    """This project's evaluation set to the one the other libraries' runs get (and its env count, if given)."""
    return [f"eval_episodes={eval_episodes}", *([f"env.num_envs={envs}"] if envs else [])]


def ours_args(task: str, steps: int, seed: int, run_dir: Path) -> list[str]:
    """The settings of one of this project's runs in a comparison with another library."""
    return recipe_args(task, steps, seed, run_dir, ours_overrides())


def read_run(run_dir: Path) -> dict:
    """A finished run's eval return, env steps, training time (its iterations' times summed), median steps/s
    after the first iteration (which warms up) and learning curve (env steps, training episode return)."""
    result = json.loads((run_dir / "eval.json").read_text())
    with (run_dir / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("sps")]
    train_time = sum((float(b["env_steps"]) - float(a["env_steps"])) / float(b["sps"])
                     for a, b in zip([{"env_steps": 0}, *rows], rows))
    curve = [(int(float(r["env_steps"])), float(r["episode_return_mean"])) for r in rows
             if r.get("episode_return_mean") not in (None, "", "nan")]
    sps = [float(r["sps"]) for r in rows][1:]
    return {"eval_return": result["eval_return_mean"], "eval_episodes": result["episodes"], "train_s": train_time,
            "env_steps": int(float(rows[-1]["env_steps"])),
            "sps": statistics.median(sps) if sps else float("nan"), "curve": curve,
            "compile_s": float(rows[0].get("time_compile") or 0.0)}  # compile=true: within the first iteration's time


def train_recipe(task: str, steps: int, seed: int, overrides: Sequence[str] = (), threads: int | None = None) -> dict:
    """Trains the recipe in a subprocess (`threads` torch threads) and reads the finished run (`read_run`), plus its wall time."""
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(RECIPE), *recipe_args(task, steps, seed, run_dir, overrides)],
                              capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"run failed ({task} steps={steps} seed={seed}):\n{proc.stderr[-2000:]}")
        return {**read_run(run_dir), "wall_s": wall}


def run_one(task: str, steps: int, seed: int, overrides: Sequence[str], threads: int) -> dict:
    """One row of a learning table: the run's eval return, wall time and median steps/s."""
    run = train_recipe(task, steps, seed, overrides, threads)
    return {"task": task, "steps": steps, "seed": seed, "eval_return": run["eval_return"], "wall_s": run["wall_s"],
            "sps": run["sps"]}


def summarize(rows: list[dict], library: str) -> dict:
    """One library's rows of a comparison: seeds, eval returns per seed, their mean and std, mean train time and steps/s."""
    mine = [r for r in rows if r["library"] == library]
    returns = [r["eval_return"] for r in mine]
    return {
        "seeds": [r["seed"] for r in mine],
        "returns": returns,
        "mean": statistics.mean(returns),
        "std": statistics.stdev(returns) if len(returns) > 1 else 0.0,
        "env_steps": mine[0]["env_steps"],
        "train_s": statistics.mean(r["train_s"] for r in mine),
        "sps": statistics.mean(r["env_steps"] / r["train_s"] for r in mine),
    }


def same_shape_params(task: str, envs: int | None = None) -> dict:
    """SB3 settings with this preset's batch shape (with `envs` envs if given), network and update settings."""
    from gr00t_torchrl.tasks import resolve_config

    cfg = resolve_config([f"task={task}", *([f"env.num_envs={envs}"] if envs else [])])
    return {
        "n_envs": cfg.env.num_envs, "n_steps": cfg.ppo.num_steps, "n_epochs": cfg.ppo.num_epochs,
        "batch_size": cfg.frames_per_batch // cfg.ppo.num_minibatches, "gamma": cfg.ppo.gamma,
        "gae_lambda": cfg.ppo.lmbda, "learning_rate": cfg.ppo.lr, "ent_coef": cfg.ppo.entropy_coeff,
        "normalize": cfg.env.normalize_obs or cfg.env.scale_reward,
        "policy_kwargs": {"activation_fn": cfg.network.activation,
                          "net_arch": {"pi": list(cfg.network.hidden_sizes), "vf": list(cfg.network.hidden_sizes)}},
    }


def rsl_rl_runner(task: str, num_envs: int, seed: int, log_dir: str, device: str = "cpu") -> tuple[Any, Any]:
    """mjlab's own rsl_rl runner for `task` with its registered config, and that config, on `device`."""
    import copy
    import dataclasses

    from mjlab.rl import MjlabOnPolicyRunner, RslRlVecEnvWrapper
    from mjlab.tasks.registry import load_rl_cfg

    from gr00t_torchrl.envs.mjlab_adapter import make_mjlab_env

    agent = copy.deepcopy(load_rl_cfg(task))
    agent.seed, agent.logger = seed, "tensorboard"
    env = RslRlVecEnvWrapper(make_mjlab_env(task, num_envs, device, seed).env, clip_actions=agent.clip_actions)
    return MjlabOnPolicyRunner(env, dataclasses.asdict(agent), log_dir, device), agent


# --------------------------------------------------------------------------- timing
class Stopwatch:
    """Seconds spent in wrapped methods, per part name (a wrapper costs microseconds per call).

    Wrapping mjlab's env step gives the simulator's share of a library's training time; the rest is
    what the library adds per iteration (policy, env wrapper, storage, advantages, update), a figure
    that the shared machine's noise on the simulator does not swamp.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, owner: object, method: str, part: str) -> None:
        inner = getattr(owner, method)
        self.seconds[part] = 0.0

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[part] += time.perf_counter() - start

        setattr(owner, method, timed)


def synchronize(device: str) -> None:
    """Waits for the GPU's queued work (nothing on a CPU)."""
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def raw_task_sps(env_id: str, num_envs: int, frames: int, device: str) -> float:
    """Random stepping of a batched Isaac-API task: one tensor of actions per step, on `device`."""
    import torch

    from gr00t_torchrl.envs.isaac_api import make_raw_task

    task = make_raw_task(env_id, num_envs, device, seed=0, episode_length=None)
    task.reset()
    dim = task.single_action_space.shape[0]
    steps = max(frames // num_envs, 1)
    actions = torch.rand(steps + 5, num_envs, dim, device=task.device) * 2 - 1
    for action in actions[:5]:
        task.step(action)
    synchronize(device)
    start = time.perf_counter()
    for action in actions[5:]:
        task.step(action)
    synchronize(device)
    return steps * num_envs / (time.perf_counter() - start)


def random_stepping(env_id: str, num_envs: int) -> tuple[object, Callable[[int], None]]:
    """A Gymnasium vector env of `env_id` and a function that steps it n times with random actions.

    Finished envs are reset as they end, as both this project and SB3 step them.
    """
    import gymnasium as gym

    from gr00t_torchrl.envs import ResumableSyncVectorEnv

    env = ResumableSyncVectorEnv([lambda: gym.make(env_id) for _ in range(num_envs)])
    env.reset(seed=0)
    env.action_space.seed(0)

    def step(n: int) -> None:
        for _ in range(n):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated | truncated
            if done.any():
                env.reset(options={"reset_mask": np.asarray(done)})

    return env, step
