"""Plant realistic bugs one at a time and check that the tests catch them (mutation testing by hand).

    python -m tools.mutations                 # every mutation: a table of caught / survived
    python -m tools.mutations --list          # the mutations and the tests each one runs
    python -m tools.mutations --only keras-maml-ignores-first-order tf-keras-ignore-decay

Each mutation is one small edit that a contributor could plausibly make (a flag not passed on, a
schedule ignored, evaluation in training mode, labels shuffled apart from their images). The
working tree is copied to a scratch folder (tracked and untracked files that git does not ignore),
the edit is made there, and the tests aimed at it run there with ``pytest -x``; the real tree is
never touched. A mutation is *caught* when those tests fail, *survived* when they pass. Before the
mutations, the same tests run on the unmutated copy (``--no-baseline`` skips that): a baseline that
fails makes every "caught" meaningless.

The mutations are data, listed in ``tools/mutations.toml``. Not part of the test suite (it runs the
same tests many times over; the suite only checks that every mutation still applies); run it after
changing a test that a mutation targets, and add a mutation for every bug the tests are meant to see.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # the file, relative to the repository root
    old: str  # text that occurs exactly once in it
    new: str
    tests: tuple[str, ...]  # pytest arguments: files, node ids, -k expressions
    bug: str  # what a reader would see go wrong
    more: tuple[tuple[str, str], ...] = ()  # further (old, new) edits in the same file, for a consistent bug

    def edits(self) -> tuple[tuple[str, str], ...]:
        return ((self.old, self.new), *self.more)


MUTATIONS_FILE = ROOT / "tools" / "mutations.toml"


def load_mutations(path: Path = MUTATIONS_FILE) -> list[Mutation]:
    """The mutations listed in ``path``, one ``[[mutation]]`` table each (the fields of :class:`Mutation`)."""
    with open(path, "rb") as file:
        tables = tomllib.load(file)["mutation"]
    return [Mutation(t["name"], t["path"], t["old"], t["new"], tuple(t["tests"]), t["bug"],
                     tuple(tuple(edit) for edit in t.get("more", ()))) for t in tables]


MUTATIONS = load_mutations()


def occurrences(mutation: Mutation, text: str) -> list[int]:
    """How often each text ``mutation`` replaces occurs in ``text`` (its file): once each, or it is stale."""
    return [text.count(old) for old, _ in mutation.edits()]


def scratch_copy() -> Path:
    """The working tree (tracked and untracked-but-not-ignored files) in a temporary folder."""
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             check=True, capture_output=True).stdout.decode().split("\0")
    folder = Path(tempfile.mkdtemp(prefix="mutations-"))
    for relative in filter(None, listing):
        source = ROOT / relative
        if source.is_file():
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return folder


def run_tests(folder: Path, tests: tuple[str, ...], log: Path | None = None) -> tuple[int, float, str]:
    """(pytest's exit code, seconds, its last lines) for ``tests`` run in ``folder``; with ``log``, pytest's
    whole output goes there, passed tests' printed measurements included (``-rA``)."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")  # no stale .pyc when a file is restored
    env.setdefault("METALEARN_DATA", str(ROOT.parent / "shared" / "data"))
    start = time.perf_counter()
    report = ("-rA",) if log else ()
    done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *report, *tests],
                          cwd=folder, env=env, capture_output=True, text=True)
    if log:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(done.stdout + done.stderr)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode, time.perf_counter() - start, "\n".join(lines[-3:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these mutations only")
    parser.add_argument("--list", action="store_true", help="list the mutations and their tests")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run of the unmutated tests")
    parser.add_argument("--log", type=Path, metavar="FOLDER",
                        help="write each run's whole pytest output (what the tests measured) to FOLDER/<mutation>.txt")
    args = parser.parse_args(argv)
    names = {m.name for m in MUTATIONS}
    unknown = sorted(set(args.only or ()) - names)
    if unknown:
        parser.error(f"unknown mutation(s) {', '.join(unknown)}; see --list")
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    if args.list:
        for m in chosen:
            print(f"{m.name:40s} {m.path}\n{'':40s} {m.bug}\n{'':40s} pytest {' '.join(m.tests)}")
        return 0

    folder = scratch_copy()
    print(f"scratch copy: {folder}")
    try:
        if not args.no_baseline:
            for tests in dict.fromkeys(m.tests for m in chosen):
                log = args.log and args.log / f"baseline-{len(list(args.log.glob('baseline-*')))}.txt"
                code, seconds, tail = run_tests(folder, tests, log)
                if code != 0:
                    print(f"baseline FAILS ({seconds:.0f} s): pytest {' '.join(tests)}\n{tail}")
                    return 1
            print("baseline: every targeted test passes unmutated")
        rows, start = [], time.perf_counter()
        for m in chosen:
            path = folder / m.path
            original = path.read_text()
            counts = occurrences(m, original)
            if counts != [1] * len(counts):
                rows.append((m.name, "STALE", 0.0, f"the texts to mutate occur {counts} times, not once each"))
                continue
            mutated = original
            for old, new in m.edits():
                mutated = mutated.replace(old, new)
            path.write_text(mutated)
            try:
                code, seconds, tail = run_tests(folder, m.tests, args.log and args.log / f"{m.name}.txt")
            finally:
                path.write_text(original)
            verdict = "caught" if code == 1 else "survived" if code == 0 else f"error {code}"
            rows.append((m.name, verdict, seconds, m.bug))
            print(f"{m.name:40s} {verdict:9s} {seconds:6.0f} s", flush=True)
        print(f"\n| mutation | verdict | seconds | the bug |\n|---|---|---|---|")
        for name, verdict, seconds, bug in rows:
            print(f"| {name} | {verdict} | {seconds:.0f} | {bug} |")
        caught = sum(verdict == "caught" for _, verdict, _, _ in rows)
        print(f"\n{caught} of {len(rows)} caught, {time.perf_counter() - start:.0f} s")
        return 0 if caught == len(rows) else 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
