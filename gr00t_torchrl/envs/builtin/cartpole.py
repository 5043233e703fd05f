"""Cart-pole balancing with a continuous force (classic cart-pole physics, Isaac Lab's reward terms)."""

from __future__ import annotations

import torch

from gr00t_torchrl.envs.builtin.base import BatchedTask, Observations

GRAVITY, CART_MASS, POLE_MASS, POLE_HALF_LENGTH = 9.8, 1.0, 0.1, 0.5
MAX_FORCE, DT = 10.0, 0.02
CART_LIMIT, ANGLE_LIMIT = 2.4, 0.2095  # metres, radians (12 degrees)


class CartpoleTask(BatchedTask):
    """Keep a pole upright on a cart pushed by a force in [-10, 10] N, for 250 steps (5 s).

    Observations: cart position and velocity, pole angle and angular velocity. Reward per step
    (Isaac-Cartpole's terms): +1 alive, -theta^2, -0.01 |cart velocity|, -0.005 |pole velocity|,
    and -2 on the step that fails. Terminates when the cart leaves [-2.4, 2.4] m or the pole
    tips past 12 degrees. Success: the episode ends by time-out.
    """

    state_dim = 4
    action_dim = 1
    policy_dim = 4
    start_bounds = (0.5, 0.05, 0.1, 0.05)

    def _advance(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x, x_dot, theta, theta_dot = state.unbind(-1)
        force = MAX_FORCE * action[:, 0]
        cos, sin = theta.cos(), theta.sin()
        total_mass = CART_MASS + POLE_MASS
        temp = (force + POLE_MASS * POLE_HALF_LENGTH * theta_dot.square() * sin) / total_mass
        theta_acc = (GRAVITY * sin - cos * temp) / (
            POLE_HALF_LENGTH * (4.0 / 3.0 - POLE_MASS * cos.square() / total_mass)
        )
        x_acc = temp - POLE_MASS * POLE_HALF_LENGTH * theta_acc * cos / total_mass
        return torch.stack(
            [x + DT * x_dot, x_dot + DT * x_acc, theta + DT * theta_dot, theta_dot + DT * theta_acc], dim=-1
        )

    def _observations(self) -> Observations:
        return {"policy": self.state.clone()}

    def _terminated(self, state: torch.Tensor) -> torch.Tensor:
        return (state[:, 0].abs() > CART_LIMIT) | (state[:, 2].abs() > ANGLE_LIMIT)

    def _reward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        alive = torch.where(self._terminated(state), -2.0, 1.0)
        return alive - state[:, 2].square() - 0.01 * state[:, 1].abs() - 0.005 * state[:, 3].abs()

    def _success(self, state: torch.Tensor) -> torch.Tensor:
        return ~self._terminated(state)
