"""The `convgru` command: ``convgru train|eval|predict|export ...``, ``convgru --help``, ``convgru --version``.

One implementation for every way in: the console script `convgru` (pyproject's [project.scripts]),
``python -m convgru`` and the clone's aliases scripts/train.py, eval.py, predict.py and export.py.
train and eval take Hydra's overrides and options (``-m``, ``--config-dir``, ``--cfg``, ``--help``) and
compose the configs packaged in convgru/conf; predict and export take their own options (see their
``--help``).
"""

import sys
from pathlib import Path

import convgru
from convgru.training.paths import CONFIG_DIR

COMMANDS = {
    "train": "fit a model, then test its best checkpoint: convgru train [experiment=quickstart] [key=value ...]",
    "eval": "test a checkpoint on its test set: convgru eval ckpt_path=CKPT [data.key=value ...]",
    "predict": "forecast frames, videos or fields with a checkpoint: convgru predict CKPT INPUT OUTPUT [options]",
    "export": "export a checkpoint to ONNX (checked with onnxruntime): convgru export CKPT OUT.onnx [options]",
}
HYDRA_COMMANDS = ("train", "eval")


def config_groups(config_dir=CONFIG_DIR) -> dict[str, list[str]]:
    """Each config group in `config_dir` (a sub-folder of .yaml files; nested groups as `a/b`) and its
    options (the files' names), sorted; Hydra's own settings (the `hydra` group) left out."""
    config_dir = Path(config_dir)
    groups: dict[str, list[str]] = {}
    for path in sorted(config_dir.rglob("*.yaml")):
        parts = path.relative_to(config_dir).parts
        if len(parts) > 1 and parts[0] != "hydra":
            groups.setdefault("/".join(parts[:-1]), []).append(path.stem)
    return groups


def keys_help(config_dir=CONFIG_DIR) -> str:
    """Where the configs are and where each key is explained (for both levels of --help)."""
    return (f"Configs: {config_dir}\n"
            "Each option of a group is <configs>/<group>/<option>.yaml; every key, its default and what it does:\n"
            "  convgru train --help GROUP          each option of the group, e.g. --help model\n"
            "  convgru train --help GROUP=OPTION   one option, e.g. --help data=radar\n"
            "  convgru train --help train          the keys outside the groups (seed, monitor, test, ckpt_path,\n"
            "                                      figures); --help eval: eval's\n"
            "the same text as the Config reference page of the documentation (docs/configs.md in the source),\n"
            "read from the configs' comments. `convgru train --cfg job [overrides]` prints the composed config;\n"
            "the Errors page (docs/errors.md) lists every error.\n"
            "Your own configs: convgru train --config-dir DIR experiment=mine (DIR/experiment/mine.yaml,\n"
            "starting with `# @package _global_`, as the packaged experiments do); --help GROUP shows them too.")


def groups_help(config_dirs=(CONFIG_DIR,)) -> str:
    """The config groups of `config_dirs` (the packaged ones, then --config-dir's) and their options."""
    groups: dict[str, list[str]] = {}
    for config_dir in config_dirs:
        for group, options in config_groups(config_dir).items():
            groups[group] = sorted({*groups.get(group, []), *options})
    width = max(map(len, groups))
    listed = "\n".join(f"  {group:<{width}}  {', '.join(options)}" for group, options in sorted(groups.items()))
    return f"config groups of train and eval (group=option; key=value sets one key, e.g. data.batch_size=8):\n{listed}"


def usage() -> str:
    """`convgru --help`: the subcommands, the config groups with their options, where keys are explained."""
    width = max(map(len, COMMANDS))
    commands = "\n".join(f"  {name:<{width}}  {text}" for name, text in COMMANDS.items())
    return (f"usage: convgru {{{','.join(COMMANDS)}}} [options and overrides]\n"
            "       convgru {train,eval,predict,export} --help\n"
            "       convgru --version\n\n"
            f"convgru {convgru.__version__}: {convgru.__doc__.strip().removeprefix('convgru: ')}\n\n"
            f"commands (python -m convgru and, in a clone, python scripts/<command>.py are the same):\n{commands}\n\n"
            f"{groups_help()}\n\n{keys_help()}\n")


def config_dirs(args: list[str]) -> list[Path]:
    """The packaged configs, then the folder of --config-dir (-cd) in `args`; OptionError (a ValueError)
    naming --config-dir when it is not a folder that can be read."""
    from convgru.training.overrides import check_config_dir, split_config_dir

    extra = split_config_dir(args)[0]
    if extra:
        check_config_dir(extra)
    return [CONFIG_DIR, *([Path(extra)] if extra else [])]


