"""Command line: `gr00t-ppo train`, `config`, `eval run_dir=...`, `export run_dir=...`, `collect`, `bc` and `verify`.

Bad input (an unknown setting, a bad value, a refused resume) is one line on stderr and exit code 2.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
from pathlib import Path

USAGE = """usage:
  gr00t-ppo train [key=value ...]        train (same as python recipes/ppo_gr00t.py)
  gr00t-ppo train --help                 every setting: section, type, default, help
  gr00t-ppo config [key=value ...]       print a task's fully resolved config, without training
  gr00t-ppo eval run_dir=<dir> [episodes=N] [blank=image|language|proprio] [video=true]
                                         evaluate a run's last checkpoint, write eval.json
                                         (with blank=: that input zeroed, eval_blank-<input>.json)
  gr00t-ppo export run_dir=<dir> [format=onnx|torchscript]
                                         the deterministic policy, normalization folded in, as
                                         <dir>/export/policy.onnx (or policy.pt) + policy.json
  gr00t-ppo collect (run_dir=<dir> | task=<task>) episodes=N out=<dir> [noise=X] [seed=N]
                                         demonstrations of a trained run's deterministic policy (or of
                                         the task's scripted demonstrator), as a memory-mapped TensorDict
  gr00t-ppo bc data=<dir> [epochs=N] [batch_size=N] [lr=X] [key=value ...]
                                         behaviour cloning of the configured actor (e.g. network.head=flow)
                                         on them, saved as a run directory: eval it, or train init_from=it
  gr00t-ppo verify [key=value ...] [--json]
  gr00t-ppo verify run_dir=<dir> [--json]
                                         audit the 37 PPO details on the live pipeline
                                         (exit 1 if a detail that applies is wrong)
examples:
  gr00t-ppo train task=cartpole total_steps=50000 seed=3
  gr00t-ppo train task=HalfCheetah-v5 env.num_envs=16 ppo.lr=1e-4
  gr00t-ppo train resume=runs/pendulum-20261124-120000"""


def _quiet() -> None:
    """Silences library chatter that says nothing to a user of this tool."""
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*Experiment logs directory.*")
    warnings.filterwarnings("ignore", message=".*The total number of frames.*")
    warnings.filterwarnings("ignore", message=".*all_gather is deprecated.*")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


SETTINGS_NOTE = """Settings are key=value words, dotted for sections (ppo.lr=1e-3). The defaults below are the typed
config's; a task's action-space defaults and its preset override them: `gr00t-ppo config task=<name>`
prints what a task resolves to."""


def help_main() -> int:
    from gr00t_torchrl.config import settings_help

    print(f"usage: gr00t-ppo train [key=value ...]   (or python recipes/ppo_gr00t.py [key=value ...])\n\n{SETTINGS_NOTE}\n")
    print(settings_help())
    return 0


def wants_help(argv: list[str]) -> bool:
    return any(word in ("-h", "--help", "help") for word in argv)


def train_main(argv: list[str]) -> int:
    """Resolves the config, trains, prints a closing summary. Exit 2 on bad input."""
    if wants_help(argv):
        return help_main()
    _quiet()
    from gr00t_torchrl.checkpoint import CheckpointError
    from gr00t_torchrl.config import ConfigError
    from gr00t_torchrl.ppo_module import NonFiniteUpdateError
    from gr00t_torchrl.runner import RolloutError, train
    from gr00t_torchrl.tasks import resolve_config

    try:
        cfg = resolve_config(argv)
        result = train(cfg)
    except (ConfigError, CheckpointError) as err:
        return _fail(str(err))
    except (NonFiniteUpdateError, RolloutError) as err:
        _fail(str(err))
        return 1
    if not result["global_zero"]:  # under DDP only rank 0 reports
        return 0
    if result["interrupted"]:
        print(
            f"interrupted ({result['interrupted']}) after iteration {result['iteration']} "
            f"({result['env_steps']} env steps); checkpoint saved to {result['checkpoint']}.\n"
            f"resume with: python recipes/ppo_gr00t.py resume={result['run_dir']}"
        )
        return 128 + getattr(signal.Signals, result["interrupted"], signal.SIGTERM).value
    if result.get("compile_seconds") is not None:
        print(f"compile: {result['compile_seconds']:.1f} s, once, in the first update (compile=true)")
    if "eval_return_mean" in result:
        print(
            f"done: {cfg.task} {result['env_steps']} env steps, eval return "
            f"{result['eval_return_mean']:.1f} +- {result['eval_return_std']:.1f} over {result['episodes']} "
            f"episodes; run saved in {result['run_dir']}"
        )
    else:
        print(f"done: {cfg.task} {result['env_steps']} env steps; run saved in {result['run_dir']}")
    return 0


def config_main(argv: list[str]) -> int:
    """Prints the fully resolved config of a task and overrides as YAML; trains nothing."""
    if wants_help(argv):
        return help_main()
    _quiet()
    import yaml

    from gr00t_torchrl.config import ConfigError
    from gr00t_torchrl.tasks import resolve_config

    try:
        cfg = resolve_config(argv)
    except ConfigError as err:
        return _fail(str(err))
    print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
    return 0


def eval_main(argv: list[str]) -> int:
    """Evaluates a run directory's last checkpoint deterministically and writes its eval.json."""
    _quiet()
    from gr00t_torchrl.checkpoint import CheckpointError
    from gr00t_torchrl.config import ConfigError, parse_overrides, validated

    try:
        args = parse_overrides(argv)
        unknown = sorted(set(args) - {"run_dir", "episodes", "blank", "video"})
        if unknown:
            raise ConfigError(
                f"Unknown setting '{unknown[0]}' for eval; it takes run_dir=<dir>, episodes=N, "
                "blank=image|language|proprio and video=true."
            )
        if "run_dir" not in args:
            raise ConfigError("eval needs run_dir=<a run directory>.")
        episodes = validated(args["episodes"], int, "episodes", ge=1) if "episodes" in args else None
        from gr00t_torchrl.evaluate import BLANKED_KIND, evaluate_run

        blank = args.get("blank")
        if blank is not None and blank not in BLANKED_KIND:
            raise ConfigError(f"The setting 'blank' must be one of {', '.join(BLANKED_KIND)}; got '{blank}'.")
        video = validated(args.get("video", False), bool, "video")
        result = evaluate_run(Path(str(args["run_dir"])), episodes, blank, video)
    except (ConfigError, CheckpointError) as err:
        return _fail(str(err))
    success = f", success rate {result['success_rate']:.2f}" if "success_rate" in result else ""
    success += f"; video {result['video']}" if "video" in result else ""
    blanked = f" with {result['blank']} blanked" if "blank" in result else ""
    print(
        f"eval{blanked}: {result['eval_return_mean']:.1f} +- {result['eval_return_std']:.1f} over "
        f"{result['episodes']} episodes at {result['env_steps']} env steps{success}; written to {result['eval_path']}"
    )
    return 0


