"""The results format every training script writes, and the table that sets it beside the papers.

One run = one JSON file under ``results/`` with (at least) these keys:

    algorithm, framework, dataset, way, shot, query, train_episodes,
    accuracy, ci95                 (percent, over the fixed evaluation episodes)
    wall_seconds, seconds_per_episode, versions, commit, command

Regression runs (sinusoids) set ``"metric": "mse"`` and report ``mse`` and ``mse_ci95`` (mean
squared error after adaptation, over the fixed test tasks) instead of ``accuracy`` and ``ci95``;
their ``way`` is 1 and ``shot`` is K.

Runs also record ``device`` (``cpu``, ``cuda:0``, ...; ``common.devices``), where they computed,
and ``machine`` (the processor, its core count and its widest vector instructions, and ``gpu``,
the GPU's name, for a run on one, whose ``versions`` then add ``cuda``), which
``seconds_per_episode`` depends on: the same TensorFlow training episode can take 1.6x as long on
one x86 CPU as on another, so timings compare only within a machine. Episodic
training runs also record ``test_seconds``, the time the evaluation on the test episodes took.

``command`` is the exact command line that produced the file, so every number in a table traces
back to something a reader can run. ``commit`` is the code that ran it, read when the run started
(``commit_at_end`` is added when the tree changed before it ended); a model trained at other
commits than the one that tested it (a checkpoint resumed across commits, or tested again later
with ``--test-way 20``) adds ``trained_at``, the commits of its training episodes in order.
``python -m common.results table`` collects the files into a Markdown table, ours per framework
beside the published number.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from common.devices import cuda_version, gpu_name
from common.files import saving, write_text
from common.options import recorded_problems, unsized_name
from common.errors import ConfigError, MetaLearnError
from common.weights import FRAMEWORKS

REQUIRED = {
    "algorithm": str, "framework": str, "dataset": str, "way": int, "shot": int, "query": int,
    "train_episodes": int, "wall_seconds": float,
    "seconds_per_episode": float, "versions": dict, "commit": str, "command": str,
}
METRICS = {"accuracy": ("accuracy", "ci95"), "mse": ("mse", "mse_ci95")}  # metric -> (value, 95% CI) keys
RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
# The framework of a result: one of the three, or "numpy" for a baseline that needs none (the
# applications chapter's TF-IDF nearest-mean classifier); a table shows a numpy column only if it has one.
RESULT_FRAMEWORKS = (*FRAMEWORKS, "numpy")

FINN_OMNIGLOT = ("omniglot", "omniglot-characters")  # where Finn et al.'s numbers stand: see below
# Published test accuracies (%) on the papers' protocols, (algorithm, dataset, way, shot) -> (value, source).
# An algorithm name ending in "-transductive" is a network with BatchNorm whose query set was
# normalised as one batch (each prediction depends on the other queries); without the suffix,
# a query's prediction depends on the support set and itself only. Our scripts name runs the same way.
PUBLISHED = {
    **{("protonet", "omniglot", w, s): (v, "Snell et al. 2017, Table 1")
       for (w, s), v in {(5, 1): 98.8, (5, 5): 99.7, (20, 1): 96.0, (20, 5): 98.9}.items()},
    **{("protonet", "mini-imagenet", 5, s): (v, "Snell et al. 2017, Table 2")
       for s, v in {1: 49.42, 5: 68.20}.items()},
    **{("matching", "omniglot", w, s): (v, "Vinyals et al. 2016, Table 1")
       for (w, s), v in {(5, 1): 98.1, (5, 5): 98.9, (20, 1): 93.8, (20, 5): 98.5}.items()},
    **{("matching", "mini-imagenet", 5, s): (v, "Snell et al. 2017, Table 2 (Matching Nets FCE)")
       for s, v in {1: 43.56, 5: 55.31}.items()},
    **{("siamese", "omniglot", w, s): (v, "Koch et al. 2015, as reported by Vinyals et al. 2016")
       for (w, s), v in {(5, 1): 96.7, (5, 5): 98.4, (20, 1): 88.0, (20, 5): 96.5}.items()},
    # Lake et al.'s challenge (common/schemes.py): 20-way 1-shot within one alphabet.
    ("siamese", "omniglot-lake", 20, 1): (92.0, "Koch et al. 2015 (20-way within-alphabet one-shot, Lake et al.'s runs)"),
    # Finn et al. split Omniglot's characters irrespective of alphabet, and Nichol et al. and Li et
    # al. follow them (the rows omniglot-characters, common/schemes.py); the Vinyals split's rows, a
    # harder test whose alphabets are nearly all new, stand beside the same numbers.
    **{("maml-transductive", dataset, w, s): (v, "Finn et al. 2017, Table 1 (transductive)")
       for dataset in FINN_OMNIGLOT
       for (w, s), v in {(5, 1): 98.7, (5, 5): 99.9, (20, 1): 95.8, (20, 5): 98.9}.items()},
    **{("fomaml-transductive", dataset, w, s): (v, "Nichol et al. 2018, Table 1 (transductive)")
       for dataset in FINN_OMNIGLOT
       for (w, s), v in {(5, 1): 98.3, (5, 5): 99.2, (20, 1): 89.4, (20, 5): 97.9}.items()},
    **{("reptile", "omniglot", w, s): (v, "Nichol et al. 2018, Table 1 (not transductive)")
       for (w, s), v in {(5, 1): 95.39, (5, 5): 98.90, (20, 1): 88.14, (20, 5): 96.65}.items()},
    **{("reptile-transductive", "omniglot", w, s): (v, "Nichol et al. 2018, Table 1 (transductive)")
       for (w, s), v in {(5, 1): 97.68, (5, 5): 99.48, (20, 1): 89.43, (20, 5): 97.12}.items()},
    # Li et al. follow MAML's protocol and do not state the batch norm's: our protocol runs it as
    # MAML's released code does (transductive).
    **{("metasgd-transductive", dataset, w, s): (v, "Li et al. 2017, Table 1 (batch-norm protocol not stated)")
       for dataset in FINN_OMNIGLOT
       for (w, s), v in {(5, 1): 99.53, (5, 5): 99.93, (20, 1): 95.93, (20, 5): 98.97}.items()},
    **{("snail", "omniglot", w, s): (v, "Mishra et al. 2018, Table 1 (one query per sequence)")
       for (w, s), v in {(5, 1): 99.07, (5, 5): 99.78, (20, 1): 97.64, (20, 5): 99.36}.items()},
    **{("metanet", "omniglot", w, s): (v, "Munkhdalai & Yu 2017, Table 1")
       for (w, s), v in {(5, 1): 98.95, (20, 1): 97.00}.items()},
    # FewRel: Proto-CNN meta-trained on FewRel's 64 training relations, tested on 5 or 10 of 20 (our
    # runs meta-train on 6 of the 16 public validation relations, tested on 5 others, or on the 10
    # others in the fewrel-6-10 rows: see common/data/fewrel.py).
    **{("protonet", dataset, w, s): (v, "Han et al. 2018, Table 4 (Proto-CNN; 64 training relations)")
       for dataset in ("fewrel", "fewrel-6-10")
       for (w, s), v in {(5, 1): 69.20, (5, 5): 84.79, (10, 1): 56.44, (10, 5): 75.55}.items()},
    # Sinusoid regression: MSE after adaptation on K points (way 1, shot K).
    **{("maml", "sinusoid", 1, k): (v, "Li et al. 2017, Table 2 (MSE, MAML)")
       for k, v in {5: 1.13, 10: 0.85, 20: 0.71}.items()},
    **{("metasgd", "sinusoid", 1, k): (v, "Li et al. 2017, Table 2 (MSE, Meta-SGD)")
       for k, v in {5: 0.90, 10: 0.53, 20: 0.31}.items()},
}

# Online sequence learners (the model-based chapter) are scored at each presentation of a class in
# an episode: the 1st time it is shown (a guess), the 2nd (after one labelled example), ...
# (algorithm, dataset, way, presentations per class) -> ({presentation: accuracy}, source); a run's
# JSON holds ``presentations``: {"1": [accuracy, ci95], ...} beside its accuracy over all steps.
PUBLISHED_PRESENTATIONS = {
    ("mann", "omniglot", 5, 10): ({1: 36.4, 2: 82.8, 3: 91.0, 4: 92.6, 5: 94.9, 10: 98.1},
                                  "Santoro et al. 2016, Table 1 (MANN, one-hot labels)"),
    ("lstm", "omniglot", 5, 10): ({1: 24.4, 2: 49.5, 3: 55.3, 4: 61.0, 5: 63.6, 10: 62.5},
                                  "Santoro et al. 2016, Table 1 (LSTM, one-hot labels)"),
}

# ------------------------------------------------------------------------- writing one result

def versions() -> dict:
    """Versions of Python and of the libraries a number depends on (without importing them)."""
    found = {"python": platform.python_version()}
    for package in ("numpy", "torch", "tensorflow", "keras"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def machine() -> dict:
    """The processor a run's timings belong to: its model name, the machine's cores (a run may
    use fewer: the benchmarks pin one), and the widest vector instruction set it has (``avx512``,
    ``avx2``, ...: what oneDNN's convolutions, and so TensorFlow's and PyTorch's speed on a CPU,
    depend on most)."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as info:  # Linux; elsewhere the model name is all we know
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    cpu = value.strip()
                elif key.strip() in ("flags", "Features"):
                    flags = set(value.split())
                    break
    except OSError:
        pass
    vector = next((name for name, flag in (("amx", "amx_tile"), ("avx512", "avx512f"), ("avx2", "avx2"),
                                           ("avx", "avx"), ("neon", "asimd")) if flag in flags), "unknown")
    return {"cpu": cpu, "cores": os.cpu_count(), "vector": vector}


