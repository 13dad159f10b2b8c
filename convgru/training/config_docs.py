"""What each config key means, read from the comments of the YAML files in convgru/conf: the one source
of the config reference of the docs site (docs/configs.md, written at build time by `write_reference`)
and of ``convgru train --help GROUP[=OPTION]`` (`option_help`), so that neither can drift from the configs.

The files are read as text, never composed or resolved (no Hydra, no OmegaConf): a key's meaning is its
trailing comment and the comment lines below it indented past the key (a continuation); other comment
lines are notes shown in place; the leading comment lines are the file's description. A key without a
comment of its own takes the comment of the same key in the option it extends (its `defaults`), and an
experiment's ``data.frames_in`` that of ``frames_in`` in the data option the experiment selects.
"""

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from convgru._checks import shown, shown_name, shown_path

_KEY = re.compile(r"^(?P<indent> *)(?P<dash>- +)?"
                  r"(?P<key>[^\s#:'\"\[{-][^:#]*?|'[^']*'|\"[^\"]*\"):(?: +(?P<rest>.*))?$")
_ITEM = re.compile(r"^(?P<indent> *)- +(?P<rest>.*)$")
HYDRA_GROUP = "hydra"  # convgru's Hydra settings (run folders, logging): listed last, not a user's choice


@dataclass
class Entry:
    """One key of a config file (`key` dotted, `value` as written, '' for a mapping), or a note (key '')."""

    key: str
    value: str
    comment: str
    line: int
    depth: int = 0  # the mappings around it


@dataclass
class ConfigFile:
    """A config file's description (leading comments), `defaults` (item, comment) and keys in order."""

    path: Path
    description: str = ""
    package: str = ""
    defaults: list[tuple[str, str]] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    _keys: dict[str, Entry] | None = field(default=None, repr=False, compare=False)

    def keys(self) -> dict[str, Entry]:
        """The entries of its keys by dotted key, built once (after parsing): a lookup per key stays linear."""
        if self._keys is None:
            self._keys = {entry.key: entry for entry in self.entries if entry.key}
        return self._keys


def _split_comment(text: str) -> tuple[str, str, int]:
    """`text` (after a key's colon) cut into its value and its comment, and the comment's offset (-1: none),
    a `#` inside quotes being part of the value."""
    quote = None
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].strip(), text[i + 1:].strip(), i
    return text.strip(), "", -1