def export_main(argv: list[str]) -> int:
    """Writes a run's policy for deployment (ONNX or TorchScript) and the JSON describing its inputs."""
    _quiet()
    from gr00t_torchrl.checkpoint import CheckpointError
    from gr00t_torchrl.config import ConfigError, parse_overrides

    try:
        args = parse_overrides(argv)
        unknown = sorted(set(args) - {"run_dir", "format"})
        if unknown:
            raise ConfigError(f"Unknown setting '{unknown[0]}' for export; it takes run_dir=<dir> and format=onnx|torchscript.")
        if "run_dir" not in args:
            raise ConfigError("export needs run_dir=<a run directory>.")
        from gr00t_torchrl.export import export_run

        result = export_run(Path(str(args["run_dir"])), str(args.get("format", "onnx")))
    except (ConfigError, CheckpointError) as err:
        return _fail(str(err))
    inputs = ", ".join(f"{i['name']} {i['dtype']}{i['shape'][1:]}" for i in result["inputs"])
    print(f"export: {result['path']} (inputs: {inputs}; action {result['outputs'][0]['kind']}) and {result['json']}")
    return 0


def collect_main(argv: list[str]) -> int:
    """Records demonstrations to a memory-mapped TensorDict directory."""
    _quiet()
    from gr00t_torchrl.checkpoint import CheckpointError
    from gr00t_torchrl.config import ConfigError, parse_overrides, validated

    try:
        args = parse_overrides(argv)
        unknown = sorted(set(args) - {"run_dir", "task", "episodes", "out", "noise", "seed"})
        if unknown:
            raise ConfigError(f"Unknown setting '{unknown[0]}' for collect; it takes run_dir=<dir> or task=<task>, "
                              "episodes=N, out=<dir>, noise=X and seed=N.")
        if ("run_dir" in args) == ("task" in args):
            raise ConfigError("collect needs either run_dir=<a trained run> or task=<a task with a scripted demonstrator>.")
        if "out" not in args:
            raise ConfigError("collect needs out=<a new directory> for the demonstrations.")
        episodes = validated(args.get("episodes", 100), int, "episodes", ge=1)
        noise = validated(args.get("noise", 0.0), float, "noise", ge=0.0)
        seed = validated(args["seed"], int, "seed", ge=0) if "seed" in args else None
        out = Path(str(args["out"]))
        from gr00t_torchrl import demonstrations as demos

        demos.check_new_directory(out)  # before any work, not only at the end

        if "run_dir" in args:
            import lightning as L

            from gr00t_torchrl import checkpoint as ckpt
            from gr00t_torchrl.pipeline import build_pipeline
            from gr00t_torchrl.tasks import read_for_inspection

            run_dir = Path(str(args["run_dir"]))
            cfg = read_for_inspection(run_dir)
            if cfg.network.recurrent != "none":
                raise ConfigError("collect from a recurrent policy is not built yet.")
            pipeline = build_pipeline(cfg, L.Fabric(accelerator="cpu", devices=1))
            path = ckpt.checkpoint_path(run_dir)
            ckpt.load_for_inspection(pipeline, ckpt.load(path), path)
            policy, source = demos.policy_of_run(pipeline), str(run_dir)
        else:
            from gr00t_torchrl.tasks import resolve_config

            cfg, policy, source = resolve_config([f"task={args['task']}"]), None, "scripted demonstrator"
        data = demos.record(cfg, policy, episodes, noise, seed)
        meta = {"task": cfg.task, "env_id": cfg.env.id, "source": source, "noise": noise, **demos.summary(data)}
        demos.save(data, out, meta)
    except (ConfigError, CheckpointError) as err:
        return _fail(str(err))
    success = f", demonstrator success rate {meta['success_rate']:.2f}" if "success_rate" in meta else ""
    print(f"collect: {meta['episodes']} episodes, {meta['steps']} steps{success}; written to {out}")
    return 0


