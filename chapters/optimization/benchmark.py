"""Benchmark: seconds and peak memory per MAML meta-iteration, per framework, second vs first order,
beside a reference step written with the ``higher`` library (PyTorch) where it is installed.

    python -m chapters.optimization.benchmark          # Omniglot 5-way 1-shot, meta-batch 32, one core
    pip install higher==0.2.1                          # (optional) adds the reference row

The setting is MAML's Omniglot protocol (Conv-4 with 64 filters, one inner step with α = 0.4, one
query per class as in Finn et al.'s code, Adam); every learner sees the same meta-batches, and the
first few meta-iterations are not timed (tracing, allocation). Each measurement runs in a fresh
process pinned to one core; its peak memory is the process's peak resident set (``ru_maxrss``)
minus what it held with the learner built and the data loaded, before the first meta-iteration:
what meta-iterations need (for TensorFlow, with its traced graphs), not the size of the framework.
Writes
``results/optimization/timing.json`` and ``timing.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from common.cli import FRAMEWORKS
from common.results import RESULTS_DIR, current_command, git_commit, machine, versions

VARIANTS = [(framework, order) for framework in FRAMEWORKS for order in ("second", "first")]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def higher_learner(way: int, inner_lr: float, meta_lr: float):
    """A plain MAML step with ``higher`` (Grefenstette et al. 2019): an ``nn.Module`` Conv-4 whose
    BatchNorm keeps no running statistics, made functional by ``higher.innerloop_ctx``."""
    import higher
    import torch
    from torch import nn

    from common.adapters import to_torch

    blocks = [nn.Sequential(nn.Conv2d(c, 64, 3, padding=1), nn.BatchNorm2d(64, track_running_stats=False),
                            nn.ReLU(), nn.MaxPool2d(2)) for c in (1, 64, 64, 64)]
    model = nn.Sequential(*blocks, nn.Flatten(), nn.Linear(64, way))
    meta_optimizer = torch.optim.Adam(model.parameters(), lr=meta_lr)
    inner_optimizer = torch.optim.SGD(model.parameters(), lr=inner_lr)

    class Reference:
        def meta_step(self, meta_batch):
            support_x, support_y, query_x, query_y = to_torch(meta_batch)
            meta_optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for t in range(len(support_x)):
                with higher.innerloop_ctx(model, inner_optimizer, copy_initial_weights=False) as (fmodel, diffopt):
                    diffopt.step(nn.functional.cross_entropy(fmodel(support_x[t]), support_y[t]))
                    loss = nn.functional.cross_entropy(fmodel(query_x[t]), query_y[t]) / len(support_x)
                    loss.backward()  # per task: the graph of one task at a time, as in our loop
                    total += loss.item()
            meta_optimizer.step()
            return {"loss": total}

    return Reference()


def measure(variant: str, args) -> dict:
    """One row: build the learner, warm up, time ``args.iterations`` meta-iterations."""
    from chapters.optimization.train import build_learner
    from common.data import load_dataset
    from common.episodes import EpisodeSampler, MetaBatches

    dataset = load_dataset("omniglot", "train")
    batches = MetaBatches(EpisodeSampler(dataset, args.way, args.shot, args.query, seed=0), args.meta_batch)
    framework, order = variant.split("-")
    if framework == "higher":
        learner = higher_learner(args.way, args.inner_lr, 1e-3)
    else:
        settings = dict(inner_lr=args.inner_lr, inner_steps=1, test_inner_steps=1, meta_lr=1e-3,
                        transductive=True, first_order=order == "first")
        learner = build_learner("maml", framework, args.way, dataset.image_shape, 0, settings)
    batches.episode(0)
    at_rest = current_rss_mb()  # model, optimizer and data in memory, no meta-iteration run yet
    for index in range(args.warmup):
        learner.meta_step(batches.episode(index))
    start = time.perf_counter()
    for index in range(args.warmup, args.warmup + args.iterations):
        learner.meta_step(batches.episode(index))
    seconds = (time.perf_counter() - start) / args.iterations
    return {"variant": variant, "framework": framework, "order": order,
            "seconds_per_meta_iteration": round(seconds, 4),
            "peak_memory_mb": round(peak_rss_mb() - at_rest, 1), "peak_rss_mb": round(peak_rss_mb(), 1)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m chapters.optimization.benchmark",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--way", type=int, default=5)
    parser.add_argument("--shot", type=int, default=1)
    parser.add_argument("--query", type=int, default=1)
    parser.add_argument("--meta-batch", type=int, default=32)
    parser.add_argument("--inner-lr", type=float, default=0.4)
    parser.add_argument("--iterations", type=int, default=10, help="timed meta-iterations per row")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one variant in this process
    parser.add_argument("--out", default=str(RESULTS_DIR / "optimization"))
    args = parser.parse_args(argv)

    if args.one:
        if hasattr(os, "sched_setaffinity"):  # one core, like the other benchmarks: comparable figures
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        print(json.dumps(measure(args.one, args)))
        return

    variants = [f"{framework}-{order}" for framework, order in VARIANTS]
    try:
        import higher  # noqa: F401
        variants.append("higher-second")
    except ImportError:
        print("higher is not installed: no reference row (pip install higher==0.2.1 to add it)")
    rows = []
    passed = [f"--{name.replace('_', '-')}={getattr(args, name)}"
              for name in ("way", "shot", "query", "meta_batch", "inner_lr", "iterations", "warmup")]
    for variant in variants:
        done = subprocess.run([sys.executable, "-m", "chapters.optimization.benchmark", "--one", variant, *passed],
                              capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        if done.returncode:
            raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        row = rows[-1]
        print(f"{variant:<14} {row['seconds_per_meta_iteration']:.3f} s/meta-iteration, "
              f"+{row['peak_memory_mb']:.0f} MB peak", flush=True)

    setting = (f"Omniglot {args.way}-way {args.shot}-shot {args.query}-query, meta-batch {args.meta_batch}, "
               f"one inner step")
    summary = {"benchmark": "maml_meta_iteration", "setting": setting, "cores": 1, "rows": rows,
               "versions": versions(), "machine": machine(), "commit": git_commit(), "command": current_command()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "timing.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = [f"MAML meta-iterations, {setting}, one CPU core (`{summary['command']}`): seconds per "
             "meta-iteration, and the peak memory of the process above the learner at rest (TensorFlow's "
             "includes its traced graphs).", "",
             "| variant | framework | order | s / meta-iteration | peak memory (MB) |",
             "|---|---|---|---:|---:|"]
    for row in rows:
        table.append(f"| {row['variant']} | {row['framework']} | {row['order']} | "
                     f"{row['seconds_per_meta_iteration']:.3f} | {row['peak_memory_mb']:.0f} |")
    (out / "timing.md").write_text("\n".join(table) + "\n")
    print(f"wrote {out / 'timing.json'} and {out / 'timing.md'}")


if __name__ == "__main__":
    from common.cli import run

    run(main)
