"""The error sweep: every bad data file, config value and checkpoint a user can reach from the docs
ends in one clear message naming the file or option, what was expected and what was found, with
nothing of the user's written over. docs/errors.md is this table; regenerate it with
`PYTHONPATH=. python tests/test_errors.py` after changing a message. The framework (Case and the
ways to run one) is in sweep.py; the cases live in cases_<area>.py modules (cases_core.py first),
collected below in the order of the table.
"""

import importlib
import re
import tempfile
import warnings
from pathlib import Path

import pytest

from sweep import DOC, FOLDER, ROOT, SHOWN, Case


def _collect(*first: str) -> list:
    """The CASES lists of every cases_<area>.py module: those named in `first` in that order, then the others
    by name."""
    names = sorted(path.stem for path in Path(__file__).parent.glob("cases_*.py"))
    found = []
    for name in [*[n for n in first if n in names], *[n for n in names if n not in first]]:
        found += importlib.import_module(name).CASES
    return found


CASES = _collect("cases_core", "cases_checkpoints", "cases_data", "cases_library", "cases_metrics")


def shown(message: str, folder: Path) -> str:
    """The message as docs/errors.md shows it: the folder as /data, the repository as <repo>, one table cell."""
    message = message.replace(str(folder), SHOWN).replace(str(ROOT), "<repo>")
    return message.replace("|", "\\|").replace("\n", "<br>").replace("\t", " ")


def row(case: Case, message: str) -> str:
    return f"| `{case.id}` | {case.what} | `{case.how}` | {message} |"


def run_case(case: Case, tmp: Path) -> str:
    """The case's message as docs/errors.md shows it, after checking it matches `case.expect`."""
    folder = tmp / FOLDER
    folder.mkdir(parents=True)
    message = case.run(folder)
    assert re.search(case.expect, message), message
    return shown(message, folder)


def doc_rows() -> dict[str, str]:
    return {line.split("`")[1]: line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| `")}


@pytest.mark.filterwarnings("ignore:.*is compressed")
@pytest.mark.parametrize("case", [pytest.param(case, id=case.id, marks=[pytest.mark.slow] * case.slow)
                                  for case in CASES])
def test_error_sweep(case, tmp_path):
    """Each case ends in its clear message (naming the file or option), the one docs/errors.md shows."""
    message = run_case(case, tmp_path)
    documented = doc_rows().get(case.id, "")
    stale = f"docs/errors.md is stale for {case.id}; regenerate it: PYTHONPATH=. python tests/test_errors.py"
    if case.exact:
        assert documented == row(case, message), stale
    else:  # words of Hydra, torch or Lightning, which may change with their versions: the essentials
        assert documented.startswith(row(case, "")[:-3]), stale
        assert re.search(case.expect, documented.replace("<br>", "\n")), stale


def test_docs_table_is_the_sweep():
    assert list(doc_rows()) == [case.id for case in CASES]


HEADER = """# Errors

What a user sees for each bad input reachable from the docs: the command line prints one line
`error: <message>` and exits with status 2 (`HYDRA_FULL_ERROR=1` shows the traceback). Hydra's own
errors (an unknown option or key) are Hydra's messages where a config is composed in Python; the
scripts check the command line first and print them as one line too (the `cli-` rows). Nothing of
the user's is written over: the tests check that data files, checkpoints and other files are
unchanged after each error.

`/data` stands for the user's folder (the tests use one with a space and a non-ASCII character;
such paths work as typed: the scripts quote non-ASCII override values for Hydra). Not errors: a
compressed `.npz` is read into memory with a warning (it cannot be memory-mapped), and an experiment
combines with any data config (`experiment=quickstart data=arrays 'data.files=[...]'`).

Generated from `tests/test_errors.py`, which fails when this table and the messages differ
(messages worded by Hydra, torch or Lightning are checked for their essentials only): regenerate it
with `PYTHONPATH=. python tests/test_errors.py`.

| Case | What the user did | How (overrides) | Message |
|---|---|---|---|
"""


def write_doc() -> None:
    rows = []
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows.append(row(case, run_case(case, Path(tmp))))
    DOC.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_doc()
