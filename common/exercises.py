"""Exercises: write a piece of the book's code yourself, then let the checks tell you if it is right.

Every exercise of the book is a folder, e.g. ``chapters/foundations/exercises/01_episode_sampler/``:

* ``README.md``: the statement: what to write, why it matters, hints, and the command below;
* ``exercise.py``: the starter file you edit; the part to write raises ``NotImplementedError``;
* ``solution.py``: a reference solution with the same functions (look only after trying!);
* ``checks.py``: functions ``check_<something>(module)``, run in file order, each given the
  imported module under test and using plain ``assert`` with a message that says what is wrong.

Check your answer, or the reference solution, from the repository root::

    python -m common.exercises check chapters/foundations/exercises/01_episode_sampler
    python -m common.exercises check chapters/foundations/exercises/01_episode_sampler --solution
    python -m common.exercises list            # every exercise of the book

Each check prints one line, then a summary; the exit status is 0 only when every check passed::

    PASS check_shapes_and_types
    PASS check_labels_are_0_to_n_minus_1_class_by_class
    FAIL check_support_and_query_are_disjoint: examples [(2, 6), (3, 2)] (class, example) are in both ...
    ...
    6 passed, 1 failed

``TODO name: not written yet — ...`` marks a check that reached the ``NotImplementedError`` of the
starter, and ``SKIP`` one that needs a data set that is not on disk (not a failure). A file that
cannot even be imported (a syntax error, a misspelt import) gets a single ``ERROR`` line naming the
line to fix instead of a stack trace; an exception raised inside your code is reported as a FAIL
with its type, its message and the line of *your* file it came from.

From Python (tests, notebooks), :func:`check_exercise` returns the outcomes as a list.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Callable

from common.errors import ConfigError, MetaLearnError

STARTER, SOLUTION, CHECKS, STATEMENT = "exercise.py", "solution.py", "checks.py", "README.md"
PASS, FAIL, TODO, SKIP, ERROR = "PASS", "FAIL", "TODO", "SKIP", "ERROR"


@dataclass(frozen=True)
class CheckOutcome:
    """What one check found: ``status`` is PASS, FAIL, TODO, SKIP or ERROR (file not importable)."""

    name: str
    status: str
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def __str__(self) -> str:
        if self.status == PASS:
            return f"PASS {self.name}"
        if self.status == TODO:
            return f"TODO {self.name}: not written yet — {self.message}"
        return f"{self.status} {self.name}: {self.message}"


class SkipCheck(Exception):
    """Raised by a check that cannot run on this machine (e.g. Omniglot is not on disk)."""


def require_dataset(name: str, split: str, **options):
    """``load_dataset(name, split, **options)`` for a check, or SKIP the check if it is not on disk."""
    from common.data import load_dataset

    try:
        return load_dataset(name, split, **options)
    except MetaLearnError as error:  # missing, not downloadable, or corrupt: not the reader's fault
        raise SkipCheck(f"{name} {split} split not available ({error})") from None


# --------------------------------------------------------------------------------------------
# 1. Importing the reader's file, fresh every time
# --------------------------------------------------------------------------------------------

_imports = itertools.count()


def import_fresh(path: str | Path) -> ModuleType:
    """Import the Python file ``path`` as a new module with a unique name.

    Every check gets a module of its own, so nothing one check does to it (a global changed, a
    cache filled) leaks into the next. We compile the source ourselves instead of letting the
    import system do it: no ``__pycache__`` lands in the exercise folder, and a file edited twice
    within one second can never be served from stale bytecode.
    """
    path = Path(path).resolve()
    name = re.sub(r"\W", "_", f"_exercise{next(_imports)}_{path.parent.name}_{path.stem}")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    code = compile(importlib.util.decode_source(path.read_bytes()), str(path), "exec", dont_inherit=True)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    try:
        exec(code, module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def forget(module: ModuleType) -> None:
    """Drop a module made by :func:`import_fresh` (a notebook may check hundreds of times)."""
    sys.modules.pop(module.__name__, None)


# --------------------------------------------------------------------------------------------
# 2. Saying where an error came from, in one line
# --------------------------------------------------------------------------------------------

def _last_frame_in(tb: TracebackType | None, files: set[str]) -> traceback.FrameSummary | None:
    """The innermost frame of a traceback that runs code from one of ``files``."""
    frames = [frame for frame in traceback.extract_tb(tb) if frame.filename in files]
    return frames[-1] if frames else None


def _where(frame: traceback.FrameSummary) -> str:
    place = f"{Path(frame.filename).name}, line {frame.lineno}"
    if frame.name != "<module>":
        place += f", in {frame.name}"
    return f"{place}: `{frame.line}`" if frame.line else place


def _exception_text(error: BaseException) -> str:
    message = " ".join(str(error).split())  # one line, whatever the exception's message looks like
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def describe_import_error(error: BaseException, path: Path) -> str:
    """One line: which line of the reader's file stops it from being imported, and why."""
    if isinstance(error, SyntaxError) and error.filename == str(path):
        code = f": `{error.text.strip()}`" if error.text and error.text.strip() else ""
        return f"cannot be imported, line {error.lineno}: {type(error).__name__}: {error.msg}{code}"
    frame = _last_frame_in(error.__traceback__, {str(path)})
    where = f" ({_where(frame)})" if frame else ""
    return f"cannot be imported: {_exception_text(error)}{where}"


