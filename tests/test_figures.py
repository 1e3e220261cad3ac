"""The committed figures are what ``make figures`` makes now.

Every figure of ``chapters/<part>/figures.py`` has a PNG and, beside it, a JSON with the data it
was drawn from (``common/plotting.py``). The data is computed again and compared with the JSON:
a figure drawn from results files in full, a figure drawn from a training run by a run of the
same code at its small check size (a few meta-iterations or episodes), whose data ``make
figures`` saved too. A changed results file, algorithm or figure function that would change a
committed figure fails here, with the command that brings the figure up to date.
"""

import json

import pytest

from chapters.figures import CHAPTERS, chapter_figures, folder
from common.plotting import check
from tests.conftest import require_data

FIGURES = [(part, figure) for part, figures in chapter_figures().items() for figure in figures]
MAX_PNG_BYTES = 100_000  # "tens of KB": a README with ten figures still loads quickly


def test_the_chapters_have_their_figures():
    assert {"foundations", "metric", "optimization"} <= {part for part, _ in FIGURES}


@pytest.mark.parametrize("part, figure", FIGURES, ids=[f"{part}/{figure.name}" for part, figure in FIGURES])
def test_committed_figure_has_the_data_make_figures_computes(part, figure):
    if part != "optimization":  # the sinusoid tasks and the timing file need no data set
        require_data("omniglot/images_background.zip")
    problems = check(figure, folder(part))
    assert not problems, (f"chapters/{part}/figures/{figure.name}: the data differs from what `make figures` "
                          f"computes now; run `make figures` and commit the figures:\n" + "\n".join(problems[:10]))


@pytest.mark.parametrize("part, figure", FIGURES, ids=[f"{part}/{figure.name}" for part, figure in FIGURES])
def test_committed_figure_is_small_and_has_its_data(part, figure):
    png, data = folder(part) / f"{figure.name}.png", folder(part) / f"{figure.name}.json"
    assert png.exists() and data.exists(), f"run `make figures`: {png.relative_to(CHAPTERS.parent)} is missing"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size < MAX_PNG_BYTES, f"{png.name} is {png.stat().st_size / 1000:.0f} KB"
    assert json.loads(data.read_text())["figure"] == figure.name


def test_every_file_under_figures_belongs_to_a_figure():
    """A figure removed from a chapter's FIGURES leaves no stale picture behind."""
    names = {(part, figure.name) for part, figure in FIGURES}
    stray = [str(path.relative_to(CHAPTERS.parent)) for path in sorted(CHAPTERS.glob("*/figures/*"))
             if (path.parent.parent.name, path.stem) not in names or path.suffix not in (".png", ".json")]
    assert not stray, f"files of no figure (remove them, or add their figure): {stray}"


def test_check_notices_a_changed_number(tmp_path):
    """The comparison is not vacuous: a committed number changed by more than the tolerance fails."""
    from common.plotting import Figure, write

    figure = Figure("tiny", lambda scale=1.0: {"values": [scale, 2 * scale], "label": "x"},
                    lambda data: __import__("matplotlib.pyplot").pyplot.figure(), size={"scale": 1.0})
    write(figure, tmp_path)
    assert check(figure, tmp_path) == []
    record = json.loads((tmp_path / "tiny.json").read_text())
    record["data"]["values"][1] = 2.01
    (tmp_path / "tiny.json").write_text(json.dumps(record))
    assert check(figure, tmp_path) == ["data.values[1]: 2.01 != 2.0"]
