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

A run writes into ``--out``/<algorithm>_<framework>_sinusoid_1w<K>s/, through the training loop
every chapter shares (``common.training``): a checkpoint and a point of the loss curve
(``curve.png``) every ``--log-every`` meta-iterations (a second run with the same options resumes
it); then the results JSON (the ``common.results`` format with ``"metric": "mse"``) and the
meta-learned weights (``weights.npz``, canonical: they load into any of the three frameworks).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import numpy as np

from chapters.optimization.train import ALGORITHMS, as_learner, make_learner
from common.cli import FRAMEWORKS, Config, require_framework, run
from common.data.sinusoid import SinusoidTasks, evaluation_tasks
from common.devices import DEVICE_HELP, use_device
from common.episodes import MetaBatches
from common.evaluation import mean_ci95
from common.files import saving
from common.options import COUNT, POSITIVE, SEED, Parser, check_multiple, check_out
from common.results import make_result, write_result
from common.training import Run, TrainingDiverged, after_failed_write, training_loop
from common.weights import save_weights, to_canonical

TEST_QUERY = 100  # query points of each fixed test task (the default of evaluation_tasks)


@dataclass
class SinusoidConfig(Config):
    """The settings of a meta-learner on sinusoids, in one place: their defaults are the command
    line's (Finn et al.'s protocol above), :meth:`learner_settings` gives the algorithm's class its
    keyword arguments, and :meth:`options` is what the results and the checkpoint record: those and
    the meta-batch size, each algorithm its own."""

    algorithm: str = "maml"           # maml, fomaml, metasgd or reptile: the run's name, not among its options
    meta_batch: int = 25              # tasks per meta-iteration
    inner_steps: int = 1              # inner gradient steps in meta-training
    meta_lr: float = 1e-3             # β, Adam's learning rate (Reptile: ε, the outer step)
    inner_lr: float = 0.01            # α, the inner step size (not Meta-SGD's, which learns its own)
    anneal_steps: int | None = None   # Reptile: ε decays linearly to 0 over these meta-iterations (the run's)
    seed: int = 0                     # Meta-SGD: draws α's initial values (--seed)
    # Meta-SGD's α starts uniform in this range (Li et al., Sec. 4.1): no option sets it.
    inner_lr_range: tuple = field(default=(0.005, 0.1), init=False)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "SinusoidConfig":
        return super().from_args(args, anneal_steps=args.iterations)

    def learner_settings(self) -> dict:
        """The keyword arguments of the algorithm's class (``train.make_learner``)."""
        common = {"inner_steps": self.inner_steps, "meta_lr": self.meta_lr}
        if self.algorithm == "metasgd":
            return {**common, "inner_lr_range": self.inner_lr_range, "seed": self.seed}
        if self.algorithm == "reptile":
            return {**common, "inner_lr": self.inner_lr, "anneal_steps": self.anneal_steps}
        return {**common, "inner_lr": self.inner_lr, "first_order": self.algorithm == "fomaml"}

    def options(self) -> dict:
        return {"meta_batch": self.meta_batch, **self.learner_settings()}


def sinusoid_parser(prog: str, description: str, iterations: int, log_every: int, defaults) -> Parser:
    """The options of every sinusoid script (this one, the LSTM meta-learner's): the framework, the
    tasks, the meta-batches (of ``defaults.meta_batch`` tasks, the learner's settings) and the run;
    each script adds its learner's own."""
    parser = Parser(prog=prog, description=description)
    parser.add_argument("--framework", choices=FRAMEWORKS, default="torch", help="the framework that computes")
    parser.add_argument("--shot", type=COUNT, default=10, help="support points per task (K)")
    parser.add_argument("--query", type=COUNT, default=None, help="query points per training task (default: K)")
    parser.add_argument("--iterations", type=COUNT, default=iterations, help="meta-iterations (meta-batches)")
    parser.add_argument("--meta-batch", type=COUNT, default=defaults.meta_batch, help="tasks per meta-batch")
    parser.add_argument("--test-tasks", type=COUNT, default=600, help="fixed test tasks the MSE is averaged over")
    parser.add_argument("--log-every", type=COUNT, default=log_every,
                        help="print the mean meta-loss and checkpoint every N iterations (--iterations must be "
                             "a multiple)")
    parser.add_argument("--seed", type=SEED, default=0, help="draws the training tasks and the initial weights")
    parser.add_argument("--out", default="runs", help="folder for the run's checkpoint, results and weights")
    return parser


def parse_checked(parser: Parser, argv=None) -> argparse.Namespace:
    """``parser``'s options, each checked by its rule (``common.options``) before anything is built."""
    args = parser.parse_args(argv)
    args.query = args.query or args.shot
    check_multiple("--iterations", args.iterations, "--log-every", args.log_every, "meta-iterations")
    check_out(args.out)
    return args


def parse(argv=None) -> argparse.Namespace:
    """The options of MAML, first-order MAML, Meta-SGD and Reptile on sinusoids; their defaults are
    :class:`SinusoidConfig`'s."""
    defaults = SinusoidConfig()
    parser = sinusoid_parser("python -m chapters.optimization.sinusoid", "Meta-train and evaluate on sinusoid "
                             "regression.", iterations=70_000, log_every=1000, defaults=defaults)
    parser.add_argument("--algorithm", choices=sorted(ALGORITHMS), default=defaults.algorithm, help="the meta-learner")
    parser.add_argument("--inner-lr", type=POSITIVE, default=defaults.inner_lr,
                        help="α, the inner step size (not Meta-SGD)")
    parser.add_argument("--inner-steps", type=COUNT, default=defaults.inner_steps,
                        help="inner gradient steps in meta-training")
    parser.add_argument("--meta-lr", type=POSITIVE, default=defaults.meta_lr,
                        help="β, Adam's learning rate (Reptile: ε)")
    parser.add_argument("--eval-steps", type=COUNT, default=10, help="most inner steps at evaluation")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    return parse_checked(parser, argv)