def git_commit() -> str:
    """The commit the code ran at, with ``-dirty`` when the working tree had uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def current_command() -> str:
    """The command line of this process, as a reader would type it (``python -m pkg.mod ...``)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    head = ["python", "-m", spec.name] if spec and spec.name else ["python", sys.argv[0]]
    return shlex.join(head + sys.argv[1:])


# The commit the code was loaded at. A long run can finish after later commits; ``commit`` must
# name the code that produced the number, so it is read when this module is imported (at the
# start of the run), and ``commit_at_end`` is added only when it differs.
COMMIT_AT_START = git_commit()


def with_this_commit(commits: list) -> list:
    """``commits`` (those a model's training ran at, in order) with this process's code added, for
    a checkpoint written after training here."""
    return commits if commits[-1:] == [COMMIT_AT_START] else [*commits, COMMIT_AT_START]


def make_result(trained_at: list | None = None, **fields) -> dict:
    """A result dict: the fields given, plus versions, commit, command and date filled in.

    ``trained_at``, the commits the model's training ran at (from its checkpoint), is kept only
    when it says more than ``commit``: a run resumed across commits, or a finished checkpoint
    tested again after a commit. Left out when unknown (a checkpoint older than this record)."""
    result = {"versions": versions(), "machine": machine(), "commit": COMMIT_AT_START, "command": current_command(),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    at_end = git_commit()
    if at_end != COMMIT_AT_START:
        result["commit_at_end"] = at_end
    if trained_at and trained_at != [COMMIT_AT_START]:
        result["trained_at"] = list(trained_at)
    result.update(fields)
    gpu = gpu_name(result.get("device"), result.get("framework"))
    if gpu:
        result["machine"]["gpu"] = gpu
        result["versions"]["cuda"] = cuda_version(result.get("framework")) or "unknown"
    check_result(result)
    return result


def check_result(result: dict, where: str = "result") -> None:
    """Raise :class:`ConfigError` naming every missing or mistyped key."""
    problems = []
    metric = result.get("metric", "accuracy")
    if metric not in METRICS:
        problems.append(f"metric must be one of {sorted(METRICS)}, is {metric!r}")
    required = dict(REQUIRED, **{key: float for key in METRICS.get(metric, ())})
    for key, kind in required.items():
        if key not in result:
            problems.append(f"missing {key!r}")
        elif kind is float and isinstance(result[key], (int, float)) and not isinstance(result[key], bool):
            continue
        elif not isinstance(result[key], kind) or isinstance(result[key], bool):
            problems.append(f"{key!r} should be {kind.__name__}, is {type(result[key]).__name__}")
    if result.get("framework") not in RESULT_FRAMEWORKS:
        problems.append(f"framework must be one of {RESULT_FRAMEWORKS}, is {result.get('framework')!r}")
    if problems:
        raise ConfigError(f"{where} is not in the results format: {'; '.join(problems)}")
    # The rules of the scripts' options (common.options), for files however they were made: a run
    # with an impossible schedule, or meta-trained on held-out classes, is no cell of any table.
    invalid = recorded_problems(result)
    if invalid:
        raise ConfigError(f"{where} is not a valid run of its method: {'; '.join(invalid)}. It cannot stand in "
                          f"a results table; delete it, and run again with valid options")


def write_result(result: dict, folder: str | Path = RESULTS_DIR) -> Path:
    """Write one run's result as ``<algorithm>_<framework>_<dataset>_<way>w<shot>s_<date>.json``."""
    check_result(result)
    folder = Path(folder)
    with saving(folder, "no results were written"):
        folder.mkdir(parents=True, exist_ok=True)
    stamp = result.get("date", "").replace(":", "").replace("-", "")[:15] or "undated"
    name = (f"{result['algorithm']}_{result['framework']}_{result['dataset']}_"
            f"{result['way']}w{result['shot']}s_{stamp}.json")
    path = folder / name
    with saving(path, "nothing was written there (a training run's checkpoint is kept: the same command "
                      "tests it again and writes its results)"):
        write_text(path, json.dumps(result, indent=2, sort_keys=True) + "\n")  # all or nothing
    return path


# ------------------------------------------------------------------------ collecting a table

EXPLORATIONS = "explorations"  # results/<chapter>/explorations/: measured one-off checks, in no table


def load_results(folder: str | Path = RESULTS_DIR) -> list[dict]:
    """Every result JSON under ``folder`` (recursively); a malformed file is an error, not skipped.

    Files under a folder named ``explorations`` are left out: they are runs outside the
    reproduction protocols (e.g. another learning-rate schedule, tried to see what limits a
    method), committed so that the text can cite them with their command, but not table entries
    beside the protocol's runs. ``load_results(".../explorations")`` reads them."""
    results = []
    root = Path(folder)
    for path in sorted(root.rglob("*.json")):
        if EXPLORATIONS in path.relative_to(root).parts[:-1]:
            continue
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path} is not valid JSON ({error}); fix or delete it") from None
        if not isinstance(result, dict) or "algorithm" not in result:
            continue  # other JSON (e.g. benchmark summaries) lives beside the results
        check_result(result, where=str(path))
        result["_file"] = str(path)
        results.append(result)
    return results


