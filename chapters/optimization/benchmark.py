"""Benchmark: seconds and peak memory per MAML meta-iteration, per framework, second vs first order,
beside a reference step written with the ``higher`` library (PyTorch) where it is installed, and
how far each stands from the hardware: the work of one meta-iteration in floating-point operations,
the rate achieved, and the float32 matrix-multiply rate of the same core.

    python -m chapters.optimization.benchmark                      # Omniglot 5-way 1-shot, meta-batch 32, one core
    python -m chapters.optimization.benchmark --backbone strided   # the network of Finn et al.'s code
    pip install higher==0.2.1                                      # (optional) adds the reference row

The setting is MAML's Omniglot protocol (Conv-4 with 64 filters, one inner step with α = 0.4, one
query per class as in Finn et al.'s code, Adam); every learner sees the same meta-batches, and the
first few meta-iterations are not timed (tracing, allocation). Each measurement runs in a fresh
process pinned to one core; its peak memory is the process's peak resident set (``ru_maxrss``)
minus what it held with the learner built and the data loaded, before the first meta-iteration:
what meta-iterations need (for TensorFlow, with its traced graphs), not the size of the framework.

**Work.** The multiply-adds of one image's forward pass are counted from the network (each
convolution's output positions x 9 x input x output channels, and the head); a backward pass costs
two forward passes (the gradients with respect to the input and to the weights), and second order
adds the backward of the support set's backward (two more backward passes). So a task costs
3 (S + Q) forward passes first order and 3 (S + Q) + 4 S second order, for S support and Q query
images; two floating-point operations per multiply-add. BatchNorm, ReLU and pooling are left out:
the rate is that of the convolutions, the peak the same core's float32 matrix multiply
(``torch.mm`` of 2048 x 2048 matrices, one thread, the best of five).

Writes ``results/optimization/timing.json`` and ``timing.md`` (``--out``; the file names carry the
backbone when it is not max-pool: ``timing_strided.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from common.backbones import BACKBONES, conv4_embedding_size
from common.cli import FRAMEWORKS
from common.results import RESULTS_DIR
from common.timing import benchmark_summary, pin_to_one_core, write_benchmark

VARIANTS = [(framework, order) for framework in FRAMEWORKS for order in ("second", "first")]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def conv4_macs(image_shape, way: int, hidden: int = 64, depth: int = 4, backbone: str = "maxpool") -> int:
    """Multiply-adds of one image's forward pass through MAML's Conv-4 and its ``way``-output head:
    28x28 Omniglot, 5-way: 9,834,560 with max-pooling, 2,656,576 strided (3.7x fewer)."""
    height, width, channels = image_shape
    macs = 0
    for _ in range(depth):
        if backbone == "strided":  # stride 2, "SAME": the output has half the positions, rounded up
            height, width = -(-height // 2), -(-width // 2)
            macs += height * width * 9 * channels * hidden
        else:  # stride 1, then a 2x2 max-pool halves the map, rounded down
            macs += height * width * 9 * channels * hidden
            height, width = height // 2, width // 2
        channels = hidden
    return macs + conv4_embedding_size(image_shape, hidden, depth, backbone) * way


def meta_iteration_flops(args, order: str) -> float:
    """Floating-point operations of one meta-iteration (see the module docstring for the counting)."""
    support, query = args.way * args.shot, args.way * args.query
    passes = 3 * (support + query) + (4 * support if order == "second" else 0)
    return 2.0 * args.meta_batch * passes * conv4_macs((28, 28, 1), args.way, backbone=args.backbone)


def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """The float32 matrix-multiply rate of this core (one thread): the ceiling a convolution can reach."""
    import torch

    torch.set_num_threads(1)
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = min(_seconds(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * size ** 3 / best / 1e9


def _seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def higher_learner(way: int, inner_lr: float, meta_lr: float, backbone: str = "maxpool"):
    """A plain MAML step with ``higher`` (Grefenstette et al. 2019): an ``nn.Module`` Conv-4 whose
    BatchNorm keeps no running statistics, made functional by ``higher.innerloop_ctx``. Strided, its
    convolutions pad one pixel on every side (``nn.Conv2d``'s padding) instead of "SAME": the same
    work, the windows shifted by a pixel."""
    import higher
    import torch
    from torch import nn

    from common.adapters import to_torch

    strided = backbone == "strided"
    blocks = [nn.Sequential(nn.Conv2d(c, 64, 3, stride=2 if strided else 1, padding=1),
                            nn.BatchNorm2d(64, track_running_stats=False), nn.ReLU(),
                            nn.AdaptiveAvgPool2d(1) if strided and c == 64 and i == 3 else
                            nn.Identity() if strided else nn.MaxPool2d(2))
              for i, c in enumerate((1, 64, 64, 64))]
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
                    loss.backward()  # per task: the graph of one task at a time, higher's usual pattern
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
    if framework == "peak":
        return {"variant": variant, "matmul_gflops": round(matmul_peak_gflops(), 1)}
    if framework == "higher":
        learner = higher_learner(args.way, args.inner_lr, 1e-3, args.backbone)
    else:
        settings = dict(inner_lr=args.inner_lr, inner_steps=1, test_inner_steps=1, meta_lr=1e-3,
                        transductive=True, first_order=order == "first")
        learner = build_learner("maml", framework, args.way, dataset.image_shape, 0, settings,
                                backbone=args.backbone)
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
            "gflops_per_second": round(meta_iteration_flops(args, order) / seconds / 1e9, 1),
            "peak_memory_mb": round(peak_rss_mb() - at_rest, 1), "peak_rss_mb": round(peak_rss_mb(), 1)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m chapters.optimization.benchmark",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--way", type=int, default=5)
    parser.add_argument("--shot", type=int, default=1)
    parser.add_argument("--query", type=int, default=1)
    parser.add_argument("--meta-batch", type=int, default=32)
    parser.add_argument("--inner-lr", type=float, default=0.4)
    parser.add_argument("--backbone", choices=BACKBONES, default="maxpool",
                        help="Conv-4 blocks (see chapters/optimization/train.py --backbone)")
    parser.add_argument("--iterations", type=int, default=10, help="timed meta-iterations per row")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one variant in this process
    parser.add_argument("--out", default=str(RESULTS_DIR / "optimization"))
    args = parser.parse_args(argv)

    if args.one:
        pin_to_one_core()  # like the other benchmarks: comparable figures
        print(json.dumps(measure(args.one, args)))
        return

    variants = [f"{framework}-{order}" for framework, order in VARIANTS]
    try:
        import higher  # noqa: F401
        variants.append("higher-second")
    except ImportError:
        print("higher is not installed: no reference row (pip install higher==0.2.1 to add it)")
    passed = [f"--{name.replace('_', '-')}={getattr(args, name)}"
              for name in ("way", "shot", "query", "meta_batch", "inner_lr", "backbone", "iterations", "warmup")]

    def one(variant: str) -> dict:  # a fresh process pinned to one core
        done = subprocess.run([sys.executable, "-m", "chapters.optimization.benchmark", "--one", variant, *passed],
                              capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        if done.returncode:
            raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    peak = one("peak-")["matmul_gflops"]
    print(f"float32 matmul on one core: {peak:.0f} GFLOP/s", flush=True)
    rows = []
    for variant in variants:
        row = one(variant)
        row["fraction_of_peak"] = round(row["gflops_per_second"] / peak, 3)
        rows.append(row)
        print(f"{variant:<14} {row['seconds_per_meta_iteration']:.3f} s/meta-iteration, "
              f"{row['gflops_per_second']:.0f} GFLOP/s ({row['fraction_of_peak']:.0%} of peak), "
              f"+{row['peak_memory_mb']:.0f} MB peak", flush=True)
    reference = next((row["seconds_per_meta_iteration"] for row in rows if row["framework"] == "higher"), None)
    for row in rows:
        if reference is not None and row["order"] == "second":
            row["ratio_to_higher"] = round(row["seconds_per_meta_iteration"] / reference, 2)

    setting = (f"Omniglot {args.way}-way {args.shot}-shot {args.query}-query, meta-batch {args.meta_batch}, "
               f"one inner step, {args.backbone} Conv-4")
    summary = benchmark_summary(
        "maml_meta_iteration", setting, rows, backbone=args.backbone, matmul_peak_gflops=peak,
        gflop_per_meta_iteration={order: round(meta_iteration_flops(args, order) / 1e9, 2)
                                  for order in ("second", "first")})
    table = [f"MAML meta-iterations, {setting}, one CPU core (`{summary['command']}`): seconds per "
             "meta-iteration; the rate of its convolutions' floating-point operations "
             f"({summary['gflop_per_meta_iteration']['second']} GFLOP second order, "
             f"{summary['gflop_per_meta_iteration']['first']} first order) beside the core's float32 "
             f"matrix-multiply rate ({peak:.0f} GFLOP/s); second order against the `higher` reference; "
             "the peak memory of the process above the learner at rest (TensorFlow's includes its traced "
             f"graphs). Machine: {summary['machine']['cpu']} ({summary['machine']['vector']}).", "",
             "| variant | framework | order | s / meta-iteration | GFLOP/s | of peak | vs higher | peak memory (MB) |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        ratio = f"{row['ratio_to_higher']:.2f}x" if "ratio_to_higher" in row else "–"
        table.append(f"| {row['variant']} | {row['framework']} | {row['order']} | "
                     f"{row['seconds_per_meta_iteration']:.3f} | {row['gflops_per_second']:.0f} | "
                     f"{row['fraction_of_peak']:.0%} | {ratio} | {row['peak_memory_mb']:.0f} |")
    write_benchmark(args.out, "timing" if args.backbone == "maxpool" else f"timing_{args.backbone}", summary, table)


if __name__ == "__main__":
    from common.cli import run

    run(main)
