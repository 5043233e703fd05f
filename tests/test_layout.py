"""The layout's promises: imports go one way, and the repository never points outside itself."""

from __future__ import annotations

import ast
import collections
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# where each installed package's files live in the checkout
PACKAGE_DIRS = {
    "gr00t_torchrl": ROOT / "gr00t_torchrl",
    "gr00t_torchrl.modules": ROOT / "modules",
    "gr00t_torchrl.transforms": ROOT / "transforms",
    "gr00t_torchrl.presets": ROOT / "recipes" / "presets",
}


def unit(module: str) -> str:
    """The part of the package a module belongs to: `gr00t_torchrl.envs.gym` -> `gr00t_torchrl.envs`."""
    return ".".join(module.split(".")[:2])


def import_graph() -> dict[str, set[str]]:
    """Which part imports which, counting imports inside functions too."""
    graph: dict[str, set[str]] = collections.defaultdict(set)
    for package, directory in PACKAGE_DIRS.items():
        for path in directory.rglob("*.py"):
            parts = [p for p in path.relative_to(directory).with_suffix("").parts if p != "__init__"]
            source = unit(".".join([package, *parts]))
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module:
                    targets = [node.module]
                elif isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                else:
                    continue
                for target in targets:
                    if target.startswith("gr00t_torchrl.") and unit(target) != source:
                        graph[source].add(unit(target))
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path + [nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_no_import_circle():
    assert find_cycle(import_graph()) is None


def test_imports_go_one_way():
    graph = import_graph()
    assert graph["gr00t_torchrl.config"] <= {"gr00t_torchrl.durable"}  # the typed config is the bottom
    for low in ("gr00t_torchrl.envs", "gr00t_torchrl.modules", "gr00t_torchrl.transforms", "gr00t_torchrl.ppo_module",
                "gr00t_torchrl.spo_loss"):
        assert not graph[low] & {"gr00t_torchrl.tasks", "gr00t_torchrl.pipeline", "gr00t_torchrl.runner",
                                 "gr00t_torchrl.cli", "gr00t_torchrl.verify", "gr00t_torchrl.evaluate"}, low
    for user in ("gr00t_torchrl.runner", "gr00t_torchrl.evaluate", "gr00t_torchrl.verify"):
        assert "gr00t_torchrl.cli" not in graph[user]
    assert "gr00t_torchrl.runner" not in graph["gr00t_torchrl.verify"] | graph["gr00t_torchrl.evaluate"]


def test_the_repository_points_nowhere_outside_itself():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    outside = re.compile(r"shared/|DESIGN\.md|PPO_DETAILS\.md")  # the team's notes, which a clone does not hold
    offenders = []
    for name in files:
        if not name.endswith((".py", ".md", ".yaml", ".toml", ".sh")) or name == "tests/test_layout.py":
            continue
        for number, line in enumerate((ROOT / name).read_text().splitlines(), 1):
            if outside.search(line):
                offenders.append(f"{name}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
