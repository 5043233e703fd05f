"""How fast, against SB3, can any PPO train a Gymnasium task on this machine at the same batch shape?

    pip install -e ".[bench]"
    python benchmarks/speed_bound.py pendulum --envs 4 64 256 --iterations 5

Issue 4 asks for the whole training loop at 1.5x SB3's env steps/s on the same task, number of envs
and batch shape. This script bounds the ratio that any implementation could reach here. Every figure
is the median time of one PPO iteration (num_envs x num_steps env steps, then the epochs x
mini-batches of the preset), measured in this one process, one part after another:

- SB3: its own `collect_rollouts` and `train`, timed around SB3's methods, with the settings of
  `compare_sb3.py --same-shape` (this preset's batch shape, networks, update settings, VecNormalize).
- raw rollout: the same Gymnasium vector env stepped with random actions (no policy, normalization
  or storage): what both libraries' rollouts step.
- floor policy: the actor network and a Normal sample on one batch of observations, once per env step
  (no obs conversion, normalization or storage): what any rollout must add to the raw stepping.
- floor update: the update reduced to the least plain PyTorch does for PPO: the preset's networks,
  the Normal log-prob, clipped surrogate and clipped value loss, backward, grad-norm clip and fused
  Adam, on random tensors of the mini-batch's shape; no GAE, metrics or bookkeeping.
- bound = SB3 / (raw rollout + floor policy + floor update): the speed ratio to SB3 of an
  implementation whose normalization, storage, GAE and logging cost nothing and whose policy and
  update are the barest plain PyTorch. A goal above the bound cannot be met by any eager PyTorch
  implementation stepping this env.
- this project: its collector's rollout and its advantages + update, timed the same way.

Writes benchmarks/results/speed_bound_<task>.md and .csv.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import torch
from torch import nn

from compare_sb3 import same_shape_params
from learning import RESULTS, write_rows
from throughput import raw_sps

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1e3


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def sb3_iteration(task: str, env_id: str, num_envs: int, iterations: int) -> tuple[float, float]:
    """(collect, train) ms per iteration of SB3 PPO with this preset's batch shape and settings."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    params = same_shape_params(task, num_envs)
    params.pop("n_envs")
    normalize = params.pop("normalize")
    policy_kwargs = params.pop("policy_kwargs")
    policy_kwargs["activation_fn"] = ACTIVATIONS[policy_kwargs["activation_fn"]]
    env = make_vec_env(env_id, n_envs=num_envs, seed=0)
    if normalize:
        env = VecNormalize(env, gamma=params["gamma"])
    model = PPO("MlpPolicy", env, seed=0, policy_kwargs=policy_kwargs, device="cpu", verbose=0, **params)
    times: dict[str, list[float]] = {"collect_rollouts": [], "train": []}
    for name, seconds in times.items():
        inner = getattr(model, name)

        def timing(*args, _inner=inner, _seconds=seconds, **kwargs):
            start = time.perf_counter()
            result = _inner(*args, **kwargs)
            _seconds.append(time.perf_counter() - start)
            return result

        setattr(model, name, timing)
    model.learn(num_envs * params["n_steps"] * (iterations + 1))
    env.close()
    return median_ms(times["collect_rollouts"][1:]), median_ms(times["train"][1:])  # the first one warms up


def preset_mlp(in_dim: int, out_dim: int, cfg) -> nn.Sequential:
    """A plain MLP with the preset's hidden sizes and activation."""
    sizes = [in_dim, *cfg.network.hidden_sizes]
    layers: list[nn.Module] = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(i, o), ACTIVATIONS[cfg.network.activation]()]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], out_dim))


def floor_policy(obs_dim: int, action_dim: int, cfg, iterations: int) -> float:
    """ms per iteration of the barest policy step (actor forward, a Normal sample), once per env step."""
    actor, log_std = preset_mlp(obs_dim, action_dim, cfg), torch.zeros(action_dim)
    obs = torch.randn(cfg.env.num_envs, obs_dim)

    @torch.no_grad()
    def rollout_policy() -> None:
        for _ in range(cfg.ppo.num_steps):
            mean = actor(obs)
            mean + log_std.exp() * torch.randn_like(mean)

    rollout_policy()  # warm-up
    return median_ms([timed(rollout_policy) for _ in range(iterations)])