# Options that change the method itself, labelled deviations from the paper's text (e.g. Matching
# Networks' --cosine-scale, or the stride-2 Conv-4 of Finn et al.'s released code). A table names
# them beside the number, so that a reader never takes the cell for the equations as printed, and a
# run folder carries them in its name, so that a variant never resumes the other's checkpoint.
# Each name maps to the value that is the paper's own (None: any recorded value is a deviation).
DEVIATIONS = {"cosine_scale": None, "distance": None, "backbone": "maxpool", "rotations": "train",
              "train_within_alphabet": None, "fast_layers": 7, "no_task_fast_weights": False,
              "encoder": "cnn", "inner_loss": "mean", "augment": None, "add_vector": False}  # text encoders: FewRel's Proto-CNN is the paper's; "bag" a variant
# The book's fixed evaluation episodes hold 15 queries per class (the optimization scripts' default
# --test-query). A transductive run (its query set normalised as one batch) scores otherwise with
# another number of queries in that batch, so a run tested with another ``--test-query`` has a row
# of its own (see :func:`labels`).
BOOK_TEST_QUERY = 15
# Lake et al.'s challenge (omniglot-lake rows): what people and their model scored (Lake et al. 2015).
LAKE_REFERENCES = "people 95.5, Bayesian Program Learning 96.7 (Lake et al. 2015)"


