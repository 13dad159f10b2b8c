"""Argument checks shared by ConvGRUCell, ConvGRU and EncoderForecaster, one message per kind, and
the escaping of text read from files in messages (`shown`, `shown_name`, `shown_path`).

Every check takes the argument's name from its caller and raises `OptionError` (a ValueError) as
``"<name>: expected <what>, got <value>"``, with the name also as ``.option``, so that the training
code can name the config option (``hidden_sizes: ...`` becomes ``model.net.hidden_sizes: ...``).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor


class OptionError(ValueError):
    """A bad argument: `option` is its name as the caller's signature spells it, `message` what was
    expected and found; str() is "<option>: <message>" (or "<option> <message>" with sep=" ").
    The training code names the config option
    from `option` (`batch_size` of data=... is `data.batch_size`), never by reading the message."""

    def __init__(self, option: str, message: str, sep: str = ": "):
        super().__init__(f"{option}{sep}{message}")
        self.option, self.message, self.sep = option, message, sep


def shown(value, limit: int | None = 120) -> str:
    """repr(`value`) as a message may show it: printable on one line (escapes spelled out), cut to
    `limit` characters (None: whole). For values read from files (a checkpoint's keys, a tag), so that
    they can never forge a line of output or send terminal control codes."""
    text = repr(value)
    text = text if text.isprintable() else ascii(value)
    return text if limit is None or len(text) <= limit else text[:limit] + "..."


def shown_name(text, limit: int | None = 120) -> str:
    """A name read from a file or a folder (a key path, a version, a file name) as a message may show it:
    as it is when it is a printable string of at most `limit` characters, else `shown` (quoted, its
    line breaks, control codes and undecodable bytes spelled out as escapes)."""
    printable = isinstance(text, str) and text.isprintable() and (limit is None or len(text) <= limit)
    return text if printable else shown(text, limit)


def shown_path(path) -> str:
    """A file or folder path (str or os.PathLike) as a message may show it: as it is when printable,
    else quoted with escapes (`shown_name`, never cut): `/data/x\\nerror: y.mp4` cannot start a line."""
    return shown_name(os.fspath(path), None)


class Kind(NamedTuple):
    """What an argument must be: ``parse`` returns the value in its normal form (an int, or for a
    pair kind an int when both entries agree and else a tuple of two ints), or None if it is not one."""

    one: str  # "an int >= 1"
    many: str  # "ints >= 1"
    parse: Callable[[Any], Any]


def _int(value, minimum: int) -> int | None:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum:
        return int(value)
    return None


def _pair(value, minimum: int, odd: bool = False) -> int | tuple[int, int] | None:
    """An int, or a pair (a, b) of ints as nn.Conv2d takes kernel sizes and dilations: k for k or
    (k, k), (a, b) for a != b; None unless every entry is an int >= minimum (and odd if `odd`)."""
    entries = list(value) if isinstance(value, (tuple, list)) and len(value) == 2 else [value]
    parsed = [_int(v, minimum) for v in entries]
    if None in parsed or (odd and not all(v % 2 for v in parsed)):
        return None
    return parsed[0] if len(set(parsed)) == 1 else tuple(parsed)


def _sequence(value) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def at_least(minimum: int) -> Kind:
    """An int >= minimum (bools are not ints here)."""
    return Kind(f"an int >= {minimum}", f"ints >= {minimum}", lambda v: _int(v, minimum))


def _eps(value) -> float | None:
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 < value < math.inf:
        return float(value)
    return None


POSITIVE = at_least(1)
EPS = Kind("a number > 0", "numbers > 0", _eps)
NON_NEGATIVE = at_least(0)
KERNEL = Kind("an odd int >= 1 or a pair (kh, kw) of them, for 'same' padding",
              "odd ints >= 1 or pairs (kh, kw) of them", lambda v: _pair(v, 1, odd=True))
DILATION = Kind("an int >= 1 or a pair (dh, dw) of them", "ints >= 1 or pairs (dh, dw) of them",
                lambda v: _pair(v, 1))
IMAGE_SIZE = Kind("an int >= 1 or a pair (H, W) of them", "ints >= 1 or pairs (H, W) of them", lambda v: _pair(v, 1))


def pair(value: int | tuple[int, int]) -> tuple[int, int]:
    """(a, b) from a normal form of a pair kind (``KERNEL``, ``DILATION``): k is (k, k)."""
    return tuple(value) if isinstance(value, tuple) else (value, value)


def check(name: str, value, kind: Kind = POSITIVE):
    """``value`` in its normal form (an int; a pair kind's may be a tuple) if it is of ``kind``; else
    ValueError naming ``name``."""
    parsed = kind.parse(value)
    if parsed is None:
        raise OptionError(name, f"expected {kind.one}, got {value!r}")
    return parsed


def check_list(name: str, values, kind: Kind = POSITIVE) -> list[int]:
    """A non-empty sequence (list, tuple, ...) of ``kind`` as a list of ints; else ValueError naming ``name``."""
    parsed = [kind.parse(v) for v in values] if _sequence(values) else [None]
    if not parsed or None in parsed:
        raise OptionError(name, f"expected a non-empty list of {kind.many}, got {values!r}")
    return parsed


def check_per_layer(name: str, value, num_layers: int, kind: Kind = POSITIVE) -> list:
    """One value for every layer, or a list of ``num_layers`` values, as ``num_layers`` values in
    their normal form.

    A list of ``num_layers`` entries is read per layer; any other pair ``(a, b)`` of a pair kind
    (``KERNEL``, ``DILATION``), a tuple in particular, is one value for every layer: with
    ``num_layers=2``, ``[3, 5]`` is a 3 in layer 0 and a 5 in layer 1, ``(3, 5)`` a (3, 5) kernel
    in both.
    """
    single = kind.parse(value)
    if single is not None and not (isinstance(value, list) and len(value) == num_layers):
        return [single] * num_layers
    parsed = [kind.parse(v) for v in value] if _sequence(value) else []
    if len(parsed) != num_layers or None in parsed:
        raise OptionError(name, f"expected {kind.one}, or a list of num_layers={num_layers} "
                         f"{kind.many}; got {value!r}")
    return parsed


def check_choice(name: str, value, choices) -> None:
    """Raise ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise OptionError(name, f"must be one of {list(choices)}, got {value!r}", sep=" ")


def check_tensor(name: str, t: Tensor, expected: tuple) -> None:
    """Raise ValueError unless ``t.shape`` matches ``expected`` (``None`` matches any size)."""
    ok = t.dim() == len(expected) and all(e is None or e == s for e, s in zip(expected, t.shape))
    if not ok:
        want = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(t.shape)}")


def check_like(name: str, t: Tensor, like_name: str, like: Tensor) -> None:
    """Raise one ValueError naming both tensors unless ``t`` has ``like``'s device, and its dtype
    outside autocast (under autocast a float32 state may go with bf16 inputs)."""
    if t.device != like.device or (t.dtype != like.dtype and not _autocast(t.device.type)):
        raise ValueError(f"{like_name} and {name} must have the same dtype and device, got "
                         f"{like_name}: {like.dtype} on {like.device}, {name}: {t.dtype} on {t.device}")


def _autocast(device_type: str) -> bool:
    """Whether autocast is on for this device type (False for types autocast does not know)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except RuntimeError:
        return False


def check_module_dtype(name: str, t: Tensor, weight: Tensor) -> None:
    """Raise ValueError unless ``t`` can go through a module whose parameters are like ``weight``:
    the same device, and the same dtype unless autocast is on for that device."""
    if t.device != weight.device or (t.dtype != weight.dtype and not _autocast(t.device.type)):
        raise ValueError(
            f"{name} must be on the parameters' device and of their dtype (outside autocast), got "
            f"{name}: {t.dtype} on {t.device}, parameters: {weight.dtype} on {weight.device}; "
            "move one to the other with .to()")
