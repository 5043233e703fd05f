"""Gr00t-Reach-Language-v0: camera image + proprioception + instruction, rendered and tokenised in torch."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest
import torch

from gr00t_torchrl.envs.builtin import BUILTIN_TASKS, TaskCfg, make_builtin_task
from gr00t_torchrl.envs.builtin import language
from gr00t_torchrl.envs.builtin.language import (
    COLOURS, EVAL_TEMPLATES, PAD_ID, TRAIN_TEMPLATES, UNK_ID, VOCAB, VOCAB_SIZE, instruction_table, tokenize,
)
from gr00t_torchrl.envs.builtin.reach_language import (
    DISC_RADIUS, DT, LINK_LENGTHS, MAX_SPEED, PALETTE, TIP_SPEED, REACHED, SEPARATION, TARGET_RANGE, ReachLanguageTask,
)
from gr00t_torchrl.host_syncs import record_host_reads

TASK_ID = "Gr00t-Reach-Language-v0"
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
GROUPS = ("policy", "critic", "image", "instruction")


def make(num_envs=8, seed=0, episode_length=None, random_start=False, train=None, device="cpu") -> ReachLanguageTask:
    return make_builtin_task(TASK_ID, num_envs, device, seed, episode_length, random_start=random_start, train=train)


def inverse_kinematics(xy: torch.Tensor) -> torch.Tensor:
    """Joint angles [N, 2] that put the tip on `xy` [N, 2] (elbow up), the shoulder kept in [-pi, pi]."""
    l1, l2 = LINK_LENGTHS
    r2 = xy.square().sum(-1)
    elbow = torch.acos(((r2 - l1**2 - l2**2) / (2 * l1 * l2)).clamp(-1, 1))
    shoulder = torch.atan2(xy[:, 1], xy[:, 0]) - torch.atan2(l2 * elbow.sin(), l1 + l2 * elbow.cos())
    shoulder = torch.remainder(shoulder + math.pi, 2 * math.pi) - math.pi
    return torch.stack([shoulder, elbow], dim=-1)


def targets_of(task: ReachLanguageTask) -> torch.Tensor:
    return task.state[:, 4:].reshape(task.num_envs, len(COLOURS), 2)


def place(task: ReachLanguageTask, q: torch.Tensor | None = None, targets: torch.Tensor | None = None) -> None:
    """Sets the joints (at rest) and/or the targets of every env."""
    state = task.state.clone()
    if q is not None:
        state[:, :2], state[:, 2:4] = q, 0.0
    if targets is not None:
        state[:, 4:] = targets.reshape(task.num_envs, -1)
    task.state = state


def rows_of(table: torch.Tensor) -> set[tuple[int, ...]]:
    return {tuple(row) for row in table.reshape(-1, table.shape[-1]).tolist()}


# ----------------------------------------------------------------------------- spaces and groups


@pytest.mark.parametrize("device", DEVICES)
def test_every_group_has_its_space_dtype_shape_and_device(device):
    task = make(num_envs=5, device=device)
    space = task.single_observation_space
    assert isinstance(space, gym.spaces.Dict) and set(space) == set(GROUPS)
    assert space["policy"].shape == (6,) and space["policy"].dtype == "float32"
    assert space["critic"].shape == (23,) and space["critic"].dtype == "float32"
    assert space["image"].shape == (3, 32, 32) and space["image"].dtype == "uint8"
    assert space["image"].low.min() == 0 and space["image"].high.max() == 255
    assert space["instruction"].shape == (8,) and space["instruction"].dtype == "int64"
    assert space["instruction"].low.min() == 0 and space["instruction"].high.max() == VOCAB_SIZE - 1
    assert task.single_action_space.shape == (2,)
    obs, _ = task.reset()
    for _ in range(2):
        assert set(obs) == set(GROUPS)
        for name, value in obs.items():
            assert value.device.type == device  # nothing on a hard-coded device
            assert value.shape == (5, *space[name].shape) and str(value.dtype) == f"torch.{space[name].dtype}"
            assert space[name].contains(value[0].cpu().numpy())
        obs, *_ = task.step(torch.zeros(5, 2, device=device))


def test_image_size_and_instruction_length_are_arguments():
    task = ReachLanguageTask(TaskCfg(num_envs=3), image_size=24, instruction_length=10)
    obs, _ = task.reset()
    assert obs["image"].shape == (3, 3, 24, 24) and task.single_observation_space["image"].shape == (3, 24, 24)
    assert obs["instruction"].shape == (3, 10) and task.single_observation_space["instruction"].shape == (10,)
    with pytest.raises(ValueError, match="more than 4 words"):
        ReachLanguageTask(TaskCfg(num_envs=3), instruction_length=4)  # would cut off colour words


def test_targets_are_reachable_and_kept_apart():
    task = make(num_envs=2000, seed=3)
    task.reset()
    targets = targets_of(task)
    radius = targets.norm(dim=-1)
    assert radius.min() >= TARGET_RANGE[0] - 1e-5 and radius.max() <= TARGET_RANGE[1] + 1e-5 < sum(LINK_LENGTHS)
    apart = (targets[:, :, None] - targets[:, None]).norm(dim=-1) + 9 * torch.eye(len(COLOURS))
    assert apart.min() >= SEPARATION - 1e-5 and SEPARATION >= 3 * REACHED
    # every colour goes everywhere: each colour's mean heading is spread over the circle
    heading = torch.atan2(targets[..., 1], targets[..., 0])
    assert (heading.cos().mean(0).abs() < 0.1).all() and (heading.sin().mean(0).abs() < 0.1).all()


# ----------------------------------------------------------------------------- rendering


def test_each_target_is_drawn_in_its_colour_and_moves_with_it():
    task = make(num_envs=6, seed=1)
    task.reset()
    place(task, q=torch.tensor([[math.pi / 2 + 0.3, 0.0]]).expand(6, 2))  # the arm out of the way (tip up-left)
    targets = torch.tensor([[0.3, 0.0], [0.0, -0.3], [-0.3, 0.0], [0.25, -0.25]]).expand(6, 4, 2).clone()
    targets[:, 0, 1] += torch.linspace(-0.1, 0.1, 6)  # the red target at a different place in each env
    place(task, targets=targets)
    image = task._observations()["image"]
    rows, cols = task.pixel_of(targets)
    palette = torch.tensor(PALETTE, dtype=torch.uint8)
    for env in range(6):
        for colour in range(len(COLOURS)):
            assert torch.equal(image[env, :, rows[env, colour], cols[env, colour]], palette[colour])
    # pixel counts: every disc is drawn whole, and nothing else has a target's colour
    for colour in range(len(COLOURS)):
        count = (image == palette[colour].view(1, 3, 1, 1)).all(1).sum((1, 2))
        area = math.pi * (DISC_RADIUS / task.pixel_size) ** 2  # a disc's area in pixels
        assert (count >= 0.5 * area).all() and (count <= 1.6 * area).all()
    # batched: each env's image is the image of that env alone
    q, _, tg = task._split(task.state)
    for env in range(6):
        assert torch.equal(task.render(q[env : env + 1], tg[env : env + 1])[0], image[env])
    # moving the red target moves its disc
    moved = targets.clone()
    moved[:, 0] = torch.tensor([0.0, 0.3])
    place(task, targets=moved)
    after = task._observations()["image"]
    red = (after == palette[0].view(1, 3, 1, 1)).all(1)
    row, col = task.pixel_of(torch.tensor([0.0, 0.3]))
    assert red[:, row, col].all() and not red[torch.arange(6), rows[:, 0], cols[:, 0]].any()


def test_the_tip_is_drawn_white_and_the_background_is_black():
    task = make(num_envs=2, seed=0)
    task.reset()
    q = torch.tensor([[0.0, 0.0], [-math.pi / 2, 0.0]])  # the arm along +x, and along -y
    place(task, q=q, targets=torch.tensor([[-0.3, 0.3], [-0.3, -0.1], [-0.2, 0.4], [-0.4, 0.1]]).expand(2, 4, 2))
    image = task._observations()["image"]
    row, col = task.pixel_of(task.tip_position(q))
    assert (image[torch.arange(2), :, row, col] == 255).all()
    corner = image[:, :, 0, -1]  # top right: nothing there
    assert (corner == 0).all()


def test_the_policy_group_holds_no_target_information():
    a, b = make(num_envs=4, seed=0), make(num_envs=4, seed=0)
    a.reset(), b.reset()
    place(b, targets=-targets_of(a))  # the same joints, the targets elsewhere
    b.named = (a.named + 1) % len(COLOURS)
    obs_a, obs_b = a._observations(), b._observations()
    assert torch.equal(obs_a["policy"], obs_b["policy"])
    assert torch.equal(obs_a["policy"][:, :4], a.state[:, :4])  # joint angles and velocities ...
    assert torch.allclose(obs_a["policy"][:, 4:], a.tip_position(a.state[:, :2]))  # ... and the tip's own xy
    assert not torch.equal(obs_a["image"], obs_b["image"])
    assert not torch.equal(obs_a["critic"], obs_b["critic"])
    # what the critic holds: state, named target, tip, tip-to-target, distance, one-hot
    critic = obs_a["critic"]
    named = targets_of(a)[torch.arange(4), a.named]
    tip = a.tip_position(a.state[:, :2])
    torch.testing.assert_close(critic[:, :12], a.state)
    torch.testing.assert_close(critic[:, 12:14], named)
    torch.testing.assert_close(critic[:, 14:16], tip)
    torch.testing.assert_close(critic[:, 16:18], named - tip)
    torch.testing.assert_close(critic[:, 18], (named - tip).norm(dim=-1))
    assert torch.equal(critic[:, 19:].argmax(-1), a.named) and torch.equal(critic[:, 19:].sum(-1), torch.ones(4))


# ----------------------------------------------------------------------------- instructions


def test_the_vocabulary_comes_from_the_training_phrasings_and_unknown_words_map_to_1():
    assert len(TRAIN_TEMPLATES) >= 6 and len(EVAL_TEMPLATES) >= 3 and not set(TRAIN_TEMPLATES) & set(EVAL_TEMPLATES)
    assert VOCAB_SIZE == len(VOCAB) + 2 and min(VOCAB.values()) == 2 and set(COLOURS) <= set(VOCAB)
    assert tokenize("Reach the RED target!", 6) == [VOCAB["reach"], VOCAB["the"], VOCAB["red"], VOCAB["target"], 0, 0]
    assert tokenize("put the gripper on the red goal", 8) == [UNK_ID, VOCAB["the"], UNK_ID, UNK_ID, VOCAB["the"],
                                                                VOCAB["red"], UNK_ID, PAD_ID]
    assert tokenize("go to the red marker", 3) == [VOCAB["go"], VOCAB["to"], VOCAB["the"]]  # truncated
    train, held_out = instruction_table(TRAIN_TEMPLATES, 8), instruction_table(EVAL_TEMPLATES, 8)
    assert train.shape == (len(TRAIN_TEMPLATES), len(COLOURS), 8) and train.dtype == torch.long
    assert not (train == UNK_ID).any()  # every training word is in the vocabulary
    assert ((held_out == UNK_ID).sum(-1) >= 1).all()  # every held-out phrasing has an unknown word
    assert not rows_of(train) & rows_of(held_out)  # and none reads as a training phrasing


def instructions_over_episodes(task: ReachLanguageTask, episodes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    ids, named = [], []
    for _ in range(episodes):
        task.reset()
        ids.append(task.instruction.clone())
        named.append(task.named.clone())
    return torch.cat(ids), torch.cat(named)


@pytest.mark.parametrize("train", [True, False])
def test_training_and_evaluation_phrasings_never_mix(train):
    task = ReachLanguageTask(TaskCfg(num_envs=256, seed=2), train=train, word_dropout=0.0)
    assert task.held_out_phrasings == (not train)
    ids, named = instructions_over_episodes(task)
    own = instruction_table(TRAIN_TEMPLATES if train else EVAL_TEMPLATES, 8)
    other = instruction_table(EVAL_TEMPLATES if train else TRAIN_TEMPLATES, 8)
    produced = rows_of(ids)
    assert produced == rows_of(own)  # every phrasing and colour of its own set comes up ...
    assert not produced & rows_of(other)  # ... and none of the other set
    colour_tokens = torch.tensor([VOCAB[c] for c in COLOURS])
    assert (ids == colour_tokens[named].unsqueeze(-1)).any(-1).all()  # the named colour's word is there
    assert ((ids.unsqueeze(-1) == colour_tokens).any(-1).sum(-1) == 1).all()  # and no other colour


def test_word_dropout_shows_the_unknown_id_in_training_only():
    train = make(num_envs=512, seed=0, train=True)
    held_out = make(num_envs=512, seed=0, train=False)
    assert (train.word_dropout, train.held_out_phrasings) == (0.1, False)
    assert (held_out.word_dropout, held_out.held_out_phrasings) == (0.0, True)
    ids, named = instructions_over_episodes(train, 2)
    clean = instruction_table(TRAIN_TEMPLATES, 8)
    dropped = ids == UNK_ID
    words = (ids != PAD_ID).sum()
    assert 0.05 < dropped.sum() / words < 0.15  # about 1 word in 10 (but the colours) ...
    colour_tokens = torch.tensor([VOCAB[c] for c in COLOURS])
    assert (ids == colour_tokens[named].unsqueeze(-1)).any(-1).all()  # ... the colour never
    # a dropped word is a word of a training phrasing, padding never dropped: each row matches one with UNKs put in
    matches = ((ids.unsqueeze(1) == clean.reshape(1, -1, 8)) | dropped.unsqueeze(1)).all(-1).any(-1)
    assert matches.all()
    assert make(num_envs=4).word_dropout == 0.1  # with no train flag: the task's default, training


def test_the_instruction_is_fixed_through_an_episode_and_no_string_is_touched(monkeypatch):
    task = make(num_envs=16, seed=0, episode_length=5, random_start=True)
    task.reset()

    def no_strings(*args, **kwargs):
        raise AssertionError("a string was tokenised while the task ran")

    monkeypatch.setattr(language, "tokenize", no_strings)
    monkeypatch.setattr(language, "words", no_strings)
    before = task.instruction.clone()
    changed_any = False
    for _ in range(12):
        obs, _, terminated, truncated, _ = task.step(torch.rand(16, 2) * 2 - 1)
        done = terminated | truncated
        assert torch.equal(obs["instruction"][~done], before[~done])  # unchanged within an episode
        changed_any |= bool((obs["instruction"][done] != before[done]).any())
        before = obs["instruction"].clone()
    assert changed_any  # new episodes draw new instructions


def test_a_step_reads_nothing_on_the_host():
    task = make(num_envs=8, seed=0, episode_length=3, random_start=True)
    task.reset()
    with record_host_reads() as reads:
        for _ in range(4):  # with resets in between
            task.step(torch.zeros(8, 2))
    assert not reads, [r.where() for r in reads]


# ----------------------------------------------------------------------------- reward and success


def run_to(task: ReachLanguageTask, pick, steps: int) -> dict:
    """Steps a Cartesian controller (tip velocity towards the target `pick(task)` chooses [N]) until the episode ends."""
    extras = {}
    for _ in range(steps):
        goal = targets_of(task)[torch.arange(task.num_envs), pick(task)]
        action = ((goal - task.tip_position(task.state[:, :2])) / (DT * TIP_SPEED)).clamp(-1, 1)
        _, _, _, _, extras = task.step(action)
    return extras


def test_success_only_at_the_named_target():
    task = make(num_envs=len(COLOURS) * 50, seed=4, episode_length=1)
    task.reset()
    aim = torch.arange(task.num_envs) % len(COLOURS)  # each env's tip put on one of the four targets
    place(task, q=inverse_kinematics(targets_of(task)[torch.arange(task.num_envs), aim]))
    on_named = aim == task.named  # (before the step: the step's auto-reset draws new episodes)
    _, reward, _, truncated, extras = task.step(torch.zeros(task.num_envs, 2))
    assert truncated.all()
    assert torch.equal(extras["success"], on_named)  # another colour's target is no success
    assert 0.15 < on_named.float().mean() < 0.35  # chance: a random one of four
    assert reward[on_named].min() > reward[~on_named].max()


def test_a_controller_that_reads_the_named_target_succeeds_and_one_that_goes_elsewhere_fails():
    task = make(num_envs=256, seed=5)
    task.reset()
    extras = run_to(task, lambda t: t.named, task.max_episode_length)
    assert extras["success"].float().mean() > 0.97  # reachable within the 70-step episode from anywhere
    task.reset()
    extras = run_to(task, lambda t: (t.named + 1) % len(COLOURS), task.max_episode_length)
    assert not extras["success"].any()


# ----------------------------------------------------------------------------- determinism and resume


def rollout(task: ReachLanguageTask, actions: torch.Tensor) -> list[torch.Tensor]:
    out = []
    for action in actions:
        obs, reward, terminated, truncated, extras = task.step(action)
        out += [*obs.values(), reward, terminated, truncated, extras["success"]]
    return out


def test_the_same_seed_gives_the_same_episodes():
    actions = torch.rand(10, 6, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    runs = []
    for seed in (7, 7, 8):
        task = make(num_envs=6, seed=seed, episode_length=4, random_start=True)
        runs.append([*task.reset()[0].values(), *rollout(task, actions)])
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1]))
    assert not all(torch.equal(a, b) for a, b in zip(runs[0], runs[2]))


def test_snapshot_and_restore_continue_exactly():
    actions = torch.rand(16, 6, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1
    task = make(num_envs=6, seed=0, episode_length=5, random_start=True)
    task.reset()
    rollout(task, actions[:6])
    snap = task.snapshot()
    assert {"named", "instruction", "state", "generator"} <= set(snap)
    kept = {key: value.clone() for key, value in snap.items()}
    expected = rollout(task, actions[6:])  # through several new episodes
    other = make(num_envs=6, seed=123, episode_length=5, random_start=True)
    other.reset()
    other.restore(snap)
    first, _ = other.reset()  # the collector's first reset after a resume continues the episodes
    assert torch.equal(first["instruction"], snap["instruction"])
    got = rollout(other, actions[6:])
    assert all(torch.equal(a, b) for a, b in zip(expected, got))
    # the snapshot is a copy: stepping either task does not change it
    assert all(torch.equal(snap[key], kept[key]) for key in snap)


# ----------------------------------------------------------------------------- the registry and the wrapper


def test_the_registry_passes_train_only_to_tasks_that_take_it():
    assert BUILTIN_TASKS[TASK_ID] == (ReachLanguageTask, 70)
    task = make(num_envs=2, train=False)
    assert task.max_episode_length == 70 and task.held_out_phrasings and task.word_dropout == 0.0
    assert not make(num_envs=2, train=True).held_out_phrasings
    cartpole = make_builtin_task("Gr00t-Cartpole-v0", 2, "cpu", 0, train=False)  # ignored by other tasks
    assert cartpole.num_envs == 2


def test_the_groups_reach_a_torchrl_tensordict_with_their_dtypes():
    from gr00t_torchrl.envs.isaac_api import IsaacLabApiWrapper, with_native_autoreset

    task = make(num_envs=3, episode_length=2)
    env = with_native_autoreset(IsaacLabApiWrapper(task, device=torch.device("cpu"), native_autoreset=True))
    spec = env.observation_spec
    assert spec["image"].dtype == torch.uint8 and spec["image"].shape == (3, 3, 32, 32)
    assert spec["instruction"].dtype == torch.int64 and spec["instruction"].shape == (3, 8)
    td = env.reset()
    td = env.rand_step(td)
    for key in [name for name in GROUPS] + [("next", name) for name in GROUPS]:
        assert td[key].dtype == task._observations()[key if isinstance(key, str) else key[1]].dtype
    assert td["next", "image"].dtype == torch.uint8 and td["next", "instruction"].dtype == torch.int64
    td, next_td = env.step_and_maybe_reset(env.rand_action(env.step_mdp(td)))  # the time-out step
    assert td["next", "done"].all()
    # TorchRL blanks a lost final observation: NaN for floats, zeros for the image and the ids
    assert torch.isnan(td["next", "policy"]).all() and (td["next", "image"] == 0).all()
    assert (td["next", "instruction"] == 0).all()
    assert torch.equal(next_td["instruction"], task.instruction)  # the new episode's instruction goes on


def test_a_tip_velocity_command_moves_the_tip_that_way():
    task = make(num_envs=64, seed=3)
    task.reset()
    before = task.tip_position(task.state[:, :2])
    command = torch.nn.functional.normalize(torch.randn(64, 2), dim=-1) * 0.5
    task.step(command)
    moved = task.tip_position(task.state[:, :2]) - before
    along = (moved * command).sum(-1) / command.norm(dim=-1)
    away = (moved[:, 0] * command[:, 1] - moved[:, 1] * command[:, 0]).abs() / command.norm(dim=-1)
    free = along > 0.5 * DT * TIP_SPEED * 0.5  # arms away from a joint limit or a singular pose
    assert free.float().mean() > 0.8
    assert (away[free] < 0.3 * along[free]).float().mean() > 0.85  # in the commanded direction, nearly always
