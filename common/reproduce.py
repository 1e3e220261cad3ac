"""A chapter's reproduction table as a program: every paper protocol is one entry, with the command
that trains it and the settings it is tested in, and a runner that measures them one by one.

Each chapter lists its protocols in ``chapters/<chapter>/reproduce.py`` and runs this module's
:func:`main` on them:

    python -m chapters.metric.reproduce                          # status: what is measured, how far from the paper
    python -m chapters.metric.reproduce --framework tf --run protonet-1shot
    python -m chapters.metric.reproduce --framework keras --next # the first protocol not yet measured
    python -m chapters.metric.reproduce --commands               # only print the commands

Running a protocol calls its training script in a fresh process (``python -m <module> ...``), so
the results JSON records that exact command. The first test setting trains (and resumes the
checkpoint of an interrupted run: run the same line again to continue); each further setting
(e.g. ``--test-way 20``) loads the finished checkpoint and only evaluates. The new results files
are copied under ``results/<chapter>/``; ``python -m common.results table`` then shows them beside
the papers. A protocol counts as measured in a framework when a results file has all its test
settings at the protocol's full number of training episodes; shorter runs are shown as partial.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from common.cli import FRAMEWORKS, require_framework
from common.errors import ConfigError
from common.results import (METRICS, PUBLISHED, RESULTS_DIR, deviation_labels, deviations, labels, load_results,
                            training_then_date, value_text)


@dataclass(frozen=True)
class Protocol:
    """One paper protocol: a training command and the cells of the results table it fills.

    ``tests`` maps each cell, ``(algorithm, dataset, way, shot)`` as the results name it, to the
    extra options that test the trained model in that setting. ``options`` are values the
    results' ``options`` must record for a run to fill the protocol's cells (e.g. a labelled
    deviation such as ``{"cosine_scale": 10.0}``), so that a run of another variant of the
    method, in the same cell, is not counted as this protocol. A run that makes a labelled
    deviation (``common.results.DEVIATIONS``) the protocol does not ask for is not counted either,
    just as the results table gives it a row of its own: with no options, a protocol is the
    paper's method itself. ``unpublished`` says why a protocol's cells have no published number
    (a setting the papers did not run, measured beside one they did); empty for a paper protocol.
    """

    name: str
    module: str
    train: tuple[str, ...]
    tests: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    unpublished: str = ""

    def training_episodes(self) -> int:
        """The protocol's training episodes (meta-iterations), as its command gives them."""
        for flag in ("--episodes", "--iterations"):
            if flag in self.train:
                return int(self.train[self.train.index(flag) + 1])
        raise ConfigError(f"protocol {self.name} names no --episodes or --iterations in its command")

    def command(self, framework: str, test: tuple[str, ...], out: str) -> list[str]:
        return ["python", "-m", self.module, "--framework", framework, *self.train, *test, "--out", out]


def measured(protocol: Protocol, framework: str, results: list[dict]) -> dict:
    """For each cell of ``protocol``: the result of ``framework`` the results table shows (the most
    training, then the most recent; or None)."""
    found = {}
    for cell in protocol.tests:
        runs = [r for r in results if (r["algorithm"], r["dataset"], r["way"], r["shot"]) == cell
                and r["framework"] == framework and _counts_for(protocol, r)]
        found[cell] = max(runs, key=training_then_date, default=None)
    return found


def _counts_for(protocol: Protocol, result: dict) -> bool:
    """Whether a run is of ``protocol``'s variant of the method, tested as the book tests (a
    transductive run tested on another number of queries is a row of its own: ``labels``)."""
    options = result.get("options", {})
    return (all(options.get(k) == v for k, v in protocol.options.items())
            and labels(result) == deviations(protocol.options))


def is_done(protocol: Protocol, framework: str, results: list[dict]) -> bool:
    return all(r is not None and r["train_episodes"] >= protocol.training_episodes()
               for r in measured(protocol, framework, results).values())


def gap_text(paper: float | None, runs: dict) -> str:
    """The best framework's number minus the paper's (accuracy: the highest; MSE: the lowest), and
    which framework and budget it comes from: how far a cell stands from a reproduction."""
    runs = {framework: run for framework, run in runs.items() if run is not None}
    if paper is None or not runs:
        return "–"
    metric = next(iter(runs.values())).get("metric", "accuracy")
    value = METRICS[metric][0]
    best = (max if metric == "accuracy" else min)(runs, key=lambda framework: runs[framework][value])
    return f"{runs[best][value] - paper:+.2f} ({best}, {runs[best]['train_episodes']:,} ep.)"


