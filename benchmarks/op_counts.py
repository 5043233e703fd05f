"""Torch ops launched per batched env step and per mini-batch: a CPU count that predicts GPU launch cost.

    pip install -e ".[bench,mjlab]"
    python benchmarks/op_counts.py Mjlab-Cartpole-Balance --envs 256

On a GPU each launched op costs a few microseconds of host time whatever its size, so at thousands of
envs the number of ops a PPO loop launches, not their arithmetic, sets how far it stays from raw
stepping. That number does not depend on the device, so it can be counted here. PyTorch's profiler
records every op call; an op counts as launched when it is called from outside another op (an op's own
internal calls are its business) and is not a pure view or allocation (view, reshape, expand,
detach, empty, ...). With `compile=true` the compiled graph's kernels count one each (inductor's kernel
profiling on), plus the ops the graph calls outside itself (matrix products) and the eager ops around
it (backward engine, gradient clipping, Adam).

Counted, after a warm-up iteration (which compiles), on the same mjlab task, number of envs and
preset (this project's `recipes/presets/<task>.yaml`, taken from mjlab's rsl_rl config):
- this project, eager and `compile=true`: ops of one collector batch per batched env step, the env's own
  step (mjlab's `ManagerBasedRlEnv.step`) left out; GAE per iteration; the update per mini-batch;
- rsl_rl through mjlab's `MjlabOnPolicyRunner`: one `learn` iteration, split the same way
  (`compute_returns`, `update`, the rest of the loop per env step), mjlab's env step left out.
Writes benchmarks/results/op_counts_<task>.md and .csv.
"""

from __future__ import annotations

import argparse
import contextlib
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from common import markdown_table, rsl_rl_runner, write_markdown, write_rows

ENV_STEP, RETURNS, UPDATE = "op_counts/env_step", "op_counts/returns", "op_counts/update"
# ops that launch no kernel: views, aliases, shape queries and allocations
NO_KERNEL = {
    "aten::view", "aten::_unsafe_view", "aten::_reshape_alias", "aten::reshape", "aten::as_strided", "aten::alias",
    "aten::t", "aten::expand", "aten::expand_as", "aten::permute", "aten::transpose", "aten::squeeze",
    "aten::unsqueeze", "aten::select", "aten::slice", "aten::narrow", "aten::split", "aten::chunk",
    "aten::unbind", "aten::detach", "aten::detach_", "aten::lift_fresh", "aten::resolve_conj",
    "aten::resolve_neg", "aten::empty", "aten::empty_like", "aten::empty_strided", "aten::result_type",
    "aten::set_", "aten::flatten", "aten::unflatten", "aten::view_as", "aten::contiguous",
}


def is_kernel(name: str) -> bool:
    return "cpp_fused" in name or "triton_" in name  # a compiled graph's generated kernel


def launched(prof: profile) -> Counter:
    """Launched ops of a profile, by the phase label (a `record_function` name) they ran under: ops nested in
    another op and pure views are not counted; the env's own step is labelled ENV_STEP."""
    counts: Counter = Counter()
    for event in prof.events():
        name = event.name
        if not (is_kernel(name) or (name.startswith("aten::") and name not in NO_KERNEL)):
            continue
        phase, parent, nested = "", event.cpu_parent, False
        while parent is not None:
            nested |= parent.name.startswith("aten::") and not is_kernel(name)
            if parent.name.startswith("op_counts/") and not phase:
                phase = parent.name
            parent = parent.cpu_parent
        if not nested:
            counts[phase] += 1
    return counts


@contextlib.contextmanager
def labelled(owner: object, method: str, label: str) -> Iterator[None]:
    """Calls of `owner.method` run under `record_function(label)` while inside."""
    inner = getattr(owner, method)

    def wrapped(*args, **kwargs):
        with record_function(label):
            return inner(*args, **kwargs)

    setattr(owner, method, wrapped)
    try:
        yield
    finally:
        setattr(owner, method, inner)


