"""The episodic training loop every chapter shares, whatever the framework.

A *learner* is the framework-specific part. It offers four methods with the same names in
PyTorch, TensorFlow and Keras (see ``common/episodic_{torch,tf,keras}.py``):

    train_step(episode) -> {"loss": float, "accuracy": float}   one meta-training step
    predict(episode)    -> predicted query labels (NumPy)         for evaluation
    state()             -> dict of NumPy arrays                   weights + optimizer, for checkpoints
    load_state(arrays)                                           the inverse

A Keras learner may instead train the whole run in one ``fit(sampler, start, log, progress)``
(``common.episodic_keras.fit_episodes``). :func:`train` does the rest, identically for every
algorithm and framework:

* episodes ``start .. episodes-1`` of the training sampler (so a resumed run continues with
  exactly the episodes it would have seen);
* every ``eval_every`` episodes: accuracy on fixed validation episodes, a checkpoint (written to a
  temporary file and renamed, so an interrupted run never leaves a broken one), and the curve PNG;
* a loss that becomes NaN or infinite, or a file that cannot be written (a full disk), stops the
  run with a one-line message; the last good checkpoint stays, and nothing is left half-written;
* at the end: accuracy ± 95% CI on the fixed test episodes, the results JSON, and the curve.

A regression script (sinusoids: ``chapters/optimization/sinusoid.py``) uses the same loop,
:func:`training_loop`, and scores the model itself: its steps are meta-iterations
(``Run(unit="iteration")``), its learner reports a loss and no accuracy, and it has no
validation episodes, so each point of its history holds the mean training loss and the speed.
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from common.errors import ConfigError, MetaLearnError
from common.evaluation import evaluate
from common.files import saving, write_bytes, write_text
from common.options import check_multiple
from common.results import deviations, make_result, with_this_commit, write_result
from common.weights import load_weights, save_weights


class TrainingDiverged(MetaLearnError):
    """The loss stopped being a finite number."""


# What a run's steps are called: its option, and the word its messages use. An optimization-based
# learner's meta-iteration is an "episode" of the classification scripts (``--episodes``), and an
# "iteration" of the regression scripts (``--iterations``, as in Finn et al.'s sinusoid protocol).
UNITS = {"episode": ("--episodes", "episodes"), "iteration": ("--iterations", "meta-iterations")}
# A run's curve.png is drawn at its end and, on the way, at a validation point at most this often:
# drawing takes about half a second, as long as the whole training of a short run (a test's, a
# notebook's) with several points, and a long run's reader looks at it every few minutes at most.
CURVE_EVERY_SECONDS = 60.0


def run_folder(out, algorithm: str, framework: str, dataset: str, way: int, shot: int,
               options: dict | None = None, seed: int = 0) -> Path:
    """``<out>/<algorithm>_<framework>_<dataset>_<way>w<shot>s``, then any labelled deviation from
    the paper's method (``_cosine_scale10``) and a seed other than 0 (``_seed1``): two variants, or
    two seeds, never share a folder, so runs of several seeds can share one ``--out``.

    A folder without ``_seed<N>`` that already holds this seed's checkpoint is used as it is, so
    such a run resumes instead of starting over.
    """
    variant = "".join("_" + text.replace(" ", "") for text in deviations(options or {}))
    name = f"{algorithm}_{framework}_{dataset}_{way}w{shot}s{variant}"
    folder = Path(out) / (f"{name}_seed{seed}" if seed else name)
    earlier = Path(out) / name / "checkpoint.npz"
    if seed and not folder.exists() and earlier.exists() and _seed_of(earlier) == seed:
        return earlier.parent
    return folder


def _seed_of(checkpoint: Path) -> int | None:
    """The seed recorded in a checkpoint; None for a file that is not one (it is left alone)."""
    try:
        return load_weights(checkpoint)[1].get("identity", {}).get("seed")
    except MetaLearnError:
        return None


@dataclass(kw_only=True)
class Run:
    """Everything that identifies a training run (and its checkpoint), each field given by its name."""

    algorithm: str
    framework: str
    dataset: str
    way: int
    shot: int
    query: int
    test_way: int
    test_shot: int
    test_query: int
    episodes: int  # training steps: episodes, or meta-iterations (``unit``)
    seed: int = 0
    eval_every: int = 500
    val_episodes: int = 100
    test_episodes: int = 600
    out: str = "runs"
    options: dict = field(default_factory=dict)  # algorithm-specific settings (lr, distance, ...)
    device: str = "cpu"  # where it computes (common.devices); recorded, not part of the identity
    unit: str = "episode"  # what one training step is called (``UNITS``): the history's counter, the messages

    @cached_property
    def folder(self) -> Path:
        """Where its checkpoint, curve and results go: see :func:`run_folder`."""
        return run_folder(self.out, self.algorithm, self.framework, self.dataset, self.way, self.shot,
                          self.options, self.seed)

    @property
    def checkpoint(self) -> Path:
        return self.folder / "checkpoint.npz"

    def identity(self) -> dict:
        """What a checkpoint must match to be resumed by this run (not the number of episodes:
        a finished run can be continued, or evaluated again with other test settings)."""
        keys = ("algorithm", "framework", "dataset", "way", "shot", "query", "seed", "options")
        return {key: getattr(self, key) for key in keys}


# ----------------------------------------------------------------------------- checkpoints

def write_checkpoint(path: Path, learner, identity: dict, **progress) -> None:
    """The learner's state (weights, optimizer, step counter) and the run's ``identity`` and
    ``progress`` (episodes done, history, ...) in one file. ``save_weights`` writes a temporary file
    and renames it, so an interrupted run never leaves a broken checkpoint; a write that fails (a
    full disk) ends in one line that says which checkpoint is kept."""
    with saving(path, after_failed_write(path)):
        save_weights(path, learner.state(), {"identity": identity, **progress})


def kept_checkpoint(path: Path) -> str:
    """What a run that stops now leaves behind, for the messages of a diverged run and a failed write."""
    return f"the last good checkpoint ({path}) is kept" if path.exists() else "no checkpoint had been written yet"


def after_failed_write(checkpoint: Path) -> str:
    """What is kept, and what to do, when a run's file cannot be written (a full disk, say)."""
    return (f"{kept_checkpoint(checkpoint)}; free some disk space (or choose another --out) and run the same "
            f"command again")


