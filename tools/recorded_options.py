"""Does each committed result still name its run? Rebuild the run of every results file's command
and compare it with what the file records.

    python -m tools.recorded_options                     # every results file under results/
    python -m tools.recorded_options results/metric      # one chapter
    python -m tools.recorded_options --json runs.json    # also write what each command builds

A training script turns its command line into a ``common.training.Run``: the algorithm's settings
(``MAMLConfig``, ``ProtoNetConfig``, ...) become the run's ``options``, which the results file
records and which a checkpoint must match to be resumed. This program runs each recorded command
(``python -m <script> ...``) in this process up to the moment its ``Run`` exists, and stops it
there: nothing is trained or written (``--out`` is not created). It then compares the run's
options, algorithm, data set and episode sizes with the file's, and prints one line per difference.
A change to the scripts that keeps every line ``same`` keeps every committed result traceable to
its command, and every run folder resumable with the same command.

Commands of other programs (baselines, benchmarks) build no ``Run`` and are left out; a command
that asked for a GPU (``--device cuda``) is rebuilt on the CPU, since the device is not part of a
run's identity. An option that a script began to record after some results were committed
(``ADDED_LATER``) is compared, in a file dated before it, with the value every run had until then,
and the line says so. Exit status 1 when a rebuilt run differs from its file.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import runpy
import shlex
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from common.results import RESULTS_DIR

# What a results file records of its run, under the file's name -> the Run field it comes from.
RECORDED = {"algorithm": "algorithm", "framework": "framework", "dataset": "dataset", "train_way": "way",
            "train_shot": "shot", "train_query": "query", "seed": "seed", "options": "options"}
SCRIPTS = ("chapters.metric.protonet", "chapters.metric.matching", "chapters.metric.siamese",
           "chapters.optimization.maml", "chapters.optimization.metasgd", "chapters.optimization.reptile",
           "chapters.optimization.sinusoid", "chapters.optimization.lstm_meta_learner",
           "chapters.model_based.mann", "chapters.model_based.snail", "chapters.model_based.metanet",
           "chapters.applications.train")
# Options that a script began to record after results had been committed: name -> (the value every
# run had before the option existed, when it began to be recorded). A file dated earlier records
# nothing for it; a later file without it differs from its rebuilt run, as any other missing option.
ADDED_LATER = {
    # MAML, first-order MAML, Meta-SGD, Reptile: Conv-4 had max-pooling only, until --backbone strided.
    "backbone": ("maxpool", "2026-12-05T11:14:55+00:00"),
}


class Built(Exception):
    """Raised as soon as a script has built its Run, which it carries."""


def stop_at_run() -> None:
    """Make every script stop where its Run is built; load each data split once per process."""
    import common.data
    from common import training

    build = training.Run.__init__

    def built(self, *args, **kwargs):
        build(self, *args, **kwargs)
        raise Built(self)

    training.Run.__init__ = built
    load = functools.lru_cache(maxsize=None)(common.data.load_dataset)
    common.data.load_dataset = lambda name, split="train", data_dir=None, **options: load(name, split, data_dir,
                                                                                            **options)


def rebuild(command: str):
    """The Run that ``command`` builds, or the reason it built none."""
    argv = shlex.split(command)
    module, options = argv[argv.index("-m") + 1], argv[argv.index("-m") + 2:]
    if "--device" in options:
        options[options.index("--device") + 1] = "cpu"
    sys.argv = [module, *options]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as errors:
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=False)
        except Built as run:
            return run.args[0]
        except SystemExit:
            return f"refused: {errors.getvalue().strip().splitlines()[-1:]}"
        except Exception as error:  # a data set not on this machine, say
            return f"{type(error).__name__}: {error}"
    return "built no run"


def recorded(run) -> dict:
    """The run as a results file records it (JSON-normalised: tuples become lists)."""
    fields = asdict(run)
    return json.loads(json.dumps({name: fields[field] for name, field in RECORDED.items()}))


def unrecorded(result: dict, options: dict) -> dict:
    """The options of ``ADDED_LATER`` that a rebuilt run has (``options``) and its file, written
    before they existed, does not record: {name: the value that file's run had}."""
    written = datetime.fromisoformat(result["date"]) if "date" in result else None
    return {name: value for name, (value, since) in ADDED_LATER.items()
            if name in options and name not in result.get("options", {})
            and written is not None and written < datetime.fromisoformat(since)}


def differences(result: dict, run) -> tuple[list[str], list[str]]:
    """(what differs between the file and its rebuilt run, notes on the options the file predates)."""
    built = recorded(run)
    lines = [f"{name}: {result.get(name)!r} in the file, {built[name]!r} rebuilt"
             for name in RECORDED if name != "options" and name in result and result[name] != built[name]]
    ours = built["options"]
    older = unrecorded(result, ours)
    theirs = {**older, **result.get("options", {})}
    lines += [f"options.{key}: {theirs.get(key, '(none)')!r} in the file, {ours.get(key, '(none)')!r} rebuilt"
              for key in sorted(set(theirs) | set(ours)) if theirs.get(key) != ours.get(key)]
    notes = [f"options.{name}: not recorded (the file predates the option), {value!r} as every run then"
             for name, value in older.items()]
    return lines, notes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.recorded_options", description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", default=[str(RESULTS_DIR)], help="results folders (default: results/)")
    parser.add_argument("--json", default=None, help="also write each command's rebuilt run to this file")
    args = parser.parse_args(argv)
    files = sorted(path for folder in args.folders for path in Path(folder).rglob("*.json"))
    results = [(path, json.loads(path.read_text())) for path in files]
    results = [(path, result) for path, result in results if isinstance(result, dict)
               and any(f"-m {script} " in result.get("command", "") + " " for script in SCRIPTS)]
    stop_at_run()
    rebuilt, failed, runs = {}, 0, {}
    for path, result in results:
        command = result["command"]
        if command not in rebuilt:
            rebuilt[command] = rebuild(command)
        run = rebuilt[command]
        if isinstance(run, str):
            print(f"not rebuilt  {path}: {run}")
            continue
        runs[command] = {"run": json.loads(json.dumps(asdict(run))), "folder": str(run.folder)}
        found, notes = differences(result, run)
        failed += bool(found)
        print(f"{'DIFFERS' if found else 'same':<12} {path}" + "".join(f"\n    {line}" for line in found + notes),
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1) + "\n")
    print(f"{len(results)} results files, {len(rebuilt)} commands: {failed} differ from their rebuilt run")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
