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
its own process with `cores // jobs` torch threads. Seeds are the base seeds first-seed, first-seed + 1,
...; every random stream of a run is spawned from its base seed with numpy's SeedSequence
(gr00t_torchrl.seeding), SB3's too: its torch seed and training env seeds are the ones this project's
run of the same base seed uses (`rank_seeds`), so no two seeds share an env stream (SB3's own
`seed + i` per env would). Both are evaluated the same way, on the same start states: deterministic
actions, frozen observation normalization, one episode in each of 10 envs (issue 4's protocol;
`--eval-episodes N` for N of them: a Pendulum return depends much on its start state), env i seeded
with `sub_env_seeds(evaluation_seed(seed), N)[i]` and reset once more, as this project's evaluation
resets it (`sb3_eval_env`), raw rewards. Learning curves: the mean raw return of the training episodes
that ended in each rollout. Training time excludes start-up and evaluation. Each library rounds the budget up or down to
whole rollouts (SB3 up, this project down), so the env steps trained are reported too. `--envs N`
(with `--same-shape`) gives both libraries N envs, the rest of the batch shape as the preset's.
Writes benchmarks/results/compare_sb3_<task>.csv, .md and .png.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import (EVAL_EPISODES, RESULTS, markdown_table, ours_overrides, plot_curves, run_parallel, same_shape_params,
                    sb3_curve_callback, sb3_schedule, seed_list, summarize, threads_per_job, train_recipe, write_markdown,
                    write_rows)

from gr00t_torchrl.seeding import evaluation_seed, rank_seeds, sub_env_seeds

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
def run_ours(task: str, steps: int, seed: int, out: Path, eval_episodes: int, envs: int | None = None) -> None:
    run = train_recipe(task, steps, seed, ours_overrides(eval_episodes, envs))
    keys = ("eval_return", "eval_episodes", "train_s", "env_steps", "curve")
    out.write_text(json.dumps({key: run[key] for key in keys}))


def sb3_eval_envs(env_id: str, seed: int, episodes: int) -> list[tuple[object, np.ndarray]]:
    """SB3's evaluation envs of base seed `seed`, each with its first observation: the start states of this
    project's evaluation episodes (gr00t_torchrl.evaluate).

    This project's evaluation builds a vector env whose env i is reset with seed
    `sub_env_seeds(evaluation_seed(seed), episodes)[i]`, then TorchRL's reset at the start of the
    evaluation resets it once more, which starts episode i: the same two resets here.
    """
    import gymnasium as gym

    envs = []
    for env_seed in sub_env_seeds(evaluation_seed(seed), episodes):
        env = gym.make(env_id)
        env.reset(seed=env_seed)
        obs, _ = env.reset()
        envs.append((env, obs))
    return envs


def run_sb3(env_id: str, steps: int, seed: int, out: Path, eval_episodes: int, params: dict | None = None) -> None:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.utils import set_random_seed
    from stable_baselines3.common.vec_env import VecNormalize

    params = dict(ZOO.get(env_id, {}) if params is None else params)
    n_envs = params.pop("n_envs", 1)
    normalize = params.pop("normalize", False)
    kwargs = params.pop("policy_kwargs", None)
    if kwargs is not None:
        activations = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "elu": torch.nn.ELU}
        kwargs = {**kwargs, "activation_fn": activations[kwargs["activation_fn"]]}
    params = {k: sb3_schedule(v) for k, v in params.items()}
    # the streams this project's run of `seed` uses (SB3's own seeding, seed + i per env, would
    # share env streams between seeds s and s + 1): torch / NumPy / Python, and one seed per env
    seeds = rank_seeds(seed)
    set_random_seed(seeds.torch)
    env = make_vec_env(env_id, n_envs=n_envs)
    for sub_env, env_seed in zip(env.envs, sub_env_seeds(seeds.envs, n_envs), strict=True):
        sub_env.reset(seed=env_seed)  # learn()'s unseeded reset continues this stream, as ours does
        sub_env.action_space.seed(env_seed)
    if normalize:
        env = VecNormalize(env, gamma=params.get("gamma", 0.99))
    model = PPO("MlpPolicy", env, policy_kwargs=kwargs, verbose=0, device="cpu", **params)

    curve: list[tuple[int, float]] = []

    start = time.perf_counter()
    model.learn(total_timesteps=steps, callback=sb3_curve_callback(curve))
    train_time = time.perf_counter() - start

    returns = []
    for eval_env, obs in sb3_eval_envs(env_id, seed, eval_episodes):
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

    threads = threads_per_job(args.jobs)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    jobs = [(lib, seed) for seed in seeds for lib in args.libraries]
    rows = run_parallel(
        lambda j: run_job(j[0], args.task, args.steps, j[1], threads, args.same_shape, args.eval_episodes, args.envs),
        jobs, args.jobs
    )

    tag = "_".join(filter(None, ["same_shape" if args.same_shape else "", f"envs{args.envs}" if args.envs else "",
                                 args.tag]))
    stem = f"compare_sb3_{args.task}{'_' + tag if tag else ''}"
    write_rows([{"library": r["library"], "seed": r["seed"], "env_steps": r["env_steps"],
                 "eval_return": f"{r['eval_return']:.2f}", "eval_episodes": r["eval_episodes"],
                 "train_s": f"{r['train_s']:.1f}", "sps": f"{r['env_steps'] / r['train_s']:.0f}"} for r in rows], stem)
    shape = f"this preset's batch shape with {args.envs} envs" if args.envs else "this preset's batch shape"
    sb3_settings = (f"{shape}, network and update settings (VecNormalize where the preset "
                    "normalizes)" if args.same_shape else "RL-Zoo tuned" if env_id in ZOO else "SB3 defaults")
    table = []
    for library in args.libraries:
        s = summarize(rows, library)
        table.append([library, s["env_steps"], f"{s['mean']:.1f} +- {s['std']:.1f}",
                      ", ".join(f"{x:.0f}" for x in s["returns"]), f"{s['train_s']:.0f}", f"{s['sps']:.0f}"])
    text = write_markdown(stem, f"{env_id}: gr00t-torchrl (`{args.task}` preset) vs Stable-Baselines3 PPO, "
                                f"{args.steps} env steps", [
        f"Seeds {seed_list(seeds)}, both libraries ({threads} torch thread(s) per run, {args.jobs} run(s) at a "
        f"time). SB3 settings: {sb3_settings}. Eval: deterministic, {args.eval_episodes} held-out episodes, "
        "the same start states for both libraries (env i seeded with "
        "`sub_env_seeds(evaluation_seed(seed), episodes)[i]`).",
        "",
        *markdown_table(["library", "env steps trained", "eval return, mean +- std", "per seed",
                         "train wall s, mean", "env steps/s, mean"], table),
    ])
    plot_curves(rows, tuple(args.libraries), f"PPO on {env_id}", args.steps, RESULTS / f"{stem}.png")
    print(text)


if __name__ == "__main__":
    main()