# --------------------------------------------------------------------------------------------
# 3. Running the checks
# --------------------------------------------------------------------------------------------

def exercise_files(folder: str | Path, solution: bool = False) -> tuple[Path, Path]:
    """(file under test, checks.py) of an exercise folder; a clear error if it is not one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder; `python -m common.exercises list` shows the exercises")
    under_test, checks = folder / (SOLUTION if solution else STARTER), folder / CHECKS
    for path in (under_test, checks):
        if not path.is_file():
            raise ConfigError(f"{folder} is not an exercise folder: it has no {path.name}")
    return under_test.resolve(), checks.resolve()


def load_checks(checks_path: Path) -> list[Callable[[ModuleType], None]]:
    """The ``check_*`` functions defined in ``checks.py``, in the order they appear in the file."""
    module = import_fresh(checks_path)
    forget(module)  # the functions keep their globals; sys.modules need not keep the module
    checks = [value for name, value in vars(module).items()
              if name.startswith("check_") and callable(value)
              and getattr(value, "__module__", None) == module.__name__]
    return sorted(checks, key=lambda check: check.__code__.co_firstlineno)


def run_check(check: Callable[[ModuleType], None], path: Path, checks_path: Path) -> CheckOutcome:
    """Run one check on a fresh import of ``path`` and classify what happened."""
    name = check.__name__
    try:
        module = import_fresh(path)
    except (Exception, SystemExit) as error:
        return CheckOutcome(path.name, ERROR, describe_import_error(error, path))
    try:
        check(module)
        return CheckOutcome(name, PASS)
    except SkipCheck as reason:
        return CheckOutcome(name, SKIP, str(reason))
    except NotImplementedError as error:
        # The starter's placeholder: the reader has not written this part yet.
        frame = _last_frame_in(error.__traceback__, {str(path)})
        text = str(error).strip() or (f"{_where(frame)} raises NotImplementedError" if frame
                                      else "NotImplementedError")
        return CheckOutcome(name, TODO, text)
    except (Exception, SystemExit) as error:  # SystemExit: a sys.exit() left in the reader's code
        # Whose line raised it? An assert of the check is a wrong answer, told by the check's own
        # message; anything raised inside the reader's code is shown at the reader's line.
        frame = _last_frame_in(error.__traceback__, {str(path), str(checks_path)})
        if isinstance(error, AssertionError) and (frame is None or frame.filename == str(checks_path)):
            where = f" ({_where(frame)})" if frame else ""
            return CheckOutcome(name, FAIL, str(error).strip() or f"assertion failed{where}")
        if frame is not None and frame.filename == str(path):
            return CheckOutcome(name, FAIL, f"{_exception_text(error)} (raised at {_where(frame)})")
        # Raised by the check itself, usually while it examined a value of the wrong kind.
        where = f" at {_where(frame)}" if frame else ""
        return CheckOutcome(name, FAIL, f"{_exception_text(error)} (raised in the check{where}; "
                                        f"often a sign that your code returned the wrong kind of value)")
    finally:
        forget(module)


def check_exercise(folder: str | Path, solution: bool = False) -> list[CheckOutcome]:
    """Run every check of an exercise on ``exercise.py`` (or ``solution.py``); one outcome each.

    When the file cannot be imported at all, the list holds a single ERROR outcome saying why.
    """
    path, checks_path = exercise_files(folder, solution)
    try:
        checks = load_checks(checks_path)
    except (Exception, SystemExit) as error:  # a broken checks.py is the book's bug; one line too
        return [CheckOutcome(CHECKS, ERROR, describe_import_error(error, checks_path))]
    outcomes = []
    for check in checks:
        outcome = run_check(check, path, checks_path)
        outcomes.append(outcome)
        if outcome.status == ERROR:  # the file does not import: every other check would say the same
            break
    return outcomes


def all_passed(outcomes: list[CheckOutcome]) -> bool:
    """True when no check failed, is still to do, or could not run for an error (SKIP is fine)."""
    return bool(outcomes) and all(outcome.status in (PASS, SKIP) for outcome in outcomes)


def summary(outcomes: list[CheckOutcome]) -> str:
    """The last line of a check run, e.g. ``3 passed, 1 failed``."""
    if any(outcome.status == ERROR for outcome in outcomes):
        return "no checks ran: fix the error above, then run the command again"
    words = {PASS: "passed", FAIL: "failed", TODO: "not written yet", SKIP: "skipped"}
    counts = [(sum(o.status == status for o in outcomes), word) for status, word in words.items()]
    return ", ".join(f"{count} {word}" for count, word in counts if count) or "no checks found"


# --------------------------------------------------------------------------------------------
# 4. Finding exercises, and the command line
# --------------------------------------------------------------------------------------------

def find_exercises(root: str | Path = "chapters") -> list[Path]:
    """Every exercise folder (one holding a ``checks.py``) at or below ``root``, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder; run from the repository root or name the chapters folder")
    return sorted(path.parent for path in root.rglob(CHECKS))


