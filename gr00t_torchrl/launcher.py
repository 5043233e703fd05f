"""The `lightning` command: `lightning run [model] [launcher options] SCRIPT [key=value ...]`.

Older Lightning releases launched scripts as `lightning run model`; Lightning 2.6 ships that
launcher only as `fabric run`. This command keeps the older spelling working by handing its
arguments, unchanged, to Fabric's own launcher (which starts one process per device).
"""

from __future__ import annotations

import sys

USAGE = """usage: lightning run [model] [launcher options] SCRIPT [key=value ...]

Starts SCRIPT once per device through Lightning Fabric's launcher (`fabric run`), e.g.
  lightning run model --accelerator cpu --devices 2 recipes/ppo_gr00t.py task=pendulum
Launcher options: see `fabric run --help`."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] != "run":
        print(f"error: unknown command '{argv[0]}'; only `run` is provided here.\n{USAGE}", file=sys.stderr)
        return 2
    rest = argv[1:]
    if rest and rest[0] == "model":
        rest = rest[1:]
    from lightning.fabric.cli import _main as fabric_cli  # Fabric's click group; `run` is its command

    return fabric_cli.main(["run", *rest], prog_name="lightning", standalone_mode=True) or 0
