"""This project against Stable-Baselines3 PPO: same task, env-step budget, seeds and evaluation.

    pip install -e ".[bench]"
    python benchmarks/compare_sb3.py pendulum --steps 50000 --seeds 5 --jobs 2
    python benchmarks/compare_sb3.py halfcheetah --steps 1000000 --seeds 5 --jobs 2
    python benchmarks/compare_sb3.py pendulum --steps 20480 --seeds 2 --same-shape     # like-for-like speed
    python benchmarks/compare_sb3.py pendulum --steps 131072 --seeds 2 --same-shape --envs 256  # ... at 256 envs
    python benchmarks/compare_sb3.py halfcheetah --steps 1000000 --seeds 2 --libraries sb3  # one library only
    python benchmarks/compare_sb3.py halfcheetah --steps 1000000 --seeds 2 --first-seed 2 --libraries sb3  # seeds 2, 3
    python benchmarks/compare_sb3.py pendulum --steps 50000 --seeds 5 --jobs 2 --eval-episodes 100 --tag eval100

TASK is a preset of this project (its Gymnasium id is the task SB3 trains). SB3 gets the RL-Zoo's
tuned hyperparameters where the zoo has them (`ZOO` below, from rl-baselines3-zoo's hyperparams/ppo.yml;
the zoo's MuJoCo v3 settings are used for v5), its own defaults otherwise. Each (library, seed) is
its own process with `cores // jobs` torch threads. Both are evaluated the same way: deterministic
actions, frozen observation normalization, one episode in each of 10 envs seeded seed + 1,000,000 + i
(issue 4's protocol; `--eval-episodes N` for N of them: a Pendulum return depends much on its start state),
raw rewards. Learning curves: the mean raw return of the training episodes that ended in each
rollout. Training time excludes start-up and evaluation. Each library rounds the budget up or down to
whole rollouts (SB3 up, this project down), so the env steps trained are reported too. `--envs N`
(with `--same-shape`) gives both libraries N envs, the rest of the batch shape as the preset's.
Writes benchmarks/results/compare_sb3_<task>.csv, .md and .png.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from learning import RESULTS, plot_curves, recipe_args, run_parallel, summarize, train_recipe
EVAL_SEED_OFFSET = 1_000_000  # as gr00t_torchrl.evaluate
EVAL_EPISODES = 10  # issue 4's protocol; --eval-episodes takes more for a less noisy estimate
LIBRARIES = ("gr00t-torchrl", "sb3")

_MUJOCO_ZOO = {"normalize": True, "n_envs": 1, "policy_kwargs": {"log_std_init": -2, "ortho_init": False,
                                                                  "activation_fn": "relu",
                                                                  "net_arch": {"pi": [256, 256], "vf": [256, 256]}}}
ZOO: dict[str, dict] = {
    "Pendulum-v1": {"n_envs": 4, "n_steps": 1024, "gae_lambda": 0.95, "gamma": 0.9, "n_epochs": 10, "ent_coef": 0.0,
                    "learning_rate": 1e-3, "clip_range": 0.2, "use_sde": True, "sde_sample_freq": 4},
    "CartPole-v1": {"n_envs": 8, "n_steps": 32, "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 20,
                    "ent_coef": 0.0, "learning_rate": "lin_0.001", "clip_range": "lin_0.2"},
    "HalfCheetah-v5": {**_MUJOCO_ZOO, "batch_size": 64, "n_steps": 512, "gamma": 0.98, "learning_rate": 2.0633e-05,
                       "ent_coef": 0.000401762, "clip_range": 0.1, "n_epochs": 20, "gae_lambda": 0.92,
                       "max_grad_norm": 0.8, "vf_coef": 0.58096},
    "Hopper-v5": {**_MUJOCO_ZOO, "batch_size": 32, "n_steps": 512, "gamma": 0.999, "learning_rate": 9.80828e-05,
                  "ent_coef": 0.00229519, "clip_range": 0.2, "n_epochs": 5, "gae_lambda": 0.99, "max_grad_norm": 0.7,
                  "vf_coef": 0.835671},
}


# --------------------------------------------------------------------------- workers (one process each)
def ours_overrides(eval_episodes: int = EVAL_EPISODES, envs: int | None = None) -> list[str]:
    """This project's evaluation set to the one SB3's runs get (and its env count, where one is given)."""
    return [f"eval_episodes={eval_episodes}", *([f"env.num_envs={envs}"] if envs else [])]


def ours_args(task: str, steps: int, seed: int, run_dir: Path) -> list[str]:
    """The overrides of one of this project's benchmark runs."""
    return recipe_args(task, steps, seed, run_dir, ours_overrides())


