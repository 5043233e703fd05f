"""A planar 2-joint arm reaching the one of four coloured targets that a language instruction names.

The task needs all three inputs of a vision-language-action policy: the targets are only in the
camera image, the instruction says which one to reach, and the arm's own state is proprioception.
"""

from __future__ import annotations

import math

import gymnasium as gym
import torch

from gr00t_torchrl.envs.builtin.base import BatchedTask, Observations, TaskCfg
from gr00t_torchrl.envs.builtin.language import (
    vocabulary_words,
    COLOURS, EVAL_TEMPLATES, PAD_ID, TRAIN_TEMPLATES, UNK_ID, VOCAB_SIZE, colour_ids, instruction_table,
)

LINK_LENGTHS = (0.25, 0.25)  # metres: the tip reaches 0 to 0.5 m from the base
JOINT_LIMITS = (2 * math.pi, 0.9 * math.pi)  # shoulder (a turn either way: a straight tip path may cross behind the base), elbow (rad)
MAX_SPEED, DT = 3.0, 0.05  # rad/s: the joints' speed limit; control period (0.15 rad per step at most)
TIP_SPEED = 0.6  # m/s of tip velocity at a command of 1 (3 cm per step)
IK_DAMPING = 0.05  # damped least squares: the joint speeds stay finite at a singular (stretched or folded) arm
REACHED = 0.05  # metres: success radius
TARGET_RANGE = (0.2, 0.45)  # metres from the base: where targets are drawn (inside the reach)
SEPARATION = 0.16  # metres: the least distance between two targets (> 3 success radii)
VIEW = 0.55  # metres: the image shows [-VIEW, VIEW]^2, the base at its centre
DISC_RADIUS, TIP_RADIUS, LINK_HALF_WIDTH = 0.09, 0.03, 0.012  # metres, as drawn (discs of about 2.6 pixels radius: 0.06 m ones were not learned)
PALETTE = ((230, 30, 30), (30, 210, 30), (40, 60, 240), (235, 225, 20))  # red, green, blue, yellow (as COLOURS)
TIP_COLOUR, LINK_COLOUR = (255, 255, 255), (110, 110, 110)


