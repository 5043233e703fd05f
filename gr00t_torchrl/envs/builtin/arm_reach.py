"""A planar N-joint arm reaching a random target, with privileged observations for the critic."""

from __future__ import annotations

import math

import torch

from gr00t_torchrl.envs.builtin.base import BatchedTask, Observations, TaskCfg

LINK_LENGTH = 0.3  # metres, every link
JOINT_LIMIT = 0.9 * math.pi
MAX_SPEED, DT = 2.0, 0.05  # rad/s at a command of 1; control period
REACHED = 0.05  # metres: success radius


class ArmReachTask(BatchedTask):
    """Move the tip of a planar arm of `num_joints` revolute joints onto a target (100 steps, 5 s).

    Each joint follows a normalised velocity command (up to 2 rad/s), as a position-controlled
    robot arm's joints do; a joint at its limit (+-0.9 pi) stops. The target is drawn in the
    reachable annulus at every reset.
    Actor (`policy` group, proprioception + goal): joint positions, joint velocities, target xy.
    Critic (`critic` group, privileged): the same plus the tip position, the tip-to-target vector
    and the distance, which the actor would have to infer through the kinematics.
    Reward per step: -distance, plus up to 0.5 for precision (0.5 (1 - tanh(distance / 5 cm)), the
    fine-grained tracking term of Isaac Lab's reach tasks), - 0.01 |command|^2.
    Success: tip within 5 cm of the target at the end.
    """

    action_dim: int

    def __init__(self, cfg: TaskCfg, num_joints: int = 3) -> None:
        self.num_joints = num_joints
        self.action_dim = num_joints
        self.state_dim = 2 * num_joints + 2  # q, q_dot, target
        self.policy_dim = 2 * num_joints + 2
        self.critic_dim = self.policy_dim + 5
        super().__init__(cfg)

    def tip_position(self, q: torch.Tensor) -> torch.Tensor:
        angles = q.cumsum(-1)
        return LINK_LENGTH * torch.stack([angles.cos().sum(-1), angles.sin().sum(-1)], dim=-1)

    def _split(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = self.num_joints
        return state[:, :n], state[:, n : 2 * n], state[:, 2 * n :]

    def _sample_state(self, n: int) -> torch.Tensor:
        q = self._uniform(-0.5, 0.5, (n, self.num_joints))
        q_dot = torch.zeros_like(q)
        reach = LINK_LENGTH * self.num_joints
        radius = self._uniform(0.25 * reach, 0.85 * reach, (n,))
        heading = self._uniform(-math.pi, math.pi, (n,))
        target = torch.stack([radius * heading.cos(), radius * heading.sin()], dim=-1)
        return torch.cat([q, q_dot, target], dim=-1)

    def _advance(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        q, _, target = self._split(state)
        q_next = (q + DT * MAX_SPEED * action).clamp(-JOINT_LIMIT, JOINT_LIMIT)
        q_dot = (q_next - q) / DT  # what the joint actually did (zero at a limit)
        return torch.cat([q_next, q_dot, target], dim=-1)

    def _distance(self, state: torch.Tensor) -> torch.Tensor:
        q, _, target = self._split(state)
        return (target - self.tip_position(q)).norm(dim=-1)

    def _observations(self) -> Observations:
        q, _, target = self._split(self.state)
        tip = self.tip_position(q)
        to_target = target - tip
        privileged = torch.cat([tip, to_target, to_target.norm(dim=-1, keepdim=True)], dim=-1)
        return {"policy": self.state.clone(), "critic": torch.cat([self.state, privileged], dim=-1)}

    def _reward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        distance = self._distance(state)
        return -distance + 0.5 * (1 - torch.tanh(distance / REACHED)) - 0.01 * action.square().sum(-1)

    def _success(self, state: torch.Tensor) -> torch.Tensor:
        return self._distance(state) < REACHED