def read_checkpoint(path: Path, learner, identity: dict) -> dict | None:
    """Load ``path`` into ``learner`` and return its progress metadata; None if there is no file.

    A checkpoint written by another run (another algorithm, framework or setting: any key of
    ``identity`` that differs) is refused with the differences named, and left as it is.
    """
    if not path.exists():
        return None
    arrays, meta = load_weights(path)
    theirs, ours = meta.get("identity", {}), json.loads(json.dumps(identity))  # JSON-normalised
    if theirs != ours:
        differences = "; ".join(f"{key}: {there!r} there, {here!r} here"
                                for key, there, here in _differences(theirs, ours))
        there, here = (f"{i.get('algorithm')}, --framework {i.get('framework')}" for i in (theirs, ours))
        which = f"({there}) than this one ({here})" if there != here else "than this one"  # only what differs
        raise ConfigError(
            f"{path} belongs to another run {which}: {differences}. "
            f"Choose another --out folder, or move that file away; it was not changed.")
    learner.load_state(arrays)
    return meta


def _differences(theirs: dict, ours: dict):
    """(key, theirs, ours) for each key of ``ours`` that differs; within the algorithm's options,
    each option by its own name (``inner_lr: 0.01 there, 0.02 here``, not two whole dicts)."""
    for key in ours:
        there, here = theirs.get(key), ours.get(key)
        if isinstance(there, dict) and isinstance(here, dict):
            yield from _differences(there, {**dict.fromkeys(there), **here})
        elif there != here:
            yield key, there, here


def refuse_past(path: Path, done: int, total: int, option: str = "episodes", unit: str = "episodes") -> None:
    """A checkpoint that has trained ``done`` > ``total`` (``--<option>``) ``unit`` would be reported
    as a model of fewer than it has seen: a clear error instead, the file untouched."""
    if done > total:
        raise ConfigError(f"{path} has trained {done:,} {unit}, more than --{option} {total:,}; "
                          f"pass --{option} {done:,} (or more) to test or continue it")


def save_checkpoint(run: Run, learner, episode: int, history: list, wall_seconds: float, commits: list) -> None:
    """``wall_seconds``: training time so far, summed over every process that trained the run; ``commits``:
    the commits its training episodes ran at, in order (a resumed run may span several)."""
    write_checkpoint(run.checkpoint, learner, run.identity(), run=asdict(run), episode=episode, history=history,
                     wall_seconds=wall_seconds, commits=commits)


def load_checkpoint(run: Run, learner) -> tuple[int, list, float, list]:
    """(episodes done, history, training seconds, commits) from ``run.checkpoint``; (0, [], 0.0, [])
    if none. A checkpoint that records no commits gives an empty list."""
    meta = read_checkpoint(run.checkpoint, learner, run.identity())
    if meta is None:
        return 0, [], 0.0, []
    return (int(meta["episode"]), list(meta["history"]), float(meta.get("wall_seconds", 0.0)),
            list(meta.get("commits", [])))