def counted(fn: Callable[[], Any]) -> tuple[Counter, Any]:
    """The launched ops of one call of `fn` (`launched`), and what it returned."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        result = fn()
    return launched(prof), result


def ours(task: str, num_envs: int, compile_: bool) -> dict:
    """Launched ops of this project's loop: per env step (rollout), per iteration (GAE), per mini-batch (update)."""
    import lightning as L
    from mjlab.envs.manager_based_rl_env import ManagerBasedRlEnv

    from gr00t_torchrl.pipeline import build_pipeline, make_collector
    from gr00t_torchrl.tasks import resolve_config

    cfg = resolve_config([f"task={task}", f"env.num_envs={num_envs}", f"compile={str(compile_).lower()}"])
    p = build_pipeline(cfg, L.Fabric(accelerator="cpu", devices=1))
    batches = iter(make_collector(p))

    def update(batch) -> None:
        p.module.update(batch, p.optimizer, p.fabric_module.training_step)

    warm = next(batches)  # the warm-up iteration compiles
    p.module.compute_advantages(warm)
    update(warm)
    with labelled(ManagerBasedRlEnv, "step", ENV_STEP):
        rollout, batch = counted(lambda: next(batches))
    advantages, _ = counted(lambda: p.module.compute_advantages(batch))
    minibatches, _ = counted(lambda: update(batch))
    updates = cfg.ppo.num_epochs * cfg.ppo.num_minibatches
    return {"library": "gr00t-torchrl" + (" compile=true" if compile_ else ""), "num_envs": num_envs,
            "per_env_step": round(rollout[""] / cfg.ppo.num_steps, 1), "returns_per_iteration": sum(advantages.values()),
            "per_minibatch": round(sum(minibatches.values()) / updates, 1),
            "env_step_ops": round(rollout[ENV_STEP] / cfg.ppo.num_steps, 1)}


def rsl_rl(task: str, num_envs: int) -> dict:
    """The same counts for mjlab's rsl_rl runner, from one `learn` iteration after a warm-up one."""
    import tempfile

    from mjlab.envs.manager_based_rl_env import ManagerBasedRlEnv

    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as log_dir:
        runner, agent = rsl_rl_runner(task, num_envs, 1, log_dir)
        runner.learn(num_learning_iterations=1)
        with (labelled(ManagerBasedRlEnv, "step", ENV_STEP), labelled(runner.alg, "compute_returns", RETURNS),
              labelled(runner.alg, "update", UPDATE)):
            counts, _ = counted(lambda: runner.learn(num_learning_iterations=1))
    updates = agent.algorithm.num_learning_epochs * agent.algorithm.num_mini_batches
    return {"library": "rsl_rl", "num_envs": num_envs, "per_env_step": round(counts[""] / agent.num_steps_per_env, 1),
            "returns_per_iteration": counts[RETURNS], "per_minibatch": round(counts[UPDATE] / updates, 1),
            "env_step_ops": round(counts[ENV_STEP] / agent.num_steps_per_env, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", nargs="?", default="Mjlab-Cartpole-Balance", help="an mjlab task with a preset here")
    parser.add_argument("--envs", type=int, nargs="+", default=[256])
    parser.add_argument("--tag", default="", help="suffix of the result files")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch._inductor.config.cpp.enable_kernel_profile = True  # each generated kernel is a profiler event
    rows = []
    for num_envs in args.envs:
        for row in (ours(args.task, num_envs, False), ours(args.task, num_envs, True), rsl_rl(args.task, num_envs)):
            print(row, flush=True)
            rows.append(row)
    stem = "_".join(filter(None, [f"op_counts_{args.task}", args.tag]))
    write_rows(rows, stem)
    text = write_markdown(stem, f"{args.task}: torch ops launched per env step and per mini-batch", [
        "Counted with PyTorch's profiler on the CPU (see the script's docstring): ops called from outside another "
        "op, pure views and allocations left out, a compiled graph's kernels one each. Per env step: the loop's "
        "own ops for one batched env step (policy, wrapper, transforms, storage), the env's step left out and "
        "shown apart; GAE: per iteration; per mini-batch: forward, backward, clipping, Adam and bookkeeping.",
        "",
        *markdown_table(["library", "envs", "ops per env step (loop)", "ops per mini-batch", "GAE ops per iteration",
                         "env's own ops per step"],
                        [[r["library"], r["num_envs"], r["per_env_step"], r["per_minibatch"],
                          r["returns_per_iteration"], r["env_step_ops"]] for r in rows]),
    ])
    print(text)


if __name__ == "__main__":
    main()
