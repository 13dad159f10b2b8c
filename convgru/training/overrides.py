"""The command line checked before Hydra runs (scripts/train.py and eval.py): the config is composed
once per combination of the group choices it sweeps, so that a mistake stops the script with one
`error:` line before Hydra creates or writes any run folder.

- Hydra's composition errors (a key the config lacks, `+` on a key it has, an option a group lacks)
  become one line that says what to write instead (`+key=value` or `++key=value`).
- A group choice on the command line decides what it names: `model=convgru1 experiment=quickstart`
  stops when the experiment sets a key of the model config to another value than convgru1 has
  there, where convgru1 differs from the experiment's own model (`conflicts`), naming the key; a
  sweep `-m model=convgru1,convgru2 experiment=...` never runs configs that differ in name only.
- `trainer.accelerator=gpu` (trainer=gpu, ddp, experiment=shi2017) on a machine without a GPU.
"""

import difflib
import itertools
import os
import re
from collections.abc import Callable, Iterable
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from pathlib import Path

from hydra import compose, initialize_config_dir, version
from hydra._internal.hydra import Hydra
from hydra._internal.utils import create_config_search_path
from hydra.core.config_search_path import SearchPathQuery
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from hydra.initialize import get_gh_backup, restore_gh_from_backup
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from convgru._checks import OptionError, shown_path
from convgru.training.launch import check_distributed_environment, check_sweeper
from convgru.training.paste import paste_command

Compose = Callable[[tuple[str, ...]], DictConfig]  # overrides -> the composed config, with its hydra node
GPU_ACCELERATORS = ("gpu", "cuda")
OWN_FLAGS = ("-m", "--multirun")  # the only Hydra flags the check reads; with any other, Hydra alone runs


def check_command_line(config_dir, config_name: str, args: list[str]) -> None:
    """Compose `config_name` from `config_dir` (and the folder of --config-dir, searched first as Hydra
    does, after `check_config_dir`) with the command line `args` (Hydra overrides, `-m`) as
    `check_overrides` does. Arguments that are other Hydra flags (--help, --cfg, -cn, ...) leave the
    command line to Hydra."""
    extra, args = split_config_dir(args)
    if extra is not None:
        check_config_dir(extra)
    if any(a.startswith("-") and a not in OWN_FLAGS for a in args):
        return
    initialized = GlobalHydra.instance().is_initialized()  # in-process (tests): the caller's config dir
    with nullcontext() if initialized else _initialize(config_dir, extra):
        check_overrides(lru_cache(maxsize=None)(lambda o: _compose(config_name, o)),
                        [a for a in args if a not in OWN_FLAGS], multirun=any(a in OWN_FLAGS for a in args))


CONFIG_DIR_FLAGS = ("--config-dir", "-cd")


def split_config_dir(args: list[str]) -> tuple[str | None, list[str]]:
    """(the folder that --config-dir DIR, -cd DIR or --config-dir=DIR names, the last one as Hydra takes it,
    or None; the other arguments). A flag without its folder stays among the arguments, for Hydra to refuse."""
    folder, rest, i = None, [], 0
    while i < len(args):
        if args[i] in CONFIG_DIR_FLAGS and i + 1 < len(args):
            folder, i = args[i + 1], i + 2
            continue
        if args[i].startswith("--config-dir="):
            folder = args[i].split("=", 1)[1]
        else:
            rest.append(args[i])
        i += 1
    return folder, rest


def check_config_dir(folder: str) -> None:
    """OptionError naming --config-dir unless `folder` is a folder that can be read (Hydra: "Additional config
    directory not found", with a traceback for a folder it cannot read)."""
    path = Path(os.path.abspath(folder))
    expected = "expected a folder of your configs (DIR/<group>/<option>.yaml, such as DIR/experiment/mine.yaml)"
    if not path.exists():
        found = "found nothing there" + ("" if path.parent.is_dir() else f" ({shown_path(path.parent)} is missing too)")
    elif not path.is_dir():
        found = "found a file"
    elif not os.access(path, os.R_OK | os.X_OK):
        found = "found a folder that cannot be read (no read or search permission: chmod u+rx it)"
    else:
        return
    raise OptionError(f"--config-dir {shown_path(path)}", f"{expected}, {found}")


