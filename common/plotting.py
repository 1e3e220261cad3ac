"""The book's figures: one style, one palette, and a figure's data saved beside its picture.

Every chapter keeps its figures in ``chapters/<part>/figures.py``: a list ``FIGURES`` of
:class:`Figure` entries, each a pair of functions,

    compute(**size) -> data     the numbers behind the picture (from results files or a small,
                                deterministic run), a dict of plain lists and numbers
    draw(data) -> matplotlib Figure

``python -m chapters.figures`` (``make figures``) runs them all and writes
``chapters/<part>/figures/<name>.png`` and, beside it, ``<name>.json`` with the data. A figure
is then as traceable as a number in a table: ``tests/test_figures.py`` computes the data again
and compares it with the JSON, so a figure that ``make figures`` would change fails a test. The
notebooks call the same ``draw`` functions on their own runs.

Keys of ``data`` that start with ``_`` (images, say) are handed to ``draw`` but not saved.

The style: figures as wide as a README column (7 inches at 100 dpi), titles and axis labels
with units, and the colour-blind-safe palette of Okabe & Ito (2008), with a fixed colour for each
framework, so that a reader learns once that PyTorch is vermillion.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# Okabe & Ito's eight colours, distinguishable with every common colour-vision deficiency.
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky blue": "#56B4E9", "green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7"}
CYCLE = [OKABE_ITO[name] for name in ("blue", "vermillion", "green", "orange", "purple", "sky blue",
                                      "black", "yellow")]
FRAMEWORK_COLOURS = {"torch": OKABE_ITO["vermillion"], "tf": OKABE_ITO["blue"], "keras": OKABE_ITO["green"]}
FRAMEWORK_NAMES = {"torch": "PyTorch", "tf": "TensorFlow", "keras": "Keras"}
PAPER_COLOUR = OKABE_ITO["black"]
NEUTRAL = "#999999"  # references: chance, the best function without adaptation, ...

WIDTH = 7.0  # inches: 700 pixels at DPI, about the width of a rendered README
DPI = 100

STYLE = {
    "figure.dpi": DPI, "savefig.dpi": DPI, "savefig.bbox": "tight", "savefig.pad_inches": 0.05,
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "figure.titlesize": 11,
    "axes.prop_cycle": None,  # set below from CYCLE
    "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.color": "#dddddd", "grid.linewidth": 0.6, "axes.axisbelow": True,
    "legend.frameon": False, "image.cmap": "viridis", "lines.linewidth": 1.6, "lines.markersize": 4,
    "errorbar.capsize": 2,
}


def style():
    """A context manager with the book's matplotlib style: ``with style(): figure = draw(data)``."""
    import matplotlib as mpl
    from cycler import cycler

    return mpl.rc_context({**STYLE, "axes.prop_cycle": cycler(color=CYCLE)})


def use_style() -> None:
    """The book's style for every later figure of this Python process (a notebook's first cell)."""
    import matplotlib as mpl
    from cycler import cycler

    mpl.rcParams.update({**STYLE, "axes.prop_cycle": cycler(color=CYCLE)})


def new_figure(rows: int = 1, columns: int = 1, height: float = 3.0, width: float = WIDTH, **options):
    """``plt.subplots`` at the book's width, in the book's style (call inside :func:`style`)."""
    import matplotlib.pyplot as plt

    return plt.subplots(rows, columns, figsize=(width, height), **options)


def plain_ticks(ax, x=None, y=None) -> None:
    """Tick labels as plain numbers (10, 100, 600; not 10^2) at the given positions, e.g. on a
    log axis."""
    from matplotlib.ticker import NullFormatter, NullLocator, ScalarFormatter

    for axis, ticks in ((ax.xaxis, x), (ax.yaxis, y)):
        if ticks is not None:
            axis.set_ticks(ticks)
            axis.set_major_formatter(ScalarFormatter())
            axis.set_minor_locator(NullLocator())
            axis.set_minor_formatter(NullFormatter())


@dataclass
class Figure:
    """One figure of a chapter: ``compute(**size)`` gives its data, ``draw(data)`` the picture.

    ``size`` is the run's budget (e.g. ``{"iterations": 2000}``); ``check_size`` a smaller one
    for figures whose data comes from training: the test recomputes the data at ``check_size``
    (seconds) and compares it with the check data saved when the figure was made, and checks that
    the figure was made at ``size``. A figure without ``check_size`` is recomputed in full."""

    name: str
    compute: Callable[..., dict]
    draw: Callable[[dict], object]
    size: dict = field(default_factory=dict)
    check_size: dict | None = None
    rtol: float = 1e-6  # relative tolerance when the test compares data (training runs: see the chapter)
    colours: int = 256  # the PNG's palette: a chart of many curves and legends stays small with fewer

    def record(self, data: dict) -> dict:
        """What ``<name>.json`` holds: the data, its size, and the check run's data."""
        record = {"figure": self.name, "made_by": "make figures", "size": self.size, "data": saved(data)}
        if self.check_size is not None:
            record["check"] = {"size": self.check_size, "data": saved(self.compute(**self.check_size))}
        return record


