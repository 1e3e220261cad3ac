"""Make every figure of the book: ``make figures`` = ``python -m chapters.figures``.

Each chapter that has figures has a module ``chapters/<part>/figures.py`` with a list
``FIGURES`` of ``common.plotting.Figure``; this script finds them all, computes each figure's
data, draws it and writes ``chapters/<part>/figures/<name>.png`` and ``<name>.json``. A new
chapter needs nothing here: its ``figures.py`` is found by its name.

    python -m chapters.figures                      # every figure of every chapter
    python -m chapters.figures metric               # one chapter's
    python -m chapters.figures metric/attention     # one figure
    python -m chapters.figures --check              # compare with the committed data, write nothing
    python -m chapters.figures --redraw             # draw again from the saved data (a style change)
    python -m chapters.figures --list
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

from common.errors import ConfigError
from common.plotting import check, redraw, write

CHAPTERS = Path(__file__).resolve().parent


def chapter_figures() -> dict[str, list]:
    """{chapter: its FIGURES}, for every ``chapters/<part>/figures.py``, in name order."""
    found = {}
    for module in sorted(CHAPTERS.glob("*/figures.py")):
        part = module.parent.name
        found[part] = importlib.import_module(f"chapters.{part}.figures").FIGURES
    return found


def folder(part: str) -> Path:
    return CHAPTERS / part / "figures"


def selected(names: list[str]) -> list[tuple[str, object]]:
    """(chapter, Figure) for the names asked for: ``chapter`` or ``chapter/figure``; all if none."""
    everything = chapter_figures()
    chosen = []
    for name in names or list(everything):
        part, _, figure_name = name.partition("/")
        if part not in everything:
            raise ConfigError(f"no chapter {part!r} with figures; choose from {', '.join(everything)}")
        figures = [f for f in everything[part] if not figure_name or f.name == figure_name]
        if not figures:
            raise ConfigError(f"chapter {part} has no figure {figure_name!r}; its figures: "
                              f"{', '.join(f.name for f in everything[part])}")
        chosen += [(part, f) for f in figures]
    return chosen


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m chapters.figures", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="chapter or chapter/figure (default: all)")
    parser.add_argument("--check", action="store_true", help="compare with the committed data; write nothing")
    parser.add_argument("--redraw", action="store_true", help="draw the PNGs again from their saved data")
    parser.add_argument("--list", action="store_true", help="list the figures and exit")
    args = parser.parse_args(argv)
    figures = selected(args.names)  # bad names fail here, before any work
    if args.list:
        for part, figure in figures:
            print(f"{part}/{figure.name}")
        return
    failed = []
    for part, figure in figures:
        start = time.perf_counter()
        if args.check:
            problems = check(figure, folder(part))
            failed += [f"{part}/{figure.name}: {p}" for p in problems]
            print(f"{part}/{figure.name}: {'differs' if problems else 'same data'} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
        elif args.redraw:
            png = redraw(figure, folder(part))
            print(f"{png.relative_to(CHAPTERS.parent)} ({png.stat().st_size / 1024:.0f} KB), redrawn "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
        else:
            png, record = write(figure, folder(part))
            print(f"{png.relative_to(CHAPTERS.parent)} ({png.stat().st_size / 1024:.0f} KB) and its .json "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    if failed:
        raise SystemExit("\n".join(failed[:20]) + "\nrun `make figures` and commit the figures")


if __name__ == "__main__":
    from common.cli import run

    run(main)