@contextmanager
def _initialize(config_dir, extra: str | None):
    """hydra.initialize_config_dir(`config_dir`), with the folder `extra` searched first as --config-dir's is."""
    if extra is None:
        with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base="1.3"):
            yield
        return
    backup = get_gh_backup()
    version.setbase("1.3")
    search_path = create_config_search_path(search_path_dir=str(Path(config_dir).resolve()))
    search_path.prepend(provider="command-line", path=f"file://{os.path.abspath(extra)}",
                        anchor=SearchPathQuery(provider="schema"))  # as hydra._internal.utils.run_hydra does
    Hydra.create_main_hydra2(task_name="app", config_search_path=search_path)
    try:
        yield
    finally:
        restore_gh_from_backup(backup)


def check_overrides(composer: Compose, overrides: list[str], multirun: bool = True) -> None:
    """Compose the config with `overrides` once per combination of the group choices they sweep
    (other sweeps at their first value) and raise OptionError for a sweep without `multirun`, a key
    the config lacks, a group option that does not exist, a group choice that an experiment
    overrides (`conflicts`) or a GPU trainer without a GPU (`check_accelerator`)."""
    if not multirun:
        try:
            swept = [o.input_line for o in OverridesParser.create().parse_overrides(overrides) if o.is_sweep_override()]
        except HydraException:
            swept = []  # a malformed override: _combinations names it
        if swept:
            raise OptionError(swept[0], "a sweep of several values runs with -m (--multirun) before the overrides")
    for combination in _combinations(overrides, composer):
        for refusal in conflicts(composer, combination):
            raise refusal
        cfg = composer(combination)
        check_accelerator(cfg)
        check_distributed_environment(cfg)
        check_sweeper(cfg, [o for o in overrides if not o.startswith('hydra.')] if multirun else [])
        check_search_space_keys(composer, combination, cfg)
        check_interpolations(cfg, combination)


NODE_INTERPOLATION = re.compile(r"\$\{([^${}:]+)\}")  # ${key}, ${.sibling}: not a resolver's ${name:...}


def check_interpolations(cfg: DictConfig, overrides: Iterable[str]) -> None:
    """OptionError naming the override whose value refers to a key (`${paths.nope}/cache`) that the composed
    `cfg` lacks, which OmegaConf would find only when the run resolves it, with a traceback. Relative keys
    (`${.sibling}`) are taken from the override's key as OmegaConf does."""
    config = OmegaConf.to_container(cfg, resolve=False)
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        for reference in NODE_INTERPOLATION.findall(value):
            name = reference.strip()
            dots = len(name) - len(name.lstrip("."))
            parts = key.split(".")[:-1] if dots else []
            full = ".".join([*parts[:len(parts) - dots + 1], name[dots:]] if dots else [name])
            node = config
            for part in full.split("."):
                index = int(part) if isinstance(node, list) and part.isdigit() else part
                if not (isinstance(node, dict) and index in node or isinstance(node, list) and
                        isinstance(index, int) and index < len(node)):
                    close = difflib.get_close_matches(full, list(_flat(config)), n=1)
                    expected = (f"did you mean ${{{close[0]}}}?" if close else
                                "expected a key of the config, such as ${paths.output_dir}")
                    raise OptionError(override, f"the interpolation ${{{reference}}} refers to {full}, a key the "
                                      f"config does not have; {expected}") from None
                node = node[index]


