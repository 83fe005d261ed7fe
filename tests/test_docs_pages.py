"""The manual's pages are a user's: each says whom it is for, its links land, and none is a lab notebook.

- every page of docs/ (the development log in docs/dev/ too) opens, under its title, with
  whom it is for and what it answers;
- every relative link of README.md, benchmarks/README.md and docs/ (docs/dev/ too) names a
  file that exists and, with an anchor, a heading of that file (a link within a page too);
- no page outside docs/dev/ cites a commit of msgstorm's history (the commits hold it), and
  docs/performance.md stays a user's page of at most 400 lines with no "NOT MET" verdict;
- docs/README.md links every page of docs/, and docs/first-scenario.md shows the scenario
  file it runs as it is in examples/ (its terminal excerpt is checked by tests/test_docs.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DEV = DOCS / "dev"
DOC_PAGES = sorted(DOCS.rglob("*.md"))
PAGES = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *DOC_PAGES]
USER_PAGES = [page for page in PAGES if DEV not in page.parents]

# A link's target and anchor, a code span or block left out first (their brackets are code).
_LINK = re.compile(r"\]\(([^)\s#]*)(#[^)\s]*)?\)")
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
# A commit's abbreviated or whole name: 7 to 40 hex digits with a letter and a digit among them.
_HASH = re.compile(r"(?<![\w#/-])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}(?![\w-])")
# Words that are hex digits and no commit.
NOT_COMMITS = {"ed25519"}
# Commits of other projects a page cites as its source, each beside the repository's name.
EXTERNAL_COMMITS = {"5fc7f9f": "dsg-titech/simblock", "6dce8d1": "OffchainLabs/nitro"}
PERFORMANCE_PAGE_MAX_LINES = 400


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def anchor_of(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings (a heading in a code block is no heading)."""
    text = re.sub(r"```.*?```", "", _text(page), flags=re.S)
    return {anchor_of(heading) for heading in re.findall(r"^#+ (.+)$", text, re.M)}


def broken_links(page: Path) -> list[str]:
    """The relative links of a page whose file or heading does not exist."""
    broken = []
    for target, anchor in _LINK.findall(_CODE.sub("", _text(page))):
        if "://" in target or target.startswith("mailto:"):
            continue
        linked = (page.parent / target).resolve() if target else page
        if not linked.exists():
            broken.append(target + anchor)
        elif anchor and linked.suffix == ".md" and anchor[1:] not in anchors(linked):
            broken.append(target + anchor)
    return broken


def commits_cited(text: str) -> list[str]:
    """The commit names a text cites, other than another project's beside its repository."""
    cited = []
    for match in _HASH.finditer(text):
        word = match.group(0)
        if word in NOT_COMMITS:
            continue
        repository = EXTERNAL_COMMITS.get(word)
        if repository is not None and repository in text[max(0, match.start() - 200):match.start()]:
            continue
        cited.append(word)
    return cited


@pytest.mark.parametrize("page", DOC_PAGES, ids=_name)
def test_every_page_opens_with_whom_it_is_for(page: Path) -> None:
    title, _, rest = _text(page).partition("\n")
    opening = rest.lstrip("\n").split("\n\n", 1)[0]
    assert title.startswith("# "), f"{_name(page)} does not start with its title"
    assert opening.startswith("For "), f"{_name(page)}: the line under the title does not say whom it is for"
    assert len(opening.splitlines()) <= 3, f"{_name(page)}: whom it is for takes more than a few lines"


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_relative_link_lands_on_a_file_and_a_heading(page: Path) -> None:
    assert broken_links(page) == [], f"{_name(page)} links to no such file or heading"


def test_a_link_to_a_missing_heading_or_file_is_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## Its section\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n## Here, too\n\n[a](other.md#its-section) [b](#here-too) [c](other.md)\n"
                    "[d](other.md#its-sections) [e](#nowhere) [f](missing.md) `[g](missing.md#x)`\n"
                    "[h](https://example.com/x.md#y)\n", encoding="utf-8")
    assert broken_links(page) == ["other.md#its-sections", "#nowhere", "missing.md"]


@pytest.mark.parametrize("page", USER_PAGES, ids=_name)
def test_no_users_page_cites_a_commit(page: Path) -> None:
    assert commits_cited(_text(page)) == [], (
        f"{_name(page)} cites commits: the history of the code belongs in docs/dev/ or the commits")


def test_a_commit_is_found_and_other_hex_words_are_not() -> None:
    assert commits_cited("measured against b74de24, then `main` at 9c1ab32 (4e13806)") == [
        "b74de24", "9c1ab32", "4e13806"]
    assert commits_cited("Ed25519 (`ed25519`), 1,000,000 messages, a run id de676ecf-038e-443f, #1f77b4") == []
    assert commits_cited("(dsg-titech/simblock at commit 5fc7f9f)") == []
    assert commits_cited("SimBlock at commit 5fc7f9f") == ["5fc7f9f"]  # another project's, but not named
    # The development log cites the commits it compares: the finder sees them there.
    assert len(set(commits_cited(_text(DEV / "performance-log.md")))) >= 10


def test_the_performance_page_is_a_users_page() -> None:
    text = _text(DOCS / "performance.md")
    assert len(text.splitlines()) <= PERFORMANCE_PAGE_MAX_LINES
    assert "NOT MET" not in text
    for section in ("The examples", "Cold start", "Wall time before the run", "Memory", "The limits it refuses",
                    "Live targets' ceilings on two cores", "Measuring again: `benchmarks/`", "The test budget"):
        assert anchor_of(section) in anchors(DOCS / "performance.md"), section


def test_the_performance_page_names_every_benchmark_script() -> None:
    """One line each: a script the page leaves out is one a user cannot find."""
    text = _text(DOCS / "performance.md")
    section = text[text.index("## Measuring again"):text.index("\n## ", text.index("## Measuring again") + 1)]
    named = set(re.findall(r"^\| `(\w+\.py)` \|", section, re.M))
    scripts = {path.name for path in (ROOT / "benchmarks").glob("*.py")} - {"timing.py"}  # shared timers
    assert named == scripts


def test_the_index_links_every_page_of_the_manual() -> None:
    linked = {(DOCS / target).resolve() for target, _ in _LINK.findall(_text(DOCS / "README.md")) if target}
    missing = sorted(_name(page) for page in DOC_PAGES if page.name != "README.md" and page.resolve() not in linked)
    assert missing == []


def test_the_first_scenario_page_shows_the_example_file_as_it_is() -> None:
    shown = re.search(r"```toml\n(.*?)```", _text(DOCS / "first-scenario.md"), re.S)
    assert shown is not None
    file_text = _text(ROOT / "examples" / "first-scenario.toml")
    body = file_text[re.search(r"^\[run\]", file_text, re.M).start():]  # type: ignore[union-attr]
    assert shown.group(1) == body
