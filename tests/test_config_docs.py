"""The meaning of every config key, read from the configs' comments (convgru.training.config_docs): the
docs' config reference and `convgru train --help GROUP[=OPTION]` come from it, so a key without a
comment is a key nobody can look up."""

import shlex

import pytest

from conftest import ROOT
from convgru import commands
from convgru.training import config_docs
from convgru.training.paths import CONFIG_DIR


def test_every_key_of_the_packaged_configs_says_what_it_does():
    missing = [key for key in config_docs.undocumented(config_docs.read_configs(CONFIG_DIR))
               if not key.startswith(("hydra/", "hparams_search/optuna.yaml: hydra.sweeper.params."))]
    assert missing == [], "keys without a comment (add one beside the key in its YAML file):\n" + "\n".join(missing)


def test_comments_continued_noted_extended_and_selected(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "experiment").mkdir()
    (tmp_path / "data" / "base.yaml").write_text(
        "# Base data.\n_target_: x.Y\nsize: 4        # pixels of a side, a long comment\n"
        "               # continued below it\nlist:\n  - a: 1  # first item's key\n"
        "# a note about what follows\nplain: 1\n")
    (tmp_path / "data" / "small.yaml").write_text("defaults:\n  - base\n  - _self_\n\nsize: 2\n")
    (tmp_path / "experiment" / "mine.yaml").write_text(
        "# @package _global_\n# Mine.\n#   convgru train experiment=mine\ndefaults:\n"
        "  - override /data: small  # the small one\n\ndata:\n  size: 3\n")
    configs = config_docs.read_configs(tmp_path)
    base = configs.option("data", "base")
    assert base.description == "Base data."
    assert base.keys()["size"].comment == "pixels of a side, a long comment continued below it"
    assert base.keys()["list[0].a"].comment == "first item's key"
    assert [e.comment for e in base.entries if not e.key] == ["a note about what follows"]
    small, mine = configs.option("data", "small"), configs.option("experiment", "mine")
    assert configs.meaning(small, "size", "data") == "pixels of a side, a long comment continued below it"
    assert configs.meaning(mine, "data.size") == "pixels of a side, a long comment continued below it"
    assert mine.package == "_global_" and mine.defaults == [("override /data: small", "the small one")]
    assert config_docs.undocumented(configs) == ["data/base.yaml: plain"]
    markdown = config_docs.reference_markdown(tmp_path)
    assert "\n`size` = `4`\n: pixels of a side, a long comment continued below it\n" in markdown
    assert "```bash\nconvgru train experiment=mine\n```" in markdown


def test_train_help_shows_the_keys_of_an_option_and_of_a_users_config_dir(capsys, tmp_path):
    commands.main(["train", "--help", "data=radar"])
    out = capsys.readouterr().out
    assert out.startswith(f"data=radar  ({CONFIG_DIR / 'data' / 'radar.yaml'})")
    line = next(line for line in out.splitlines() if line.startswith("  thresholds: [20, 30, 40]"))
    assert "score thresholds in units" in line
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.yaml").write_text("defaults:\n  - radar\n  - _self_\n\nthresholds: [35]\n")
    commands.main(["train", "--config-dir", str(tmp_path), "--help", "data=mine"])
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("  thresholds: [35]"))
    assert "score thresholds in units" in line  # the comment of the option it extends


def test_train_help_of_an_unknown_topic_is_one_error_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        commands.main(["train", "--help", "data=nope"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --help data=nope: expected a config group") and "found 'data=nope'" in err
    assert len(err.strip().splitlines()) == 1


def test_the_config_pages_help_commands(capsys):
    """The commands of docs/configs.md's block print the keys they promise, with their meanings."""
    page = (ROOT / "docs" / "configs.md").read_text(encoding="utf-8")
    block = page.split("```bash\n", 1)[1].split("```", 1)[0]
    lines = [shlex.split(line, comments=True) for line in block.splitlines()]
    assert [line[:3] for line in lines] == [["convgru", "train", "--help"]] * 3
    for line in lines:
        commands.main(line[1:])
        out = capsys.readouterr().out
        expected = {"model": ("    hidden_sizes: [64, 96, 96]", "state channels per level"),
                    "data=radar": ("  thresholds: [20, 30, 40]", "score thresholds in units"),
                    "train": ("  monitor: val/mse", "checkpoint selection metric")}[line[3]]
        rows = [row for row in out.splitlines() if row.startswith(expected[0] + " ")]
        assert len(rows) == 1 and expected[1] in rows[0], (line, rows)


def test_help_spells_out_control_codes_of_a_users_comments(capsys, tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text("# Mine \x1b[31mred\x07.\nsize: 2  # \x1b[2K\rerror: forged\n")
    commands.main(["train", "--config-dir", str(tmp_path), "--help", "experiment=mine"])
    out = capsys.readouterr().out
    assert out.isascii() and all(line.isprintable() for line in out.splitlines())
    assert "'  Mine \\x1b[31mred\\x07.'" in out and "\\x1b[2K" in out
