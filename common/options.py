"""The rules every script's options follow, checked before any data is loaded or model built.

One set of rules, one wording, for every chapter's scripts. An option declares its rule as its
``type``, so argparse checks it while parsing::

    from common.options import COUNT, POSITIVE, Parser, check_out, check_multiple

    parser = Parser(description="...")            # or common.cli.episode_parser(...)
    parser.add_argument("--episodes", type=COUNT, default=1000, help="training episodes")
    parser.add_argument("--lr", type=POSITIVE, default=1e-3, help="Adam's learning rate")
    args = parser.parse_args(argv)                # --episodes 0 -> ConfigError, one line
    check_multiple("--episodes", args.episodes, "--eval-every", args.eval_every)
    check_out(args.out)

A mistake is one :class:`~common.errors.ConfigError` that names the option, the value and what is
allowed (``--episodes must be at least 1, got 0``); ``common.cli.run`` prints it as ``error: ...``
with exit status 2, and a notebook that calls ``main([...])`` sees the exception. ``--help`` shows
every option's default.

The same rules check what a results file records (:func:`recorded_problems`), so that a run with
an impossible schedule, or one meta-trained on held-out classes, can never become a cell of the
results table, however the file was made.
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass
from pathlib import Path

from common.errors import ConfigError
from common.files import nearest_existing, writable


# --------------------------------------------------------------------------------------------
# The rules
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Number:
    """A number an option must be: whole or not, and its range. Called with the option's text (as
    argparse does with a ``type``), it returns the value or raises with the rule in words."""

    kind: type = int
    minimum: float = -math.inf
    maximum: float = math.inf
    positive: bool = False  # the minimum 0 itself excluded
    note: str = ""          # what a special value means, e.g. " (0: never)"

    @property
    def __name__(self) -> str:  # argparse names a type by it in some messages
        return "whole number" if self.kind is int else "number"

    def allowed(self) -> str:
        if self.positive:
            return "a positive number" + self.note
        low, high = ("" if not math.isfinite(limit) else f"{limit:g}" if self.kind is float else str(int(limit))
                     for limit in (self.minimum, self.maximum))
        if high:
            return f"{'a whole number' if self.kind is int else 'a number'} between {low} and {high}" + self.note
        return f"at least {low}" + self.note

    def problem(self, value) -> str | None:
        """None when ``value`` follows the rule, else what it must be (``"must be at least 1"``)."""
        whole = isinstance(value, int) and not isinstance(value, bool)
        number = whole or (isinstance(value, float) and self.kind is float)
        if not number or not math.isfinite(value) or not self.minimum <= value <= self.maximum \
                or (self.positive and value <= 0):
            return f"must be {self.allowed()}"
        return None

    def __call__(self, text: str):
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {'a whole number' if self.kind is int else 'a number'}"
                                             f" ({self.allowed()}), got {text!r}") from None
        problem = self.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(f"{problem}, got {text}")
        return value


COUNT = Number(int, 1)                          # episodes, shots, queries, steps, ...
NATURAL = Number(int, 0)                        # 0 allowed
SEED = Number(int, 0, 2**32 - 1)                # what NumPy, TensorFlow and PyTorch all accept
POSITIVE = Number(float, 0, positive=True)      # learning rates, step sizes, scales
WAY = Number(int, 2, note=" (an episode tells classes apart)")
DECAY_EVERY = Number(int, 0, note=" (0: never)")

TRAIN_SPLITS = ("train", "trainval")  # the classes a model may be meta-trained on


def train_split(text: str) -> str:
    """``--train-split``: ``train``, or ``trainval`` (Snell et al.'s final runs); never held-out
    classes, whose test number would then measure memory, not learning to learn."""
    if text in TRAIN_SPLITS:
        return text
    why = {"test": ": a model meta-trained on the test classes would be tested on classes it has learned "
                   "(without a train split, --pipeline-check splits the test classes in two and labels the run)",
           "val": ": the validation classes are held out to watch the training"}.get(text, "")
    raise argparse.ArgumentTypeError(f"must be train or trainval, got {text!r}{why}")


# --------------------------------------------------------------------------------------------
# Rules between options, and the output folder
# --------------------------------------------------------------------------------------------

def invalid(option: str, problem: str, value) -> ConfigError:
    """The one wording of every rule: ``--option must be <allowed>, got <value>``."""
    return ConfigError(f"{option} {problem}, got {value}")


def check_multiple(total_option: str, total: int, every_option: str, every: int, unit: str = "episodes") -> None:
    """A run of ``total`` checkpoints every ``every`` (or once, at the end, when ``every`` is larger)."""
    every = min(every, total)
    if total % every:
        lower, higher = total // every * every, (total // every + 1) * every
        suggestion = f"{lower} or {higher}" if lower else str(higher)
        raise invalid(total_option, f"must be a multiple of {every_option} ({every})",
                      f"{total}: the run validates and checkpoints every {every} {unit}; pass "
                      f"{total_option} {suggestion}, or another {every_option}")


def check_out(out, option: str = "--out") -> None:
    """``--out`` must be a folder that can be written in (or created): checked before any work, and
    nothing is created here (the run creates its folder when it starts)."""
    existing = nearest_existing(out)
    itself = existing == Path(out).expanduser().absolute()
    if not existing.is_dir():
        raise invalid(option, "must be a folder", f"{out}, {'which' if itself else f'but {existing}'} is a file; "
                      f"choose another folder")
    if not writable(existing):
        raise invalid(option, "must be a folder you can write in", f"{out}, but {'it' if itself else existing} is "
                      f"read-only; choose another folder")


# --------------------------------------------------------------------------------------------
# What a results file may record
# --------------------------------------------------------------------------------------------

# Result keys and the rule each follows; ``options`` keys (the algorithm's settings) likewise.
# (Not every count: a model-based learner's episodes have no query set, and record query 0.)
RECORDED = {"train_episodes": COUNT, "seed": SEED}
RECORDED_OPTIONS = {"lr": POSITIVE, "meta_lr": POSITIVE, "inner_lr": POSITIVE, "decay_every": DECAY_EVERY,
                    "meta_batch": COUNT, "inner_steps": COUNT, "test_inner_steps": COUNT}
RECORDED_TRAIN_SPLITS = (*TRAIN_SPLITS, "pipeline-check")  # a pipeline check is labelled as such


def sized_name(name: str, side: int | None) -> str:
    """A data set's name for images resized to ``side`` pixels (None: the papers' 28, the name as it
    is): ``omniglot`` becomes ``omniglot-56px``, a data set of its own in the results."""
    return name if side is None else f"{name}-{side}px"


def unsized_name(name: str) -> str:
    """The name without the ``-<side>px`` that :func:`sized_name` adds."""
    return re.sub(r"-\d+px$", "", name)


def recorded_problems(result: dict) -> list[str]:
    """What makes a result invalid as a run of its method: an option outside its rule (a negative
    learning-rate schedule, say), or meta-training on held-out classes. Empty when it is valid."""
    problems = []
    for key, rule in RECORDED.items():
        if key == "train_episodes" and result.get("framework") == "numpy":
            rule = NATURAL  # a framework-free baseline that learns nothing across episodes records 0
        if key in result and result[key] is not None and rule.problem(result[key]):
            problems.append(f"{key} {rule.problem(result[key])}, is {result[key]!r}")
    options = result.get("options") or {}
    for key, rule in RECORDED_OPTIONS.items():
        if options.get(key) is not None and rule.problem(options[key]):
            problems.append(f"options.{key} {rule.problem(options[key])}, is {options[key]!r}")
    scheme = options.get("scheme", "vinyals")  # common/schemes.py: a Lake-scheme run is named <dataset>-lake
    named = unsized_name(str(result.get("dataset", "")))
    if scheme != "vinyals" and not named.endswith(f"-{scheme}"):
        problems.append(f"it was run on the {scheme!r} scheme (options.scheme) but is named {result.get('dataset')!r}, "
                        f"not '<dataset>-{scheme}': it would stand in the Vinyals split's rows")
    split = options.get("train_split", "train")
    if split not in RECORDED_TRAIN_SPLITS:
        problems.append(f"it was meta-trained on the {split!r} classes (options.train_split), not on train or "
                        f"trainval")
    return problems


# --------------------------------------------------------------------------------------------
# The parser
# --------------------------------------------------------------------------------------------

class HelpFormatter(argparse.HelpFormatter):
    """Adds ``(default: ...)`` to an option's help unless the help already says its default (an
    option whose default is another option's value says so in words) or it is a flag."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or not action.option_strings or action.default is None
                or action.default is False or action.default is argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse with the book's manners: a mistake is one :class:`ConfigError` in the wording of
    :func:`invalid` (``common.cli.run`` prints it on one line, exit status 2), and ``--help`` shows
    every option's default."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        found = re.fullmatch(r"argument ([^:]+): (.*)", message, re.S)
        if found is None:  # not about one option: unrecognized arguments, a required one missing
            raise ConfigError(f"{message} (--help lists the options)")
        option, text = found.group(1).split("/")[-1], found.group(2)
        choice = re.fullmatch(r"invalid choice: (.*) \(choose from (.*)\)", text, re.S)
        if choice:
            allowed = ", ".join(name.strip("'") for name in choice.group(2).split(", "))
            raise invalid(option, f"must be one of {allowed}", choice.group(1))
        raise ConfigError(f"{option} {text}" if text.startswith("must") else f"{option}: {text}")
