"""What every command-line script of the book shares: options, framework checks, clean errors.

A chapter script builds its parser with :func:`episode_parser`, so every algorithm takes the same
options (``--framework {torch,tf,keras}``, ``--dataset``, ``--way/--shot/--query`` for training and
``--test-way/--test-shot/--test-query`` for testing, ``--episodes``, ``--seed``, ``--out``,
``--data-dir``, ``--device``), each checked by the rules of ``common.options`` while parsing, and
runs its ``main`` through :func:`run`, which turns a :class:`~common.errors.MetaLearnError` into
one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import sys
from typing import Callable

from common.allocator import keep_freed_memory
from common.devices import DEVICE_HELP
from common.errors import ConfigError, MetaLearnError
from common.options import COUNT, DECAY_EVERY, POSITIVE, SEED, WAY, Parser

FRAMEWORKS = ("torch", "tf", "keras")
# --framework name -> the package it needs
FRAMEWORK_PACKAGES = {"torch": "torch", "tf": "tensorflow", "keras": "keras"}


def require_framework(name: str) -> None:
    """Raise a clear error when ``name`` is not one of ours or its package is not installed."""
    if name not in FRAMEWORK_PACKAGES:
        raise ConfigError(f"unknown framework {name!r}; choose one of {', '.join(FRAMEWORKS)}")
    package = FRAMEWORK_PACKAGES[name]
    if importlib.util.find_spec(package) is None:
        raise ConfigError(f"--framework {name} needs the {package!r} package, which is not installed "
                          f"in this Python ({sys.executable}); run `make setup` and use .venv/bin/python")
    if name == "keras":
        import os
        backend = os.environ.get("KERAS_BACKEND", "tensorflow")
        if backend != "tensorflow":
            raise ConfigError(f"the book's Keras code runs on the TensorFlow backend, but KERAS_BACKEND="
                              f"{backend!r}; unset it or set KERAS_BACKEND=tensorflow")


def episode_parser(description: str, *, dataset: str = "omniglot", way: int = 5, shot: int = 1,
                   query: int | None = 15, episodes: int = 1000, test_shot: int | None = None,
                   test_query: int | None = None, episodes_help: str = "training episodes") -> Parser:
    """The options every few-shot training script takes (defaults are each script's own).

    Each option's rule is its ``type`` (``common.options``), checked while parsing. ``query=None``
    means "as many as --shot"; ``test_shot`` / ``test_query`` None mean "as in training"."""
    parser = Parser(description=description)
    parser.add_argument("--framework", choices=FRAMEWORKS, default="torch", help="the framework that computes")
    parser.add_argument("--dataset", default=dataset, help="omniglot, mini-imagenet or cifar-fs")
    parser.add_argument("--data-dir", default=None,
                        help="data root (default: $METALEARN_DATA, else ./data)")
    parser.add_argument("--way", type=WAY, default=way, help="classes per training episode (N)")
    parser.add_argument("--shot", type=COUNT, default=shot, help="support examples per class (K)")
    parser.add_argument("--query", type=COUNT, default=query,
                        help="query examples per class (Q)" + (" (default: --shot)" if query is None else ""))
    parser.add_argument("--test-way", type=WAY, default=None, help="N at test time (default: --way)")
    parser.add_argument("--test-shot", type=COUNT, default=test_shot,
                        help="K at test time" + (" (default: --shot)" if test_shot is None else ""))
    parser.add_argument("--test-query", type=COUNT, default=test_query,
                        help="Q at test time" + (" (default: --query)" if test_query is None else ""))
    parser.add_argument("--episodes", type=COUNT, default=episodes, help=episodes_help)
    parser.add_argument("--seed", type=SEED, default=0, help="draws the training episodes and the initial weights")
    parser.add_argument("--out", default="runs", help="folder for checkpoints, curves and results")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    return parser


def add_schedule_arguments(parser: Parser, *, lr: float = 1e-3, decay_every: int = 0) -> None:
    """The options of an episodic training schedule, one Adam step per episode: the learning rate
    and its halving, how often to validate and checkpoint, and how many fixed episodes score it."""
    parser.add_argument("--lr", type=POSITIVE, default=lr, help="Adam learning rate")
    parser.add_argument("--decay-every", type=DECAY_EVERY, default=decay_every,
                        help="halve the learning rate every this many episodes (0: never)")
    parser.add_argument("--eval-every", type=COUNT, default=500,
                        help="validate and checkpoint every N episodes (--episodes must be a multiple)")
    parser.add_argument("--val-episodes", type=COUNT, default=100,
                        help="fixed validation episodes scored at each checkpoint")
    parser.add_argument("--test-episodes", type=COUNT, default=600, help="fixed test episodes scored at the end")


def settings_from(config_class, args: argparse.Namespace, **given):
    """An algorithm's settings (a dataclass such as ``MAMLConfig``) from the parsed options: each field
    from the option of the same name (``inner_lr`` from ``--inner-lr``), except those ``given``. A field
    that no option sets (``field(init=False)``) keeps its default."""
    return config_class(**{field.name: given[field.name] if field.name in given else getattr(args, field.name)
                           for field in dataclasses.fields(config_class) if field.init})


class Config:
    """The base of an algorithm's settings (``MAMLConfig``, ``SNAILConfig``, ...). A subclass is a
    dataclass whose fields are the settings, named as in the paper, with the command line's defaults;
    its script builds it once from the parsed options (:meth:`from_args`), hands it to the learner,
    and records :meth:`options` in the results and the checkpoint. A subclass overrides either
    method where its options need more than a field each (checks, a derived value, a left-out key)."""

    @classmethod
    def from_args(cls, args: argparse.Namespace, **given):
        """The settings from the parsed options (see :func:`settings_from`)."""
        return settings_from(cls, args, **given)

    def options(self) -> dict:
        """What the results and the checkpoint record: every setting."""
        return dataclasses.asdict(self)


def run(main: Callable[..., object], *args, **kwargs) -> None:
    """Call ``main(*args, **kwargs)``; a reader's mistake ends in one clear line, not a stack trace.

    First, on Linux, glibc is told to keep freed memory in the process, which makes CPU training
    1.5-1.7x faster (``common/allocator.py``; ``METALEARN_MALLOC=system`` turns it off).
    """
    keep_freed_memory()
    try:
        main(*args, **kwargs)
    except MetaLearnError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # The reader piped the output into `head` or `less` and closed it: not an error of theirs.
        # Point stdout at /dev/null so that Python's own flush at exit cannot fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
