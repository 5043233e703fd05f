"""TorchRL env transforms written for this project (where TorchRL has no fitting one)."""

from gr00t_torchrl.transforms.action_chunk import ActionChunk
from gr00t_torchrl.transforms.episode_stats import EpisodeStatistics
from gr00t_torchrl.transforms.frame_stack import ResumableCatFrames
from gr00t_torchrl.transforms.observation_norm import RunningObservationNorm
from gr00t_torchrl.transforms.reward_scaling import RewardScaling
from gr00t_torchrl.transforms.running_stats import RunningMeanStd

__all__ = [
    "ActionChunk", "EpisodeStatistics", "ResumableCatFrames", "RunningObservationNorm", "RewardScaling", "RunningMeanStd",
]
