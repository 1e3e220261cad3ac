"""Benchmark: what glibc's defaults cost a CPU training run, and what keeping freed memory saves.

    python -m tools.benchmark_allocator            # writes results/benchmarks/allocator.json and .md

Each framework trains ProtoNet on the same Omniglot 60-way 1-shot 5-query episodes (the chapter's
training setting) twice, in fresh processes pinned to one core: once with glibc's defaults
(``METALEARN_MALLOC=system``) and once with the settings of ``common/allocator.py``, which every
script now uses. Per timed episode it reports the seconds, the minor page faults (pages the
kernel had to zero-fill because freed memory went back to it) and the share of CPU time spent
in the kernel. The numbers the models compute are the same either way.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from common.allocator import OPT_OUT, SETTINGS, untuned_environment
from common.cli import FRAMEWORKS
from common.results import RESULTS_DIR
from common.timing import add_episode_arguments, benchmark_summary, pin_to_one_core, write_benchmark

MODES = ("system", "keep")  # glibc's defaults; common.allocator's settings


def measure(framework: str, args) -> dict:
    """One row, in this process: train ``args.episodes`` ProtoNet episodes after a warm-up."""
    from chapters.metric.train import build_learner
    from common.data import load_dataset
    from common.episodes import EpisodeSampler

    sampler = EpisodeSampler(load_dataset("omniglot", "train"), args.way, args.shot, args.query, seed=0)
    learner = build_learner("protonet", framework, 1, sampler.episode(0), 1e-3, None, 0)
    for index in range(args.warmup):
        learner.train_step(sampler.episode(index))
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for index in range(args.warmup, args.warmup + args.episodes):
        learner.train_step(sampler.episode(index))
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    kernel, user = after.ru_stime - before.ru_stime, after.ru_utime - before.ru_utime
    return {"framework": framework, "seconds_per_episode": round(seconds / args.episodes, 4),
            "page_faults_per_episode": round((after.ru_minflt - before.ru_minflt) / args.episodes),
            "kernel_share": round(kernel / (kernel + user), 3)}


def child_environment(mode: str) -> dict:
    """This environment with glibc's defaults (``system``: the opt-out) or without it (``keep``:
    ``common.cli.run`` then applies the allocator settings in the child)."""
    environment = untuned_environment()
    environment["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if mode == "system":
        environment[OPT_OUT] = "system"
    return environment


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.benchmark_allocator", description=__doc__.split("\n")[0])
    add_episode_arguments(parser, way=60, shot=1, query=5)
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one framework in this process
    parser.add_argument("--out", default=str(RESULTS_DIR / "benchmarks"))
    args = parser.parse_args(argv)

    if args.one:
        pin_to_one_core()  # like the other benchmarks
        print(json.dumps(measure(args.one, args)))
        return

    passed = [f"--{name}={getattr(args, name)}" for name in ("way", "shot", "query", "episodes", "warmup")]
    rows = []
    for framework in args.frameworks.split(","):
        for mode in MODES:
            done = subprocess.run([sys.executable, "-m", "tools.benchmark_allocator", "--one", framework, *passed],
                                  capture_output=True, text=True, env=child_environment(mode))
            if done.returncode:
                raise SystemExit(f"{framework} ({mode}) failed:\n{done.stderr[-3000:]}")
            rows.append({"mode": mode, **json.loads(done.stdout.strip().splitlines()[-1])})
            row = rows[-1]
            print(f"{framework:<6} {mode:<7} {row['seconds_per_episode']:.3f} s/episode, "
                  f"{row['page_faults_per_episode']:,} page faults/episode, "
                  f"{100 * row['kernel_share']:.0f}% of CPU time in the kernel", flush=True)

    setting = f"omniglot {args.way}-way {args.shot}-shot {args.query}-query, ProtoNet"
    summary = benchmark_summary("allocator", setting, rows, mallopt=SETTINGS)
    table = [f"Training episodes, {setting}, one core of {summary['machine']['cpu']} "
             f"(`{summary['command']}`): glibc's defaults against `common/allocator.py`'s settings.", "",
             "| framework | s/episode, glibc defaults | s/episode, memory kept | speed-up | "
             "page faults/episode (defaults / kept) | CPU time in the kernel (defaults / kept) |",
             "|---|---:|---:|---:|---:|---:|"]
    for framework in dict.fromkeys(row["framework"] for row in rows):
        system, keep = (next(r for r in rows if r["framework"] == framework and r["mode"] == m) for m in MODES)
        table.append(f"| {framework} | {system['seconds_per_episode']:.3f} | {keep['seconds_per_episode']:.3f} | "
                     f"{system['seconds_per_episode'] / keep['seconds_per_episode']:.2f}x | "
                     f"{system['page_faults_per_episode']:,} / {keep['page_faults_per_episode']:,} | "
                     f"{100 * system['kernel_share']:.0f}% / {100 * keep['kernel_share']:.0f}% |")
    write_benchmark(args.out, "allocator", summary, table)


if __name__ == "__main__":
    from common.cli import run

    run(main)
