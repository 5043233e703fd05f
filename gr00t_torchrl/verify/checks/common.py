"""Small helpers shared by the checks of several areas."""

from __future__ import annotations

from torch import nn

from gr00t_torchrl.verify.registry import OFF, OK, WRONG


def verdict(ok: bool, evidence: str, recommended: bool = True) -> tuple[str, str]:
    """WRONG when the live objects disagree with the config; else ok, or off by config when the
    config departs from the checklist's value."""
    if not ok:
        return WRONG, evidence
    return (OK if recommended else OFF), evidence


def linears(net: nn.Module) -> list[nn.Linear]:
    return [m for m in net.modules() if isinstance(m, nn.Linear)]
