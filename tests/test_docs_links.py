"""Every relative link in README.md and the docs/ pages leads somewhere: a committed file, or a heading of the page."""

import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
PAGES = ("README.md", *sorted(str(page.relative_to(REPO)) for page in (REPO / "docs").glob("*.md")))
LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)


def heading_anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (hyphens kept), spaces made hyphens."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def page_anchors(text: str) -> set[str]:
    return {heading_anchor(line.lstrip("#")) for line in text.splitlines() if re.match(r"#{1,6} ", line)}


def test_heading_anchor_matches_github_on_a_heading_with_punctuation():
    assert heading_anchor(" Automatic temperature (not in the paper)") == "automatic-temperature-not-in-the-paper"
    assert heading_anchor(" SACM and SAC: `sacm_baseline.py`") == "sacm-and-sac-sacm_baselinepy"


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_of_the_page_resolves(page):
    path = REPO / page
    text = path.read_text()
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in page_anchors(linked.read_text()):
            broken.append(target)
    assert not broken, f"{page} links to what does not exist: {broken}"


def test_the_docs_pages_are_the_expected_ones_and_the_readme_links_each():
    """A page moved out of the README stays reachable from it."""
    assert set(PAGES) >= {"README.md", "docs/results.md", "docs/slurm.md", "docs/long-runs.md", "docs/temperature.md"}
    readme_targets = {target.partition("#")[0] for target in LINK.findall((REPO / "README.md").read_text())}
    unlinked = [page for page in PAGES[1:] if page not in readme_targets]
    assert not unlinked, f"README.md links to none of: {unlinked}"


def test_the_readme_keeps_the_ci_test_command():
    """The README states the command .ci/run runs."""
    command = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert command.startswith("python -m pytest"), command
    assert command in (REPO / "README.md").read_text().splitlines()