def run_ours(task: str, steps: int, seed: int, out: Path, eval_episodes: int, envs: int | None = None) -> None:
    run = train_recipe(task, steps, seed, ours_overrides(eval_episodes, envs))
    keys = ("eval_return", "eval_episodes", "train_s", "env_steps", "curve")
    out.write_text(json.dumps({key: run[key] for key in keys}))


def _schedule(value):
    if isinstance(value, str) and value.startswith("lin_"):
        start = float(value[4:])
        return lambda progress_remaining: progress_remaining * start
    return value


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


def run_sb3(env_id: str, steps: int, seed: int, out: Path, eval_episodes: int, params: dict | None = None) -> None:
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    params = dict(ZOO.get(env_id, {}) if params is None else params)
    n_envs = params.pop("n_envs", 1)
    normalize = params.pop("normalize", False)
    kwargs = params.pop("policy_kwargs", None)
    if kwargs is not None:
        activations = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "elu": torch.nn.ELU}
        kwargs = {**kwargs, "activation_fn": activations[kwargs["activation_fn"]]}
    params = {k: _schedule(v) for k, v in params.items()}
    env = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    if normalize:
        env = VecNormalize(env, gamma=params.get("gamma", 0.99))
    model = PPO("MlpPolicy", env, seed=seed, policy_kwargs=kwargs, verbose=0, device="cpu", **params)

    curve: list[tuple[int, float]] = []

    class Curve(BaseCallback):
        def _on_rollout_start(self) -> None:
            self.returns: list[float] = []

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.returns.append(float(info["episode"]["r"]))
            return True

        def _on_rollout_end(self) -> None:
            if self.returns:
                curve.append((self.num_timesteps, float(np.mean(self.returns))))

    start = time.perf_counter()
    model.learn(total_timesteps=steps, callback=Curve())
    train_time = time.perf_counter() - start

    returns = []
    for i in range(eval_episodes):
        eval_env = gym.make(env_id)
        obs, _ = eval_env.reset(seed=seed + EVAL_SEED_OFFSET + i)
        total, done = 0.0, False
        while not done:
            if normalize:
                obs = env.normalize_obs(obs)  # frozen: normalize_obs does not update the statistics
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = eval_env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    out.write_text(json.dumps({"eval_return": float(np.mean(returns)), "eval_episodes": len(returns),
                               "train_s": train_time,
                               "env_steps": int(model.num_timesteps), "curve": curve}))


