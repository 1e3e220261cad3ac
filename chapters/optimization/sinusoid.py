"""Sinusoid regression (Finn, Abbeel & Levine 2017, Sec. 5.1) with MAML, first-order MAML, Meta-SGD
or Reptile, in the framework of your choice.

    python -m chapters.optimization.sinusoid --framework torch --algorithm maml    --shot 10
    python -m chapters.optimization.sinusoid --framework tf    --algorithm fomaml  --shot 10
    python -m chapters.optimization.sinusoid --framework keras --algorithm metasgd --shot 5
    python -m chapters.optimization.sinusoid --framework torch --algorithm reptile --shot 10 --inner-steps 5 --meta-lr 1.0 --inner-lr 0.02

The defaults are MAML's protocol: the MLP 1-40-40-1 with ReLU, meta-batches of 25 tasks, one
inner gradient step with α = 0.01, Adam with β = 1e-3 as the meta-optimizer, the mean squared
error, 70,000 meta-iterations. Each training task has K support points and K query points (the
authors' code draws 2K points per task and splits them; ``--query`` changes it). Meta-SGD (Li et
al. 2017, Sec. 4.1) uses the same protocol and starts its learned rates α uniform in [0.005, 0.1].
Reptile (Nichol et al. 2018) takes ``--inner-steps`` plain gradient steps per task and moves θ a
fraction ε = ``--meta-lr`` of the way to the adapted weights (annealed linearly to 0 over the run).

Evaluation uses the 600 fixed test tasks of ``common.data.sinusoid.evaluation_tasks(K)``: K support
points and 100 query points each. From the meta-learned θ, the model takes 1 and 10 gradient
steps (α as in training; Meta-SGD's learned α) on the support points, and the query MSE is averaged
over the tasks (mean ± 95% CI). The number after ``--inner-steps`` steps (one, for MAML and
Meta-SGD), the setting the model was trained for, is the result's ``mse`` (Li et al. 2017,
Table 2 report 1.13 / 0.85 / 0.71 for MAML and 0.90 / 0.53 / 0.31 for Meta-SGD, K = 5 / 10 / 20);
the MSE before adaptation and after 10 steps (Finn et al. Fig. 3) are stored beside it. For scale:
on these test tasks the best function without adaptation (the average wave) has an MSE of
2.91 ± 0.22 (``chapters/foundations/README.md``, section 7).

A run writes into ``--out``/<algorithm>_<framework>_sinusoid_1w<K>s/: a checkpoint every
``--log-every`` meta-iterations (a second run with the same options resumes it), the results JSON
(the ``common.results`` format with ``"metric": "mse"``) and the meta-learned weights
(``weights.npz``, canonical: they load into any of the three frameworks).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from chapters.optimization.train import ALGORITHMS, make_learner
from common.cli import FRAMEWORKS, require_framework, run
from common.data.sinusoid import SinusoidTasks, evaluation_tasks
from common.devices import DEVICE_HELP, use_device
from common.evaluation import mean_ci95
from common.files import saving
from common.options import COUNT, POSITIVE, SEED, Parser, check_multiple, check_out
from common.results import make_result, with_this_commit, write_result
from common.training import (TrainingDiverged, after_failed_write, kept_checkpoint, read_checkpoint, refuse_past,
                             run_folder, write_checkpoint)
from common.weights import save_weights, to_canonical

TEST_QUERY = 100  # query points of each fixed test task (the default of evaluation_tasks)


def parse(argv=None) -> argparse.Namespace:
    """The options, each checked by its rule (``common.options``) before anything is built."""
    parser = Parser(prog="python -m chapters.optimization.sinusoid",
                    description="Meta-train and evaluate on sinusoid regression.")
    parser.add_argument("--framework", choices=FRAMEWORKS, default="torch", help="the framework that computes")
    parser.add_argument("--algorithm", choices=sorted(ALGORITHMS), default="maml", help="the meta-learner")
    parser.add_argument("--shot", type=COUNT, default=10, help="support points per task (K)")
    parser.add_argument("--query", type=COUNT, default=None, help="query points per training task (default: K)")
    parser.add_argument("--iterations", type=COUNT, default=70_000, help="meta-iterations (meta-batches)")
    parser.add_argument("--meta-batch", type=COUNT, default=25, help="tasks per meta-batch")
    parser.add_argument("--inner-lr", type=POSITIVE, default=0.01, help="α, the inner step size (not Meta-SGD)")
    parser.add_argument("--inner-steps", type=COUNT, default=1, help="inner gradient steps in meta-training")
    parser.add_argument("--meta-lr", type=POSITIVE, default=1e-3, help="β, Adam's learning rate (Reptile: ε)")
    parser.add_argument("--eval-steps", type=COUNT, default=10, help="most inner steps at evaluation")
    parser.add_argument("--test-tasks", type=COUNT, default=600, help="fixed test tasks the MSE is averaged over")
    parser.add_argument("--log-every", type=COUNT, default=1000,
                        help="print the mean meta-loss and checkpoint every N iterations (--iterations must be "
                             "a multiple)")
    parser.add_argument("--seed", type=SEED, default=0, help="draws the training tasks and the initial weights")
    parser.add_argument("--out", default="runs", help="folder for the run's checkpoint, results and weights")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    args = parser.parse_args(argv)
    args.query = args.query or args.shot
    check_multiple("--iterations", args.iterations, "--log-every", args.log_every, "meta-iterations")
    check_out(args.out)
    return args


def settings(args) -> dict:
    """The keyword arguments of the learner's class (recorded in the results)."""
    common = {"inner_steps": args.inner_steps, "meta_lr": args.meta_lr}
    if args.algorithm == "metasgd":
        return {**common, "inner_lr_range": (0.005, 0.1), "seed": args.seed}
    if args.algorithm == "reptile":
        return {**common, "inner_lr": args.inner_lr, "anneal_steps": args.iterations}
    return {**common, "inner_lr": args.inner_lr, "first_order": args.algorithm == "fomaml"}


