"""Config values checked against the signature of the class they configure, before it is built."""

import collections.abc
import difflib
import inspect
import os
import pathlib
import types
import typing
from contextlib import contextmanager
from typing import Any, Literal, Union

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from convgru._checks import OptionError, shown_name

_HYDRA_KEYS = ("_target_", "_convert_", "_recursive_", "_partial_", "_args_")
_SEQUENCES = (list, tuple, collections.abc.Sequence, collections.abc.Iterable)
_PATHS = (pathlib.Path, pathlib.PurePath, os.PathLike)
_WORDS = {type(None): "null", None: "null", bool: "true or false", int: "an integer", float: "a number",
          str: "a string", dict: "a mapping"}


def check_options(values: typing.Mapping, target, name: str, where: str | None = None) -> None:
    """Raise ValueError naming `name.key` for keys of `values` that `target` (a class or function)
    does not take, and for values whose type does not fit its annotation (int, float, bool, str,
    None, Literal, lists and their unions; richer annotations are not checked). `where` names the
    config in messages (e.g. "data=arrays"), by default the target."""
    where = where or f"{target.__module__}.{target.__qualname__}"
    params, hints, open_ended = _parameters(target)
    if not open_ended:
        unknown = [key for key in values if key not in params and key not in _HYDRA_KEYS]
        if unknown:
            hints = [f" (did you mean {name}.{close[0]}?)" for key in unknown
                     if (close := difflib.get_close_matches(key, list(params), n=1))]
            them = "it" if len(unknown) == 1 else "them"
            keys = [shown_name(f"{name}.{key}") for key in unknown]  # a key from a file (a checkpoint's) escaped
            raise ValueError(
                f"{', '.join(keys)}: not {'an option' if them == 'it' else 'options'} "
                f"of {where}{''.join(hints)}. Drop {them} with {' '.join(f'~{key}' for key in keys)} "
                f"on the command line, or remove {them} from the experiment or config that sets {them}"
            )
    for key, value in values.items():
        if key in hints and not (value is None and params[key].default is None) and not _fits(hints[key], value):
            raise ValueError(f"{name}.{key}: expected {_describe(hints[key])}, found {value!r}")


def _parameters(target) -> tuple[dict, dict, bool]:
    """(named parameters, their type hints, whether other keywords are taken too) of `target`; a
    class whose __init__ passes **kwargs on to its base's takes the base's parameters as well."""
    params, hints = {}, {}
    for function in [target] if not inspect.isclass(target) else [
            base.__init__ for base in target.__mro__ if "__init__" in vars(base) and base is not object]:
        signature = inspect.signature(function)
        params.update({k: p for k, p in signature.parameters.items() if k not in params and k != "self"
                       and p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)})
        try:
            hints = {**typing.get_type_hints(function), **hints}
        except Exception:  # unresolvable annotations: leave the types to the target
            pass
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
            return params, hints, False
    return params, hints, True


def instantiate(node: DictConfig, name: str, **kwargs):
    """`hydra.utils.instantiate(node, **kwargs)` after `check_options`, its errors unwrapped and named
    as in `full_names`."""
    target = hydra.utils.get_object(node._target_)
    values = OmegaConf.to_container(node, resolve=True)
    choice = HydraConfig.get().runtime.choices.get(name) if HydraConfig.initialized() else None
    check_options(values, target, name, f"{name}={choice}" if choice else None)
    with full_names(values, name):
        try:
            return hydra.utils.instantiate(node, **kwargs)
        except InstantiationException as error:
            raise (error.__cause__ or error) from None


@contextmanager
def full_names(values: dict, name: str):
    """Re-raise an `OptionError` about one of the options in `values` with its full name (`batch_size:
    ...` becomes `data.batch_size: ...`, `num_sequences` of `synthetic` `data.synthetic.num_sequences`),
    and a TypeError as a ValueError naming the group `name`."""
    try:
        yield
    except TypeError as error:
        raise ValueError(f"{name}: {error}") from error
    except OptionError as error:
        path = dict(_leaves(values)).get(error.option.split(".")[0])
        if path is None or error.option.startswith(f"{name}."):
            raise
        full = f"{name}.{path}{error.option[len(error.option.split('.')[0]):]}"
        raise ValueError(f"{full}{error.sep}{error.message}") from error


def _leaves(values: dict, prefix: str = ""):
    """(key, dotted path) of every key in nested `values`, the outer ones first."""
    for key in values:
        yield key, prefix + key
    for key, value in values.items():
        if isinstance(value, dict):
            yield from ((leaf, path) for leaf, path in _leaves(value, f"{prefix}{key}.") if leaf not in values)


def _fits(annotation, value) -> bool:
    """Whether a plain config value fits `annotation`; True where the annotation is too rich to check."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any or isinstance(annotation, (typing.TypeVar, str)):
        return True
    if isinstance(value, dict) and "_target_" in value:  # a config Hydra instantiates: its target checks it
        return True
    if origin in (Union, types.UnionType):
        return any(_fits(arg, value) for arg in args)
    if origin is Literal:
        return value in args
    if annotation in (None, type(None)):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if annotation in _PATHS:
        return isinstance(value, str)
    if origin in _SEQUENCES or annotation in _SEQUENCES:
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_fits(a, v) for a, v in zip(args, value))
        return not args or all(_fits(args[0], v) for v in value)
    if origin in (dict, collections.abc.Mapping) or annotation in (dict, collections.abc.Mapping):
        return isinstance(value, dict)
    if inspect.isclass(annotation):
        return isinstance(value, annotation)
    return True


def _describe(annotation) -> str:
    """Words for an annotation: 'an integer or null', 'one of 16, 32', ..."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        plain = [arg for arg in args if not inspect.isclass(arg) or arg in _WORDS or arg in _PATHS] or args
        return " or ".join(dict.fromkeys(_describe(arg) for arg in plain))
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    if origin in _SEQUENCES or annotation in _SEQUENCES:
        return "a list"
    if annotation in _WORDS:
        return _WORDS[annotation]
    if annotation in _PATHS:
        return "a path"
    return getattr(annotation, "__name__", str(annotation))