def check_search_space_keys(composer: Compose, overrides: tuple[str, ...], cfg: DictConfig) -> None:
    """OptionError when the sweeper's search space (hydra.sweeper.params of hparams_search=optuna) sets a key
    that the composed config lacks, such as a level of model.net.hidden_sizes that the chosen model has not."""
    params = OmegaConf.select(cfg, "hydra.sweeper.params")
    if not isinstance(params, DictConfig) or not params:
        return
    typed = {o.partition("=")[0].lstrip("+~") for o in overrides}
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items() if k not in typed])
    for override in parsed:
        try:
            composer((*overrides, _values(override)[0]))
        except OptionError:
            key = override.get_key_element()
            parent, _, index = key.rpartition(".")
            node = OmegaConf.select(cfg, parent) if parent else None
            model = OmegaConf.select(cfg, "hydra.runtime.choices.model")
            what = (f"{parent} has {len(node)} entries (model={model})" if OmegaConf.is_list(node)
                    else "the config has no such key")
            raise OptionError(f"hydra.sweeper.params.{key}", f"the search space sets {key}, but {what}; choose a model "
                              f"it fits (hparams_search=optuna searches the 3 levels of model=convgru3: add "
                              f"model=convgru3) or set hydra.sweeper.params to this model's keys") from None