def status(protocols: list[Protocol], results: list[dict]) -> str:
    """Markdown: one row per protocol and cell; the paper, each framework's number, and the best
    one's distance to the paper (:func:`gap_text`)."""
    lines = ["| protocol | cell (algorithm, data set, way, shot) | paper | " + " | ".join(FRAMEWORKS) +
             " | best − paper |",
             "|---|---|---:|" + "---:|" * len(FRAMEWORKS) + "---:|"]
    for protocol in protocols:
        runs = {framework: measured(protocol, framework, results) for framework in FRAMEWORKS}
        for cell in protocol.tests:
            paper = PUBLISHED[cell][0] if cell in PUBLISHED else None
            cells = []
            for framework in FRAMEWORKS:
                run = runs[framework][cell]
                if run is None:
                    cells.append("–")
                    continue
                partial = run["train_episodes"] < protocol.training_episodes()
                episodes = (f"{run['train_episodes']:,} of {protocol.training_episodes():,} ep., partial"
                            if partial else f"{run['train_episodes']:,} ep.")
                cells.append(f"{value_text(run)}{deviation_labels(labels(run))} ({episodes})")
            lines.append(f"| {protocol.name} | {', '.join(map(str, cell))} | {'–' if paper is None else paper} | "
                         + " | ".join(cells) + f" | {gap_text(paper, {f: runs[f][cell] for f in FRAMEWORKS})} |")
    lines.append("\nA partial run continues from its checkpoint: the same `--run` and `--out` again.")
    return "\n".join(lines) + "\n"


def run_protocol(protocol: Protocol, framework: str, out: str, results_dir: Path, python: str = sys.executable
                 ) -> list[Path]:
    """Train ``protocol`` in ``framework`` (resuming its checkpoint), test it in each setting, and
    copy each new results file into ``results_dir``; returns the copies."""
    copies = []
    for cell, test in protocol.tests.items():
        command = protocol.command(framework, tuple(test), out)
        before = set(Path(out).rglob("*.json")) if Path(out).exists() else set()
        print("$ " + " ".join(command), flush=True)
        finished = subprocess.run([python, *command[1:]])
        if finished.returncode != 0:
            raise ConfigError(f"protocol {protocol.name} ({framework}) stopped: `{' '.join(command)}` exited with "
                              f"status {finished.returncode}. Its checkpoint is kept: run the same line again "
                              f"to resume.")
        # This run's results file: new since it started, and of this cell and framework (another
        # run writing into the same --out folder meanwhile is not this protocol's).
        new = sorted(p for p in set(Path(out).rglob("*.json")) - before
                     if p.name != "result.json" and _is_result_of(p, cell, framework))
        results_dir.mkdir(parents=True, exist_ok=True)
        for path in new:
            copies.append(Path(shutil.copy(path, results_dir / path.name)))
            print(f"-> {copies[-1]}", flush=True)
    return copies


def _is_result_of(path: Path, cell: tuple, framework: str) -> bool:
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return (isinstance(result, dict) and result.get("framework") == framework
            and tuple(result.get(key) for key in ("algorithm", "dataset", "way", "shot")) == tuple(cell))


def main(protocols: list[Protocol], chapter: str, argv=None) -> None:
    names = [p.name for p in protocols]
    parser = argparse.ArgumentParser(prog=f"python -m chapters.{chapter}.reproduce",
                                     description=f"The {chapter} chapter's reproduction table: status, commands, runs.")
    parser.add_argument("--framework", choices=FRAMEWORKS, default="torch")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--run", choices=names, help="train and test this protocol")
    action.add_argument("--next", action="store_true", help="run the first protocol not yet measured in --framework")
    action.add_argument("--commands", action="store_true", help="print every protocol's commands for --framework")
    parser.add_argument("--out", default="runs/repro", help="folder for the runs' checkpoints (resumed)")
    parser.add_argument("--results", default=str(RESULTS_DIR / chapter), help="where results files are copied")
    args = parser.parse_args(argv)
    results = load_results(RESULTS_DIR) if Path(RESULTS_DIR).exists() else []
    if Path(args.results).exists() and not Path(args.results).resolve().is_relative_to(RESULTS_DIR.resolve()):
        results += load_results(args.results)
    if args.commands:
        for protocol in protocols:
            print(f"# {protocol.name}")
            for test in protocol.tests.values():
                print(" ".join(protocol.command(args.framework, tuple(test), args.out)))
        return
    if not (args.run or args.next):
        print(status(protocols, results), end="")
        return
    require_framework(args.framework)
    if args.next:
        todo = [p for p in protocols if not is_done(p, args.framework, results)]
        if not todo:
            print(f"every {chapter} protocol is measured in {args.framework}")
            return
        protocol = todo[0]
    else:
        protocol = protocols[names.index(args.run)]
    run_protocol(protocol, args.framework, args.out, Path(args.results))
