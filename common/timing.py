"""What the book's speed benchmarks share: one core, timed steps after a warm-up, a JSON and a table.

Each benchmark script (``chapters/<part>/benchmark*.py``) times training steps of its learners in
the three frameworks. So that its figures compare across frameworks and machines, it runs on one
core (:func:`pin_to_one_core`), leaves the first steps untimed (tracing, compilation, allocation)
and reports CPU seconds beside wall-clock seconds (:func:`seconds_per_step`): on a core that other
processes share, the wall clock counts them too, while the process's CPU time is what a free core
would take. Each run writes ``<name>.json`` (the numbers, the machine, the versions and the command
that produced them) and ``<name>.md`` (the table a chapter includes) with :func:`write_benchmark`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from common.results import current_command, git_commit, machine, versions


def add_episode_arguments(parser, way: int, shot: int, query: int, episodes: int = 20, warmup: int = 3) -> None:
    """A benchmark's episodes: their size (``--way``, ``--shot``, ``--query``), and how many training
    steps are timed (``--episodes``) after ``--warmup`` untimed ones."""
    parser.add_argument("--way", type=int, default=way)
    parser.add_argument("--shot", type=int, default=shot)
    parser.add_argument("--query", type=int, default=query)
    parser.add_argument("--episodes", type=int, default=episodes, help="timed episodes per row")
    parser.add_argument("--warmup", type=int, default=warmup, help="untimed episodes before them")


def pin_to_one_core() -> None:
    """Run this process on one core (the lowest it may use), where the OS lets it choose."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def seconds_per_step(step, episode, warmup: int, steps: int) -> tuple[float, float]:
    """(CPU seconds, wall-clock seconds) per call of ``step(episode(index))``: ``warmup`` calls
    untimed, then ``steps`` timed ones, each on the next episode."""
    for index in range(warmup):
        step(episode(index))
    cpu, wall = time.process_time(), time.perf_counter()
    for index in range(warmup, warmup + steps):
        step(episode(index))
    return (time.process_time() - cpu) / steps, (time.perf_counter() - wall) / steps


def benchmark_summary(benchmark: str, setting: str, rows: list[dict], **extra) -> dict:
    """A benchmark's JSON: its rows, on one core, with what they depend on (versions, machine) and
    where they come from (commit, command)."""
    return {"benchmark": benchmark, "setting": setting, "cores": 1, "rows": rows, "versions": versions(),
            "machine": machine(), **extra, "commit": git_commit(), "command": current_command()}


def write_benchmark(out, name: str, summary: dict, table: list[str]) -> None:
    """Write ``out/<name>.json`` (the summary) and ``out/<name>.md`` (the table's lines)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / f"{name}.md").write_text("\n".join(table) + "\n")
    print(f"wrote {out / name}.json and .md")