def build_learner(args):
    """The learner of ``args.algorithm`` in ``args.framework`` around the MLP 1-40-40-1:
    ``meta_step(meta_batch)``, ``adaptation_curve(episode, steps)``, ``state()``, ``load_state()``, ``model``."""
    return make_learner(args.algorithm, args.framework, "SinusoidMLP", (), args.seed, settings(args), args.device)


class History:
    """The meta-loss of every iteration; every ``log_every`` iterations a summary and a checkpoint
    (with the run's ``identity``, which a resumed run must match, and ``commits``, those its
    iterations ran at, as in ``common/training.py``). The LSTM meta-learner's script uses it too."""

    def __init__(self, args, learner, folder: Path, identity: dict, points: list, wall_seconds: float,
                 commits: list):
        self.args, self.learner, self.folder, self.identity = args, learner, folder, identity
        self.window, self.points, self.wall_seconds, self.commits = [], points, wall_seconds, commits
        self.since = time.perf_counter()

    def step(self, index: int, loss: float) -> None:
        if not math.isfinite(loss):
            raise TrainingDiverged(f"the meta-loss became {loss} at iteration {index:,}; lower the learning "
                                   f"rates; {kept_checkpoint(self.folder / 'checkpoint.npz')}")
        self.window.append(loss)
        if (index + 1) % self.args.log_every == 0:
            self.wall_seconds += time.perf_counter() - self.since
            point = {"iteration": index + 1, "loss": float(np.mean(self.window)), "seconds": self.wall_seconds}
            self.points.append(point)
            self.window = []
            self.commits = with_this_commit(self.commits)
            write_checkpoint(self.folder / "checkpoint.npz", self.learner, self.identity, iteration=index + 1,
                             history=self.points, wall_seconds=self.wall_seconds, commits=self.commits)
            print(f"iteration {point['iteration']:>6,}: meta-loss {point['loss']:.3f} "
                  f"({point['seconds']:.0f} s)", flush=True)
            self.since = time.perf_counter()


def identity(args) -> dict:
    """What a checkpoint must match to be resumed (not the number of iterations, except for Reptile,
    whose annealing schedule depends on it)."""
    keys = ("framework", "algorithm", "shot", "query", "meta_batch", "inner_lr", "inner_steps", "meta_lr", "seed")
    found = {key: getattr(args, key) for key in keys}
    if args.algorithm == "reptile":
        found["iterations"] = args.iterations
    return found


def resume(args, learner, folder: Path, identity: dict) -> tuple[int, list, float, list]:
    """(iterations done, history, seconds, commits) from the run's checkpoint; (0, [], 0.0, []) if it
    has none (and an empty list of commits for a checkpoint written before they were kept).
    A checkpoint that has seen more than ``--iterations`` is refused: it would be reported as a
    model of fewer iterations than it has had."""
    path = folder / "checkpoint.npz"
    meta = read_checkpoint(path, learner, identity)
    if meta is None:
        return 0, [], 0.0, []
    refuse_past(path, meta["iteration"], args.iterations, "iterations", "meta-iterations")
    print(f"resuming {path} at iteration {meta['iteration']:,} of {args.iterations:,}")
    return (int(meta["iteration"]), list(meta["history"]), float(meta["wall_seconds"]),
            list(meta.get("commits", [])))


