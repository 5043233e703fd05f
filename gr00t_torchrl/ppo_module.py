"""The PPO LightningModule: actor, critic, GAE, ClipPPOLoss, optimizer config and the update."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import lightning as L
import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch.optim import Adam
from torch.optim.lr_scheduler import LambdaLR
from torchmetrics import MeanMetric
from torchrl.modules import ProbabilisticActor, ValueOperator, set_recurrent_mode
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

from gr00t_torchrl.config import ConfigError, PPOConfig
from gr00t_torchrl.modules.multimodal import PREDICTION_KEY, PRIVILEGED_KEY
from gr00t_torchrl.modules.recurrent import memory_layers
from gr00t_torchrl.spo_loss import NegativeSPOLoss

# Debug variables of detail 12, averaged over every mini-batch of an iteration.
UPDATE_METRICS = (
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "old_approx_kl",
    "clip_fraction",
    "value_clip_fraction",
    "grad_norm",
    "aux_loss",  # with the privileged auxiliary loss only
)

# how many of a batch's states a flow head's action spread is measured on, each iteration
SPREAD_STATES = 64


class NonFiniteUpdateError(RuntimeError):
    """Too many consecutive updates had a non-finite loss or gradient."""


def total_loss(losses: TensorDictBase) -> torch.Tensor:
    """What one mini-batch step minimizes: the surrogate and value losses, plus the entropy and auxiliary terms
    where the policy has them (a flow head has no entropy term)."""
    loss = losses["loss_objective"] + losses["loss_critic"]
    for optional in ("loss_entropy", "loss_aux"):
        if optional in losses.keys():
            loss = loss + losses[optional]
    return loss


# one mini-batch step: (the batch's rows, the mini-batch's indices) -> (total loss, debug variables)
MinibatchStep = Callable[[TensorDictBase, torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]


class CompileError(ConfigError):
    """`compile=true` could not compile the update: the run stops and names the setting to turn off."""


class PPOModule(L.LightningModule):
    """Owns the actor, the critic, GAE, the clipped PPO loss and the optimizer configuration.

    One call of `update` runs the epochs x mini-batches of one PPO iteration on a collected batch
    whose advantages `compute_advantages` has filled in. Driven by Lightning Fabric (see
    `gr00t_torchrl.runner`, which passes its Fabric in), so the same module runs on one process or
    as DDP ranks.
    """

    def __init__(
        self,
        cfg: PPOConfig,
        actor: ProbabilisticActor,
        critic: ValueOperator,
        num_iterations: int,
        fabric: L.Fabric | None = None,
        privileged_predictor: TensorDictModuleBase | None = None,
        aux_coeff: float = 0.0,
        compile_update: bool = False,
    ) -> None:
        super().__init__()
        # `compile=true`: the mini-batch loss (forward and backward) through torch.compile, compiled once
        # on the first update and timed (`compile_seconds`); never a silent fall back to eager
        self.compile_update = compile_update
        self._compiled_loss: MinibatchStep | None = None
        self.compile_seconds: float | None = None
        # the Fabric that runs this module (DDP backward, gradient clipping, cross-rank reductions);
        # None: a single process driven directly
        self.fabric = fabric
        self.cfg = cfg
        self.actor = actor
        self.critic = critic
        self.num_iterations = num_iterations
        # recurrent actor / critic: mini-batches of whole env sequences, run in TorchRL's recurrent mode
        self.recurrent = bool(memory_layers(actor) or memory_layers(critic))
        # the auxiliary loss's model (`make_privileged_predictor`): it shares the actor's encoder
        self.privileged_predictor = privileged_predictor
        self.aux_coeff = aux_coeff
        # detail 5; no value network: `estimate_advantages` evaluates the critic itself, once
        self.advantage_module = GAE(gamma=cfg.gamma, lmbda=cfg.lmbda, value_network=None, average_gae=False)
        self.loss_module = (NegativeSPOLoss if cfg.negative_advantages == "spo" else ClipPPOLoss)(
            actor,
            critic,
            # detail 8; with clip_epsilon_low, TorchRL's asymmetric (low, high) ranges
            clip_epsilon=cfg.clip_epsilon if cfg.clip_epsilon_low is None else (cfg.clip_epsilon_low, cfg.clip_epsilon),
            clip_value=cfg.clip_epsilon if cfg.clip_value else False,  # detail 9: the surrogate's (upper) clip range
            # detail 10: the entropy term is always computed (and logged); its weight may be 0. A flow head has
            # no closed-form entropy (its config refuses a weight), so it has no entropy term
            entropy_bonus=not hasattr(actor, "stored_keys"),
            entropy_coeff=cfg.entropy_coeff,
            # detail 10: value loss = 0.5 * MSE weighted by vf_coef (CleanRL); TorchRL's "l2" is MSE
            critic_coeff=0.5 * cfg.vf_coef,
            loss_critic_type="l2",
            normalize_advantage=cfg.advantage_norm == "minibatch",  # detail 7, the per-mini-batch option
            functional=False,
            log_explained_variance=False,  # measured once per iteration on the whole batch instead
        )
        if compile_update and self.loss_module.clip_value is not None:
            # the loss branches on `if self.clip_value:`, a graph break under torch.compile while it is a tensor
            # buffer; the value is constant over a run, so the attribute reads as a float (the buffer stays in the
            # state dict: checkpoints of compiled and eager runs are interchangeable)
            object.__setattr__(self.loss_module, "clip_value", float(self.loss_module.clip_value))
        # only finite updates are logged, so the NaN check (a host read per update on a GPU) is off
        self.update_metrics = torch.nn.ModuleDict(
            {name: MeanMetric(nan_strategy="disable") for name in UPDATE_METRICS}
        )
        # the KL-adaptive LR's multiplier of cfg.lr (a buffer: checkpoints carry it)
        self.register_buffer("adaptive_lr_scale", torch.ones((), dtype=torch.float64))
        self.skipped_updates = 0
        self.bad_updates_in_a_row = 0
        keys = self.loss_module.tensor_keys
        # the rollout policy's distribution parameters: the KL-adaptive LR compares the new policy with them
        self.dist_keys = list(actor.dist_params_keys) if cfg.desired_kl is not None else []
        self.loss_keys = list(
            dict.fromkeys(  # what ClipPPOLoss reads from a mini-batch
                [*actor.in_keys, *getattr(actor, "stored_keys", []), *critic.in_keys, keys.action, keys.sample_log_prob,
                 keys.advantage, keys.value_target, keys.value, *self.dist_keys, *self._aux_keys()]
            )
        )

    def _aux_keys(self) -> list[str]:
        if self.privileged_predictor is None:
            return []
        return [*self.privileged_predictor.in_keys, PRIVILEGED_KEY]

    # ------------------------------------------------------------------ optimizer

    def lr_factor(self, iteration: int) -> float:
        """detail 4: linear annealing to 0 over the run (factor 1 at the first iteration).

        With `desired_kl`, the factor is the KL-adaptive multiplier instead (see `_adapt_lr`).
        """
        if self.cfg.desired_kl is not None:
            return float(self.adaptive_lr_scale)
        if not self.cfg.anneal_lr:
            return 1.0
        return max(1.0 - iteration / self.num_iterations, 0.0)

    def configure_optimizers(self) -> tuple[Adam, LambdaLR]:
        # detail 3; fused: one kernel for all parameters (the same update, much faster on the small
        # networks PPO uses, where per-tensor launches dominate)
        optimizer = Adam(self.parameters(), lr=self.cfg.lr, eps=self.cfg.adam_eps, fused=True)
        return optimizer, LambdaLR(optimizer, self.lr_factor)

    # ------------------------------------------------------------------ advantages

    @torch.no_grad()
    def compute_advantages(self, batch: TensorDictBase) -> TensorDictBase:
        """GAE with the current critic, then (detail 7) normalization over the whole batch.

        Under DDP the mean and std are those of the global batch (all ranks together).
        """
        self.estimate_advantages(batch)
        if self.cfg.advantage_norm == "batch":
            advantage = batch.get("advantage")
            mean, std = self._global_mean_std(advantage)
            batch.set("advantage", (advantage - mean) / (std + 1e-8))
        return batch

    @torch.no_grad()
    def estimate_advantages(self, batch: TensorDictBase) -> TensorDictBase:
        """Writes V(s_t), V(s_t+1), the GAE advantages and the value targets into `batch` (detail 5).

        The critic runs once, over the observations and the next observations stacked: TorchRL's GAE
        would run it twice (through vmap), and a third time for the old values that value clipping
        (detail 9) reads, because it evaluates a copy of the batch when next observations hold NaN.
        A recurrent critic (later) will need what TorchRL's call also does for RNNs: mark each
        trajectory's first next step `is_init`.

        Time-outs of auto-resetting envs (Isaac Lab API): the env resets inside `step`, so the
        observation a time-out's last action led to is lost and TorchRL marks ("next", obs) NaN.
        Terminations never bootstrap (GAE multiplies the next value by 1 - terminated); a time-out
        bootstraps from the value of the last observation the env did return, V(s_{T-1}), the
        closest estimate of the unknown V(s_T) and rsl_rl's choice (it adds gamma V(s_{T-1}) to
        the time-out's reward). So a NaN next observation is replaced by the step's own observation
        before the critic sees it, as TorchRL's GAE does: no NaN reaches the critic (tested in
        tests/test_isaac_api.py).
        """
        keys = list(self.critic.in_keys)
        now = batch.select(*keys)
        after = lost_rows_replaced(batch.get("next").select(*keys), now)
        value_key = self.advantage_module.tensor_keys.value
        values = self.critic(torch.cat([now, after], 0)).get(value_key)
        batch.set(value_key, values[: batch.shape[0]])
        batch.set(("next", value_key), values[batch.shape[0]:])
        return self.advantage_module(batch)

    @property
    def distributed(self) -> bool:
        return self.fabric is not None and self.fabric.world_size > 1

    def _global_mean_std(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fabric = self.fabric
        if not self.distributed:
            return values.mean(), values.std()
        moments = torch.stack([values.new_tensor(values.numel()), values.sum(), values.pow(2).sum()])
        count, total, total_sq = fabric.all_reduce(moments.double(), reduce_op="sum")
        mean = total / count
        var = (total_sq - count * mean.pow(2)) / (count - 1)  # unbiased, like Tensor.std()
        return mean.to(values.dtype), var.clamp_min(0).sqrt().to(values.dtype)

    # ------------------------------------------------------------------ the update

    def training_step(self, minibatch: TensorDictBase) -> TensorDictBase:
        """The PPO losses of one mini-batch (call it through the Fabric wrapper under DDP).

        With a privileged predictor, "loss_aux" is its weighted mean squared error on the (normalized)
        privileged group, computed here so that DDP sees one graph.
        """
        losses = self.loss_module(minibatch)
        if self.privileged_predictor is not None:
            inputs = minibatch.select(*self.privileged_predictor.in_keys)
            predicted = self.privileged_predictor(inputs).get(PREDICTION_KEY)
            error = (predicted - minibatch.get(PRIVILEGED_KEY)).square().mean()
            losses.set("loss_aux", self.aux_coeff * error)
        return losses

    def update(
        self,
        batch: TensorDictBase,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[TensorDictBase], TensorDictBase] | None = None,
    ) -> dict[str, float]:
        """Epochs x shuffled mini-batches over `batch` (detail 6); returns the averaged debug variables.

        `loss_fn` is the step as the strategy runs it, i.e. `fabric_module.training_step`, so
        that DDP averages gradients; it defaults to `self.training_step` (single process).
        """
        loss_fn = loss_fn or self.training_step
        # only the keys the loss reads: indexing every mini-batch then copies those, not the whole batch;
        # a recurrent policy's batch keeps its [envs, time] shape: a mini-batch is a set of whole env
        # sequences in time order (detail 35)
        flat = (batch if self.recurrent else batch.reshape(-1)).select(*self.loss_keys, strict=False)
        compiling = self.compile_update and self._compiled_loss is None
        step = self._compiled(loss_fn, flat) if self.compile_update else partial(self.minibatch_loss, loss_fn)
        for metric in self.update_metrics.values():
            metric.reset()
        logged: dict[str, list[torch.Tensor]] = {name: [] for name in UPDATE_METRICS}
        max_norm = self.cfg.max_grad_norm or float("inf")  # inf: measure the norm, clip nothing
        with set_recurrent_mode(self.recurrent):  # detail 36: hidden states recomputed from each sequence's first
            epochs_run = self._epochs(flat, optimizer, step, logged, max_norm)
        for name, values in logged.items():
            if values:  # one metric update per iteration, not per mini-batch: it is a per-call cost
                self.update_metrics[name].update(torch.stack(values))
        stats = {
            name: float(metric.compute()) for name, metric in self.update_metrics.items() if metric.update_count
        }
        stats["epochs_run"] = float(epochs_run)
        if hasattr(self.actor, "action_spread"):  # a flow head's exploration, measured on the batch's first states
            stats["action_spread"] = float(self.actor.action_spread(flat[:SPREAD_STATES]))
        if compiling:  # this update compiled the loss: its time is part of this iteration's update time
            stats["time_compile"] = self.compile_seconds
        stats["skipped_updates"] = float(self.skipped_updates)
        return stats

    def minibatch_loss(
        self, loss_fn: Callable[[TensorDictBase], TensorDictBase], flat: TensorDictBase, indices: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The rows `indices` of `flat` through the losses: the total loss and the debug variables (detail 12).

        What `compile=true` compiles, as one graph: the gather, the loss and the metrics' arithmetic together.
        """
        losses = loss_fn(flat[indices])
        return total_loss(losses), debug_variables(losses, self.cfg.vf_coef, self.aux_coeff)

    def _compiled(self, loss_fn: Callable[[TensorDictBase], TensorDictBase], flat: TensorDictBase) -> MinibatchStep:
        """`minibatch_loss` compiled, the first time on a mini-batch-sized set of rows whose gradients are discarded."""
        if self._compiled_loss is None:
            # one graph: a graph break would leave eager islands whose frames dynamo compiles on their own,
            # sharing (and recompiling) the code objects of the collector's compiled policy. Two exceptions:
            # TorchRL runs memory layers' sequences outside the graph (`torch.compiler.disable`), and DDP's
            # forward breaks the graph at its bucket hooks. Static shapes: a run has at most two mini-batch
            # sizes (tensor_split's remainder)
            one_graph = not (self.recurrent or self.distributed)
            compiled = torch.compile(partial(self.minibatch_loss, loss_fn), fullgraph=one_graph, dynamic=False)
            start = time.perf_counter()
            devices = [flat.device] if flat.device is not None and flat.device.type == "cuda" else []
            rows = torch.arange(max(flat.shape[0] // self.cfg.num_minibatches, 1), device=flat.device)
            try:  # fork_rng: the warm-up draws no number the update would have drawn
                with set_recurrent_mode(self.recurrent), torch.random.fork_rng(devices=devices):
                    loss, _ = compiled(flat, rows)
                    loss.backward()
            except Exception as err:  # dynamo / inductor errors have no common base class
                first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise CompileError(f"compile=true failed to compile the PPO update ({type(err).__name__}: {first_line}); "
                                   "run with compile=false.") from err
            finally:
                self.zero_grad(set_to_none=True)
            self.compile_seconds = time.perf_counter() - start
            self._compiled_loss = compiled
        return self._compiled_loss

    def _epochs(
        self, flat: TensorDictBase, optimizer: torch.optim.Optimizer, step: MinibatchStep,
        logged: dict[str, list[torch.Tensor]], max_norm: float,
    ) -> int:
        """The epochs of shuffled mini-batches (rows, or whole env sequences); returns how many ran."""
        epochs_run = 0
        for _ in range(self.cfg.num_epochs):
            epoch_kl = []
            order = torch.randperm(flat.shape[0], device=flat.device)
            for indices in torch.tensor_split(order, self.cfg.num_minibatches):
                if self.cfg.desired_kl is not None:  # the KL reads the actor's inputs and the rollout's distribution only
                    self._adapt_lr(optimizer, flat.select(*self.actor.in_keys, *self.dist_keys)[indices])
                loss, metrics = step(flat, indices)
                optimizer.zero_grad(set_to_none=True)
                if self.fabric is not None:
                    self.fabric.backward(loss)
                else:
                    loss.backward()
                grad_norm = self._clip_gradients(optimizer, max_norm)  # detail 11
                if self._all_ranks_finite(loss.detach() + grad_norm):
                    optimizer.step()
                    self.bad_updates_in_a_row = 0
                else:  # a non-finite loss or gradient never reaches the weights
                    optimizer.zero_grad(set_to_none=True)
                    self.skipped_updates += 1
                    self.bad_updates_in_a_row += 1
                    if self.bad_updates_in_a_row >= self.cfg.max_bad_updates:
                        raise NonFiniteUpdateError(
                            f"{self.bad_updates_in_a_row} consecutive updates had a non-finite loss or gradient"
                        )
                    continue
                for name, value in metrics.items():
                    logged[name].append(value)
                logged["grad_norm"].append(grad_norm.detach().float())
                epoch_kl.append(metrics["approx_kl"])
            epochs_run += 1
            if self.cfg.target_kl is not None and epoch_kl and torch.stack(epoch_kl).mean() > self.cfg.target_kl:
                break  # KL early stopping of the epoch loop
        return epochs_run

    def _all_ranks_finite(self, value: torch.Tensor) -> bool:
        """Whether `value` is finite on every rank: one skip-or-step decision for all of them.

        A rank deciding alone would step while another skips, and the weights would part silently.
        One host sync per mini-batch on a GPU (the check itself), plus one all-reduce under DDP.
        """
        bad = (~torch.isfinite(value)).float()
        if self.distributed:
            bad = self.fabric.all_reduce(bad, reduce_op="sum")
        return not bool(bad > 0)

    @torch.no_grad()
    def policy_kl(self, minibatch: TensorDictBase) -> torch.Tensor:
        """The exact mean KL(rollout policy || current policy) over a mini-batch, as rsl_rl computes it.

        The rollout policy is rebuilt from the distribution parameters the collector stored (loc and
        scale for a Gaussian, logits for a categorical); the current one from a forward pass. A policy
        without a closed-form KL (the flow head) gives its own estimate from the stored samples.
        """
        estimate = getattr(self.actor, "approx_kl", None)
        if estimate is not None:
            return estimate(minibatch)
        old = self.actor.build_dist_from_params(minibatch.select(*self.dist_keys))
        current = self.actor.get_dist(minibatch.select(*self.actor.in_keys))
        return torch.distributions.kl_divergence(old, current).mean()

    @torch.no_grad()
    def _adapt_lr(self, optimizer: torch.optim.Optimizer, minibatch: TensorDictBase) -> None:
        """rsl_rl's adaptive schedule: before each step, LR / 1.5 if KL > 2 x desired, x 1.5 if KL < desired / 2.

        KL is the exact KL of the mini-batch's rollout policy to the current one (`policy_kl`),
        averaged over ranks so every rank sets the same LR; the LR stays within [1e-5, 1e-2] as in rsl_rl.
        """
        kl = self.policy_kl(minibatch).float()
        if self.distributed:
            kl = self.fabric.all_reduce(kl, reduce_op="mean")
        kl, target = float(kl), self.cfg.desired_kl
        scale = float(self.adaptive_lr_scale)
        if kl > 2.0 * target:
            scale /= 1.5
        elif 0.0 < kl < target / 2.0:
            scale *= 1.5
        scale = min(max(scale, 1e-5 / self.cfg.lr), 1e-2 / self.cfg.lr)
        self.adaptive_lr_scale.fill_(scale)
        for group in optimizer.param_groups:
            group["lr"] = self.cfg.lr * scale

    def _clip_gradients(self, optimizer: torch.optim.Optimizer, max_norm: float) -> torch.Tensor:
        if self.fabric is not None:
            return self.fabric.clip_gradients(self, optimizer, max_norm=max_norm, error_if_nonfinite=False)
        return torch.nn.utils.clip_grad_norm_(self.parameters(), max_norm)


def debug_variables(losses: TensorDictBase, vf_coef: float, aux_coeff: float) -> dict[str, torch.Tensor]:
    """One mini-batch's debug variables (detail 12) from its losses, detached: the update averages them."""
    old_approx_kl = losses["kl_approx"].detach()  # mean(-log ratio): the k1 estimator
    values = {
        "policy_loss": losses["loss_objective"],
        "value_loss": losses["loss_critic"] / max(vf_coef, 1e-12),
        # the k3 estimator mean((ratio - 1) - log ratio), from the loss's own mean ratio
        "approx_kl": losses["mean_ratio"].detach() - 1.0 + old_approx_kl,
        "old_approx_kl": old_approx_kl,
        "clip_fraction": losses["clip_fraction"],
    }
    for name in ("entropy", "value_clip_fraction"):  # no entropy for a flow head; value clipping is a setting
        if name in losses.keys():
            values[name] = losses[name]
    if "loss_aux" in losses.keys():
        values["aux_loss"] = losses["loss_aux"] / max(aux_coeff, 1e-12)
    return {name: value.detach().float().mean() for name, value in values.items()}


def lost_rows_replaced(after: TensorDictBase, now: TensorDictBase) -> TensorDictBase:
    """`after` (next observations) with every row whose final observation was lost taken from `now`.

    A lost row is marked NaN in the float groups; integer groups (images, token ids) cannot hold NaN
    and read zeros there, so the whole row is replaced, every group together, from its float groups' mark.
    """
    batch_dims = after.batch_dims
    lost = torch.zeros(after.batch_size, dtype=torch.bool, device=after.device)
    for value in after.values(include_nested=True, leaves_only=True):
        if value.is_floating_point():
            lost |= torch.isnan(value).reshape(*after.batch_size, -1).any(-1)

    def replaced(next_value: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        mask = lost.reshape(*lost.shape, *([1] * (next_value.dim() - batch_dims)))
        return torch.where(mask, value, next_value)

    return after.apply(replaced, now)


def explained_variance(batch: TensorDictBase) -> float:
    """1 - Var(target - V) / Var(target) over the batch (detail 12)."""
    values = batch.get("state_value").flatten()
    targets = batch.get("value_target").flatten()
    var_targets = targets.var()
    if var_targets == 0:
        return float("nan")
    return float(1.0 - (targets - values).var() / var_targets)
