"""The book's texts: every relative link resolves, and chapter texts teach rather than log.

A chapter text (``chapters/*/README.md``) and the top-level README are read by students; the run
log (which commit trained what, which machine, which run was resumed) belongs in
``results/<chapter>/NOTES.md`` and in the results JSONs. These checks are cheap and catch the two
ways a text decays: a moved file that leaves a dead link, and a lab note that creeps back in.
"""

import re
from pathlib import Path

import pytest

from common.results import TABLE_BEGIN, TABLE_END, chapter_table, load_results, replace_table

ROOT = Path(__file__).resolve().parents[1]

CHAPTER_TEXTS = sorted(ROOT.glob("chapters/*/README.md")) + [ROOT / "README.md"]
NOTES = sorted(ROOT.glob("results/*/NOTES.md"))
# Every Markdown text a reader follows links from (exercise statements included).
MARKDOWN = sorted(set(CHAPTER_TEXTS + NOTES + [ROOT / "results" / "README.md"] +
                      list(ROOT.glob("chapters/*/exercises/*/README.md"))))

LINK = re.compile(r"\]\(([^)\s]+)\)")
# A short commit hash in backticks, as run logs quote them (`b9ca312`, `954c625-dirty`). Seven to
# forty hex digits with at least one letter and one digit, so numbers and words do not match.
COMMIT = re.compile(r"`(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}(-dirty)?`")
# Phrases of a run log: where and when something ran, rather than what it shows.
LOG_PHRASES = ("this machine", "this session", "earlier session", "one session", "measured on this",
               "over two sessions", "over three sessions", "older version")
# A chapter's prose, in lines: enough for a chapter that teaches, too few for a run log. The
# chapter's rows of the generated results table and its figures' lines (![...](...)) do not count:
# they grow with the results.
LONGEST_CHAPTER = 600


def relative_links(path: Path):
    """(line number, target) of every link that is not a URL or a pure anchor, outside code blocks."""
    in_code = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        for target in LINK.findall(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue
            yield number, target


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    result = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") and not line.startswith("#!"):
            title = line.lstrip("#").strip().lower()
            title = re.sub(r"[^\w\- ]", "", title)
            result.add(title.replace(" ", "-"))
    return result


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path):
    broken = []
    for number, target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve()
        if not resolved.exists():
            broken.append(f"line {number}: {target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"line {number}: {target} (no such heading)")
    assert not broken, f"{path.relative_to(ROOT)} has broken links:\n" + "\n".join(broken)


@pytest.mark.parametrize("path", CHAPTER_TEXTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_chapter_texts_hold_no_run_log(path):
    text = path.read_text(encoding="utf-8")
    hashes = sorted({m.group(0) for m in COMMIT.finditer(text)})
    assert not hashes, f"{path.relative_to(ROOT)} quotes commits {hashes}: move the run's story to results/<chapter>/NOTES.md"
    lowered = text.lower()
    phrases = [phrase for phrase in LOG_PHRASES if phrase in lowered]
    assert not phrases, f"{path.relative_to(ROOT)} tells a run's story ({phrases}): move it to results/<chapter>/NOTES.md"


def without_generated_table(text: str) -> str:
    if TABLE_BEGIN not in text:
        return text
    head, rest = text.split(TABLE_BEGIN)
    return head + rest.split(TABLE_END)[1]


def prose_lines(text: str) -> list[str]:
    """The lines a reader reads as text: not the generated table, not a figure (its image line and
    the italic caption paragraph right after it)."""
    prose, in_caption, after_figure = [], False, False
    for line in without_generated_table(text).splitlines():
        if line.startswith("!["):
            after_figure = True
            continue
        if after_figure and not line.strip():
            continue
        if after_figure and line.startswith("*") or in_caption and line.strip():
            in_caption, after_figure = True, False
            continue
        in_caption = after_figure = False
        prose.append(line)
    return prose


@pytest.mark.parametrize("path", CHAPTER_TEXTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_chapter_texts_stay_readable_in_length(path):
    lines = len(prose_lines(path.read_text(encoding="utf-8")))
    assert lines <= LONGEST_CHAPTER, (f"{path.relative_to(ROOT)} has {lines} lines of prose (at most "
                                      f"{LONGEST_CHAPTER}): per-run notes belong in results/<chapter>/NOTES.md")


@pytest.mark.parametrize("path", [p for p in CHAPTER_TEXTS if TABLE_BEGIN in p.read_text(encoding="utf-8")],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_a_chapters_results_table_is_the_generated_one(path):
    """The rows a chapter shows are its results files' rows, as `make results` writes them."""
    text = path.read_text(encoding="utf-8")
    table = chapter_table(load_results(ROOT / "results" / path.parent.name))
    assert text == replace_table(text, table), (f"{path.relative_to(ROOT)}'s results table is out of date: "
                                                "run `make results`")


def test_a_figure_and_its_caption_are_not_prose():
    text = "One.\n\n![a figure](figures/x.png)\n\n*Its caption,\nover two lines.*\n\nTwo.\n"
    assert [line for line in prose_lines(text) if line] == ["One.", "Two."]


def test_the_checks_catch_what_they_look_for(tmp_path):
    """The patterns are not vacuous: a dead link, a quoted commit and a run story are all found."""
    page = tmp_path / "README.md"
    page.write_text("See [a file](missing.md) and [ok](README.md).\n```\n[code](not-a-link.md)\n```\n")
    assert [target for _, target in relative_links(page)] == ["missing.md", "README.md"]
    assert COMMIT.search("trained at `b9ca312`") and COMMIT.search("`954c625-dirty`")
    assert not COMMIT.search("`decade` `1234567` `cosine_scale`")
