"""The audit's vocabulary: the statuses a check reports, a `Finding`, and the registry of checks.

A check is a function of an `Audit` returning (status, evidence); `@detail(number, name)` registers
it under its detail number of docs/ppo_details.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gr00t_torchrl.verify.audit import Audit

OK, OFF, NA, MISSING, WRONG = "ok", "off by config", "not applicable", "missing", "WRONG"


@dataclass
class Finding:
    """One row of the audit: a detail, its status and the evidence measured."""

    number: int
    name: str
    status: str
    evidence: str

    @property
    def applies(self) -> bool:
        # the details not built yet cannot apply: tasks needing them (pixels, MultiDiscrete) are refused
        return self.status not in (NA, MISSING)

    @property
    def failed(self) -> bool:
        return self.status == WRONG


Check = Callable[["Audit"], tuple[str, str]]
CHECKS: dict[int, tuple[str, Check]] = {}


def detail(number: int, name: str) -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        CHECKS[number] = (name, check)
        return check

    return register
