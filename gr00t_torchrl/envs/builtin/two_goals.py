"""Two goals and an obstacle between them: a task whose good actions are two, and whose average is bad."""

from __future__ import annotations

import torch

from gr00t_torchrl.envs.builtin.base import BatchedTask, Observations

GOALS_X, GOAL_Y = 0.5, 0.5  # goals at (-0.5, 0.5) and (+0.5, 0.5)
OBSTACLE_RADIUS = 0.25  # a disc at the origin
REACHED = 0.1  # metres: success radius around either goal
STEP = 0.1  # metres per step at a full command
START_Y = -0.6


class TwoGoalsTask(BatchedTask):
    """Move a point from below an obstacle to either of two goals on its left and right (30 steps).

    The point starts near (0, -0.6), straight below a disc obstacle (radius 0.25) at the origin, with
    the goals at (+-0.5, 0.5) on either side above it: going left or right around the disc are equally
    good, going straight up (their average) hits it. The action is a normalised velocity command
    (up to 0.1 m per step); touching the disc ends the episode (terminated, failure).
    Observation: the point's xy. Reward: 10 x the distance gained towards the nearer goal, +1 on
    reaching a goal (which ends the episode), -1 on hitting the disc. Success: a goal reached.
    The task carries a scripted demonstrator (`expert_action`) that picks a side at random per episode
    and goes around the disc on it: a demonstration set whose actions at the start are bimodal.
    """

    state_dim = 3  # x, y, and the side the demonstrator chose for this episode (-1 or +1; not observed)
    action_dim = 2
    policy_dim = 2

    def _sample_state(self, n: int) -> torch.Tensor:
        x = self._uniform(-0.01, 0.01, (n,))
        y = self._uniform(START_Y - 0.05, START_Y + 0.05, (n,))
        side = torch.where(self._uniform(0.0, 1.0, (n,)) < 0.5, -1.0, 1.0)
        return torch.stack([x, y, side], dim=-1)

    def _advance(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        self._before = self._goal_distance(state)  # for the reward of this step
        return torch.cat([state[:, :2] + STEP * action, state[:, 2:]], dim=-1)

    def _goal_distance(self, state: torch.Tensor) -> torch.Tensor:
        x, y = state[:, 0], state[:, 1]
        return torch.hypot(GOALS_X - x.abs(), GOAL_Y - y)  # the nearer goal is on the point's side

    def _hit(self, state: torch.Tensor) -> torch.Tensor:
        return state[:, :2].norm(dim=-1) < OBSTACLE_RADIUS

    def _observations(self) -> Observations:
        return {"policy": self.state[:, :2].clone()}

    def _reward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        after = self._goal_distance(state)
        return 10.0 * (self._before - after) + self._success(state).float() - self._hit(state).float()

    def _terminated(self, state: torch.Tensor) -> torch.Tensor:
        return self._hit(state) | self._success(state)

    def _success(self, state: torch.Tensor) -> torch.Tensor:
        return self._goal_distance(state) < REACHED

    def expert_action(self) -> torch.Tensor:
        """The scripted demonstrator's command: around the disc on this episode's side, then to that side's goal."""
        position, side = self.state[:, :2], self.state[:, 2]
        beside = torch.stack([side * (OBSTACLE_RADIUS + 0.15), torch.zeros_like(side)], dim=-1)
        goal = torch.stack([side * GOALS_X, torch.full_like(side, GOAL_Y)], dim=-1)
        below = (position[:, 1] < -0.05) & (position[:, 0].abs() < OBSTACLE_RADIUS + 0.1)
        target = torch.where(below.unsqueeze(-1), beside, goal)
        return ((target - position) / STEP).clamp(-1.0, 1.0)