def parse(path) -> ConfigFile:
    """The keys of the YAML file `path` with their values as written and their comments (module docstring)."""
    path = Path(path)
    config = ConfigFile(path)
    stack: list[tuple[int, str]] = []  # (indent, key) of the mappings the current line is in
    items: dict[str, int] = {}  # list items seen per parent path
    last: Entry | None = None  # the entry a comment line below it may continue
    last_indent = 0
    in_defaults = False
    header = True
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{shown_path(path)}: expected a YAML config in UTF-8, found bytes that are not UTF-8 "
                         f"({error.reason} at byte {error.start})") from None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            last = None
            continue
        if stripped.startswith("#"):
            text = stripped.lstrip("#").strip()
            column = len(line) - len(line.lstrip())
            if header:
                if text.startswith("@package"):
                    config.package = text.split(None, 1)[1] if " " in text else ""
                elif text or config.description:  # as written (indented lines: commands)
                    raw = stripped[1:].removeprefix(" ").rstrip()
                    config.description += ("\n" if config.description else "") + raw
            elif last is not None and column > last_indent:
                last.comment = f"{last.comment} {text}".strip()
            elif in_defaults and config.defaults and column > 0:
                config.defaults[-1] = (config.defaults[-1][0], f"{config.defaults[-1][1]} {text}".strip())
            elif config.entries and not config.entries[-1].key and config.entries[-1].line == number - 1:
                config.entries[-1].comment += f" {text}"  # a note of several lines
                config.entries[-1].line = number
            else:
                last = None
                config.entries.append(Entry("", "", text, number))
            continue
        header = False
        match = _KEY.match(line)
        item = _ITEM.match(line)
        indent = len(line) - len(line.lstrip())
        if in_defaults and indent > 0 and item:
            value, comment, _ = _split_comment(item["rest"])
            config.defaults.append((value, comment))
            last = None
            continue
        in_defaults = False
        if match is None:
            if item:  # a scalar in a block list: part of its parent's value
                value, comment, _ = _split_comment(item["rest"])
                parent = ".".join(key for _, key in stack)
                entry = next((e for e in reversed(config.entries) if e.key == parent), None)
                if entry is not None:
                    entry.value = f"{entry.value}, {value}" if entry.value else value
                continue
            raise ValueError(f"{shown_path(path)}:{number}: expected `key: value` or a comment; found {shown(line)}")
        key = match["key"].strip("'\"")
        if match["dash"]:  # `- key: value`: a mapping in a list; its keys sit at the key's column
            while stack and stack[-1][0] >= indent:
                stack.pop()
            parent = ".".join(k for _, k in stack)
            index = items.get(parent, -1) + 1
            items[parent] = index
            if stack:
                stack[-1] = (stack[-1][0], f"{stack[-1][1].split('[')[0]}[{index}]")
            indent += len(match["dash"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        value, comment, _ = _split_comment(match["rest"] or "")
        if not stack and key == "defaults":
            in_defaults, last = True, None
            continue
        dotted = ".".join([*(k for _, k in stack), key])
        last = Entry(dotted, value, comment, number, len(stack))
        last_indent = indent
        config.entries.append(last)
        if not value or value in ("|", ">"):
            stack.append((indent, key))
    return config


@dataclass
class Configs:
    """Every config file under a config folder: the primary configs (train, eval) and each group's options."""

    root: Path
    primary: dict[str, ConfigFile]
    groups: dict[str, dict[str, ConfigFile]]

    def option(self, group: str, option: str) -> ConfigFile | None:
        return self.groups.get(group, {}).get(option)

    def meaning(self, config: ConfigFile, key: str, group: str | None = None, seen=()) -> str:
        """What `key` of `config` (an option of `group`, or a primary or global config) means: its own
        comment, else that of the option it extends, else, for `group.key` in a config that selects an
        option of `group`, that option's comment of `key`."""
        entry = config.keys().get(key)
        if entry is not None and entry.comment:
            return entry.comment
        if key == "_target_" or key.endswith("._target_"):
            return "the class Hydra instantiates, with the keys beside it as its arguments"
        if config.path in seen:
            return ""
        seen = (*seen, config.path)
        for item, _ in config.defaults:
            base = item.split(":", 1)
            if len(base) == 1 and group and base[0].strip() not in ("_self_",):  # `- convgru3`: extends
                parent = self.option(group, base[0].strip())
                if parent is not None and (found := self.meaning(parent, key, group, seen)):
                    return found
            elif len(base) == 2:  # `- data: moving_mnist` or `- override /data: kth`
                chosen_group = base[0].replace("override", "").strip().strip("/")
                prefix = chosen_group.replace("/", ".") + "."
                option = self.option(chosen_group, base[1].strip())
                if key.startswith(prefix) and option is not None:
                    if found := self.meaning(option, key[len(prefix):], chosen_group, seen):
                        return found
        if group is None and "." in key:  # a global key of an experiment: the primary configs' choice
            for primary in self.primary.values():
                if primary is not config and (found := self.meaning(primary, key, None, seen)):
                    return found
        return ""


def read_configs(*config_dirs) -> Configs:
    """The config files of `config_dirs` (train.yaml, eval.yaml and every group's option files), parsed;
    a later folder's file (--config-dir's) replaces an earlier one of the same name."""
    root = Path(config_dirs[0])
    primary: dict[str, ConfigFile] = {}
    groups: dict[str, dict[str, ConfigFile]] = {}
    for folder in map(Path, config_dirs):
        for path in sorted(folder.glob("*.yaml"), key=lambda p: (p.stem != "train", p)):
            primary[path.stem] = parse(path)
        for path in sorted(folder.rglob("*.yaml")):
            parts = path.relative_to(folder).parts
            if len(parts) > 1:
                groups.setdefault("/".join(parts[:-1]), {})[path.stem] = parse(path)
    groups = {group: dict(sorted(options.items())) for group, options in groups.items()}
    ordered = sorted(groups, key=lambda g: (g == HYDRA_GROUP, g))
    return Configs(root, primary, {group: groups[group] for group in ordered})


def leaves(config: ConfigFile) -> list[str]:
    """The keys of `config` that hold a value (not the mappings around them)."""
    keys = list(config.keys())
    return [k for k in keys if not any(other.startswith((f"{k}.", f"{k}[")) for other in keys)]


def undocumented(configs: Configs) -> list[str]:
    """`file: key` of every key with a value whose meaning no comment gives (own, extended or selected)."""
    missing = []
    for name, config in configs.primary.items():
        missing += [f"{name}.yaml: {k}" for k in leaves(config) if not configs.meaning(config, k)]
    for group, options in configs.groups.items():
        for option, config in options.items():
            scope = None if config.package == "_global_" else group
            missing += [f"{group}/{option}.yaml: {k}" for k in leaves(config) if not configs.meaning(config, k, scope)]
    return missing


# --- the docs site: Markdown (MyST) ---

def _markdown_text(text: str) -> str:
    """`text` (a comment) safe in a Markdown table cell: `code` kept, markup characters outside it escaped."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: all plain
        parts = [text]
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"`{part.replace('|', chr(92) + '|')}`")
        else:
            out.append(re.sub(r"([\\*_<>\[\]|$~])", r"\\\1", part))
    return "".join(out)


def _is_command(line: str) -> bool:
    return line.startswith((" ", "python ", "tensorboard ", "convgru "))


def _description_markdown(text: str) -> list[str]:
    """A file's description: prose as paragraphs, its command lines (indented, or starting with a
    command) as a shell block."""
    out: list[str] = []
    code = False
    for line in text.splitlines():
        if _is_command(line) != code:
            out += ["```" if code else "```bash"] if code else ["", "```bash"]
            code = not code
        out.append(line.strip() if code else _markdown_text(line))
    return out + (["```"] if code else [])


def _keys(configs: Configs, config: ConfigFile, scope: str | None) -> list[str]:
    """The keys of `config` as a definition list, one term per key (`key` = `default`) over what it does,
    and its notes in place, in italics: long meanings and defaults read at any width (a table's columns
    would cut them into tall thin cells)."""
    lines = []
    for entry in config.entries:
        if entry.key:
            meaning = _markdown_text(configs.meaning(config, entry.key, scope)) or "(a mapping: the keys below)"
            default = f" = `{entry.value}`" if entry.value else ""
            lines += ["", f"`{entry.key}`{default}", f": {meaning}"]
        else:
            lines += ["", f"*{_markdown_text(entry.comment)}*"]
    return lines


def _defaults(config: ConfigFile, group: str | None) -> list[str]:
    if not config.defaults:
        return []
    extends = [item for item, _ in config.defaults if ":" not in item and item != "_self_"]
    chosen = [(item, comment) for item, comment in config.defaults if ":" in item]
    lines = []
    if extends and group:
        lines += ["", "Extends " + ", ".join(f"[{group}={name}](#{_anchor(group, name)})" for name in extends)
                  + ": the keys below replace or add to its keys."]
    if chosen:
        lines += ["", "Defaults (the options it selects):", ""]
        for item, comment in chosen:
            lines.append(f"- `{item.strip()}`" + (f": {_markdown_text(comment)}" if comment else ""))
    return lines


def _anchor(group: str, option: str) -> str:
    return f"config-{group}-{option}".replace("/", "-").replace("_", "-").lower()


def reference_markdown(config_dir) -> str:
    """The config reference in MyST Markdown: train.yaml and eval.yaml, then every group and option file
    with each key, its default as written and its meaning (from the comments)."""
    configs = read_configs(config_dir)
    out = ["<!-- Written by convgru.training.config_docs from convgru/conf/**/*.yaml: edit the YAML comments. -->"]
    out += ["", "## The commands' own keys", ""]
    for name, config in configs.primary.items():
        out += [f"({_anchor('top', name)})=", f"### {name}.yaml", "", *_description_markdown(config.description)]
        out += _defaults(config, None) + _keys(configs, config, None) + [""]
    for group, options in configs.groups.items():
        title = "hydra (convgru's Hydra settings: run folders and logs)" if group == HYDRA_GROUP else group
        out += [f"## {title}", "", "Options: " + ", ".join(f"[{name}](#{_anchor(group, name)})" for name in options)
                + ".", ""]
        for option, config in options.items():
            scope = None if config.package == "_global_" else group
            relative = config.path.relative_to(configs.root.parent.parent).as_posix()
            out += [f"({_anchor(group, option)})=", f"### {group}={option}", "", f"`{relative}`"]
            if config.package:
                out += ["", f"Package `{config.package}`: its keys are paths from the config's root."]
            if config.description:
                out += ["", *_description_markdown(config.description)]
            out += _defaults(config, group) + _keys(configs, config, scope) + [""]
    return "\n".join(out) + "\n"


def write_reference(config_dir, path) -> Path:
    """Write `reference_markdown(config_dir)` to `path` (only when it changed: Sphinx rebuilds less)."""
    path = Path(path)
    text = reference_markdown(config_dir)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return path


# --- the command line: plain text ---

def _wrapped(head: str, meaning: str, width: int = 110) -> list[str]:
    """`head` (a key and its value, or a defaults item), its meaning beside it or below it, wrapped."""
    if not meaning:
        return [head]
    if not head:  # a note
        return textwrap.wrap(meaning, width, initial_indent="  # ", subsequent_indent="  # ")
    if len(head) < 34:
        return textwrap.wrap(meaning, width, initial_indent=f"{head:<36}", subsequent_indent=" " * 36)
    return [head, *textwrap.wrap(meaning, width, initial_indent=" " * 36, subsequent_indent=" " * 36)]


def file_help(configs: Configs, config: ConfigFile, group: str | None, title: str) -> str:
    """One config file's description, defaults, keys with their defaults and meanings, as plain text."""
    lines = [f"{title}  ({config.path})"]
    lines += [f"  {line}".rstrip() for line in config.description.splitlines()]
    if config.defaults:
        lines.append("  defaults:")
    for item, comment in config.defaults:
        lines += _wrapped(f"    - {item}", comment)
    scope = None if config.package == "_global_" else group
    for entry in config.entries:  # nested keys indented, as in the file
        meaning = configs.meaning(config, entry.key, scope) if entry.key else entry.comment
        name = "  " * entry.depth + entry.key.split(".", entry.depth)[-1]
        lines += _wrapped(f"  {name}: {entry.value}".rstrip() if entry.key else "", meaning)
    return "\n".join(shown_name(line, None) for line in lines)  # a comment's control codes spelled out


def option_help(config_dirs, topic: str) -> str:
    """``--help TOPIC``: the keys of a group's options (TOPIC = group), of one option (group=option) or of a
    primary config (train, eval) in `config_dirs` (the packaged configs, then --config-dir's). Raises
    ValueError (naming the groups there are) for an unknown one."""
    configs = read_configs(*config_dirs)
    group, _, option = topic.partition("=")
    if not option and group in configs.primary:
        return file_help(configs, configs.primary[group], None, f"{group}.yaml") + "\n"
    options = configs.groups.get(group, {})
    chosen = [option] if option in options else [] if option else list(options)
    if chosen:
        return "\n\n".join(file_help(configs, options[name], group, f"{group}={name}") for name in chosen) + "\n"
    known = sorted(configs.groups)
    raise ValueError(f"--help {shown_name(topic)}: expected a config group (one of {', '.join(known)}), GROUP=OPTION "
                     f"with one of the group's options, train or eval; found {shown(topic)}")