# ---------------------------------------------------------------------------- the loop

class Log:
    """Per-episode bookkeeping shared by the hand-written loops and the Keras callback.

    ``step(index, metrics)`` is called after training episode ``index``. Every ``eval_every``
    episodes (and after the last) it evaluates the fixed validation episodes (if the run has
    any), appends a point to the history, writes the checkpoint and redraws the curve. With
    ``report`` (a run without a progress bar, e.g. ``--quiet`` in the background) it also prints
    that point as one line, so a log file shows how far a long run is and how fast it goes.
    """

    def __init__(self, run: Run, learner, val_episodes, history: list, wall_seconds: float = 0.0, bar=None,
                 report: bool = False, commits: list | None = None):
        self.run, self.learner, self.val_episodes, self.history, self.bar = run, learner, val_episodes, history, bar
        self.report, self.commits = report, list(commits or [])
        self.window = []
        # Training time excludes validation: seconds per episode should measure the learner.
        self.wall_seconds, self.since = wall_seconds, time.perf_counter()
        self.drawn_at = -math.inf  # when curve.png was last drawn

    def step(self, index: int, metrics: dict) -> None:
        if not math.isfinite(metrics["loss"]):
            raise TrainingDiverged(f"the training loss became {metrics['loss']} at {self.run.unit} {index:,}; lower "
                                   f"the learning rate; {kept_checkpoint(self.run.checkpoint)}")
        # A regression learner reports a loss and no accuracy.
        self.window.append((metrics["loss"], metrics.get("accuracy", math.nan)))
        if self.bar is not None:
            self.bar.update(1)
        if (index + 1) % self.run.eval_every == 0 or index + 1 == self.run.episodes:
            self.record(index + 1)

    def record(self, episodes_done: int) -> None:
        seconds = time.perf_counter() - self.since
        self.wall_seconds += seconds
        loss, accuracy = np.mean(self.window, axis=0)
        speed = seconds / len(self.window)  # seconds per training episode since the last point
        self.window = []
        point, unit = {self.run.unit: episodes_done, "loss": float(loss)}, self.run.unit
        if math.isfinite(accuracy):
            point["accuracy"] = 100 * float(accuracy)
        if self.val_episodes is not None:
            val = evaluate(self.learner.predict, self.val_episodes)
            point.update(val_accuracy=val["accuracy"], val_ci95=val["ci95"])
        # Each point keeps its own speed: a run resumed on another machine, or slowed by a neighbour,
        # shows where its average seconds per episode came from.
        point[f"seconds_per_{unit}"] = speed
        self.history.append(point)
        self.commits = with_this_commit(self.commits)  # these episodes ran at this process's code
        save_checkpoint(self.run, self.learner, episodes_done, self.history, self.wall_seconds, self.commits)
        if episodes_done == self.run.episodes or time.perf_counter() - self.drawn_at >= CURVE_EVERY_SECONDS:
            with saving(self.run.folder / "curve.png", after_failed_write(self.run.checkpoint)):
                plot_curve(self.history, self.run.folder / "curve.png", unit=self.run.unit,
                           title=f"{self.run.algorithm} ({self.run.framework}), {self.run.dataset}")
            self.drawn_at = time.perf_counter()
        if self.bar is not None:
            postfix = {"loss": f"{loss:.3f}"}
            if "accuracy" in point:
                postfix["acc"] = f"{point['accuracy']:.1f}"
            if "val_accuracy" in point:
                postfix["val"] = f"{point['val_accuracy']:.1f}"
            self.bar.set_postfix(postfix)
        if self.report:
            print(f"{self.run.algorithm} ({self.run.framework}) {unit} {episodes_done:,} of {self.run.episodes:,}: "
                  f"{scores(point)}, {speed:.3f} s/{unit}", flush=True)
        self.since = time.perf_counter()


def scores(point: dict) -> str:
    """A history point's loss and, where it has them, training and validation accuracy, in words."""
    texts = [f"loss {point['loss']:.4f}"]
    if "accuracy" in point:
        texts.append(f"train {point['accuracy']:.2f}%")
    if "val_accuracy" in point:
        texts.append(f"validation {point['val_accuracy']:.2f} ± {point['val_ci95']:.2f}%")
    return ", ".join(texts)