def deviations(options: dict) -> list[str]:
    """The deviations ``options`` make from the paper's method, as text: ["cosine_scale 10"],
    ["distance squared_euclidean"], ["backbone strided"]; a recorded paper value (``backbone
    maxpool``) is none; a flag that is on is its name alone (["train_within_alphabet"])."""
    return [name if options[name] is True else f"{name} {options[name]:g}" if isinstance(options[name], (int, float))
            else f"{name} {options[name]}" for name, paper in DEVIATIONS.items() if name in options and options[name] != paper]


def labels(result: dict) -> list[str]:
    """What gives a run a row of its own beside its cell's: the deviations of its options from the
    paper's method (:func:`deviations`) and, for a transductive run tested on another number of
    queries per class than the book's 15, ``test_query <Q>`` (Finn et al.'s released code tests with
    as many queries per class as it trains with: ``test_query 1`` at 1 shot)."""
    texts = deviations(result.get("options", {}))
    if result["algorithm"].endswith("-transductive") and result["query"] != BOOK_TEST_QUERY:
        texts.append(f"test_query {result['query']}")
    return texts


def deviation_labels(texts) -> str:
    """Deviations as the tables print them after a name or number: " [cosine_scale 10]"."""
    return "".join(f" [{text}]" for text in texts)


