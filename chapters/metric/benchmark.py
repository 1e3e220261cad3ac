"""Benchmark: seconds per training episode of each metric learner in each framework, side by side.

    python -m chapters.metric.benchmark                     # Omniglot 60-way 1-shot 5-query, one core

Every learner trains on the same episodes (the paper's training setting for Omniglot 1-shot); the
first few steps are not timed (tracing, allocation). Writes ``results/metric/timing.json`` and
``results/metric/timing.md``.
"""

from __future__ import annotations

import argparse

from chapters.metric.train import MODELS, build_learner
from common.backbones import conv4_embedding_size
from common.cli import FRAMEWORKS
from common.data import load_dataset
from common.episodes import EpisodeSampler
from common.results import RESULTS_DIR
from common.timing import add_episode_arguments, benchmark_summary, pin_to_one_core, seconds_per_step, write_benchmark


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m chapters.metric.benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="omniglot")
    add_episode_arguments(parser, way=60, shot=1, query=5)
    parser.add_argument("--algorithms", default=",".join(MODELS))
    parser.add_argument("--out", default=str(RESULTS_DIR / "metric"))
    args = parser.parse_args(argv)

    pin_to_one_core()
    dataset = load_dataset(args.dataset, "train")
    sampler = EpisodeSampler(dataset, args.way, args.shot, args.query, seed=0)
    options = {"siamese": {"embedding_size": conv4_embedding_size(dataset.image_shape)}}
    rows = []
    for algorithm in args.algorithms.split(","):
        for framework in FRAMEWORKS:
            learner = build_learner(algorithm, framework, dataset.image_shape[-1], sampler.episode(0),
                                    1e-3, None, 0, **options.get(algorithm, {}))
            _, seconds = seconds_per_step(learner.train_step, sampler.episode, args.warmup, args.episodes)
            rows.append({"algorithm": algorithm, "framework": framework, "seconds_per_episode": round(seconds, 4)})
            print(f"{algorithm:<9} {framework:<6} {seconds:.3f} s/episode")

    setting = f"{args.dataset} {args.way}-way {args.shot}-shot {args.query}-query"
    summary = benchmark_summary("metric_training_speed", setting, rows)
    cpu = summary["machine"]
    table = [f"Seconds per training episode, {setting}, one core of {cpu['cpu']} ({cpu['vector']}), "
             f"`train_step` called in a loop (Keras' too, without `fit`) (`{summary['command']}`):", "",
             "| algorithm | " + " | ".join(FRAMEWORKS) + " |", "|---|" + "---:|" * len(FRAMEWORKS)]
    for algorithm in dict.fromkeys(row["algorithm"] for row in rows):
        cells = [f"{row['seconds_per_episode']:.3f}" for row in rows if row["algorithm"] == algorithm]
        table.append(f"| {algorithm} | " + " | ".join(cells) + " |")
    write_benchmark(args.out, "timing", summary, table)


if __name__ == "__main__":
    from common.cli import run

    run(main)
