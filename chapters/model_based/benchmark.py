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
import json
import os
import time
from pathlib import Path

from chapters.model_based.mann import PAPER, SequenceSampler, build_learner
from common.cli import FRAMEWORKS
from common.data import load_dataset
from common.episodes import MetaBatches
from common.results import RESULTS_DIR, current_command, git_commit, machine, versions

SETTINGS = {"mann": {key: PAPER[key] for key in ("way", "image_size", "controller", "memory_rows", "memory_width",
                                                 "read_heads", "gamma")},
            "lstm": {key: PAPER[key] for key in ("way", "image_size", "controller")}}


def seconds_per_iteration(learner, batches, warmup: int, iterations: int) -> tuple[float, float]:
    """(wall-clock, CPU) seconds per training iteration. On a core shared with other processes the
    wall clock measures the neighbours too; the process's CPU time is what a free core would take
    (with one thread, as here)."""
    for index in range(warmup):
        learner.train_step(batches.episode(index))
    wall, cpu = time.perf_counter(), time.process_time()
    for index in range(warmup, warmup + iterations):
        learner.train_step(batches.episode(index))
    return (time.perf_counter() - wall) / iterations, (time.process_time() - cpu) / iterations


def learner_for(algorithm: str, framework: str, jit_compile: bool):
    learner = build_learner(framework, algorithm, SETTINGS[algorithm], seed=0)
    if framework == "tf" and jit_compile:
        from chapters.model_based import mann_tf
        learner = mann_tf.SequenceLearner(learner.network, jit_compile=True)
    return learner


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m chapters.model_based.benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations per learner")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--algorithms", default="mann,lstm")
    parser.add_argument("--out", default=str(RESULTS_DIR / "model_based"))
    args = parser.parse_args(argv)

    if hasattr(os, "sched_setaffinity"):  # one core, like the other benchmarks: comparable figures
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
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
                wall, cpu = seconds_per_iteration(learner_for(algorithm, framework, jit_compile), batches,
                                                  args.warmup, args.iterations)
                rows.append({"algorithm": algorithm, "framework": framework, "jit_compile": jit_compile,
                             "seconds_per_iteration": round(wall, 4), "cpu_seconds_per_iteration": round(cpu, 4)})
                print(f"{algorithm:<5} {framework:<6} {'XLA' if jit_compile else '   '} {wall:.3f} s/iteration "
                      f"({cpu:.3f} s of CPU)")

    setting = (f"omniglot, batches of {PAPER['batch']} episodes x {PAPER['way'] * PAPER['presentations']} steps, "
               f"paper sizes")
    summary = {"benchmark": "model_based_training_speed", "setting": setting, "cores": 1, "rows": rows,
               "versions": versions(), "machine": machine(), "commit": git_commit(), "command": current_command()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "timing_" + "_".join(algorithms)
    (out / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    cpu = summary["machine"]
    table = [f"CPU seconds per training iteration (wall-clock seconds in the JSON), {setting}, one thread on one "
             f"core of {cpu['cpu']} ({cpu['vector']}), `train_step` called in a loop (Keras' too, without `fit`) "
             f"(`{summary['command']}`):", "",
             "| algorithm | torch | tf | tf (XLA) | keras |", "|---|---:|---:|---:|---:|"]
    for algorithm in algorithms:
        cells = [f"{row['cpu_seconds_per_iteration']:.3f}" for row in rows if row["algorithm"] == algorithm]
        table.append(f"| {algorithm} | " + " | ".join(cells) + " |")
    (out / f"{name}.md").write_text("\n".join(table) + "\n")
    print(f"wrote {out / (name + '.json')} and {out / (name + '.md')}")


if __name__ == "__main__":
    from common.cli import run

    run(main)
