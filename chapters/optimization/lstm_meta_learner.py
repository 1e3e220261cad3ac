"""The LSTM meta-learner (Ravi & Larochelle, ICLR 2017) on sinusoid regression (Finn et al. 2017,
Sec. 5.1), in the framework of your choice.

    python -m chapters.optimization.lstm_meta_learner --framework torch --shot 10 --iterations 2000 --steps 5
    python -m chapters.optimization.lstm_meta_learner --framework tf    --shot 10 --iterations 2000 --steps 5
    python -m chapters.optimization.lstm_meta_learner --framework keras --shot 10 --iterations 2000 --steps 5

The learner is the chapter's MLP 1-40-40-1 with ReLU (``networks_<framework>.SinusoidMLP``); the
meta-learner (``lstm_meta_learner_<framework>.py``) proposes each of its ``--steps`` updates on the
K support points of a task (full batch) and is trained with Adam (``--meta-lr``) on the query MSE
after the last one, over meta-batches of ``--meta-batch`` tasks with K query points each (as in
``sinusoid.py``). Ravi & Larochelle evaluated on mini-ImageNet only; the sinusoid protocol here is
the chapter's, so that the number sits beside MAML's.

Evaluation uses the 600 fixed test tasks of ``common.data.sinusoid.evaluation_tasks(K)`` (K
support points, 100 query points each): the meta-learner runs ``--steps`` updates from the learned
c_0 and the query MSE is averaged over the tasks (mean ± 95% CI). That is the result's ``mse``; the
MSE at c_0 before any update is stored beside it.

A run writes into ``--out``/lstm-meta-learner_<framework>_sinusoid_1w<K>s/: a checkpoint and a
point of the loss curve every ``--log-every`` meta-iterations (a second run with the same options
resumes it), the results JSON (the ``common.results`` format, ``"metric": "mse"``) and the
meta-learner's weights (``weights.npz``, canonical: they load into the meta-learner of any of the
three frameworks). Its run and training loop are ``sinusoid.py``'s (``common.training``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from chapters.optimization.sinusoid import meta_train, parse_checked, sinusoid_parser, sinusoid_run
from chapters.optimization.train import make_learner
from common.cli import Config, require_framework, run
from common.data.sinusoid import evaluation_tasks
from common.errors import ConfigError
from common.evaluation import mean_ci95
from common.files import saving
from common.options import COUNT, POSITIVE
from common.results import make_result, write_result
from common.training import after_failed_write
from common.weights import save_weights, to_canonical

ALGORITHM = "lstm-meta-learner"
TEST_QUERY = 100  # query points of each fixed test task (the default of evaluation_tasks)

# Framework-neutral, so written once for lstm_meta_learner_{torch,tf,keras}.py:
PREPROCESS_P = 10.0  # p of Andrychowicz et al.'s preprocessing, as Ravi & Larochelle use it
HIDDEN = 20  # units of the first LSTM, as in Ravi & Larochelle's code


def check_steps(steps) -> None:
    """The meta-learner needs at least one update: with none, θ_T = c_0 and no update rule is learned."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ConfigError(f"the LSTM meta-learner needs steps >= 1 (updates of the learner on the support "
                          f"set per task), got {steps!r}; with 0 steps the learner keeps c_0 and the "
                          f"update rule is never used")


def updates(meta_learner, model, theta, support_x, support_y, steps: int, loss_and_gradient) -> list:
    """[θ_0, θ_1, ..., θ_steps], flat, from θ_0 = c_0 (Ravi & Larochelle, Algorithm 1's inner loop):
    each step feeds the learner's loss L_t and gradient ∇_t at θ_{t−1} (``loss_and_gradient``, the
    framework's) to the meta-learner, whose new cell state is θ_t. The same in every framework."""
    check_steps(steps)
    state = meta_learner.initial_state(theta)
    thetas = [theta]
    for _ in range(steps):
        loss, gradient = loss_and_gradient(meta_learner, model, theta, support_x, support_y)
        theta, state = meta_learner.step(gradient, loss, theta, state)
        thetas.append(theta)
    return thetas


@dataclass
class LSTMMetaLearnerConfig(Config):
    """The LSTM meta-learner's settings, in one place: their defaults are the command line's, the
    learner is built with them, and :meth:`options` is what the results and the checkpoint record."""

    meta_batch: int = 25    # tasks per meta-iteration
    steps: int = 5          # T, updates of the learner per task, in training and at test
    hidden: int = HIDDEN    # units of the meta-learner's first LSTM
    meta_lr: float = 1e-3   # Adam's learning rate
    seed: int = 0           # draws the initial weights (--seed); the run records it beside the options

    def options(self) -> dict:
        return {key: value for key, value in super().options().items() if key != "seed"}


