"""Commands for the user to paste: `paste_command` is the one way convgru prints one (a resume command, the
overrides that fix a mismatch, a tensorboard command), each word in Hydra's grammar where it is an override
(`hydra_value`) and quoted for the shell, so that it runs as printed."""

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser

from convgru.training.checkout import checkout

# `${` after a run of backslashes: OmegaConf's grammar reads an even run (none, `\\${`) as backslashes and an
# interpolation, an odd one (`\${`, `\\\${`) as backslashes and the text `${`
INTERPOLATION = re.compile(r"(\\*)\$\{")


def interpolations(text: str) -> list[str]:
    """The interpolations OmegaConf would resolve in `text`, each as the text from its `${` on ("a${x}b${y}":
    ["${x}b${y}", "${y}"]); an escaped `\\${` is text, not one."""
    return [text[m.end(1):] for m in INTERPOLATION.finditer(text) if len(m[1]) % 2 == 0]


def as_text(value):
    """`value` (a string, or lists and mappings of them) with every `${` escaped, so that OmegaConf reads it back as
    the same text and resolves nothing in it: `a${x}` -> `a\\${x}`, a backslash before it doubled."""
    if isinstance(value, str):
        return INTERPOLATION.sub(lambda m: m[1] * 2 + "\\${", value)
    if isinstance(value, (list, tuple)):
        return [as_text(v) for v in value]
    if isinstance(value, Mapping):
        return {k: as_text(v) for k, v in value.items()}
    return value


def hydra_value(value) -> str:
    """`value` (a string, number, bool, None, or a list / dict of them) written in Hydra's override grammar,
    so that `key=<result>` gives back `value`: strings that the grammar would read otherwise (a sweep at a
    comma, a quote, a space, `;`, a backtick, a number-like text...) are single-quoted, a backslash doubled
    before a quote and at the end, `${` escaped so that OmegaConf does not interpolate it (`as_text`)."""
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, (bool, int, float)):
        return "null" if value is None else str(value).lower() if isinstance(value, bool) else repr(value)
    text = str(value)
    if "${" not in text and _parsed_value(f"k={text}") == text:
        return text
    quoted = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), as_text(text))
    return "'" + quoted + "'"


def _parsed_value(override: str):
    try:
        return OverridesParser.create().parse_override(override).value()
    except Exception:  # Hydra's OverrideParseException and the grammar's own errors
        return None


def paste_command(command: str | Sequence[str] | None, overrides: Iterable = ()) -> str:
    """The one way convgru writes a command for the user to paste: the `command` ("train", "eval") as
    this installation runs it (`python scripts/<command>.py` in a clone, `convgru <command>` from a
    wheel; a sequence of words: another program's command, such as ("tensorboard", "--logdir", folder);
    None: the overrides alone, to add to a command) and `overrides`, each a (key, value) pair, written
    here in Hydra's grammar (`hydra_value`), or a `key=value` text already in it (as the user typed it);
    every word quoted for the shell (POSIX sh; a word with a newline or another control character in
    bash's $'...', so that no printed command spans lines), so that the command runs as printed."""
    if command is None or not isinstance(command, str):
        words = list(command or ())
    else:
        words = ["python", f"scripts/{command}.py"] if checkout() else ["convgru", command]
    for override in overrides:
        words.append(f"{override[0]}={hydra_value(override[1])}" if isinstance(override, tuple) else override)
    return " ".join(_shell_word(word) for word in words)


def _shell_word(word: str) -> str:
    if word.isprintable():
        return shlex.quote(word)
    return "$'" + "".join("\\" + c if c in "\\'" else c if c.isprintable() else
                          f"\\x{ord(c):02x}" if ord(c) < 0x80 else f"\\U{ord(c):08x}" for c in word) + "'"
