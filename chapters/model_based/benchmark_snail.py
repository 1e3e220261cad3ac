"""Benchmark: seconds per SNAIL training iteration in each framework (``benchmark.py``: MANN's).

    python -m chapters.model_based.benchmark_snail                 # Omniglot 5-way 1-shot, one core
    python -m chapters.model_based.benchmark_snail --way 20 --shot 5

One iteration is what ``common.training`` calls once per episode: a forward pass, the gradients and
one optimizer step, PyTorch eagerly, TensorFlow inside ``tf.function``, Keras through its compiled
``train_on_batch`` (each of the two also with XLA's ``jit_compile``, as a second row). Every learner trains on the
same episodes; the first few steps are not timed (tracing, allocation). The table gives CPU seconds
(one thread on one core: what a free core would take) beside wall-clock seconds. Writes
``results/model_based/timing_snail_<way>w<shot>s.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os

from common.cli import FRAMEWORKS
from common.data import load_dataset
from common.episodes import EpisodeSampler
from common.results import RESULTS_DIR
from common.timing import benchmark_summary, pin_to_one_core, seconds_per_step, write_benchmark


def snail_learners(args, dataset, sampler):
    """(label, framework, train_step) of SNAIL in each framework; TensorFlow also with XLA."""
    import tensorflow as tf

    from chapters.model_based.snail import build_learner

    for framework in FRAMEWORKS:
        learner = build_learner(framework, dataset.image_shape[-1], args.way, args.shot, sampler.episode(0),
                                1e-3, None, 0)
        yield framework, framework, learner.train_step
        if framework == "tf":
            xla = build_learner("tf", dataset.image_shape[-1], args.way, args.shot, sampler.episode(0), 1e-3, None, 0)
            xla._train_step = tf.function(xla._step, jit_compile=True)
            yield "tf (XLA)", framework, xla.train_step
        if framework == "keras":
            xla = build_learner("keras", dataset.image_shape[-1], args.way, args.shot, sampler.episode(0), 1e-3, None, 0)
            xla.model.compile(optimizer=xla.model.optimizer, jit_compile=True)
            yield "keras (XLA)", framework, xla.train_step


def snail_sampler(args, dataset):
    from chapters.model_based.snail import ShuffledSupport
    return ShuffledSupport(EpisodeSampler(dataset, args.way, args.shot, args.query, seed=0))


# algorithm -> (its episodes, its learners, the default setting)
ALGORITHMS = {"snail": (snail_sampler, snail_learners, {"way": 5, "shot": 1, "query": 5})}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m chapters.model_based.benchmark_snail",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--algorithm", choices=sorted(ALGORITHMS), default="snail")
    parser.add_argument("--way", type=int)
    parser.add_argument("--shot", type=int)
    parser.add_argument("--query", type=int)
    parser.add_argument("--iterations", type=int, default=20, help="timed iterations per learner")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS_DIR / "model_based"))
    args = parser.parse_args(argv)
    make_sampler, learners, defaults = ALGORITHMS[args.algorithm]
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    pin_to_one_core()
    dataset = load_dataset("omniglot", "train")
    sampler = make_sampler(args, dataset)
    rows = []
    for label, framework, train_step in learners(args, dataset, sampler):
        cpu, wall = seconds_per_step(train_step, sampler.episode, args.warmup, args.iterations)
        rows.append({"learner": label, "framework": framework, "cpu_seconds_per_iteration": round(cpu, 4),
                     "wall_seconds_per_iteration": round(wall, 4)})
        print(f"{args.algorithm} {label:<9} {cpu:.4f} s of CPU ({wall:.4f} s wall-clock) per iteration", flush=True)

    setting = f"omniglot {args.way}-way {args.shot}-shot {args.query}-query"
    summary = benchmark_summary(f"{args.algorithm}_training_speed", setting, rows, load_average=os.getloadavg()[0])
    cpu = summary["machine"]
    table = [f"Seconds per training iteration of {args.algorithm}, {setting}, one core of {cpu['cpu']} "
             f"({cpu['vector']}; load average {summary['load_average']:.1f} when it started) "
             f"(`{summary['command']}`):", "",
             "| learner | CPU s/iteration | wall-clock s/iteration |", "|---|---:|---:|"]
    table += [f"| {row['learner']} | {row['cpu_seconds_per_iteration']:.4f} | {row['wall_seconds_per_iteration']:.4f} |"
              for row in rows]
    write_benchmark(args.out, f"timing_{args.algorithm}_{args.way}w{args.shot}s", summary, table)


if __name__ == "__main__":
    from common.cli import run

    run(main)