def value_text(result: dict) -> str:
    """A result's number as the tables show it: mean ± 95% CI (accuracy, or MSE for regression)."""
    value, ci = METRICS[result.get("metric", "accuracy")]
    return f"{result[value]:.2f} ± {result[ci]:.2f}"


def cell_of(result: dict) -> tuple:
    """A result's cell: (algorithm, data set, way, shot, training way when it differs from the
    way tested, else None)."""
    train_way = result.get("train_way")
    return (result["algorithm"], result["dataset"], result["way"], result["shot"],
            train_way if train_way not in (None, result["way"]) else None)


def training_then_date(result: dict) -> tuple:
    """The sort key of the runs of one table row: sorted by it, the last run is the one a table
    shows, the run with the most training episodes and, of those, the most recent."""
    return result["train_episodes"], result.get("date", "")


def chosen_runs(results: list[dict], key) -> dict:
    """{key(result): the run the tables show of the results with that key}, by :func:`training_then_date`."""
    chosen = {}
    for result in sorted(results, key=training_then_date):
        chosen[key(result)] = result
    return chosen


def results_table(results: list[dict]) -> str:
    """Markdown: one row per (algorithm, data set, way, shot); the paper, then each framework.

    A run trained on episodes of another way than it is tested on (Snell et al. train 60-way and
    test 5-way) says so in the way column, "5 (60 in training)", and has a row of its own beside a
    run of the same cell trained otherwise. A run with a labelled deviation from its paper
    (``DEVIATIONS``), or a transductive run tested on other queries than the book's (``labels``), has a
    row of its own too, named by it. When a row was run more than once in a
    framework, the table shows the run with the most training episodes, and of those the most
    recent: a shorter later run (a check, a stopped continuation) never pushes out a longer one.
    """
    # (cell, labels, framework) -> result; a cell is (algorithm, dataset, way, shot, train way)
    chosen = chosen_runs(results, lambda r: (cell_of(r), tuple(labels(r)), r["framework"]))
    rows = sorted({key[:2] for key in chosen}, key=lambda row: (row[0][:4], row[0][4] or 0, row[1]))
    frameworks = [f for f in RESULT_FRAMEWORKS if f in FRAMEWORKS or any(key[2] == f for key in chosen)]
    lines = ["| algorithm | data set | way | shot | paper | " + " | ".join(frameworks) +
             " | s/episode (" + " / ".join(frameworks) + ") |",
             "|---|---|---:|---:|---:|" + "---:|" * len(frameworks) + "---|"]
    for cell, variant in rows:
        paper = PUBLISHED.get(cell[:4])
        cells = [f"{paper[0]:.2f}" if paper else "–"]
        speeds = []
        for framework in frameworks:
            run = chosen.get((cell, variant, framework))
            if run is None:
                cells.append("–")
                speeds.append("–")
                continue
            cells.append(f"{value_text(run)} ({run['train_episodes']:,} ep.)")
            speeds.append(f"{run['seconds_per_episode']:.4f}")
        way = f"{cell[2]} ({cell[4]} in training)" if cell[4] else f"{cell[2]}"
        lines.append(f"| {cell[0]}{deviation_labels(variant)} | {cell[1]} | {way} | {cell[3]} | " +
                     " | ".join(cells) + " | " + " / ".join(speeds) + " |")
    sources = sorted({PUBLISHED[cell[:4]][1] for cell, _ in rows if cell[:4] in PUBLISHED})
    shown = sorted({text for _, variant in rows for text in variant})
    explained = "".join(f"; `[{text}]`: {deviation_meaning(text)}" for text in shown)
    notes = ["", "Ours: mean accuracy ± 95% CI (percent; for sinusoid rows, mean squared error ± 95% CI) "
             "over the fixed evaluation episodes, with the number of training episodes "
             "(meta-iterations); each cell is a JSON file under results/ whose `command` "
             "reproduces it." + (" A name in brackets labels a row of its own beside the paper's number: a "
                                 "deviation from the paper's method" + (
                                     ", or a test other than the book's (`test_query`)"
                                     if any(text.startswith("test_query") for text in shown) else "") +
                                 f"{explained}." if shown else "") + " Paper columns:"
             ] + [f"- {source}" for source in sources]
    retrained = [cell for cell, _ in rows if cell[4]]
    retrained_text = (f"A way such as `{retrained[0][2]} ({retrained[0][4]} in training)`: trained on "
                      f"{retrained[0][4]}-way episodes, tested on {retrained[0][2]}-way ones." if retrained else "")
    datasets = {cell[1] for cell, _ in rows}  # the names common/schemes.py gives Omniglot's variants
    variants = [text for shown, text in (
        (any("-lake" in name for name in datasets),
         "`omniglot-lake` rows: Lake et al.'s challenge, trained on background alphabets only, tested 20-way "
         "within one evaluation alphabet, support and query by different drawers (`--scheme lake`). "
         f"For reference: {LAKE_REFERENCES}."),
        (any(unsized_name(name) == "omniglot-characters" for name in datasets),
         "`omniglot-characters` rows: Omniglot's characters split irrespective of alphabet, 1,200 for training "
         "and 423 for testing (Finn et al. 2017 after Santoro et al. 2016, and their released code; `--scheme "
         "characters`), so that the test characters come from alphabets seen in training; 12 of the `omniglot` "
         "rows' 13 test alphabets are new."),
        (bool(retrained), retrained_text),
        (any(unsized_name(name) != name for name in datasets),
         "`-<side>px` rows: Omniglot's drawings resized to that side instead of the papers' 28 (`--image-size`), "
         "a data set of their own.")) if shown]
    if variants:
        notes += ["", " ".join(variants)]
    return "\n".join(lines + notes) + "\n"


