"""The audit: a built pipeline plus one real collected batch, and the report of its findings."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import lightning as L
import torch
from tensordict import TensorDictBase

from gr00t_torchrl import checkpoint as ckpt
from gr00t_torchrl.config import Config
from gr00t_torchrl.modules.actor_critic import Critic, StateIndependentGaussianHead
from gr00t_torchrl.modules.flow import EncodedFlowActor, FlowActor
from gr00t_torchrl.modules.multimodal import MultiModalEncoder
from gr00t_torchrl.modules.recurrent import memory_layers
from gr00t_torchrl.pipeline import Pipeline, build_pipeline, make_collector
from gr00t_torchrl.verify.registry import CHECKS, Finding


class Audit:
    """A built pipeline plus one real collected batch, measured lazily by the checks."""

    def __init__(self, cfg: Config, checkpoint: Path | None = None) -> None:
        self.cfg = cfg
        self.pipeline: Pipeline = build_pipeline(cfg, L.Fabric(accelerator="cpu", devices=1))
        # detail 2 is measured on weights as initialised: for a trained run, a fresh build of its config
        self.initial_nets = (self.actor_head, self.critic_head)
        head = gaussian_head(self)
        self.initial_log_std = None if head is None else head.log_std.detach().clone()
        self.trained = checkpoint is not None
        # detail 32 likewise: the recurrent layers as initialised (copies: the audit's update changes the live ones)
        module = self.pipeline.module
        self.initial_memory = copy.deepcopy(memory_layers(module.actor) + memory_layers(module.critic))
        if checkpoint is not None:
            self.initial_nets = copy.deepcopy(self.initial_nets)
            ckpt.load_for_inspection(self.pipeline, ckpt.load(checkpoint), checkpoint)
        self._raw_batch: TensorDictBase | None = None
        self._batch: TensorDictBase | None = None
        self._update: dict[str, Any] | None = None

    # ---------------------------------------------------------------- the networks' parts
    @property
    def encoder(self) -> MultiModalEncoder | None:
        """The multimodal encoder the actor and critic share, where the task has images or words."""
        return next((m for m in self.pipeline.module.actor.modules() if isinstance(m, MultiModalEncoder)), None)

    @property
    def actor_head(self) -> torch.nn.Module:
        """The actor itself (vector observations), its head over the shared encoder's features, or a flow
        head's velocity network (its noise network, where it has one, is ReinFlow's exploration, not the policy MLP;
        its encoder is the shared one)."""
        actor = self.pipeline.module.actor
        if isinstance(actor, (FlowActor, EncodedFlowActor)):
            return actor.net
        if self.encoder is None:
            return actor
        # TorchRL's ActorValueOperator flattens encoder + head into one sequence: the head is the rest
        return torch.nn.ModuleList([m for m in actor.module if not isinstance(m, MultiModalEncoder)])

    @property
    def critic_head(self) -> torch.nn.Module:
        critic = self.pipeline.module.critic
        return next((m for m in critic.modules() if isinstance(m, Critic)), critic)

    def actor_params(self) -> list[torch.nn.Parameter]:
        return list(self.pipeline.module.actor.parameters())

    def policy_inputs(self, rows: int) -> TensorDictBase:
        """The actor's inputs of `rows` different steps of the real batch."""
        flat = self.batch.reshape(-1)
        index = torch.linspace(0, flat.shape[0] - 1, rows).long()
        return flat[index].select(*self.pipeline.module.actor.in_keys).clone()

    # ---------------------------------------------------------------- measured lazily
    @property
    def continuous(self) -> bool:
        return self.pipeline.env.action_spec.dtype.is_floating_point  # not Discrete, not MultiDiscrete

    @property
    def raw_batch(self) -> TensorDictBase:
        """One rollout of num_envs x num_steps from the real collector, before GAE."""
        if self._raw_batch is None:
            collector = make_collector(self.pipeline)
            self._raw_batch = next(iter(collector)).clone()
            collector.shutdown()
            self.rollout_actor = copy.deepcopy(self.pipeline.module.actor)  # the weights the batch was collected with
            # detail 27: the stored log-probs must be those of the stored actions (checked before any update)
            flat = self._raw_batch.reshape(-1)
            key = self.pipeline.module.loss_module.tensor_keys.sample_log_prob
            with torch.no_grad():
                recomputed = self.pipeline.module.actor.get_dist(flat.clone()).log_prob(flat.get("action"))
            self.log_prob_error = float((recomputed - flat.get(key)).abs().max())
        return self._raw_batch

    @property
    def batch(self) -> TensorDictBase:
        """The rollout after the module's own GAE and advantage normalization."""
        if self._batch is None:
            self._batch = self.raw_batch.clone()
            self.pipeline.module.compute_advantages(self._batch)
        return self._batch

    @property
    def update(self) -> dict[str, Any]:
        """One real PPO update on the batch, instrumented: mini-batch indices, gradient norms, stats."""
        if self._update is None:
            batch = self.batch.clone()
            batch.set("audit_index", torch.arange(batch.numel()).reshape(batch.shape))
            minibatches: list[torch.Tensor] = []
            applied_norms: list[float] = []
            optimizer = self.pipeline.optimizer
            step = optimizer.step

            def recording_step(*args: Any, **kwargs: Any) -> Any:
                grads = [q.grad for q in self.pipeline.module.parameters() if q.grad is not None]
                applied_norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
                return step(*args, **kwargs)

            def recording_loss(minibatch: TensorDictBase) -> TensorDictBase:
                minibatches.append(minibatch.get("audit_index").clone())
                return self.pipeline.fabric_module.training_step(minibatch)

            optimizer.step = recording_step
            module = self.pipeline.module
            loss_keys, compiled = module.loss_keys, module.compile_update
            module.loss_keys = [*loss_keys, "audit_index"]  # the update passes only these to the loss
            # eager even for a compile=true run: torch.compile would trace the recording once instead of running
            # it per mini-batch; the compiled update runs the same `minibatch_loss` (tests/test_compile.py)
            module.compile_update = False
            try:
                stats = module.update(batch, optimizer, recording_loss)
            finally:
                del optimizer.step
                module.loss_keys, module.compile_update = loss_keys, compiled
            self._update = {"minibatches": minibatches, "applied_norms": applied_norms, "stats": stats}
        return self._update

    def run(self, numbers: list[int] | None = None) -> list[Finding]:
        findings = []
        for number in sorted(numbers or CHECKS):
            name, check = CHECKS[number]
            findings.append(Finding(number, name, *check(self)))
        return findings


