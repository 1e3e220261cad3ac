"""Benchmark: episodes per second of the shared sampler, on one CPU core.

    python -m tools.benchmark_sampler                # prints a table, writes results/benchmarks/episode_sampler.json

Sampling must never be what a training run waits for. The target is 10,000 Omniglot 5-way 1-shot
15-query episodes per second on one core; 20-way 5-shot episodes carry 8x more pixels. The figure
counts whole episodes as the models receive them (float32 arrays, labels, per-episode generator),
and each framework adapter is timed too, since that is what the training scripts actually read.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common.data import load_dataset
from common.episodes import EpisodeSampler
from common.results import RESULTS_DIR, current_command, git_commit, machine, versions
from common.timing import pin_to_one_core

SETTINGS = [(5, 1, 15), (20, 5, 15)]  # (way, shot, query)


def episodes_per_second(make_iterator, seconds: float) -> float:
    """Consume episodes for about ``seconds``; return the rate (after a short warm-up)."""
    iterator = make_iterator()
    for _ in range(50):
        next(iterator)
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            next(iterator)
        count += 100
    return count / elapsed


def adapters(sampler):
    """name -> function returning an endless iterator of that adapter's episodes."""
    def torch_iter():
        from common.adapters import TorchEpisodes
        return iter(TorchEpisodes(sampler))

    def tf_iter():
        from common.adapters import tf_dataset
        return iter(tf_dataset(sampler))

    def keras_iter():
        from common.adapters import keras_episodes
        data = keras_episodes(sampler, count=10**9)
        return (data[i] for i in range(10**9))

    return {"numpy": lambda: iter(sampler), "torch": torch_iter, "tf": tf_iter, "keras": keras_iter}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.benchmark_sampler", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="omniglot")
    parser.add_argument("--split", default="train")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per figure")
    parser.add_argument("--frameworks", default="numpy,torch,tf,keras",
                        help="comma-separated subset of numpy,torch,tf,keras")
    parser.add_argument("--out", default=str(RESULTS_DIR / "benchmarks" / "episode_sampler.json"))
    args = parser.parse_args(argv)

    pin_to_one_core()  # the target is per core: measure on exactly one
    dataset = load_dataset(args.dataset, args.split, args.data_dir)
    print(f"{dataset}; one core; {args.seconds:.0f} s per figure")
    rows = []
    for way, shot, query in SETTINGS:
        sampler = EpisodeSampler(dataset, way, shot, query, seed=0)
        for name, make_iterator in adapters(sampler).items():
            if name not in args.frameworks.split(","):
                continue
            rate = episodes_per_second(make_iterator, args.seconds)
            rows.append({"way": way, "shot": shot, "query": query, "adapter": name,
                         "episodes_per_second": round(rate, 1)})
            print(f"  {way:>2}-way {shot}-shot {query}-query  {name:<6} {rate:>9,.0f} episodes/s")

    summary = {"benchmark": "episode_sampler", "dataset": args.dataset, "split": args.split,
               "cores": 1, "rows": rows,
               "versions": versions(), "machine": machine(), "commit": git_commit(), "command": current_command()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    from common.cli import run

    run(main)