def help_topic(args: list[str]) -> str | None:
    """The TOPIC of `--help TOPIC` (-h TOPIC) in `args`: a group, group=option, train or eval; None: none."""
    for i, arg in enumerate(args[:-1]):
        if arg in ("--help", "-h") and not args[i + 1].startswith("-"):
            return args[i + 1]
    return None


def hydra_usage(command: str, args: list[str]) -> str:
    """`convgru train --help` (eval): its options, the config groups (with --config-dir's), where keys are
    explained; `--help TOPIC`: the keys of a group, an option or train.yaml / eval.yaml with their meanings
    (convgru.training.config_docs, --config-dir's options first). Raises ValueError for an unknown TOPIC."""
    topic = help_topic(args)
    if topic is not None:
        from convgru.training.config_docs import option_help

        return option_help(config_dirs(args), topic)
    return (f"usage: convgru {command} [-m] [--config-dir DIR] [--cfg job|hydra|all] [group=option ...] "
            "[key=value ...]\n\n"
            f"{COMMANDS[command][0].upper()}{COMMANDS[command][1:]}.\n"
            "  -m, --multirun      a sweep: key=a,b or group=x,y runs each combination (hydra/launcher=...)\n"
            "  --config-dir DIR    also take config groups and options from DIR (your own experiments, data...)\n"
            "  --help TOPIC        every key of a config group, group=option, train or eval, with what it does\n"
            "  --cfg job           print the composed config instead of running (hydra, all: with Hydra's settings)\n"
            "  --hydra-help        Hydra's own options (--info, --resolve, --run, --package, ...)\n\n"
            f"{groups_help(config_dirs(args))}\n\n{keys_help()}\n")


def main(argv=None) -> None:
    """`convgru COMMAND ...` with `argv` (default: the command line): --help, --version, or `run` the command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("-h", "--help"):
        print(usage(), end="")
        return None
    if argv and argv[0] in ("-V", "--version"):
        print(f"convgru {convgru.__version__}")
        return None
    if not argv or argv[0] not in COMMANDS:
        found = f"found {argv[0]!r}" if argv else "found none"
        print(f"usage: convgru {{{','.join(COMMANDS)}}} ... (convgru --help)\n"
              f"error: expected a command, one of {', '.join(COMMANDS)}; {found}", file=sys.stderr)
        sys.exit(2)
    return run(argv[0], argv[1:], f"convgru {argv[0]}")


def run(command: str, argv=None, prog: str | None = None):
    """Run `command` (train, eval, predict, export) with `argv`, named `prog` in usage lines and the
    run folder's record of the command. Default: the command line, named by its program (so
    scripts/train.py, whose `main` this is, says scripts/train.py); with `argv`, "convgru COMMAND".
    Returns what the command returns (train: the monitored metric, for Hydra's sweepers)."""
    if argv is None:
        argv, prog = sys.argv[1:], prog or sys.argv[0]
    argv, saved = list(argv), sys.argv
    sys.argv = [prog or f"convgru {command}", *argv]  # Hydra and argparse read them
    try:
        if command in HYDRA_COMMANDS:
            return _hydra_command(command, argv)
        if command == "predict":
            from convgru.deploy.predict import main as deploy_main
        else:
            from convgru.deploy.export import main as deploy_main
        return deploy_main(argv)
    finally:
        sys.argv = saved


def _hydra_command(command: str, args: list[str]):
    """train or eval: the command line checked first (one `error:` line before any run folder is made),
    then Hydra's main with the packaged configs."""
    from convgru.training.cli import quote_non_ascii, user_errors
    from convgru.training.overrides import check_command_line
    from convgru.training.paths import register_resolvers

    if "--help" in args or "-h" in args:
        try:
            print(hydra_usage(command, args), end="")
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        return None
    register_resolvers()  # ${project_root:} and ${cache_dir:}, which the configs use
    sys.argv[1:] = quote_non_ascii(args)
    with user_errors():  # before Hydra creates a run folder: unknown keys, overridden choices, no GPU
        check_command_line(CONFIG_DIR, command, sys.argv[1:])
    return _hydra_main(command)()


def _hydra_main(command: str):
    """Hydra's main for `command` (train or eval), composing convgru/conf/<command>.yaml."""
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    import convgru.training
    from convgru.training.cli import user_errors

    def train(cfg: DictConfig) -> float | None:
        """Fit, test the best checkpoint; return the monitored metric (for -m sweeps)."""
        with user_errors():
            metrics = convgru.training.train(cfg)
        return metrics.get(cfg.monitor)

    def evaluate(cfg: DictConfig) -> None:
        """Write metrics.json, per_frame.csv, predictions.png and .gif into the run folder; print tables."""
        with user_errors():
            convgru.training.evaluate(cfg, HydraConfig.get().overrides.task)

    task = train if command == "train" else evaluate
    return hydra.main(config_path=str(CONFIG_DIR), config_name=command, version_base="1.3")(task)