def gaussian_head(audit: Audit) -> StateIndependentGaussianHead | None:
    """The actor's state-independent Gaussian head (details 24, 2), or None for another policy."""
    heads = [m for m in audit.pipeline.module.actor.modules() if isinstance(m, StateIndependentGaussianHead)]
    return heads[0] if heads else None


# ==================================================================== report
def format_table(findings: list[Finding]) -> str:
    width = max(len(f.name) for f in findings)
    lines = [f"{'#':>2}  {'detail':<{width}}  {'status':<14}  evidence"]
    for f in findings:
        lines.append(f"{f.number:>2}  {f.name:<{width}}  {f.status:<14}  {f.evidence}")
    return "\n".join(lines)


def audit_for(argv: list[str]) -> Audit:
    """The audit of `run_dir=<dir>` (its config and last checkpoint) or of a config built from key=value words."""
    from gr00t_torchrl.config import ConfigError, parse_overrides
    from gr00t_torchrl.tasks import read_for_inspection

    args = parse_overrides(argv)
    if "run_dir" in args and len(args) == 1:
        run_dir = Path(str(args["run_dir"]))
        # the audit runs in one process; a DDP run is audited from rank 0's state
        return Audit(read_for_inspection(run_dir), checkpoint=ckpt.checkpoint_path(run_dir))
    if "run_dir" in args:
        raise ConfigError("verify takes either run_dir=<a run directory> alone, or a task and settings.")
    from gr00t_torchrl.tasks import resolve_config

    cfg = resolve_config(argv)
    cfg.devices = 1
    return Audit(cfg)


def to_json(findings: list[Finding]) -> list[dict[str, Any]]:
    return [
        {"number": f.number, "name": f.name, "status": f.status, "evidence": f.evidence, "applies": f.applies}
        for f in findings
    ]