def train(learner, args, tasks: SinusoidTasks, history: History, start: int) -> None:
    """Meta-iterations start..N-1, meta-batch i being tasks i*B .. i*B + B - 1 in every framework."""
    if args.framework == "keras":
        import keras
        from common.adapters import keras_episodes

        class Log(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                history.step(start + batch, float(logs["loss"]))

        # shuffle=False: item i of the PyDataset is meta-batch start + i, as in the loops of torch and tf.
        learner.fit(keras_episodes(tasks, args.iterations - start, start=start, meta_batch_size=args.meta_batch),
                    epochs=1, shuffle=False, callbacks=[Log()], verbose=0)
    else:
        for index in range(start, args.iterations):
            history.step(index, learner.meta_step(tasks.meta_batch(index, args.meta_batch))["loss"])


def evaluate(learner, args) -> dict:
    """Query MSE (mean, 95% CI) over the fixed test tasks after 0, 1, inner-steps and eval-steps steps.

    A learned step can be fine for the one step it was trained for and diverge over ten (Meta-SGD's
    rates are tuned to a single step): a count of tasks whose MSE is not finite, with (None, None)
    for its mean and CI, says so instead of a NaN.
    """
    steps = max(args.eval_steps, args.inner_steps)
    curves = np.array([learner.adaptation_curve(episode, steps)
                       for episode in evaluation_tasks(args.shot, TEST_QUERY, args.test_tasks)])
    found = {}
    for k in sorted({0, 1, args.inner_steps, args.eval_steps}):
        diverged = int((~np.isfinite(curves[:, k])).sum())
        found[k] = (*mean_ci95(curves[:, k]), 0) if not diverged else (None, None, diverged)
    return found


def main(argv=None) -> dict:
    args = parse(argv)
    require_framework(args.framework)
    args.device = use_device(args.framework, args.device)
    tasks = SinusoidTasks(args.shot, args.query, seed=args.seed)
    learner = build_learner(args)
    folder = run_folder(args.out, args.algorithm, args.framework, "sinusoid", 1, args.shot, seed=args.seed)
    folder.mkdir(parents=True, exist_ok=True)
    run_identity = identity(args)
    start, points, wall_seconds, commits = resume(args, learner, folder, run_identity)
    print(f"{args.algorithm} ({args.framework}): {args.iterations:,} meta-iterations of {args.meta_batch} "
          f"{args.shot}-shot sinusoid tasks", flush=True)
    history = History(args, learner, folder, run_identity, points, wall_seconds, commits)
    if start < args.iterations:
        train(learner, args, tasks, history, start)
    mse = evaluate(learner, args)
    for steps, (mean, ci95, diverged) in mse.items():
        after = f"query MSE after {steps:>2} step{'s' if steps != 1 else ''}"
        print(f"{after}: {mean:.3f} ± {ci95:.3f}" if not diverged else
              f"{after}: diverged on {diverged} of {args.test_tasks} test tasks")
    k, most = args.inner_steps, args.eval_steps
    if mse[k][2]:
        raise TrainingDiverged(f"after {k} inner step(s), the trained step size diverges on {mse[k][2]} of "
                               f"{args.test_tasks} test tasks; lower --inner-lr or --meta-lr. The checkpoint "
                               f"is kept in {folder}.")

    metadata = {"algorithm": args.algorithm, "framework": args.framework, "model": "SinusoidMLP 1-40-40-1"}
    with saving(folder / "weights.npz", after_failed_write(folder / "checkpoint.npz")):
        save_weights(folder / "weights.npz", to_canonical(learner.model, args.framework), metadata)
    extra = {f"mse_after_{s}_steps": mse[s][0] for s in mse if s not in (0, k)}
    extra.update({f"mse_after_{s}_steps_ci95": mse[s][1] for s in mse if s not in (0, k)})
    extra.update({f"diverged_tasks_after_{s}_steps": mse[s][2] for s in mse if mse[s][2]})
    result = make_result(
        algorithm=args.algorithm, framework=args.framework, dataset="sinusoid", way=1, shot=args.shot,
        query=TEST_QUERY, train_query=args.query, train_episodes=args.iterations, metric="mse",
        mse=mse[k][0], mse_ci95=mse[k][1], adaptation_steps=k,
        mse_before_adaptation=mse[0][0], mse_before_adaptation_ci95=mse[0][1], **extra,
        test_tasks=args.test_tasks, wall_seconds=history.wall_seconds,
        seconds_per_episode=history.wall_seconds / args.iterations, seed=args.seed,
        options={"meta_batch": args.meta_batch, **settings(args)}, device=args.device, history=history.points,
        trained_at=history.commits)
    path = write_result(result, folder)
    after_most = (f"{mse[most][0]:.3f} ± {mse[most][1]:.3f}" if not mse[most][2] else
                  f"diverged on {mse[most][2]} tasks")
    print(f"{args.algorithm} ({args.framework}) sinusoid {args.shot}-shot: MSE {mse[k][0]:.3f} ± {mse[k][1]:.3f} "
          f"after {k} step{'s' if k != 1 else ''}, {after_most} after {most}; "
          f"{history.wall_seconds / args.iterations * 1000:.1f} ms per meta-iteration -> {path}")
    return result


if __name__ == "__main__":
    run(main)