def title(folder: Path) -> str:
    """The first heading of the exercise's README.md (its title), or the folder name."""
    statement = folder / STATEMENT
    if statement.is_file():
        for line in statement.read_text(encoding="utf-8").splitlines():
            if line.startswith("#"):
                return line.lstrip("#").strip()
    return folder.name


def _shown(path: Path) -> str:
    """A path relative to the current folder when it is below it (what the reader would type)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.exercises",
                                     description="Check the book's exercises.")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="run the checks of one exercise")
    check.add_argument("folder", help="the exercise folder, e.g. chapters/foundations/exercises/01_episode_sampler")
    check.add_argument("--solution", action="store_true", help="check solution.py instead of exercise.py")
    listing = commands.add_parser("list", help="list the exercises")
    listing.add_argument("root", nargs="?", default="chapters", help="where to look (default: chapters)")
    args = parser.parse_args(argv)

    if args.command == "list":
        folders = find_exercises(args.root)
        width = max((len(_shown(folder)) for folder in folders), default=0)
        for folder in folders:
            print(f"{_shown(folder):<{width}}  {title(folder)}")
        count = f"{len(folders)} exercise{'' if len(folders) == 1 else 's'}"
        print(f"{count}; check one with: python -m common.exercises check <folder>")
        return 0

    outcomes = check_exercise(args.folder, solution=args.solution)
    for outcome in outcomes:
        print(outcome)
    print(summary(outcomes))
    return 0 if all_passed(outcomes) else 1


if __name__ == "__main__":
    from common.cli import run
    # Run the copy of this module that checks.py files import (`common.exercises`), not this
    # `__main__` copy: otherwise a check's SkipCheck would be a different class from the one caught.
    from common.exercises import main as checker

    run(lambda: sys.exit(checker()))  # a bad folder name: one line on stderr, exit status 2
