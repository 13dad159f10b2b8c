"""The README is the front page: at most 12,000 bytes; its set-up commands are CI's (the install command of
.ci/run, then the main job, and the test command of .ci/run beside them), and so are get-started.md's; its
links into the docs lead to pages and headings that exist. (Its Python blocks, and the docs', run in
tests/test_docs_blocks.py.)"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GET_STARTED = ROOT / "docs" / "get-started.md"
CI = (ROOT / ".ci" / "run").read_text().splitlines()
TEST = next(line for line in CI if line.startswith("python -m pytest"))
INSTALL = next(line for line in CI if line.startswith("pip install"))


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)\n```", text, re.S)


def test_readme_is_a_front_page():
    size = len(README.read_bytes())
    assert size <= 12_000, f"README.md is {size} bytes: move text into docs/"


def test_set_up_installs_and_runs_the_main_job_first_then_the_tests_as_ci_does():
    for path in (README, GET_STARTED):
        first, second = bash_blocks(path.read_text())[:2]
        install, main_job = first.splitlines()
        assert install.endswith(f" && {INSTALL}") and install.startswith("python3 -m venv .venv"), (path, install)
        assert main_job == "python scripts/train.py experiment=quickstart", (path, main_job)
        assert second == f". .venv/bin/activate && {TEST}", (path, second)
    assert TEST.startswith("python -m pytest")


def test_run_times_name_the_test_command():
    run_times = GET_STARTED.read_text().split("## Run times", 1)[1].split("\n## ", 1)[0]
    assert f"command (`{TEST}`)" in " ".join(run_times.split())


def slug(heading: str) -> str:
    """MyST's heading anchor (myst_heading_anchors), which GitHub's matches for these headings."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_lead_to_pages_and_headings_that_exist():
    for page in (README, *sorted((ROOT / "docs").glob("*.md"))):
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not checked offline
            path, _, anchor = target.partition("#")
            if page.parent.name == "docs" and path:
                assert path.endswith((".md", ".png", ".gif")), f"{page.name}: {target} is no page of the site"
            file = (page.parent / path).resolve() if path else page
            assert file.is_file(), f"{page.name}: {target} does not exist"
            if anchor:
                headings = re.findall(r"^#{1,3} (.+)$", re.sub(r"```.*?```", "", file.read_text(), flags=re.S), re.M)
                assert anchor in {slug(h) for h in headings}, f"{page.name}: no heading for {target}"
