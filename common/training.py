"""The episodic training loop every chapter shares, whatever the framework.

A *learner* is the framework-specific part. It offers four methods with the same names in
PyTorch, TensorFlow and Keras (see ``common/episodic_{torch,tf,keras}.py``):

    train_step(episode) -> {"loss": float, "accuracy": float}   one meta-training step
    predict(episode)    -> predicted query labels (NumPy)         for evaluation
    state()             -> dict of NumPy arrays                   weights + optimizer, for checkpoints
    load_state(arrays)                                           the inverse

:func:`train` does the rest, identically for every algorithm and framework:

* episodes ``start .. episodes-1`` of the training sampler (so a resumed run continues with
  exactly the episodes it would have seen);
* every ``eval_every`` episodes: accuracy on fixed validation episodes, a checkpoint (written to a
  temporary file and renamed, so an interrupted run never leaves a broken one), and the curve PNG;
* a loss that becomes NaN or infinite, or a file that cannot be written (a full disk), stops the
  run with a one-line message; the last good checkpoint stays, and nothing is left half-written;
* at the end: accuracy ± 95% CI on the fixed test episodes, the results JSON, and the curve.
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


@dataclass
class Run:
    """Everything that identifies a training run (and its checkpoint)."""

    algorithm: str
    framework: str
    dataset: str
    way: int
    shot: int
    query: int
    test_way: int
    test_shot: int
    test_query: int
    episodes: int
    seed: int = 0
    eval_every: int = 500
    val_episodes: int = 100
    test_episodes: int = 600
    out: str = "runs"
    options: dict = field(default_factory=dict)  # algorithm-specific settings (lr, distance, ...)
    device: str = "cpu"  # where it computes (common.devices); recorded, not part of the identity

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
        differences = "; ".join(f"{key}: {theirs.get(key)!r} there, {ours.get(key)!r} here"
                                for key in ours if theirs.get(key) != ours.get(key))
        there, here = (f"{i.get('algorithm')}, --framework {i.get('framework')}" for i in (theirs, ours))
        which = f"({there}) than this one ({here})" if there != here else "than this one"  # only what differs
        raise ConfigError(
            f"{path} belongs to another run {which}: {differences}. "
            f"Choose another --out folder, or move that file away; it was not changed.")
    learner.load_state(arrays)
    return meta


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
    episodes (and after the last) it evaluates the fixed validation episodes, appends a point to
    the history, writes the checkpoint and redraws the curve. With ``report`` (a run without a
    progress bar, e.g. ``--quiet`` in the background) it also prints that point as one line, so a
    log file shows how far a long run is and how fast it goes.
    """

    def __init__(self, run: Run, learner, val_episodes, history: list, wall_seconds: float = 0.0, bar=None,
                 report: bool = False, commits: list | None = None):
        self.run, self.learner, self.val_episodes, self.history, self.bar = run, learner, val_episodes, history, bar
        self.report, self.commits = report, list(commits or [])
        self.window = []
        # Training time excludes validation: seconds per episode should measure the learner.
        self.wall_seconds, self.since = wall_seconds, time.perf_counter()

    def step(self, index: int, metrics: dict) -> None:
        if not math.isfinite(metrics["loss"]):
            raise TrainingDiverged(f"the training loss became {metrics['loss']} at episode {index:,}; lower the "
                                   f"learning rate; {kept_checkpoint(self.run.checkpoint)}")
        self.window.append((metrics["loss"], metrics["accuracy"]))
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
        val = evaluate(self.learner.predict, self.val_episodes)
        # Each point keeps its own speed: a run resumed on another machine, or slowed by a neighbour,
        # shows where its average seconds per episode came from.
        self.history.append({"episode": episodes_done, "loss": float(loss), "accuracy": 100 * float(accuracy),
                             "val_accuracy": val["accuracy"], "val_ci95": val["ci95"],
                             "seconds_per_episode": speed})
        self.commits = with_this_commit(self.commits)  # these episodes ran at this process's code
        save_checkpoint(self.run, self.learner, episodes_done, self.history, self.wall_seconds, self.commits)
        with saving(self.run.folder / "curve.png", after_failed_write(self.run.checkpoint)):
            plot_curve(self.history, self.run.folder / "curve.png",
                       title=f"{self.run.algorithm} ({self.run.framework}), {self.run.dataset}")
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.3f}", acc=f"{100 * accuracy:.1f}", val=f"{val['accuracy']:.1f}")
        if self.report:
            print(f"{self.run.algorithm} ({self.run.framework}) episode {episodes_done:,} of {self.run.episodes:,}: "
                  f"loss {loss:.4f}, train {100 * accuracy:.2f}%, validation {val['accuracy']:.2f} ± "
                  f"{val['ci95']:.2f}%, {speed:.3f} s/episode", flush=True)
        self.since = time.perf_counter()


def train(run: Run, learner, train_sampler, val_episodes, test_episodes, progress: bool = True) -> dict:
    """Train, checkpoint, evaluate; return the result dict (also written under ``run.folder``).

    Keras learners train through ``model.fit`` (they have a ``fit`` method); the others get one
    ``train_step`` call per episode here. Both report to the same :class:`Log`.
    """
    from tqdm.auto import tqdm

    check_multiple("--episodes", run.episodes, "--eval-every", run.eval_every)
    with saving(run.folder, "nothing was trained; choose another --out"):
        run.folder.mkdir(parents=True, exist_ok=True)
    start, history, wall_seconds, commits = load_checkpoint(run, learner)
    refuse_past(run.checkpoint, start, run.episodes, "episodes")
    if start:
        print(f"resuming {run.checkpoint} at episode {start:,} of {run.episodes:,}")
    log = Log(run, learner, val_episodes, history, wall_seconds, report=not progress, commits=commits)
    if hasattr(learner, "fit"):
        if start < run.episodes:
            learner.fit(train_sampler, start, log, progress)
    else:
        with tqdm(initial=start, total=run.episodes, disable=not progress, unit="ep",
                  desc=f"{run.algorithm} ({run.framework})") as bar:
            log.bar = bar
            for index in range(start, run.episodes):
                log.step(index, learner.train_step(train_sampler.episode(index)))
    return finish(run, learner, test_episodes, history, log.wall_seconds, log.commits)


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


def plot_curve(history: list, path: Path, title: str = "") -> None:
    """Training loss and train/validation accuracy against episodes."""
    # A bare Figure, not pyplot: no backend switch, so notebooks that call train() keep showing figures.
    from matplotlib.figure import Figure

    episodes = [h["episode"] for h in history]
    figure = Figure(figsize=(9, 3.2))
    left, right = figure.subplots(1, 2)
    left.plot(episodes, [h["loss"] for h in history])
    left.set(xlabel="episode", ylabel="training loss", yscale="log")
    right.plot(episodes, [h["accuracy"] for h in history], label="train episodes")
    right.errorbar(episodes, [h["val_accuracy"] for h in history], [h["val_ci95"] for h in history],
                   label="validation (fixed episodes)", capsize=2)
    right.set(xlabel="episode", ylabel="accuracy (%)")
    right.legend(loc="lower right", fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    write_bytes(path, png.getvalue())  # all or nothing: a full disk leaves no half-drawn curve