def build_learner(config: SinusoidConfig, framework: str, device: str = "auto"):
    """The learner of ``config.algorithm`` in ``framework`` around the MLP 1-40-40-1, drawn from
    ``config.seed``, on ``device`` (``--device``, PyTorch only): ``meta_step(meta_batch)``,
    ``adaptation_curve(episode, steps)``, ``state()``, ``load_state()``, ``model``."""
    return make_learner(config.algorithm, framework, "SinusoidMLP", (), config.seed, config.learner_settings(),
                        device)


def sinusoid_run(args, algorithm: str, options: dict, test_tasks: int, device: str = "cpu") -> Run:
    """The run of ``common.training`` that meta-trains ``algorithm`` on ``--shot``-shot sinusoids: meta-iterations
    of ``--meta-batch`` tasks, a checkpoint every ``--log-every``, no validation tasks (the script scores its
    model itself on the fixed test tasks). ``options`` (the learner's settings and the meta-batch size:
    ``config.options()``) are recorded in the results and, with the settings of the tasks and the seed, are
    what a checkpoint must match to be resumed (Reptile's include its annealing schedule, so a Reptile run
    with other ``--iterations`` is another run). The LSTM meta-learner's script uses it too."""
    return Run(algorithm=algorithm, framework=args.framework, dataset="sinusoid", way=1, shot=args.shot,
               query=args.query, test_way=1, test_shot=args.shot, test_query=TEST_QUERY, episodes=args.iterations,
               seed=args.seed, eval_every=args.log_every, val_episodes=0, test_episodes=test_tasks, out=args.out,
               options=options, device=device, unit="iteration")


def meta_train(training: Run, learner, args):
    """Meta-iterations (resumed from the run's checkpoint) up to ``--iterations``, meta-batch i being tasks
    i*B .. i*B + B - 1 in every framework; returns the loop's log (history, seconds, commits)."""
    tasks = MetaBatches(SinusoidTasks(args.shot, args.query, seed=args.seed), training.options["meta_batch"])
    return training_loop(training, as_learner(learner, args.framework), tasks, progress=False)


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
    config = SinusoidConfig.from_args(args)
    args.device = use_device(args.framework, args.device)
    learner = build_learner(config, args.framework, args.device)
    training = sinusoid_run(args, config.algorithm, config.options(), args.test_tasks, args.device)
    folder = training.folder
    print(f"{config.algorithm} ({args.framework}): {args.iterations:,} meta-iterations of {config.meta_batch} "
          f"{args.shot}-shot sinusoid tasks", flush=True)
    log = meta_train(training, learner, args)
    mse = evaluate(learner, args)
    for steps, (mean, ci95, diverged) in mse.items():
        after = f"query MSE after {steps:>2} step{'s' if steps != 1 else ''}"
        print(f"{after}: {mean:.3f} ± {ci95:.3f}" if not diverged else
              f"{after}: diverged on {diverged} of {args.test_tasks} test tasks")
    k, most = config.inner_steps, args.eval_steps
    if mse[k][2]:
        raise TrainingDiverged(f"after {k} inner step(s), the trained step size diverges on {mse[k][2]} of "
                               f"{args.test_tasks} test tasks; lower --inner-lr or --meta-lr. The checkpoint "
                               f"is kept in {folder}.")

    metadata = {"algorithm": config.algorithm, "framework": args.framework, "model": "SinusoidMLP 1-40-40-1"}
    with saving(folder / "weights.npz", after_failed_write(folder / "checkpoint.npz")):
        save_weights(folder / "weights.npz", to_canonical(learner.model, args.framework), metadata)
    extra = {f"mse_after_{s}_steps": mse[s][0] for s in mse if s not in (0, k)}
    extra.update({f"mse_after_{s}_steps_ci95": mse[s][1] for s in mse if s not in (0, k)})
    extra.update({f"diverged_tasks_after_{s}_steps": mse[s][2] for s in mse if mse[s][2]})
    result = make_result(
        algorithm=config.algorithm, framework=args.framework, dataset="sinusoid", way=1, shot=args.shot,
        query=TEST_QUERY, train_query=args.query, train_episodes=args.iterations, metric="mse",
        mse=mse[k][0], mse_ci95=mse[k][1], adaptation_steps=k,
        mse_before_adaptation=mse[0][0], mse_before_adaptation_ci95=mse[0][1], **extra,
        test_tasks=args.test_tasks, wall_seconds=log.wall_seconds,
        seconds_per_episode=log.wall_seconds / args.iterations, seed=args.seed,
        options=training.options, device=args.device, history=log.history, trained_at=log.commits)
    path = write_result(result, folder)
    after_most = (f"{mse[most][0]:.3f} ± {mse[most][1]:.3f}" if not mse[most][2] else
                  f"diverged on {mse[most][2]} tasks")
    print(f"{config.algorithm} ({args.framework}) sinusoid {args.shot}-shot: MSE {mse[k][0]:.3f} ± {mse[k][1]:.3f} "
          f"after {k} step{'s' if k != 1 else ''}, {after_most} after {most}; "
          f"{log.wall_seconds / args.iterations * 1000:.1f} ms per meta-iteration -> {path}")
    return result


if __name__ == "__main__":
    run(main)