def floor_update(obs_dim: int, action_dim: int, cfg, iterations: int) -> float:
    """ms per iteration of the barest PPO update with the preset's networks and mini-batch shape."""
    actor, critic = preset_mlp(obs_dim, action_dim, cfg), preset_mlp(obs_dim, 1, cfg)
    log_std = nn.Parameter(torch.zeros(action_dim))
    params = [*actor.parameters(), *critic.parameters(), log_std]
    optimizer = torch.optim.Adam(params, lr=cfg.ppo.lr, eps=cfg.ppo.adam_eps, fused=True)
    rows = cfg.frames_per_batch // cfg.ppo.num_minibatches
    obs, action = torch.randn(rows, obs_dim), torch.randn(rows, action_dim)
    old_log_prob, advantage, value_target, old_value = (torch.randn(rows) for _ in range(4))
    eps = cfg.ppo.clip_epsilon

    def minibatch() -> None:
        log_prob = torch.distributions.Normal(actor(obs), log_std.exp()).log_prob(action).sum(-1)
        ratio = (log_prob - old_log_prob).exp()
        policy_loss = -torch.min(advantage * ratio, advantage * ratio.clamp(1 - eps, 1 + eps)).mean()
        value = critic(obs).squeeze(-1)
        clipped = old_value + (value - old_value).clamp(-eps, eps)
        value_loss = 0.5 * torch.max((value - value_target) ** 2, (clipped - value_target) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        (policy_loss + cfg.ppo.vf_coef * value_loss).backward()
        nn.utils.clip_grad_norm_(params, cfg.ppo.max_grad_norm or float("inf"))
        optimizer.step()

    def one_update() -> None:
        for _ in range(cfg.ppo.num_epochs * cfg.ppo.num_minibatches):
            minibatch()

    one_update()  # warm-up
    return median_ms([timed(one_update) for _ in range(iterations)])


def project_iteration(cfg, iterations: int) -> tuple[float, float]:
    """(rollout, advantages + update) ms per iteration of this project's pipeline."""
    import lightning as L

    from gr00t_torchrl.runner import build_pipeline, make_collector

    p = build_pipeline(cfg, L.Fabric(accelerator="cpu", devices=1))
    collector = make_collector(p)
    batches = iter(collector)
    rollout, update = [], []
    for _ in range(iterations + 1):
        start = time.perf_counter()
        batch = next(batches)
        rollout.append(time.perf_counter() - start)
        update.append(timed(lambda: (p.module.compute_advantages(batch),
                                     p.module.update(batch, p.optimizer, p.fabric_module.training_step))))
    collector.shutdown()
    return median_ms(rollout[1:]), median_ms(update[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", help="a Gymnasium preset of this project, e.g. pendulum")
    parser.add_argument("--envs", type=int, nargs="+", default=[4, 64, 256])
    parser.add_argument("--iterations", type=int, default=5, help="timed PPO iterations per measurement")
    parser.add_argument("--goal", type=float, default=1.5, help="the speed ratio to SB3 asked for")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from gr00t_torchrl.config import resolve_config
    from gr00t_torchrl.envs.isaac_api import is_isaac_api_task

    rows = []
    for num_envs in args.envs:
        cfg = resolve_config([f"task={args.task}", f"env.num_envs={num_envs}"])
        if is_isaac_api_task(cfg.env.id):
            raise SystemExit(f"'{args.task}' is not a Gymnasium task: SB3 cannot train it.")
        frames = cfg.frames_per_batch
        sb3_collect, sb3_train = sb3_iteration(args.task, cfg.env.id, num_envs, args.iterations)
        raw = frames / raw_sps(cfg.env.id, num_envs, frames * args.iterations) * 1e3
        import gymnasium as gym

        probe = gym.make(cfg.env.id)
        obs_dim, action_dim = probe.observation_space.shape[0], probe.action_space.shape[0]
        probe.close()
        policy = floor_policy(obs_dim, action_dim, cfg, args.iterations)
        floor = floor_update(obs_dim, action_dim, cfg, args.iterations)
        ours_rollout, ours_update = project_iteration(cfg, args.iterations)
        sb3 = sb3_collect + sb3_train
        row = {
            "task": args.task, "num_envs": num_envs, "env_steps_per_iteration": frames,
            "minibatch": frames // cfg.ppo.num_minibatches, "updates_per_iteration": cfg.ppo.num_epochs * cfg.ppo.num_minibatches,
            "sb3_collect_ms": round(sb3_collect, 1), "sb3_train_ms": round(sb3_train, 1),
            "raw_rollout_ms": round(raw, 1), "floor_policy_ms": round(policy, 1), "floor_update_ms": round(floor, 1),
            "bound": round(sb3 / (raw + policy + floor), 2),
            "ours_rollout_ms": round(ours_rollout, 1), "ours_update_ms": round(ours_update, 1),
            "ours_vs_sb3": round(sb3 / (ours_rollout + ours_update), 2),
        }
        print(row, flush=True)
        rows.append(row)

    write_rows(rows, f"speed_bound_{args.task}")
    lines = [
        f"# {args.task}: the speed ratio to SB3 that any PPO could reach on this machine, same batch shape",
        "",
        f"Command: `python benchmarks/speed_bound.py {args.task} --envs {' '.join(map(str, args.envs))} "
        f"--iterations {args.iterations}` (torch threads: {torch.get_num_threads()}; one process, one part at a "
        "time). Milliseconds per PPO iteration, medians. Bound = SB3 / (raw rollout + floor policy + floor update): "
        "the ratio of an implementation whose normalization, storage, GAE and logging cost nothing and whose "
        "policy and update are the barest plain PyTorch (see the script's docstring).",
        "",
        "| envs | env steps / iteration | mini-batch x updates | SB3 collect + train | raw rollout | floor policy "
        f"| floor update | bound | this project: rollout + update | this project / SB3 | goal {args.goal}x within the bound |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['num_envs']} | {r['env_steps_per_iteration']} | {r['minibatch']} x {r['updates_per_iteration']} | "
            f"{r['sb3_collect_ms']} + {r['sb3_train_ms']} | {r['raw_rollout_ms']} | {r['floor_policy_ms']} | "
            f"{r['floor_update_ms']} | "
            f"{r['bound']:.2f}x | {r['ours_rollout_ms']} + {r['ours_update_ms']} | {r['ours_vs_sb3']:.2f}x | "
            f"{'yes' if r['bound'] >= args.goal else 'no'} |"
        )
    text = "\n".join(lines) + "\n"
    (RESULTS / f"speed_bound_{args.task}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