# What each labelled deviation means, by its label or, for any value, by its option's name.
DEVIATION_MEANINGS = {
    "cosine_scale": "Matching Networks' cosines times this scale in Eq. 2",
    "distance squared_euclidean": "the squared Euclidean distance in place of Eq. 2's cosine",
    "distance cosine_times_query_norm": "Eq. 2's cosines times the query embedding's length",
    "backbone strided": "the Conv-4 of Finn et al.'s released Omniglot code, stride-2 convolutions and a "
                        "spatial mean instead of max-pooling",
    "add_vector": "a MANN that writes a separate add vector a_t = tanh(W_a h_t) to memory, as public "
                  "reimplementations do, where Santoro et al.'s Section 3 writes the read key k_t itself",
    "inner_loss sum": "MAML's support loss summed over the N classes as that code computes it, so its α is "
                      "N times the paper's step on the mean loss",
    "fast_layers": "fast weights in this many of the base learner's layers, counted from the output (the "
                   "paper: all 7)",
    "no_task_fast_weights": "no task-level fast weights (an ablation)",
    "rotations none": "no rotated classes in training",
    "train_within_alphabet": "training episodes within one alphabet too",
    "augment affine": "training drawings distorted as Koch et al. did",
    "encoder bag": "a bag of embeddings in place of FewRel's Proto-CNN",
    "test_query": "tested on this many queries per class instead of the book's 15, the query set normalised as "
                  "one batch; one per class is how Finn et al.'s released code tests: the batch then holds one "
                  "image of each class, as in training",
}


def deviation_meaning(text: str) -> str:
    """What the label ``text`` (as :func:`deviations` writes it) means, for a table's notes."""
    return DEVIATION_MEANINGS.get(text) or DEVIATION_MEANINGS.get(text.split()[0], "see the chapter text")