BC_SETTINGS = {"data": None, "epochs": 200, "batch_size": 256, "lr": 1e-3}


def bc_main(argv: list[str]) -> int:
    """Behaviour cloning on demonstrations; the result is a run directory."""
    _quiet()
    from gr00t_torchrl.checkpoint import CheckpointError
    from gr00t_torchrl.config import ConfigError, validated

    bc_words = [w for w in argv if w.split("=", 1)[0] in BC_SETTINGS]
    rest = [w for w in argv if w not in bc_words]
    try:
        from gr00t_torchrl.config import parse_overrides

        args = {**BC_SETTINGS, **parse_overrides(bc_words)}
        if args["data"] is None:
            raise ConfigError("bc needs data=<a directory written by gr00t-ppo collect>.")
        epochs = validated(args["epochs"], int, "epochs", ge=1)
        batch_size = validated(args["batch_size"], int, "batch_size", ge=1)
        lr = validated(args["lr"], float, "lr", gt=0.0)
        from gr00t_torchrl.demonstrations import clone_run
        from gr00t_torchrl.tasks import resolve_config

        cfg = resolve_config(rest)
        result = clone_run(cfg, Path(str(args["data"])), epochs, batch_size, lr)
    except (ConfigError, CheckpointError) as err:
        return _fail(str(err))
    scores = ""
    if "eval_return_mean" in result:
        scores = f"; eval return {result['eval_return_mean']:.1f}"
        scores += f", success rate {result['success_rate']:.2f}" if "success_rate" in result else ""
    print(f"bc: {result['demonstration_steps']} steps of {result['demonstration_episodes']} episodes, "
          f"final loss {result['final_loss']:.4f}{scores}; run saved in {result['run_dir']} (start PPO from it with init_from={result['run_dir']})")
    return 0


def verify_main(argv: list[str]) -> int:
    """Audits the PPO details of a task's pipeline, or of a finished run; prints a table or JSON."""
    _quiet()
    import json
    from collections import Counter

    from gr00t_torchrl.checkpoint import CheckpointError
    from gr00t_torchrl.config import ConfigError

    as_json = "--json" in argv
    argv = [word for word in argv if word != "--json"]
    try:
        from gr00t_torchrl.verify import audit_for, format_table, to_json

        audit = audit_for(argv)
        findings = audit.run()
    except (ConfigError, CheckpointError) as err:
        return _fail(str(err))
    failed = [f for f in findings if f.failed]
    if as_json:
        print(json.dumps({"task": audit.cfg.task, "passed": not failed, "details": to_json(findings)}, indent=1))
    else:
        print(format_table(findings))
        summary = ", ".join(f"{n} {status}" for status, n in Counter(f.status for f in findings).items())
        verdict = f"FAILED: {', '.join(str(f.number) for f in failed)}" if failed else "every detail that applies is right"
        print(f"\nverify {audit.cfg.task}: {summary}; {verdict}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "train":
        return train_main(rest)
    if command == "config":
        return config_main(rest)
    if command == "eval":
        return eval_main(rest)
    if command == "verify":
        return verify_main(rest)
    if command == "export":
        return export_main(rest)
    if command == "collect":
        return collect_main(rest)
    if command == "bc":
        return bc_main(rest)
    return _fail(f"unknown command '{command}'.\n{USAGE}")


if __name__ == "__main__":
    sys.exit(main())