def train(run: Run, learner, train_sampler, val_episodes, test_episodes, progress: bool = True) -> dict:
    """Train, checkpoint, evaluate; return the result dict (also written under ``run.folder``)."""
    log = training_loop(run, learner, train_sampler, val_episodes, progress)
    return finish(run, learner, test_episodes, log.history, log.wall_seconds, log.commits)


def training_loop(run: Run, learner, train_sampler, val_episodes=None, progress: bool = True) -> Log:
    """Resume from the run's checkpoint, train the episodes left, checkpoint every ``eval_every``;
    return the :class:`Log` (history, training seconds, commits). ``val_episodes=None``: no validation.

    Keras learners train through ``model.fit`` (they have a ``fit`` method); the others get one
    ``train_step`` call per episode here. Both report to the same :class:`Log`.
    """
    from tqdm.auto import tqdm

    option, unit = UNITS[run.unit]
    check_multiple(option, run.episodes, "--eval-every", run.eval_every)
    with saving(run.folder, "nothing was trained; choose another --out"):
        run.folder.mkdir(parents=True, exist_ok=True)
    start, history, wall_seconds, commits = load_checkpoint(run, learner)
    refuse_past(run.checkpoint, start, run.episodes, option[2:], unit)
    if start:
        print(f"resuming {run.checkpoint} at {run.unit} {start:,} of {run.episodes:,}")
    log = Log(run, learner, val_episodes, history, wall_seconds, report=not progress, commits=commits)
    if hasattr(learner, "fit"):
        if start < run.episodes:
            learner.fit(train_sampler, start, log, progress)
    else:
        with tqdm(initial=start, total=run.episodes, disable=not progress, unit=run.unit[:2],  # "ep", "it"
                  desc=f"{run.algorithm} ({run.framework})") as bar:
            log.bar = bar
            for index in range(start, run.episodes):
                log.step(index, learner.train_step(train_sampler.episode(index)))
    return log


def finish(run: Run, learner, test_episodes, history: list, wall_seconds: float, commits: list) -> dict:
    """Evaluate on the fixed test episodes and write the results JSON (into ``run.folder``).

    A finished run evaluated again (e.g. with ``--test-way 20``) loads its checkpoint, trains no
    further and reports the training time, and the commits of the training (``trained_at``, when
    they are not this process's commit), that the checkpoint recorded.
    """
    test = evaluate(learner.predict, test_episodes, progress=False)
    result = make_result(
        algorithm=run.algorithm, framework=run.framework, dataset=run.dataset,
        way=run.test_way, shot=run.test_shot, query=run.test_query,
        train_way=run.way, train_shot=run.shot, train_query=run.query,
        train_episodes=run.episodes, accuracy=test["accuracy"], ci95=test["ci95"],
        test_episodes=test["episodes"], wall_seconds=wall_seconds,
        seconds_per_episode=wall_seconds / run.episodes,
        test_seconds=test["seconds_per_episode"] * test["episodes"],
        seed=run.seed, options=run.options,
        device=run.device, history=history, trained_at=commits)
    path = write_result(result, run.folder)
    with saving(run.folder / "result.json", f"the results are in {path}"):
        write_text(run.folder / "result.json", json.dumps(result, indent=2) + "\n")
    print(f"{run.algorithm} ({run.framework}) {run.dataset} {run.test_way}-way {run.test_shot}-shot: "
          f"{test['accuracy']:.2f} ± {test['ci95']:.2f}% over {test['episodes']} test episodes -> {path}")
    return result


def plot_curve(history: list, path: Path, title: str = "", unit: str = "episode") -> None:
    """Training loss and train/validation accuracy against episodes (or ``unit``); the loss alone
    for a run without validation episodes (a regression script's)."""
    # A bare Figure, not pyplot: no backend switch, so notebooks that call train() keep showing figures.
    from matplotlib.figure import Figure

    steps = [h[unit] for h in history]
    with_accuracy = "val_accuracy" in history[0]
    figure = Figure(figsize=(9, 3.2) if with_accuracy else (4.5, 3.2))
    left, right = figure.subplots(1, 2) if with_accuracy else (figure.subplots(), None)
    left.plot(steps, [h["loss"] for h in history])
    left.set(xlabel=unit, ylabel="training loss", yscale="log")
    if with_accuracy:
        right.plot(steps, [h["accuracy"] for h in history], label="train episodes")
        right.errorbar(steps, [h["val_accuracy"] for h in history], [h["val_ci95"] for h in history],
                       label="validation (fixed episodes)", capsize=2)
        right.set(xlabel=unit, ylabel="accuracy (%)")
        right.legend(loc="lower right", fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    write_bytes(path, png.getvalue())  # all or nothing: a full disk leaves no half-drawn curve