def saved(data: dict) -> dict:
    """``data`` without its ``_`` keys, floats to 6 significant digits (stable, small files)."""
    def clean(value):
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items() if not str(k).startswith("_")}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if hasattr(value, "tolist"):  # NumPy arrays and scalars
            return clean(value.tolist())
        if isinstance(value, float):
            return float(f"{value:.6g}") if math.isfinite(value) else str(value)
        return value
    return clean(data)


def differences(expected, actual, rtol: float, atol: float = 1e-9, where: str = "data") -> list[str]:
    """Where ``actual`` differs from ``expected`` (both as :func:`saved` makes them), as text."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        if expected.keys() != actual.keys():
            return [f"{where}: keys {sorted(expected)} != {sorted(actual)}"]
        return [d for key in expected for d in differences(expected[key], actual[key], rtol, atol, f"{where}.{key}")]
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{where}: length {len(expected)} != {len(actual)}"]
        return [d for i, (e, a) in enumerate(zip(expected, actual))
                for d in differences(e, a, rtol, atol, f"{where}[{i}]")]
    numbers = (int, float)
    if isinstance(expected, numbers) and isinstance(actual, numbers) and not isinstance(expected, bool):
        if abs(expected - actual) <= atol + rtol * max(abs(expected), abs(actual)):
            return []
        return [f"{where}: {expected!r} != {actual!r}"]
    return [] if expected == actual else [f"{where}: {expected!r} != {actual!r}"]


def save_png(picture, path: Path, colours: int = 256) -> None:
    """Save a matplotlib figure as a small PNG: 256 colours (plenty for line art and these
    images; a third of the bytes of full colour) or fewer, no metadata (the same picture, the
    same bytes)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    picture.savefig(buffer, format="png")
    image = Image.open(buffer).convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    image.save(path, format="png", optimize=True)


def write(figure: Figure, folder: Path) -> tuple[Path, Path]:
    """Compute, draw and save one figure: ``folder/<name>.png`` and ``folder/<name>.json``."""
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    data = figure.compute(**figure.size)
    with style():
        picture = figure.draw(data)
        png = folder / f"{figure.name}.png"
        save_png(picture, png, figure.colours)
    plt.close(picture)
    record = folder / f"{figure.name}.json"
    record.write_text(json.dumps(figure.record(data), indent=1, ensure_ascii=False) + "\n")
    return png, record


def redraw(figure: Figure, folder: Path) -> Path:
    """Draw ``folder/<name>.png`` again from the data saved in its .json (a change of style, no
    new computation). A figure that draws more than its saved data (images) is computed again."""
    import matplotlib.pyplot as plt

    record = folder / f"{figure.name}.json"
    if not record.exists():
        return write(figure, folder)[0]
    data = json.loads(record.read_text())["data"]
    with style():
        try:
            picture = figure.draw(data)
        except KeyError:  # it needs a "_" key that is not saved
            return write(figure, folder)[0]
        png = folder / f"{figure.name}.png"
        save_png(picture, png, figure.colours)
    plt.close(picture)
    return png


def check(figure: Figure, folder: Path) -> list[str]:
    """What differs between the committed ``folder/<name>.json`` and a fresh computation."""
    path = folder / f"{figure.name}.json"
    if not path.exists() or not (folder / f"{figure.name}.png").exists():
        return [f"{path.with_suffix('.png')} or its .json is missing: run `make figures`"]
    record = json.loads(path.read_text())
    if record.get("size") != saved(figure.size):
        return [f"{path}: made at size {record.get('size')}, the figure's size is now {figure.size}"]
    if figure.check_size is None:
        return differences(record["data"], saved(figure.compute(**figure.size)), figure.rtol)
    if record.get("check", {}).get("size") != saved(figure.check_size):
        return [f"{path}: its check run had size {record.get('check', {}).get('size')}, now {figure.check_size}"]
    return differences(record["check"]["data"], saved(figure.compute(**figure.check_size)), figure.rtol,
                       where="check data")