def chapter_table(results: list[dict]) -> str:
    """What a chapter text shows between its table markers: the results table, then the accuracy
    per presentation where runs record it."""
    return results_table(results) + presentations_table(results)


# A chapter text shows its own rows of the table between these two lines; `table --into` rewrites
# what lies between them (tests/test_docs.py checks that it is up to date).
TABLE_BEGIN = "<!-- results table: generated by `make results`; do not edit by hand -->"
TABLE_END = "<!-- end of results table -->"


def replace_table(text: str, table: str, where: str = "text") -> str:
    """``text`` with the part between ``TABLE_BEGIN`` and ``TABLE_END`` replaced by ``table``."""
    if text.count(TABLE_BEGIN) != 1 or text.count(TABLE_END) != 1:
        raise ConfigError(f"{where} needs one line {TABLE_BEGIN!r} and one line {TABLE_END!r} "
                          "around the place for the table")
    head, rest = text.split(TABLE_BEGIN)
    _, tail = rest.split(TABLE_END)
    return f"{head}{TABLE_BEGIN}\n\n{table}\n{TABLE_END}{tail}"


def presentations_table(results: list[dict]) -> str:
    """Markdown: accuracy per presentation for the runs that record it (``presentations``), the
    paper's row first, then each framework's run chosen as in :func:`results_table`; a run with a
    label (a deviation: :func:`labels`) in rows of its own, named by it, after the paper's method.
    Empty when there are none."""
    chosen = chosen_runs([r for r in results if "presentations" in r],
                         lambda r: ((r["algorithm"], r["dataset"], r["way"], r["shot"]), tuple(labels(r)),
                                    r["framework"]))
    if not chosen:
        return ""
    columns = sorted({int(k) for r in chosen.values() for k in r["presentations"]}
                     | {k for cell, _, _ in chosen for k in PUBLISHED_PRESENTATIONS.get(cell, ({},))[0]})
    lines = ["", "Accuracy (%) at the k-th presentation of a class in an online episode (sequence learners):", "",
             "| algorithm | data set | way | presentations | run | " + " | ".join(f"k={k}" for k in columns) + " |",
             "|---|---|---:|---:|---|" + "---:|" * len(columns)]
    for cell, variant in sorted({key[:2] for key in chosen}):
        prefix = f"| {cell[0]}{deviation_labels(variant)} | {cell[1]} | {cell[2]} | {cell[3]} | "
        if cell in PUBLISHED_PRESENTATIONS and not variant:
            paper, source = PUBLISHED_PRESENTATIONS[cell]
            lines.append(prefix + f"paper ({source}) | " + " | ".join(
                f"{paper[k]:.1f}" if k in paper else "–" for k in columns) + " |")
        for framework in FRAMEWORKS:
            run = chosen.get((cell, variant, framework))
            if run is not None:
                values = run["presentations"]
                lines.append(prefix + f"{framework} ({run['train_episodes']:,} ep.) | " + " | ".join(
                    f"{values[str(k)][0]:.1f} ± {values[str(k)][1]:.1f}" if str(k) in values else "–"
                    for k in columns) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m common.results",
                                     description="Collect result JSON files into a Markdown table.")
    sub = parser.add_subparsers(dest="command", required=True)
    table = sub.add_parser("table", help="print (or write) the table of all results")
    table.add_argument("folder", nargs="?", default=str(RESULTS_DIR))
    table.add_argument("--out", help="write the table to this Markdown file")
    table.add_argument("--into", metavar="TEXT",
                       help="put the table into this Markdown text, between its results-table markers")
    args = parser.parse_args(argv)
    results = load_results(args.folder)
    text = chapter_table(results)
    if args.into:
        into = Path(args.into)
        if not into.is_file():
            raise ConfigError(f"--into {args.into}: no such file")
        into.write_text(replace_table(into.read_text(), text, where=args.into))
    if args.out:
        Path(args.out).write_text("# Results\n\nGenerated by `python -m common.results table "
                                  f"--out {args.out}`; do not edit by hand.\n\n" + text)
    print(text, end="")


if __name__ == "__main__":
    try:
        main()
    except MetaLearnError as error:  # a reader's mistake: one line and exit status 2, as every script
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