def parse(argv=None) -> argparse.Namespace:
    """The options of the sinusoid scripts (``sinusoid.sinusoid_parser``) and the meta-learner's own;
    their defaults are :class:`LSTMMetaLearnerConfig`'s."""
    defaults = LSTMMetaLearnerConfig()
    parser = sinusoid_parser("python -m chapters.optimization.lstm_meta_learner", "Meta-train the LSTM "
                             "meta-learner on sinusoid regression and evaluate it.", iterations=10_000, log_every=500,
                             defaults=defaults)
    parser.add_argument("--steps", type=COUNT, default=defaults.steps, help="updates of the learner per task (T), "
                                                                            "in training and at test")
    parser.add_argument("--hidden", type=COUNT, default=defaults.hidden, help="units of the meta-learner's first LSTM")
    parser.add_argument("--meta-lr", type=POSITIVE, default=defaults.meta_lr, help="Adam's learning rate")
    return parse_checked(parser, argv)


def build_learner(config: LSTMMetaLearnerConfig, framework: str):
    """The ``LSTMMetaLearner`` of ``framework`` around a fresh ``SinusoidMLP``, built as every learner
    of the chapter is (``train.make_learner``)."""
    settings = {"steps": config.steps, "hidden": config.hidden, "seed": config.seed, "meta_lr": config.meta_lr}
    return make_learner(ALGORITHM, framework, "SinusoidMLP", (), config.seed, settings)


def evaluate(learner, args) -> dict:
    """Query MSE (mean, 95% CI) over the fixed test tasks at c_0 and after ``--steps`` updates."""
    curves = np.array([learner.adaptation_curve(episode, args.steps)
                       for episode in evaluation_tasks(args.shot, TEST_QUERY, args.test_tasks)])
    return {k: mean_ci95(curves[:, k]) for k in (0, args.steps)}


def main(argv=None) -> dict:
    args = parse(argv)
    require_framework(args.framework)
    config = LSTMMetaLearnerConfig.from_args(args)
    learner = build_learner(config, args.framework)
    k = config.steps
    training = sinusoid_run(args, ALGORITHM, config.options(), args.test_tasks)
    folder = training.folder
    print(f"{ALGORITHM} ({args.framework}): {args.iterations:,} meta-iterations of {config.meta_batch} "
          f"{args.shot}-shot sinusoid tasks, {k} updates each", flush=True)
    log = meta_train(training, learner, args)
    wall_seconds = log.wall_seconds
    mse = evaluate(learner, args)
    print(f"query MSE at c_0 (no update): {mse[0][0]:.3f} ± {mse[0][1]:.3f}")
    print(f"query MSE after {k} update{'s' if k != 1 else ''}: {mse[k][0]:.3f} ± {mse[k][1]:.3f}")

    metadata = {"algorithm": ALGORITHM, "framework": args.framework, "learner": "SinusoidMLP 1-40-40-1",
                "steps": k, "hidden": config.hidden}
    with saving(folder / "weights.npz", after_failed_write(folder / "checkpoint.npz")):
        save_weights(folder / "weights.npz", to_canonical(learner.meta_learner, args.framework), metadata)
    result = make_result(
        algorithm=ALGORITHM, framework=args.framework, dataset="sinusoid", way=1, shot=args.shot,
        query=TEST_QUERY, train_query=args.query, train_episodes=args.iterations, metric="mse",
        mse=mse[k][0], mse_ci95=mse[k][1], adaptation_steps=k,
        mse_before_adaptation=mse[0][0], mse_before_adaptation_ci95=mse[0][1],
        test_tasks=args.test_tasks, wall_seconds=wall_seconds, seconds_per_episode=wall_seconds / args.iterations,
        seed=args.seed, options=training.options, history=log.history, trained_at=log.commits)
    path = write_result(result, folder)
    print(f"{ALGORITHM} ({args.framework}) sinusoid {args.shot}-shot: MSE {mse[k][0]:.3f} ± {mse[k][1]:.3f} "
          f"after {k} update{'s' if k != 1 else ''} ({mse[0][0]:.3f} ± {mse[0][1]:.3f} before); "
          f"{wall_seconds / args.iterations * 1000:.1f} ms per meta-iteration -> {path}")
    return result


if __name__ == "__main__":
    run(main)
