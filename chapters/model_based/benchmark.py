"""Benchmark: seconds per training iteration of the model-based learners in each framework.

    python -m chapters.model_based.benchmark                     # MANN and its LSTM baseline, one core

One iteration is one update on a batch of 16 online Omniglot episodes of 50 steps at the paper's
sizes (Santoro et al.: 200 LSTM units, 128 x 40 memory, 4 read heads). TensorFlow is timed with
and without XLA (``jit_compile``); Keras without: the gradient of ``keras.ops.scan``'s while loop
does not compile with XLA ("XLA compilation requires a fixed tensor list size"). The first few
iterations are not timed (tracing, compilation). Writes ``results/model_based/timing_<algorithms>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse

from chapters.model_based.mann import PAPER, MANNConfig, SequenceSampler, build_learner
from common.cli import FRAMEWORKS
from common.data import load_dataset
from common.episodes import MetaBatches
from common.results import RESULTS_DIR
from common.timing import benchmark_summary, pin_to_one_core, seconds_per_step, write_benchmark


def learner_for(algorithm: str, framework: str, jit_compile: bool):
    learner = build_learner(framework, algorithm, MANNConfig(model=algorithm).network(), seed=0)
    if framework == "tf" and jit_compile:
        from chapters.model_based import mann_tf
        learner = mann_tf.SequenceLearner(learner.model, jit_compile=True)
    return learner


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m chapters.model_based.benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations per learner")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--algorithms", default="mann,lstm")
    parser.add_argument("--out", default=str(RESULTS_DIR / "model_based"))
    args = parser.parse_args(argv)

    pin_to_one_core()
    import torch

    torch.set_num_threads(1)  # one thread on the one core: two threads sharing it wait on each other
    dataset = load_dataset("omniglot", "trainval", image_size=PAPER["image_size"])
    batches = MetaBatches(SequenceSampler(dataset, PAPER["way"], PAPER["presentations"], seed=0, shift=2.0, angle=10.0),
                          PAPER["batch"])
    algorithms = args.algorithms.split(",")
    rows = []
    for algorithm in algorithms:
        for framework in FRAMEWORKS:
            for jit_compile in ((False, True) if framework == "tf" else (False,)):
                cpu, wall = seconds_per_step(learner_for(algorithm, framework, jit_compile).train_step,
                                             batches.episode, args.warmup, args.iterations)
                rows.append({"algorithm": algorithm, "framework": framework, "jit_compile": jit_compile,
                             "seconds_per_iteration": round(wall, 4), "cpu_seconds_per_iteration": round(cpu, 4)})
                print(f"{algorithm:<5} {framework:<6} {'XLA' if jit_compile else '   '} {wall:.3f} s/iteration "
                      f"({cpu:.3f} s of CPU)")

    setting = (f"omniglot, batches of {PAPER['batch']} episodes x {PAPER['way'] * PAPER['presentations']} steps, "
               f"paper sizes")
    summary = benchmark_summary("model_based_training_speed", setting, rows)
    cpu = summary["machine"]
    table = [f"CPU seconds per training iteration (wall-clock seconds in the JSON), {setting}, one thread on one "
             f"core of {cpu['cpu']} ({cpu['vector']}), `train_step` called in a loop (Keras' too, without `fit`) "
             f"(`{summary['command']}`):", "",
             "| algorithm | torch | tf | tf (XLA) | keras |", "|---|---:|---:|---:|---:|"]
    for algorithm in algorithms:
        cells = [f"{row['cpu_seconds_per_iteration']:.3f}" for row in rows if row["algorithm"] == algorithm]
        table.append(f"| {algorithm} | " + " | ".join(cells) + " |")
    write_benchmark(args.out, "timing_" + "_".join(algorithms), summary, table)


if __name__ == "__main__":
    from common.cli import run

    run(main)