def _compose(config_name: str, overrides: tuple[str, ...]) -> DictConfig:
    """hydra.compose with its hydra node, Hydra's errors as one-line OptionErrors."""
    try:
        return compose(config_name, overrides=list(overrides), return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as error:
        raise composition_error(error, overrides, lambda o: compose(config_name, overrides=list(o))) from None


def composition_error(error: Exception, overrides: Iterable[str], composer=None) -> OptionError:
    """Hydra's composition `error` for `overrides` as one line naming the override and what to write;
    `composer` (overrides -> config) finds close keys for a key the config lacks."""
    message = str(error)
    missing = re.match(r"Could not override '([^']+)'", message)
    if missing:
        key = missing.group(1)
        override = _override_of(overrides, key)
        hint = _close_key(key, [o for o in overrides if o != override], composer)
        return OptionError(override, f"the config has no key {key}{hint}; to add it, write +{override} "
                           f"(or ++{override}, which adds it or replaces it)")
    present = re.search(r"An item is already at '([^']+)'", message)
    if present:
        override = _override_of(overrides, present.group(1))
        plain = override.lstrip("+")
        return OptionError(override, f"the config already has {present.group(1)}; write {plain} to change it "
                           f"(or ++{plain}, which adds it or replaces it)")
    if isinstance(error, MissingConfigException) and error.missing_cfg_file and error.options is not None:
        group, _, name = error.missing_cfg_file.rpartition("/")
        return OptionError(f"{group}={name}", f"{group} has no option {name!r}; its options are "
                           f"{', '.join(error.options)}")
    cause = error.__cause__
    text = " ".join(f"{message} {cause if isinstance(cause, OmegaConfBaseException) else ''}".split())
    return OptionError("command line", text)


def _override_of(overrides: Iterable[str], key: str) -> str:
    """The override that sets `key` (as typed), or `key` alone."""
    for override in overrides:
        if override.lstrip("+~").partition("=")[0] == key:
            return override
    return key


def _close_key(key: str, others: list[str], composer) -> str:
    """' (did you mean a.b?)' for a key of the same parent spelt alike, else ''."""
    parent, _, name = key.rpartition(".")
    if composer is None:
        return ""
    try:
        node = OmegaConf.select(composer(tuple(others)), parent) if parent else composer(tuple(others))
    except Exception:  # the other overrides fail too: no suggestion
        return ""
    close = difflib.get_close_matches(name, list(node), n=1) if isinstance(node, DictConfig) else []
    return f" (did you mean {parent + '.' if parent else ''}{close[0]}?)" if close else ""


def _combinations(overrides: list[str], composer: Compose) -> list[tuple[str, ...]]:
    """The overrides once per combination of the values of swept group choices; other sweeps at their
    first value (their values do not change which keys the config has)."""
    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(overrides)
    except HydraException as error:
        raise OptionError("command line", " ".join(str(error).split())) from None
    firsts = tuple(_values(o)[0] for o in parsed)
    groups = set(composer(firsts).hydra.runtime.choices)
    options = [_values(o) if o.key_or_group in groups else _values(o)[:1] for o in parsed]
    return [tuple(combination) for combination in itertools.product(*options)]


def _values(override) -> list[str]:
    """`override` once per value it sweeps (key=a,b -> [key=a, key=b]); a continuous sweep
    (interval(), for Optuna) as key=0: its value does not change which keys the config has."""
    if not override.is_sweep_override():
        return [override.input_line]
    if not override.is_discrete_sweep():
        return [f"{override.get_key_element()}=0"]
    return [f"{override.get_key_element()}={value}" for value in override.sweep_string_iterator()]


def conflicts(composer: Compose, overrides: tuple[str, ...]) -> list[OptionError]:
    """An OptionError per group choice on the command line that an experiment on it overrides: for
    `G=X experiment=E`, keys k of G where X's own config differs from that of E's own choice for G,
    and the composed config does not have X's value. Keys of G that the command line sets itself
    (`model.net.hidden_sizes=...`) are the user's decision and never conflict."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    choices = dict(composer(overrides).hydra.runtime.choices)
    experiment = choices.get("experiment")
    if not experiment:
        return []
    chosen = [(o.key_or_group, o.input_line) for o in parsed
              if o.key_or_group in choices and not o.is_delete() and o.key_or_group != "experiment"
              and not o.key_or_group.startswith("hydra")]
    final = composer(overrides)
    own_choices = composer((f"experiment={experiment}",)).hydra.runtime.choices
    refusals = []
    for group, override in chosen:
        option, default = choices[group], own_choices.get(group)
        if option == default or default is None:
            continue
        typed = [o.key_or_group[len(group) + 1:] for o in parsed if o.key_or_group.startswith(group + ".")]
        own = _flat(composer((override,))[group])
        usual = _flat(composer((f"{group}={default}",))[group])
        now = _flat(final[group])
        lost = [k for k, v in own.items() if usual.get(k, _ABSENT) != v and now.get(k, _ABSENT) != v
                and not any(k == t or k.startswith(t + ".") for t in typed)]
        if lost:
            sets = ", ".join(f"{group}.{k}={_show(now.get(k, _ABSENT))}" for k in lost)
            has = ", ".join(_show(own[k]) for k in lost)
            keep = paste_command(None, [(f"{group}.{k}", own[k]) for k in lost])
            take = paste_command(None, [f"~{group}.{k}" if now.get(k, _ABSENT) is _ABSENT else (f"{group}.{k}", now[k])
                                        for k in lost])
            refusals.append(OptionError(f"{group}={option}", f"experiment={experiment} sets {sets}, overriding "
                                        f"{option}'s {has}; pass {keep} to keep {group}={option}'s, {take} to "
                                        f"take the experiment's, or drop {group}={option} to run the "
                                        f"experiment's {group}={default}"))
    return refusals


_ABSENT = object()


def _flat(node, prefix: str = "") -> dict:
    """{dotted key: value} of a config node's leaves, unresolved (lists are leaves)."""
    container = OmegaConf.to_container(node, resolve=False) if isinstance(node, DictConfig) else node
    flat = {}
    for key, value in container.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _show(value) -> str:
    if value is _ABSENT:
        return "(deleted)"
    if isinstance(value, list):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return str(value) if not isinstance(value, bool) else str(value).lower()


def check_accelerator(cfg: DictConfig) -> None:
    """Raise OptionError when the trainer asks for a GPU (`trainer.accelerator=gpu`) and none is found
    here, unless a launcher other than Hydra's basic one runs the jobs elsewhere (SLURM's nodes)."""
    accelerator = OmegaConf.select(cfg, "trainer.accelerator")
    launcher = OmegaConf.select(cfg, "hydra.runtime.choices.hydra/launcher", default="basic")
    if str(accelerator).lower() not in GPU_ACCELERATORS or launcher not in (None, "basic"):
        return
    import torch

    mps = getattr(torch.backends, "mps", None)
    if torch.cuda.is_available() or (mps is not None and mps.is_available()):
        return
    trainer = OmegaConf.select(cfg, "hydra.runtime.choices.trainer")
    experiment = OmegaConf.select(cfg, "hydra.runtime.choices.experiment")
    source = f"trainer={trainer}" + (f" of experiment={experiment}" if experiment else "")
    raise OptionError(f"trainer.accelerator={accelerator} ({source})",
                      "no GPU was found on this machine (torch.cuda.is_available() is False); add trainer=cpu "
                      "to run on this machine's CPU")