class ReachLanguageTask(BatchedTask):
    """Put the tip of a planar 2-joint arm on the coloured target the instruction names (70 steps, 3.5 s).

    Each episode draws four targets, one per colour (red, green, blue, yellow), at random places 0.2
    to 0.45 m from the base and at least 0.16 m apart (one per quarter of a randomly turned circle,
    colours shuffled), and an instruction naming one of them ("touch the blue one"), phrased with a
    random template: `TRAIN_TEMPLATES` in training, `EVAL_TEMPLATES` (held-out phrasings, with words
    outside the vocabulary) in evaluation. Both stay fixed through the episode. The action is the tip's
    velocity in the plane (up to 0.6 m/s per axis), turned into joint velocities by damped least-squares
    inverse kinematics (Isaac Lab's differential IK action); joints move at most 3 rad/s and stop at
    their limits.

    Observation groups:
      `policy`: proprioception, float32 [N, 6]: joint angles, joint velocities and the tip's xy (forward
        kinematics, which a robot knows of itself; no target).
      `image`: uint8 [N, 3, H, W]: a top-down render of the workspace: the targets as discs of their
        colours, the links in grey and the tip as a white dot, on black; the only place the targets are.
      `instruction`: int64 [N, L]: the instruction's token ids (`language.py`; 0 pads, 1 is unknown).
      `critic`: privileged float32 [N, 23]: joint state, the four targets' xy (in COLOURS order), the named
        target's xy, the tip's xy, the tip-to-named-target vector and distance, a one-hot of the named colour.
    Reward per step: -distance to the named target + 0.5 (1 - tanh(distance / 5 cm)) - 0.01 |command|^2.
    Success: the tip within 5 cm of the named target at the end (the nearest other target is >= 11 cm
    away then). Going to a random one of the four succeeds 25% of the time.

    `train` picks the defaults: training phrasings with word dropout 0.1 (each non-padding word but
    the colour replaced by the unknown id at episode start, so the unknown id is seen in training),
    or held-out phrasings without dropout; `held_out_phrasings` and `word_dropout` override them.
    """

    state_dim = 4 + 2 * len(COLOURS)  # q, q_dot, the targets' xy
    action_dim = 2
    policy_dim = 6
    critic_dim = 4 + 2 * len(COLOURS) + 2 + 2 + 2 + 1 + len(COLOURS)

    def __init__(
        self, cfg: TaskCfg, train: bool = True, held_out_phrasings: bool | None = None,
        word_dropout: float | None = None, image_size: int = 32, instruction_length: int = 8,
    ) -> None:
        self.is_training = train
        self.held_out_phrasings = (not train) if held_out_phrasings is None else held_out_phrasings
        self.word_dropout = (0.1 if train else 0.0) if word_dropout is None else float(word_dropout)
        self.image_size = image_size
        self.instruction_length = instruction_length
        self.templates = EVAL_TEMPLATES if self.held_out_phrasings else TRAIN_TEMPLATES
        self.vocabulary = vocabulary_words()  # the word of each token id, for a pretrained text encoder
        super().__init__(cfg)
        device = self.device
        # made once on the device: nothing in a step builds a tensor from Python values or touches a string
        self.instruction_ids = instruction_table(self.templates, instruction_length, device=device)  # [T, C, L]
        is_colour = torch.zeros(VOCAB_SIZE, dtype=torch.bool)
        is_colour[colour_ids()] = True
        self._is_colour = is_colour.to(device)
        self._colour_index = torch.arange(len(COLOURS), device=device)
        self._link_lengths = torch.tensor(LINK_LENGTHS, device=device)
        self._joint_limits = torch.tensor(JOINT_LIMITS, device=device)
        # the colour of each layer label: background, link, the targets (COLOURS order), tip
        colours = ((0, 0, 0), LINK_COLOUR, *PALETTE, TIP_COLOUR)
        self._label_colours = torch.tensor(colours, dtype=torch.uint8, device=device)
        self.pixel_size = 2 * VIEW / image_size
        centres = -VIEW + (torch.arange(image_size, device=device, dtype=torch.float32) + 0.5) * self.pixel_size
        self._pixel_x, self._pixel_y = centres, centres.flip(0)  # a column's x, a row's y (row 0 is the top, +y)
        # a drawn shape always covers at least one pixel centre
        self._disc_radius = max(DISC_RADIUS, 0.75 * self.pixel_size)
        self._tip_radius = max(TIP_RADIUS, 0.75 * self.pixel_size)
        self._link_half_width = max(LINK_HALF_WIDTH, 0.55 * self.pixel_size)
        # the episode's instruction (the state tensor holds the rest)
        self.named = torch.zeros(self.num_envs, dtype=torch.long, device=device)
        self.instruction = torch.zeros(self.num_envs, instruction_length, dtype=torch.long, device=device)

    def _extra_observation_spaces(self) -> dict[str, gym.Space]:
        size, length = self.image_size, self.instruction_length
        return {
            "image": gym.spaces.Box(0, 255, (3, size, size), dtype="uint8"),
            "instruction": gym.spaces.Box(0, VOCAB_SIZE - 1, (length,), dtype="int64"),
        }

    # ------------------------------------------------------------------ geometry

    def joint_positions(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The elbow's and the tip's xy, [N, 2] each (the base is at the origin)."""
        angles = q.cumsum(-1)
        links = torch.stack([angles.cos(), angles.sin()], dim=-1) * self._link_lengths.unsqueeze(-1)  # [N, J, 2]
        elbow = links[:, 0]
        return elbow, elbow + links[:, 1]

    def tip_position(self, q: torch.Tensor) -> torch.Tensor:
        return self.joint_positions(q)[1]

    def joint_velocity_for(self, q: torch.Tensor, tip_velocity: torch.Tensor) -> torch.Tensor:
        """Joint velocities giving the tip `tip_velocity` [N, 2]: J^T (J J^T + d^2 I)^-1 v, batched in closed form."""
        l1, l2 = self._link_lengths[0], self._link_lengths[1]
        a1, a12 = q[:, 0], q[:, 0] + q[:, 1]
        j11, j12 = -l1 * a1.sin() - l2 * a12.sin(), -l2 * a12.sin()
        j21, j22 = l1 * a1.cos() + l2 * a12.cos(), l2 * a12.cos()
        d2 = IK_DAMPING**2
        m11, m12, m22 = j11 * j11 + j12 * j12 + d2, j11 * j21 + j12 * j22, j21 * j21 + j22 * j22 + d2
        det = m11 * m22 - m12 * m12
        vx, vy = tip_velocity[:, 0], tip_velocity[:, 1]
        wx, wy = (m22 * vx - m12 * vy) / det, (m11 * vy - m12 * vx) / det  # (J J^T + d^2 I)^-1 v
        return torch.stack([j11 * wx + j21 * wy, j12 * wx + j22 * wy], dim=-1)

    def pixel_of(self, xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The (row, column) of the pixel whose cell holds world point(s) `xy` (for tests and debugging)."""
        col = ((xy[..., 0] + VIEW) / self.pixel_size).floor().long()
        row = ((VIEW - xy[..., 1]) / self.pixel_size).floor().long()
        return row, col

    def _split(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return state[:, :2], state[:, 2:4], state[:, 4:].reshape(-1, len(COLOURS), 2)

    def _named_target(self, targets: torch.Tensor) -> torch.Tensor:
        return targets.gather(1, self.named.view(-1, 1, 1).expand(-1, 1, 2)).squeeze(1)

    # ------------------------------------------------------------------ episodes

    def _sample_state(self, n: int) -> torch.Tensor:
        shoulder = self._uniform(-math.pi, math.pi, (n, 1))
        elbow = self._uniform(-2.5, 2.5, (n, 1))
        q = torch.cat([shoulder, elbow], dim=-1)
        # one target per quarter of a circle turned at random, kept `gap` apart in angle: two targets at
        # least TARGET_RANGE[0] from the base and `gap` apart in angle are >= SEPARATION apart
        k = len(COLOURS)
        gap = 2 * math.asin(SEPARATION / (2 * TARGET_RANGE[0]))
        sector = 2 * math.pi / k
        turn = self._uniform(-math.pi, math.pi, (n, 1))
        within = self._uniform(gap / 2, sector - gap / 2, (n, k))
        heading = turn + sector * torch.arange(k, device=self.device) + within
        radius = self._uniform(TARGET_RANGE[0], TARGET_RANGE[1], (n, k))
        places = torch.stack([radius * heading.cos(), radius * heading.sin()], dim=-1)  # [n, k, 2] by quarter
        order = torch.rand((n, k), generator=self.generator, device=self.device).argsort(-1)  # colour -> quarter
        targets = places.gather(1, order.unsqueeze(-1).expand(-1, -1, 2))
        return torch.cat([q, torch.zeros_like(q), targets.reshape(n, -1)], dim=-1)

    def _sample_instruction(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The named colour [n] and the instruction's ids [n, L] of fresh episodes."""
        template = torch.randint(0, len(self.templates), (n,), generator=self.generator, device=self.device)
        named = torch.randint(0, len(COLOURS), (n,), generator=self.generator, device=self.device)
        ids = self.instruction_ids[template, named]
        drop = torch.rand(ids.shape, generator=self.generator, device=self.device) < self.word_dropout
        drop &= (ids != PAD_ID) & ~self._is_colour[ids]
        return named, ids.masked_fill(drop, UNK_ID)

    def _reset_where(self, mask: torch.Tensor) -> None:
        super()._reset_where(mask)
        named, ids = self._sample_instruction(self.num_envs)
        self.named = torch.where(mask, named, self.named)
        self.instruction = torch.where(mask.unsqueeze(-1), ids, self.instruction)

    def snapshot(self) -> dict[str, torch.Tensor]:
        snap = super().snapshot()  # the state holds the joints and the targets
        snap.update(named=self.named.clone(), instruction=self.instruction.clone())
        return snap

    def restore(self, snapshot: dict[str, torch.Tensor], resume: bool = True) -> None:
        super().restore(snapshot, resume)
        self.named = snapshot["named"].to(self.device, copy=True)
        self.instruction = snapshot["instruction"].to(self.device, copy=True)

    # ------------------------------------------------------------------ dynamics, observations, reward

    def _advance(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        q, _, targets = self._split(state)
        q_speed = (self.joint_velocity_for(q, TIP_SPEED * action)).clamp(-MAX_SPEED, MAX_SPEED)
        q_next = torch.maximum(torch.minimum(q + DT * q_speed, self._joint_limits), -self._joint_limits)
        q_dot = (q_next - q) / DT  # what the joint actually did (zero at a limit)
        return torch.cat([q_next, q_dot, targets.reshape(state.shape[0], -1)], dim=-1)

    def render(self, q: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The top-down RGB image of every env at once, uint8 [N, 3, H, W].

        Distances are separable (a row's y, a column's x), so each shape costs a few [N, H, W] ops;
        each pixel gets a layer label (0 background, 1 link, 2.. the targets' colours, last the tip),
        later layers drawn over earlier ones, and the labels become colours through one lookup.
        """
        xs, ys = self._pixel_x, self._pixel_y  # [W], [H]

        def square_distance(cx: torch.Tensor, cy: torch.Tensor) -> torch.Tensor:  # centres [...] -> [..., H, W]
            return (ys - cy.unsqueeze(-1)).square().unsqueeze(-1) + (xs - cx.unsqueeze(-1)).square().unsqueeze(-2)

        elbow, tip = self.joint_positions(q)
        label = torch.zeros(q.shape[0], self.image_size, self.image_size, dtype=torch.uint8, device=q.device)
        for start, end in ((torch.zeros_like(elbow), elbow), (elbow, tip)):  # the two links (not a loop over envs)
            v = end - start
            ux, uy = xs - start[:, :1], ys - start[:, 1:]  # [N, W], [N, H]
            t = (uy * v[:, 1:]).unsqueeze(-1) + (ux * v[:, :1]).unsqueeze(-2)
            t = (t / v.square().sum(-1).clamp_min(1e-12)[:, None, None]).clamp(0, 1)  # [N, H, W]
            off_x, off_y = ux.unsqueeze(-2) - t * v[:, 0, None, None], uy.unsqueeze(-1) - t * v[:, 1, None, None]
            off = off_x.square() + off_y.square()
            label = label.masked_fill(off < self._link_half_width**2, 1)
        discs = square_distance(targets[..., 0], targets[..., 1]) < self._disc_radius**2  # [N, C, H, W], disjoint
        for colour in range(len(COLOURS)):
            label = label.masked_fill(discs[:, colour], 2 + colour)
        label = label.masked_fill(square_distance(tip[:, 0], tip[:, 1]) < self._tip_radius**2, 2 + len(COLOURS))
        return self._label_colours[label.long()].permute(0, 3, 1, 2).contiguous()

    def _observations(self) -> Observations:
        q, q_dot, targets = self._split(self.state)
        tip = self.tip_position(q)
        named = self._named_target(targets)
        to_target = named - tip
        one_hot = (self.named.unsqueeze(-1) == self._colour_index).float()  # F.one_hot would read a max on the host
        critic = torch.cat([self.state, named, tip, to_target, to_target.norm(dim=-1, keepdim=True), one_hot], dim=-1)
        return {
            "policy": torch.cat([q, q_dot, tip], dim=-1),
            "critic": critic,
            "image": self.render(q, targets),
            "instruction": self.instruction.clone(),
        }

    def _distance(self, state: torch.Tensor) -> torch.Tensor:
        q, _, targets = self._split(state)
        return (self._named_target(targets) - self.tip_position(q)).norm(dim=-1)

    def _reward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        distance = self._distance(state)
        return -distance + 0.5 * (1 - torch.tanh(distance / REACHED)) - 0.01 * action.square().sum(-1)

    def _success(self, state: torch.Tensor) -> torch.Tensor:
        return self._distance(state) < REACHED


__all__ = ["ReachLanguageTask"]
