"""gr00t-torchrl: PPO for robot policies from TorchRL + TensorDict parts, run by PyTorch Lightning."""

__version__ = "0.1.0"
