"""`compile=true`: the policy step and the PPO update through torch.compile, with eager's results."""

from __future__ import annotations

import csv

import pytest
import torch

from gr00t_torchrl import checkpoint as ckpt
from gr00t_torchrl import pipeline as pipeline_module
from gr00t_torchrl.cli import main
from gr00t_torchrl.pipeline import build_pipeline, make_collector, make_fabric
from gr00t_torchrl.ppo_module import CompileError
from gr00t_torchrl.runner import train
from gr00t_torchrl.tasks import resolve_config
from tests.conftest import TINY, merged
from tests.test_distributed import ROOT, assert_same, fabric_run

WORDS = ("task=pendulum", "total_steps=128", "eval_episodes=0")


def built(compile_flag: str):
    cfg = resolve_config(merged(*TINY, *WORDS, f"compile={compile_flag}"))
    return build_pipeline(cfg, make_fabric(cfg))  # seeded from the config: the same weights each time


def test_compiled_collection_and_update_give_eager_results(monkeypatch):
    eager, compiled = built("false"), built("true")
    assert not pipeline_module.compiles_collection(compiled)  # on the CPU compile=true leaves the rollout eager
    # the compiled collection policy of a GPU run, here on the CPU
    monkeypatch.setattr(pipeline_module, "compiles_collection", lambda pipeline: pipeline.cfg.compile)
    batches = []
    for pipeline in (eager, compiled):
        torch.manual_seed(7)
        collector = make_collector(pipeline)
        batches.append(next(iter(collector)).clone())
        collector.shutdown()
    assert torch.allclose(batches[0]["action"], batches[1]["action"], atol=1e-5)  # the same draws, the same actions
    batch = eager.module.compute_advantages(batches[0])
    # one mini-batch through the eager and the compiled loss: the same losses and gradients
    minibatch = batch.reshape(-1)[:32].select(*eager.module.loss_keys, strict=False)
    grads = []
    for fn in (eager.module.training_step, torch.compile(eager.module.training_step)):
        losses = fn(minibatch.clone())
        eager.module.zero_grad(set_to_none=True)
        (losses["loss_objective"] + losses["loss_critic"]).backward()
        grads.append([p.grad.clone() for p in eager.module.parameters() if p.grad is not None])
        grads[-1].insert(0, torch.stack([losses["loss_objective"].detach(), losses["loss_critic"].detach()]))
    eager.module.zero_grad(set_to_none=True)
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(*grads, strict=True))
    stats = []
    for pipeline in (eager, compiled):
        torch.manual_seed(11)  # the same mini-batch order
        stats.append(pipeline.module.update(batch.clone(), pipeline.optimizer))
    assert compiled.module.compile_seconds > 0 and eager.module.compile_seconds is None
    # a whole update (2 epochs x 2 mini-batches): Adam's steps amplify float differences of near-zero gradients
    for key in ("policy_loss", "value_loss", "approx_kl", "grad_norm"):  # averaged over the epochs' mini-batches
        assert stats[1][key] == pytest.approx(stats[0][key], rel=5e-2, abs=1e-4), key
    assert stats[1]["time_compile"] == compiled.module.compile_seconds and "time_compile" not in stats[0]


def test_a_compiled_run_trains_and_reports_its_compile_time_once(tmp_path):
    result = train(resolve_config(merged(*TINY, *WORDS, "compile=true", f"run_dir={tmp_path / 'run'}")))
    with (tmp_path / "run" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert result["compile_seconds"] > 0 and float(rows[0]["time_compile"]) == pytest.approx(result["compile_seconds"])
    assert rows[1]["time_compile"] == ""  # compiled once, in the first update
    assert ckpt.load(ckpt.checkpoint_path(tmp_path / "run"))["iteration"] == 2


def test_a_failed_compile_stops_with_the_setting_to_turn_off(monkeypatch):
    cfg = resolve_config(merged(*TINY, *WORDS, "compile=true"))
    pipeline = build_pipeline(cfg, make_fabric(cfg))
    collector = make_collector(pipeline)
    batch = pipeline.module.compute_advantages(next(iter(collector)).clone())
    collector.shutdown()

    def broken(fn, **kwargs):
        def call(*args, **kw):
            raise RuntimeError("backend exploded\nmore lines")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.raises(CompileError, match=r"compile=true failed .*backend exploded\); run with compile=false"):
        pipeline.module.update(batch, pipeline.optimizer)


def test_a_compiled_run_resumes_exactly_and_passes_the_audit(tmp_path, capsys):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    words = merged(*TINY, "task=pendulum", "total_steps=256", "eval_episodes=0", "compile=true")
    train(resolve_config([*words, f"run_dir={straight}"]))
    train(resolve_config([*words, f"run_dir={interrupted}"]), stop_after=2)
    train(resolve_config([f"resume={interrupted}"]))  # compiles again, in its first update
    a, b = (ckpt.load(ckpt.checkpoint_path(run))["module"] for run in (straight, interrupted))
    for key, value in a.items():
        assert torch.equal(value, b[key]), key
    assert main(["verify", f"run_dir={interrupted}"]) == 0
    assert "every detail that applies is right" in capsys.readouterr().out


def test_compiled_ddp_ranks_stay_identical(tmp_path):
    dumps, run_dir = tmp_path / "dumps", tmp_path / "run"
    dumps.mkdir()
    args = merged("task=pendulum", f"run_dir={run_dir}", "total_steps=256", *TINY, "eval_episodes=0", "compile=true")
    proc = fabric_run(ROOT / "tests" / "ddp_worker.py", str(dumps), *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for iteration in (1, 2):
        ranks = [torch.load(dumps / f"rank{r}_iteration{iteration}.pt", weights_only=True) for r in (0, 1)]
        assert_same(ranks[0]["module"], ranks[1]["module"], f"iteration {iteration} module")
        assert not torch.equal(ranks[0]["observations"], ranks[1]["observations"])  # each rank its own rollout
