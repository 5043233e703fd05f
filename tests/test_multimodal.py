"""The multimodal encoder: branches from the spec, pixels scaled on the device, words pooled, FiLM, errors."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Bounded, Composite, Unbounded

from gr00t_torchrl import checkpoint as ckpt
from gr00t_torchrl.cli import main
from gr00t_torchrl.config import ConfigError, EncoderConfig
from gr00t_torchrl.modules import MultiModalEncoder, make_multimodal_actor_critic
from gr00t_torchrl.modules.multimodal import ImageEncoder, LearnedInstructionEncoder
from gr00t_torchrl.runner import train
from gr00t_torchrl.tasks import resolve_config
from tests.conftest import TINY, merged
from tests.test_verify import MULTIMODAL

N = 6
SMALL = EncoderConfig(cnn_channels=[8, 8], cnn_kernels=[4, 3], cnn_strides=[2, 2], image_features=16,
                      proprio_sizes=[8], token_dim=4, fused_sizes=[16])


def spec(image: torch.Size = torch.Size([3, 16, 16]), dtype: torch.dtype = torch.uint8, tokens: bool = True) -> Composite:
    groups = {
        "observation": Unbounded((N, 4)),
        "image": Bounded(0, 255, (N, *image), dtype=dtype),
        "critic": Unbounded((N, 7)),
        "episode_length": Unbounded((N, 1), dtype=torch.int64),  # a transform's entry, not an input
    }
    if tokens:
        groups["instruction"] = Bounded(0, 9, (N, 5), dtype=torch.int64)
    return Composite(groups, shape=(N,))


def test_branches_are_chosen_from_the_spec():
    encoder = MultiModalEncoder.from_spec(spec(), SMALL, vocab_sizes={"instruction": 10})
    assert encoder.kinds == {"instruction": "tokens", "image": "image", "observation": "proprio"}
    assert "critic" not in encoder.in_keys and "episode_length" not in encoder.in_keys
    out = encoder(spec().rand())
    assert out["features"].shape == (N, 16)
    vision_only = MultiModalEncoder.from_spec(spec(tokens=False), SMALL)
    assert vision_only.kinds == {"image": "image", "observation": "proprio"}


def test_uint8_pixels_are_scaled_to_unit_range_inside_the_encoder():
    trunk = ImageEncoder([3, 16, 16], [8], [4], [2], 8)
    pixels = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    assert torch.equal(trunk.scaled(pixels), pixels.float() / 255)
    assert torch.allclose(trunk(pixels), trunk(pixels.float() / 255))  # a float image is taken as already scaled
    with_grid = ImageEncoder([3, 16, 16], [8], [4], [2], 8, coordinates=True)
    scaled = with_grid.scaled(pixels)
    assert scaled.shape == (2, 5, 16, 16) and float(scaled[:, 3].min()) == -1 and float(scaled[:, 3].max()) == 1


def test_instruction_embeddings_are_the_mean_over_words_without_padding():
    words = LearnedInstructionEncoder(10, 4)
    tokens = torch.tensor([[3, 5, 0, 0], [3, 0, 0, 0]])
    table = words.embedding.weight
    assert torch.allclose(words(tokens)[0], (table[3] + table[5]) / 2)
    assert torch.allclose(words(tokens)[1], table[3])
    with pytest.raises(ConfigError, match="outside the vocabulary of 10"):
        words(torch.tensor([[3, 12, 0, 0]]))


def test_the_export_form_of_the_instruction_mean_equals_the_embedding_bag():
    words = LearnedInstructionEncoder(10, 4)
    tokens = torch.tensor([[3, 5, 0, 0], [3, 0, 0, 0], [0, 0, 0, 0], [1, 9, 9, 2]])
    words.by_lookup = True
    looked_up = words(tokens)
    words.by_lookup = False
    assert torch.allclose(looked_up, words(tokens), atol=1e-6) and torch.equal(looked_up[2], torch.zeros(4))


def test_film_starts_as_the_identity_and_then_lets_words_change_the_picture():
    cfg = EncoderConfig(**{**SMALL.__dict__, "fusion": "film"})
    encoder = MultiModalEncoder.from_spec(spec(), cfg, vocab_sizes={"instruction": 10})
    trunk = next(m for m in encoder.modules() if isinstance(m, ImageEncoder))
    image = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    a, b = torch.tensor([[2, 0, 0, 0, 0]] * 2), torch.tensor([[7, 0, 0, 0, 0]] * 2)
    condition = encoder.module.branches[0]
    assert torch.equal(trunk(image, condition(a)), trunk(image, condition(b)))  # identity at first
    torch.nn.init.normal_(trunk.film.to_scale_shift.weight)
    assert not torch.allclose(trunk(image, condition(a)), trunk(image, condition(b)))
    with pytest.raises(ConfigError, match="fusion=film needs"):
        MultiModalEncoder.from_spec(spec(tokens=False), cfg)


def test_actor_and_critic_share_the_encoder_and_keep_their_own_heads():
    encoder = MultiModalEncoder.from_spec(spec(), SMALL, vocab_sizes={"instruction": 10})
    actor, critic, head = make_multimodal_actor_critic(encoder, Unbounded((N, 2)), [8], privileged=("critic", 7))
    shared = {id(p) for p in actor.parameters()} & {id(p) for p in critic.parameters()}
    assert shared == {id(p) for p in encoder.parameters()}
    assert "critic" in critic.in_keys and "critic" not in actor.in_keys
    td = spec().rand()
    assert actor(td.clone())["action"].shape == (N, 2) and critic(td.clone())["state_value"].shape == (N, 1)


@pytest.mark.parametrize(("group", "words"), [
    (spec(dtype=torch.int32), "must be uint8"),
    (spec(image=torch.Size([16, 16, 3])), "channels-first"),
    (spec(image=torch.Size([3, 4, 4])), "too small for the conv layers"),
])
def test_images_the_encoder_cannot_read_are_refused_by_name(group, words):
    with pytest.raises(ConfigError, match=words):
        MultiModalEncoder.from_spec(group, SMALL, vocab_sizes={"instruction": 10})


def test_a_pretrained_text_encoder_without_local_weights_says_how_to_provide_them(tmp_path, capsys):
    assert main(["config", "task=Gr00t-Reach-Language-v0", "network.encoder.language=model2vec"]) == 2
    assert "text_model_path" in capsys.readouterr().err
    args = merged(*MULTIMODAL, *TINY, f"run_dir={tmp_path / 'run'}", "network.encoder.language=model2vec",
                  f"network.encoder.text_model_path={tmp_path / 'absent'}")
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err
    assert "is not a directory" in err and "save_pretrained" in err
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_a_multimodal_checkpoint_is_refused_for_a_state_task(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(resolve_config(merged(*TINY, *MULTIMODAL, "total_steps=128", "eval_episodes=0", f"run_dir={run_dir}")))
    saved = ckpt.load(run_dir / "checkpoints" / "last.ckpt")
    assert saved["inputs"]["image"] == [[3, 32, 32], "torch.uint8"]
    state = tmp_path / "state"
    train(resolve_config(merged("task=Gr00t-Arm-Reach-v0", *TINY, "total_steps=128", "eval_episodes=0",
                                f"run_dir={state}")))
    (state / "checkpoints" / "last.ckpt").write_bytes((run_dir / "checkpoints" / "last.ckpt").read_bytes())
    assert main(["eval", f"run_dir={state}"]) == 2
    assert "was made for" in capsys.readouterr().err


def test_blanking_an_input_in_evaluation(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(resolve_config(merged(*TINY, *MULTIMODAL, "total_steps=128", "eval_episodes=0", f"run_dir={run_dir}")))
    for blank in ("image", "language", "proprio"):
        assert main(["eval", f"run_dir={run_dir}", "episodes=4", f"blank={blank}"]) == 0
        assert (run_dir / f"eval_blank-{blank}.json").is_file()
    assert not (run_dir / "eval.json").exists()  # a blanked evaluation never replaces the real one
    assert main(["eval", f"run_dir={run_dir}", "blank=sound"]) == 2
    state = tmp_path / "state"
    train(resolve_config(merged("task=pendulum", *TINY, "total_steps=128", "eval_episodes=0", f"run_dir={state}")))
    assert main(["eval", f"run_dir={state}", "blank=image"]) == 2
    assert "no image input" in capsys.readouterr().err


def test_an_evaluation_video_shows_the_policy_s_images_with_instruction_and_outcome(tmp_path, capsys):
    import importlib.util

    import imageio.v3 as iio

    run_dir = tmp_path / "run"
    train(resolve_config(merged(*TINY, *MULTIMODAL, "total_steps=128", "eval_episodes=0", f"run_dir={run_dir}")))
    assert main(["eval", f"run_dir={run_dir}", "episodes=3", "video=true"]) == 0
    frames = iio.imread(run_dir / "eval_video.gif", index=None)
    assert frames.ndim == 4 and frames.shape[0] > 10 and frames.shape[2] == 3 * 32 * 6  # 3 episodes side by side
    state = tmp_path / "state"
    train(resolve_config(merged("task=pendulum", *TINY, "total_steps=128", "eval_episodes=0", f"run_dir={state}")))
    code = main(["eval", f"run_dir={state}", "episodes=2", "video=true"])
    if importlib.util.find_spec("pygame") is None:  # Gymnasium's classic-control renderer
        assert code == 2 and "cannot be drawn here" in capsys.readouterr().err
    else:
        assert code == 0 and (state / "eval_video.gif").is_file()


def test_frame_stacking_keeps_the_last_frames_and_restarts_them_at_an_episode_end():
    from gr00t_torchrl.envs import make_env

    cfg = resolve_config(merged(*MULTIMODAL, "env.num_envs=3", "env.frame_stack=3", "env.max_episode_steps=4"))
    env = make_env(cfg, seed=0, train=False)  # no random start: every episode ends after 4 steps
    assert env.observation_spec["image"].shape == (3, 9, 32, 32) and env.observation_spec["image"].dtype == torch.uint8
    td = env.reset()
    first = td["image"]
    assert torch.equal(first[:, :3], first[:, 6:])  # a new episode's stack repeats its first frame
    frames = [first[:, 6:]]
    action = torch.ones(3, 2)
    for step in range(1, 6):
        stepped, td = env.step_and_maybe_reset(td.set("action", action))  # the collector's step
        stack = stepped["next", "image"]
        if step < 4:  # the oldest frame drops out, the newest comes in last
            frames.append(stack[:, 6:])
            assert torch.equal(stack[:, 3:6], frames[-2]) and torch.equal(stack[:, :3], frames[max(len(frames) - 3, 0)])
        if step == 4:  # the time limit: every env starts again, and no frame of the old episode stays
            assert torch.equal(td["image"][:, :3], td["image"][:, 6:]) and torch.equal(td["image"][:, 3:6], td["image"][:, 6:])


def test_frame_stacking_is_refused_where_there_are_no_images(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "task=Gr00t-Arm-Reach-v0", "env.frame_stack=4", "total_steps=64"]) == 2
    assert "env.frame_stack=4 needs a task with image observations" in capsys.readouterr().err
    assert not any((tmp_path / "runs").iterdir())  # the refused run leaves no empty run directory


def test_the_privileged_auxiliary_loss_trains_the_shared_trunk_towards_the_hidden_state(capsys, tmp_path):
    from gr00t_torchrl.pipeline import build_pipeline, make_fabric

    cfg = resolve_config(merged(*TINY, *MULTIMODAL, "network.encoder.privileged_aux_coeff=2.0"))
    pipeline = build_pipeline(cfg, make_fabric(cfg))
    module = pipeline.module
    encoder = module.privileged_predictor.module[0]
    assert encoder is module.actor.module[0]  # the predictor reads the actor's own encoder
    with torch.no_grad():
        rollout = pipeline.env.rollout(8, pipeline.collection_policy, break_when_any_done=False)
    batch = module.compute_advantages(rollout).reshape(-1)
    losses = module.training_step(batch)
    predicted = module.privileged_predictor(batch.clone())["privileged_prediction"]
    expected = 2.0 * (predicted - batch["critic"]).square().mean()
    assert torch.allclose(losses["loss_aux"], expected)
    module.zero_grad()
    losses["loss_aux"].backward()
    trunk = [p for m in encoder.modules() if isinstance(m, ImageEncoder) for p in m.parameters()]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trunk)
    assert module.update(batch, pipeline.optimizer)["aux_loss"] > 0  # logged beside the PPO losses
    assert main(["train", "task=pendulum", *TINY, "network.encoder.privileged_aux_coeff=1", "total_steps=64",
                 f"run_dir={tmp_path / 'refused'}"]) == 2
    assert "privileged_aux_coeff needs a task with images" in capsys.readouterr().err


def test_channels_last_camera_images_reach_the_encoder_channels_first(monkeypatch, tmp_path):
    import gymnasium as gym

    from gr00t_torchrl.envs import make_env
    from gr00t_torchrl.envs.builtin.reach_language import ReachLanguageTask

    render, spaces = ReachLanguageTask.render, ReachLanguageTask._extra_observation_spaces

    def camera_spaces(self):  # as a camera sensor gives them: [H, W, C]
        out = spaces(self)
        out["image"] = gym.spaces.Box(0, 255, (self.image_size, self.image_size, 3), dtype="uint8")
        return out

    monkeypatch.setattr(ReachLanguageTask, "render", lambda self, q, t: render(self, q, t).permute(0, 2, 3, 1))
    monkeypatch.setattr(ReachLanguageTask, "_extra_observation_spaces", camera_spaces)
    cfg = resolve_config(merged(*MULTIMODAL, "env.frame_stack=2"))
    env = make_env(cfg, seed=0, train=False)
    assert env.observation_spec["image"].shape == (4, 6, 32, 32) and env.observation_spec["image"].dtype == torch.uint8
    td = env.reset()
    task = env.base_env._env
    q, targets = task.state[:, :2], task.state[:, 4:].reshape(-1, 4, 2)
    assert torch.equal(td["image"][:, 3:], render(task, q, targets))  # the picture as drawn, channels first
    train(resolve_config(merged(*TINY, *MULTIMODAL, "env.frame_stack=2", "total_steps=128", "eval_episodes=0",
                                f"run_dir={tmp_path / 'run'}")))  # and trains, checkpoint included
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def test_a_frame_stacked_run_resumes_exactly_and_evaluates(tmp_path):
    words = (*TINY, *MULTIMODAL, "env.frame_stack=2", "total_steps=256", "eval_episodes=0", "checkpoint_every=100")
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train(resolve_config(merged(*words, f"run_dir={straight}")))
    train(resolve_config(merged(*words, f"run_dir={interrupted}")), stop_after=2)
    train(resolve_config([f"resume={interrupted}"]))  # the saved frame history goes back into a fresh env
    a, b = (ckpt.load(ckpt.checkpoint_path(d)) for d in (straight, interrupted))
    for group, sa, sb in (("module", a, b), ("env_transforms", a["ranks"][0], b["ranks"][0])):
        for key, value in sa[group].items():
            assert torch.equal(value, sb[group][key]), f"{group}.{key} differs"
    assert any("_cat_buffers_image" in key for key in a["ranks"][0]["env_transforms"])
    assert main(["eval", f"run_dir={interrupted}", "episodes=2"]) == 0
