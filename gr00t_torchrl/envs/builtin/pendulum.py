"""Pendulum swing-up: Gymnasium's Pendulum-v1 physics and reward, batched in torch."""

from __future__ import annotations

import math

import torch

from gr00t_torchrl.envs.builtin.base import BatchedTask, Observations

GRAVITY, MASS, LENGTH, DT = 10.0, 1.0, 1.0, 0.05
MAX_TORQUE, MAX_SPEED = 2.0, 8.0
UPRIGHT = 0.2  # radians from the top that count as "up" at the end of an episode


def angle_from_top(theta: torch.Tensor) -> torch.Tensor:
    return torch.remainder(theta + math.pi, 2 * math.pi) - math.pi


class PendulumSwingUpTask(BatchedTask):
    """Swing a torque-limited pendulum up from any angle and hold it there (200 steps, 10 s).

    Observations: cos and sin of the angle, angular velocity. Reward per step:
    -(angle^2 + 0.1 velocity^2 + 0.001 torque^2). The torque limit (2 N m) is too weak to lift the
    pendulum straight up: it must pump. No terminations. Success: within 0.2 rad of upright at the
    end of the episode.
    """

    state_dim = 2
    action_dim = 1
    policy_dim = 3
    start_bounds = (math.pi, 1.0)

    def _advance(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        theta, theta_dot = state.unbind(-1)
        torque = MAX_TORQUE * action[:, 0]
        theta_acc = 3 * GRAVITY / (2 * LENGTH) * theta.sin() + 3.0 / (MASS * LENGTH**2) * torque
        theta_dot = (theta_dot + theta_acc * DT).clamp(-MAX_SPEED, MAX_SPEED)
        return torch.stack([theta + theta_dot * DT, theta_dot], dim=-1)

    def _observations(self) -> Observations:
        theta, theta_dot = self.state.unbind(-1)
        return {"policy": torch.stack([theta.cos(), theta.sin(), theta_dot], dim=-1)}

    def _reward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        torque = MAX_TORQUE * action[:, 0]
        return -(angle_from_top(state[:, 0]).square() + 0.1 * state[:, 1].square() + 0.001 * torque.square())

    def _success(self, state: torch.Tensor) -> torch.Tensor:
        return angle_from_top(state[:, 0]).abs() < UPRIGHT
