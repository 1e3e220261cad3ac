"""MAML on sinusoid regression (Finn, Abbeel & Levine 2017, Sec. 5.1), in the framework of your choice.

    python -m chapters.optimization.sinusoid --framework torch --shot 10 --iterations 70000
    python -m chapters.optimization.sinusoid --framework tf    --shot 10 --iterations 70000 --first-order
    python -m chapters.optimization.sinusoid --framework keras --shot 5  --iterations 70000

The defaults are the paper's: the MLP 1-40-40-1 with ReLU, meta-batches of 25 tasks, one inner
gradient step with α = 0.01, Adam with β = 1e-3 as the meta-optimizer, the mean squared error,
70,000 meta-iterations. Each training task has K support points and K query points (the
authors' code draws 2K points per task and splits them; ``--query`` changes it). ``--first-order``
trains first-order MAML (Sec. 5.2; reported as algorithm "fomaml").

Evaluation uses the 600 fixed test tasks of ``common.data.sinusoid.evaluation_tasks(K)``: K support
points and 100 query points each. From the meta-learned θ, the model takes 1 and 10 gradient
steps (α as in training) on the support points, and the query MSE is averaged over the tasks
(mean ± 95% CI). The number after one step, the setting MAML was trained for, is the result's
``mse`` (Li et al. 2017, Table 2 report 1.13 / 0.85 / 0.71 for K = 5 / 10 / 20); the MSE before
adaptation and after 10 steps (Finn et al. Fig. 3) are stored beside it. For scale: on these
test tasks the best function without adaptation (the average wave) has an MSE of 2.91 ± 0.22
(``chapters/foundations/README.md``, section 7).

A run writes into ``--out``/<algorithm>_<framework>_sinusoid_1w<K>s/: the results JSON (the
``common.results`` format with ``"metric": "mse"``) and the meta-learned weights
(``weights.npz``, canonical: they load into any of the three frameworks).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from common.cli import FRAMEWORKS, require_framework, run
from common.data.sinusoid import SinusoidTasks, evaluation_tasks
from common.errors import ConfigError
from common.evaluation import mean_ci95
from common.results import make_result, write_result
from common.training import TrainingDiverged
from common.weights import save_weights, to_canonical

TEST_QUERY = 100  # query points of each fixed test task (the default of evaluation_tasks)


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chapters.optimization.sinusoid",
                                     description="Train and evaluate MAML on sinusoid regression.")
    parser.add_argument("--framework", choices=FRAMEWORKS, default="torch")
    parser.add_argument("--shot", type=int, default=10, help="support points per task (K)")
    parser.add_argument("--query", type=int, default=None, help="query points per training task (default: K)")
    parser.add_argument("--iterations", type=int, default=70_000, help="meta-iterations (meta-batches)")
    parser.add_argument("--meta-batch", type=int, default=25, help="tasks per meta-batch")
    parser.add_argument("--inner-lr", type=float, default=0.01, help="α, the inner step size")
    parser.add_argument("--inner-steps", type=int, default=1, help="inner gradient steps in meta-training")
    parser.add_argument("--meta-lr", type=float, default=1e-3, help="β, Adam's learning rate")
    parser.add_argument("--first-order", action="store_true", help="first-order MAML (drop the Hessian term)")
    parser.add_argument("--eval-steps", type=int, default=10, help="most inner steps at evaluation")
    parser.add_argument("--test-tasks", type=int, default=600)
    parser.add_argument("--log-every", type=int, default=1000,
                        help="print the mean meta-loss every N iterations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs", help="folder for the run's results and weights")
    args = parser.parse_args(argv)
    args.query = args.query or args.shot
    for name in ("shot", "query", "iterations", "meta_batch", "eval_steps", "test_tasks", "log_every"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    return args


def build_learner(args):
    """The MAML learner of ``args.framework``: ``meta_step(meta_batch)``, ``adaptation_curve(episode,
    steps)`` and ``model``, with the same settings in every framework."""
    settings = dict(inner_lr=args.inner_lr, inner_steps=args.inner_steps, first_order=args.first_order)
    if args.framework == "torch":
        import torch
        from chapters.optimization import maml_torch
        torch.manual_seed(args.seed)
        return maml_torch.MAML(maml_torch.SinusoidMLP(), meta_lr=args.meta_lr, **settings)
    if args.framework == "tf":
        from chapters.optimization import maml_tf
        return maml_tf.MAML(maml_tf.SinusoidMLP(seed=args.seed), meta_lr=args.meta_lr, **settings)
    import keras
    from chapters.optimization import maml_keras
    from common.episodic_tf import Adam
    keras.utils.set_random_seed(args.seed)
    learner = maml_keras.MAML(maml_keras.SinusoidMLP(), **settings)
    learner.compile(optimizer=Adam(args.meta_lr, epsilon=1e-8))  # PyTorch's Adam formula and epsilon
    return learner


class History:
    """The meta-loss of every iteration, summarised every ``log_every`` iterations."""

    def __init__(self, log_every: int):
        self.log_every, self.window, self.points = log_every, [], []
        self.start = time.perf_counter()

    def step(self, index: int, loss: float) -> None:
        if not math.isfinite(loss):
            raise TrainingDiverged(f"the meta-loss became {loss} at iteration {index:,}; "
                                   f"lower --meta-lr or --inner-lr")
        self.window.append(loss)
        if (index + 1) % self.log_every == 0:
            point = {"iteration": index + 1, "loss": float(np.mean(self.window)),
                     "seconds": time.perf_counter() - self.start}
            self.points.append(point)
            self.window = []
            print(f"iteration {point['iteration']:>6,}: meta-loss {point['loss']:.3f} "
                  f"({point['seconds']:.0f} s)", flush=True)


def train(learner, args, tasks: SinusoidTasks) -> tuple[list, float]:
    """Meta-iterations 0..N-1, meta-batch i being tasks i*B .. i*B + B - 1 in every framework."""
    history = History(args.log_every)
    start = time.perf_counter()
    if args.framework == "keras":
        import keras
        from common.adapters import keras_episodes

        class Log(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                history.step(batch, float(logs["loss"]))

        # shuffle=False: item i of the PyDataset is meta-batch i, as in the loops of torch and tf.
        learner.fit(keras_episodes(tasks, args.iterations, meta_batch_size=args.meta_batch), epochs=1,
                    shuffle=False, callbacks=[Log()], verbose=0)
    else:
        for index in range(args.iterations):
            history.step(index, learner.meta_step(tasks.meta_batch(index, args.meta_batch)))
    return history.points, time.perf_counter() - start


def evaluate(learner, args) -> dict:
    """Query MSE (mean, 95% CI) over the fixed test tasks after 0, 1 and ``eval_steps`` inner steps."""
    curves = np.array([learner.adaptation_curve(episode, args.eval_steps)
                       for episode in evaluation_tasks(args.shot, TEST_QUERY, args.test_tasks)])
    return {steps: mean_ci95(curves[:, steps]) for steps in sorted({0, 1, args.eval_steps})}


def main(argv=None) -> dict:
    args = parse(argv)
    require_framework(args.framework)
    algorithm = "fomaml" if args.first_order else "maml"
    tasks = SinusoidTasks(args.shot, args.query, seed=args.seed)
    learner = build_learner(args)
    print(f"{algorithm} ({args.framework}): {args.iterations:,} meta-iterations of {args.meta_batch} "
          f"{args.shot}-shot sinusoid tasks", flush=True)
    history, wall_seconds = train(learner, args, tasks)
    mse = evaluate(learner, args)
    for steps, (mean, ci95) in mse.items():
        print(f"query MSE after {steps:>2} step{'s' if steps != 1 else ''}: {mean:.3f} ± {ci95:.3f}")

    folder = Path(args.out) / f"{algorithm}_{args.framework}_sinusoid_1w{args.shot}s"
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(folder / "weights.npz", to_canonical(learner.model, args.framework),
                 {"algorithm": algorithm, "framework": args.framework, "model": "SinusoidMLP 1-40-40-1"})
    steps = args.eval_steps
    fields = dict(
        algorithm=algorithm, framework=args.framework, dataset="sinusoid", way=1, shot=args.shot,
        query=TEST_QUERY, train_query=args.query, train_episodes=args.iterations, metric="mse",
        mse=mse[1][0], mse_ci95=mse[1][1], adaptation_steps=1,
        mse_before_adaptation=mse[0][0], mse_before_adaptation_ci95=mse[0][1],
        **{f"mse_after_{steps}_steps": mse[steps][0], f"mse_after_{steps}_steps_ci95": mse[steps][1]},
        test_tasks=args.test_tasks, wall_seconds=wall_seconds,
        seconds_per_episode=wall_seconds / args.iterations,
        seed=args.seed, options={"meta_batch": args.meta_batch, "inner_lr": args.inner_lr,
                                 "inner_steps": args.inner_steps, "meta_lr": args.meta_lr,
                                 "first_order": args.first_order},
        history=history)
    try:
        result = make_result(**fields)
        path = write_result(result, folder)
    except ConfigError as error:  # a results format without "metric": keep the numbers anyway
        result, path = fields, folder / "result.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"note: {error}; wrote a plain JSON instead")
    print(f"{algorithm} ({args.framework}) sinusoid {args.shot}-shot: MSE {mse[1][0]:.3f} ± {mse[1][1]:.3f} "
          f"after 1 step, {mse[steps][0]:.3f} ± {mse[steps][1]:.3f} after {steps}; "
          f"{wall_seconds / args.iterations * 1000:.1f} ms per meta-iteration -> {path}")
    return result


if __name__ == "__main__":
    run(main)