# --------------------------------------------------------------------------- driver
def run_job(library: str, task: str, steps: int, seed: int, threads: int, same_shape: bool, eval_episodes: int,
            envs: int | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, __file__, "--worker", library, task, "--steps", str(steps),
                   "--seed", str(seed), "--out", str(out), "--eval-episodes", str(eval_episodes),
                   *(["--same-shape"] if same_shape else []), *(["--envs", str(envs)] if envs else [])]
        proc = subprocess.run(command, capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        if proc.returncode != 0:
            raise RuntimeError(f"{library} seed {seed} failed:\n{proc.stderr[-3000:]}")
        result = json.loads(out.read_text())
    return {"library": library, "seed": seed, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", help="a preset of this project, e.g. pendulum")
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=1, help="seeds are first-seed, first-seed + 1, ...")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (each gets cores // jobs threads)")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--same-shape", action="store_true",
                        help="SB3 with this preset's envs, rollout, mini-batch size, epochs and network: like-for-like speed")
    parser.add_argument("--envs", type=int, default=None,
                        help="with --same-shape: both libraries get this many envs (the preset's batch shape otherwise)")
    parser.add_argument("--libraries", nargs="+", choices=LIBRARIES, default=list(LIBRARIES),
                        help="train only these (e.g. sb3 where this project's runs of the budget exist already)")
    parser.add_argument("--eval-episodes", type=int, default=EVAL_EPISODES,
                        help="held-out evaluation episodes per run, both libraries (issue 4's protocol: 10)")
    parser.add_argument("--worker", choices=LIBRARIES, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.envs is not None and not args.same_shape:
        parser.error("--envs needs --same-shape (SB3's tuned settings fix their own env count)")

    from gr00t_torchrl.tasks import resolve_config

    env_id = resolve_config([f"task={args.task}"]).env.id
    if args.worker == "gr00t-torchrl":
        return run_ours(args.task, args.steps, args.seed, args.out, args.eval_episodes, args.envs)
    if args.worker == "sb3":
        params = same_shape_params(args.task, args.envs) if args.same_shape else None
        return run_sb3(env_id, args.steps, args.seed, args.out, args.eval_episodes, params)
    if "sb3" in args.libraries and importlib.util.find_spec("stable_baselines3") is None:
        sys.exit('compare_sb3 needs Stable-Baselines3 to train it: pip install -e ".[bench]"')

    threads = max((os.cpu_count() or 1) // args.jobs, 1)
    jobs = [(lib, seed) for seed in range(args.first_seed, args.first_seed + args.seeds) for lib in args.libraries]
    rows = run_parallel(
        lambda j: run_job(j[0], args.task, args.steps, j[1], threads, args.same_shape, args.eval_episodes, args.envs),
        jobs, args.jobs
    )

    RESULTS.mkdir(parents=True, exist_ok=True)
    tag = "_".join(filter(None, ["same_shape" if args.same_shape else "", f"envs{args.envs}" if args.envs else "",
                                 args.tag]))
    stem = f"compare_sb3_{args.task}{'_' + tag if tag else ''}"
    with (RESULTS / f"{stem}.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["library", "seed", "env_steps", "eval_return", "eval_episodes", "train_s", "sps"])
        for r in rows:
            writer.writerow([r["library"], r["seed"], r["env_steps"], f"{r['eval_return']:.2f}", r["eval_episodes"],
                             f"{r['train_s']:.1f}", f"{r['env_steps'] / r['train_s']:.0f}"])
    command = " ".join(["python benchmarks/compare_sb3.py", *sys.argv[1:]])
    shape = f"this preset's batch shape with {args.envs} envs" if args.envs else "this preset's batch shape"
    sb3_settings = (f"{shape}, network and update settings (VecNormalize where the preset "
                    "normalizes)" if args.same_shape else "RL-Zoo tuned" if env_id in ZOO else "SB3 defaults")
    lines = [
        f"# {env_id}: gr00t-torchrl (`{args.task}` preset) vs Stable-Baselines3 PPO, {args.steps} env steps",
        "",
        f"Command: `{command}` ({threads} torch thread(s) per run, {args.jobs} run(s) at a time). "
        f"SB3 settings: {sb3_settings}. Eval: deterministic, "
        f"{args.eval_episodes} held-out episodes.",
        "",
        "| library | env steps trained | eval return, mean +- std | per seed | train wall s, mean | env steps/s, mean |",
        "|---|---|---|---|---|---|",
    ]
    for library in args.libraries:
        s = summarize(rows, library)
        lines.append(
            f"| {library} | {s['env_steps']} | {s['mean']:.1f} +- {s['std']:.1f} | "
            f"{', '.join(f'{x:.0f}' for x in s['returns'])} | {s['train_s']:.0f} | {s['sps']:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    (RESULTS / f"{stem}.md").write_text(text)
    plot_curves(rows, tuple(args.libraries), f"PPO on {env_id}", args.steps, RESULTS / f"{stem}.png")
    print(text)


if __name__ == "__main__":
    main()
