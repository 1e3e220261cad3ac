"""Bad input and file-system faults, as a new user meets them: every one ends in one clear line
(``error: ...``, exit status 2) before any work, nothing is written that should not be, and nothing
wrong can become a cell of the results table.

The scripts run in-process through ``common.cli.run``, as their ``__main__`` does. We may run as
root, whom file permissions do not stop: the project's rule (``common.files.writable``) counts a
folder without write permission bits as read-only for root too, so ``chmod 0o555`` simulates a
read-only folder for every user.
"""

import errno
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from chapters.applications import baseline as text_baseline
from chapters.applications import train as text_train
from chapters.metric import matching, siamese
from chapters.model_based import mann, metanet, snail
from chapters.metric import protonet
from chapters.metric import train as metric_train
from chapters.optimization import lstm_meta_learner, maml, metasgd, reptile, sinusoid
from common import results as results_module
from common.cli import run
from common.data import store
from common.data.base import FewShotDataset
from common.episodes import EpisodeSampler, evaluation_episodes
from common.options import HelpFormatter, Parser
from common.training import Run, train
from common.weights import load_weights
from tests.conftest import require_data


SCRIPTS = {
    "protonet": protonet.main,
    "matching": matching.main,
    "siamese": siamese.main,
    "maml": maml.main,
    "metasgd": metasgd.main,
    "reptile": reptile.main,
    "sinusoid": sinusoid.main,
    "lstm-meta-learner": lstm_meta_learner.main,
    "snail": snail.main,
    "metanet": metanet.main,
    "mann": mann.main,
    "text": text_train.main,
    "text-baseline": text_baseline.main,
}
EPISODIC = ("protonet", "matching", "siamese", "maml", "metasgd", "reptile", "snail", "metanet", "text")
METRIC = ("protonet", "matching", "siamese")
OPTIMIZATION = ("maml", "metasgd", "reptile")

# (options, the option the message names, its value as the message repeats it)
EVERY_EPISODIC = [
    (["--episodes", "0"], "--episodes", "0"),
    (["--eval-every", "0"], "--eval-every", "0"),
    (["--query", "0"], "--query", "0"),
    (["--val-episodes", "0"], "--val-episodes", "0"),
    (["--test-episodes", "0"], "--test-episodes", "0"),
    (["--seed", "-1"], "--seed", "-1"),
    (["--test-shot", "0"], "--test-shot", "0"),
    (["--way", "1"], "--way", "1"),
    (["--episodes", "ten"], "--episodes", "'ten'"),
    (["--episodes", "1200", "--eval-every", "500"], "--episodes", "1200"),
]
METRIC_ONLY = [
    (["--lr", "nan"], "--lr", "nan"), (["--lr", "inf"], "--lr", "inf"), (["--lr", "-1"], "--lr", "-1"),
    (["--decay-every", "-1"], "--decay-every", "-1"),
    (["--train-split", "test"], "--train-split", "'test'"),
    (["--train-split", "val"], "--train-split", "'val'"),
]
OPTIMIZATION_ONLY = [
    (["--meta-lr", "nan"], "--meta-lr", "nan"), (["--meta-lr", "-1"], "--meta-lr", "-1"),
    (["--meta-batch", "0"], "--meta-batch", "0"), (["--inner-steps", "0"], "--inner-steps", "0"),
]
SINUSOID = [
    (["--iterations", "0"], "--iterations", "0"), (["--log-every", "0"], "--log-every", "0"),
    (["--shot", "0"], "--shot", "0"), (["--query", "0"], "--query", "0"), (["--seed", "-1"], "--seed", "-1"),
    (["--meta-lr", "inf"], "--meta-lr", "inf"), (["--meta-batch", "0"], "--meta-batch", "0"),
    (["--iterations", "1500", "--log-every", "1000"], "--iterations", "1500"),
]
CASES = ([(script, *case) for script in EPISODIC for case in EVERY_EPISODIC]
         + [(script, *case) for script in METRIC for case in METRIC_ONLY]
         + [(script, *case) for script in OPTIMIZATION for case in OPTIMIZATION_ONLY]
         + [("maml", ["--inner-lr", "inf"], "--inner-lr", "inf"),
            ("reptile", ["--inner-batch", "0"], "--inner-batch", "0"),
            ("metasgd", ["--inner-lr-low", "0"], "--inner-lr-low", "0"),
            ("matching", ["--fce-steps", "0"], "--fce-steps", "0")]
         + [(script, *case) for script in ("sinusoid", "lstm-meta-learner") for case in SINUSOID]
         + [("snail", ["--lr", "nan"], "--lr", "nan"), ("snail", ["--decay-every", "-1"], "--decay-every", "-1")]
         + [("metanet", ["--lr", "nan"], "--lr", "nan"), ("metanet", ["--fast-layers", "0"], "--fast-layers", "0")]
         + [("mann", *case) for case in [
             (["--episodes", "0"], "--episodes", "0"), (["--eval-every", "0"], "--eval-every", "0"),
             (["--way", "1"], "--way", "1"), (["--seed", "-1"], "--seed", "-1"), (["--lr", "nan"], "--lr", "nan"),
             (["--gamma", "1.5"], "--gamma", "1.5"), (["--batch", "0"], "--batch", "0"),
             (["--episodes", "150", "--eval-every", "100"], "--episodes", "150")]]
         + [("text", ["--lr", "nan"], "--lr", "nan"), ("text", ["--inner-lr", "-1"], "--inner-lr", "-1"),
            ("text", ["--meta-batch", "0"], "--meta-batch", "0"), ("text", ["--encoder", "rnn"], "--encoder", "'rnn'"),
            ("text-baseline", ["--shot", "0"], "--shot", "0"), ("text-baseline", ["--way", "1"], "--way", "1"),
            ("text-baseline", ["--test-episodes", "0"], "--test-episodes", "0")]
         + [("lstm-meta-learner", ["--steps", "0"], "--steps", "0"),
            ("lstm-meta-learner", ["--hidden", "0"], "--hidden", "0"),
            ("sinusoid", ["--eval-steps", "0"], "--eval-steps", "0")])


def run_script(script, argv, capsys) -> tuple[int, str]:
    """Exit status and stderr of ``python -m <script> <argv>``, run in-process."""
    try:
        run(SCRIPTS[script], argv)
        code = 0
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


def paths_argv(script, tmp_path) -> list[str]:
    """--out, and a --data-dir that does not exist: a check that passed would go on to load data."""
    data = [] if script in ("sinusoid", "lstm-meta-learner") else ["--data-dir", str(tmp_path / "no-data")]
    return ["--out", str(tmp_path / "out"), *data]


def assert_one_line(err: str, *pieces: str) -> None:
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for piece in pieces:
        assert piece in err, err


# --------------------------------------------------------------------------------------------
# Options: one rule set, one wording, before any work
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("script,argv,option,value", CASES,
                         ids=[f"{c[0]}{''.join(c[1])}" for c in CASES])
def test_every_bad_option_is_one_line_before_any_work(script, argv, option, value, tmp_path, capsys):
    code, err = run_script(script, [*argv, *paths_argv(script, tmp_path)], capsys)
    assert code == 2
    assert_one_line(err)
    # One wording for every script and rule: the option, what it must be, the value given.
    assert re.fullmatch(rf"error: {re.escape(option)} must be .+, got {re.escape(value)}(: .+)?\n", err), err
    assert not (tmp_path / "out").exists() and not (tmp_path / "no-data").exists()


def test_the_silent_wrong_results_are_refused_with_their_reason(tmp_path, capsys):
    _, err = run_script("protonet", ["--decay-every", "-1", *paths_argv("protonet", tmp_path)], capsys)
    assert_one_line(err, "--decay-every must be at least 0 (0: never), got -1")
    _, err = run_script("protonet", ["--train-split", "test", *paths_argv("protonet", tmp_path)], capsys)
    assert_one_line(err, "must be train or trainval, got 'test'", "tested on classes it has learned",
                     "--pipeline-check")
    _, err = run_script("protonet", ["--episodes", "1200", *paths_argv("protonet", tmp_path)], capsys)
    assert_one_line(err, "validates and checkpoints every 500 episodes; pass --episodes 1000 or 1500")


def test_argparse_mistakes_are_one_line_too(tmp_path, capsys):
    for argv, pieces in [(["--framework", "jax"], ["--framework must be one of torch, tf, keras, got 'jax'"]),
                         (["--no-such-option"], ["unrecognized arguments: --no-such-option", "--help"]),
                         (["--episodes"], ["--episodes: expected one argument"])]:
        code, err = run_script("maml", [*paths_argv("maml", tmp_path), *argv], capsys)
        assert code == 2
        assert_one_line(err, *pieces)


class _Parsed(Exception):
    """Raised in place of parsing, carrying the parser a script built."""


def parser_of(script, monkeypatch) -> Parser:
    def capture(self, args=None, namespace=None):
        raise _Parsed(self)
    monkeypatch.setattr(Parser, "parse_args", capture)
    with pytest.raises(_Parsed) as parsed:
        SCRIPTS[script]([])
    return parsed.value.args[0]


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_explains_every_option_and_shows_its_default(script, monkeypatch):
    parser = parser_of(script, monkeypatch)
    assert isinstance(parser.formatter_class(parser.prog), HelpFormatter)
    formatter = parser._get_formatter()
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        assert action.help, f"{script} {action.option_strings[-1]} has no help text"
        if action.default is not False:  # flags: off unless given
            text = formatter._get_help_string(action) % {"default": action.default}
            assert "default" in text, f"{script} {action.option_strings[-1]}: the help does not give the default"
    parser.format_help()  # renders (a stray % in a help text would fail here)


def test_maml_counts_meta_iterations_and_states_its_test_query(monkeypatch):
    parser = parser_of("maml", monkeypatch)
    actions = {action.dest: action for action in parser._actions}
    assert "meta-iterations" in actions["episodes"].help
    assert actions["test_query"].default == 15 and "(default: %(default)s)" in \
        HelpFormatter("x")._get_help_string(actions["test_query"])


def test_the_recorded_test_query_is_the_stated_default(omniglot_splits, tmp_path):
    tiny = ["--episodes", "2", "--eval-every", "2", "--val-episodes", "1", "--test-episodes", "1", "--quiet"]
    result = SCRIPTS["maml"](["--meta-batch", "1", "--out", str(tmp_path), *tiny])
    assert result["query"] == 15  # "Q at test time (default: 15)"
    result = SCRIPTS["protonet"](["--query", "3", "--out", str(tmp_path), *tiny])
    assert result["query"] == result["train_query"] == 3  # "Q at test time (default: --query)"


# --------------------------------------------------------------------------------------------
# The results table
# --------------------------------------------------------------------------------------------

def valid_result(**options) -> dict:
    return results_module.make_result(
        algorithm="protonet", framework="torch", dataset="omniglot", way=5, shot=1, query=15,
        train_episodes=1000, accuracy=98.0, ci95=0.2, wall_seconds=10.0, seconds_per_episode=0.01,
        seed=0, options={"lr": 1e-3, "decay_every": 2000, "train_split": "train", **options})


@pytest.mark.parametrize("change,reason", [
    ({"train_split": "test"}, "meta-trained on the 'test' classes"),
    ({"decay_every": -1}, "options.decay_every must be at least 0"),
    ({"lr": -0.001}, "options.lr must be a positive number"),
])
def test_a_run_on_test_classes_or_with_an_invalid_schedule_is_never_a_table_cell(change, reason, tmp_path, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    results_module.write_result(valid_result(), folder)
    bad = valid_result()
    bad["options"].update(change)
    path = folder / "protonet_torch_omniglot_5w1s_bad.json"
    path.write_text(json.dumps(bad))  # made by hand, or by older code: the table must refuse it
    with pytest.raises(SystemExit) as stop:
        run(results_module.main, ["table", str(folder)])
    assert stop.value.code == 2
    assert_one_line(capsys.readouterr().err, str(path), reason, "cannot stand in a results table")
    with pytest.raises(Exception, match=reason):
        results_module.write_result(bad, tmp_path / "other")  # nor can a script write one
    assert not (tmp_path / "other").exists() or not any((tmp_path / "other").iterdir())


def test_every_committed_result_follows_the_rules():
    assert results_module.load_results()  # would raise on a recorded run that breaks a rule


# --------------------------------------------------------------------------------------------
# File-system faults
# --------------------------------------------------------------------------------------------

@pytest.fixture
def read_only(tmp_path):
    """Make folders read-only (no write bits); restored afterwards so tmp_path can be removed."""
    made = []

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o555)
        made.append(folder)
        return folder
    yield make
    for folder in made:
        folder.chmod(0o755)


def test_a_data_root_that_is_a_file_is_named(tmp_path, monkeypatch, capsys):
    not_a_folder = tmp_path / "data.zip"
    not_a_folder.write_bytes(b"PK")
    monkeypatch.setenv("METALEARN_DATA", str(not_a_folder))
    monkeypatch.setenv("METALEARN_CACHE", str(tmp_path / "cache"))
    code, err = run_script("protonet", ["--out", str(tmp_path / "out"), "--episodes", "2", "--eval-every", "2"],
                           capsys)
    assert code == 2
    assert_one_line(err, f"METALEARN_DATA={not_a_folder} is a file, not a folder")
    code, err = run_script("maml", ["--out", str(tmp_path / "out"), "--data-dir", str(not_a_folder)], capsys)
    assert_one_line(err, f"--data-dir {not_a_folder} is a file, not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.zip"]


def test_an_out_folder_that_is_a_file_or_read_only_is_refused(tmp_path, read_only, capsys):
    a_file = tmp_path / "runs.txt"
    a_file.write_text("")
    for script in ("protonet", "maml", "sinusoid", "lstm-meta-learner"):
        code, err = run_script(script, ["--out", str(a_file / "sub")], capsys)
        assert code == 2
        assert_one_line(err, f"--out must be a folder, got {a_file / 'sub'}, but {a_file} is a file")
    code, err = run_script("siamese", ["--out", str(a_file)], capsys)
    assert_one_line(err, f"--out must be a folder, got {a_file}, which is a file; choose another folder")
    locked = read_only(tmp_path / "locked")
    for script in ("siamese", "reptile", "sinusoid"):
        code, err = run_script(script, ["--out", str(locked / "runs")], capsys)
        assert code == 2
        assert_one_line(err, f"--out must be a folder you can write in, got {locked / 'runs'}, but {locked} is "
                             f"read-only")
    assert not any(locked.iterdir())


def copy_split_files(tmp_path) -> Path:
    """A data root holding only the split files of the offline copy (no images): a split file is
    read first, so a damaged one stops the load before anything is fetched or decoded."""
    root = tmp_path / "data"
    for relative in ("omniglot/splits/vinyals/train.txt", "mini-imagenet/train.csv",
                     "cifar100/splits/cifar-fs/train.json"):
        source = require_data(relative)
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, root / relative)
    return root


@pytest.mark.parametrize("dataset,relative,cut,message", [
    ("omniglot", "omniglot/splits/vinyals/train.txt", "mid-line", "is not 'Alphabet/characterNN/rotDDD'"),
    ("omniglot", "omniglot/splits/vinyals/train.txt", "lines", "the Vinyals train split has 1028"),
    ("mini-imagenet", "mini-imagenet/train.csv", "lines", "the train split has 64 classes of 600"),
    ("mini-imagenet", "mini-imagenet/train.csv", "mid-line", "is not a mini-ImageNet split file"),
    ("cifar-fs", "cifar100/splits/cifar-fs/train.json", "mid-line", "is not valid JSON"),
])
def test_a_truncated_or_inconsistent_split_file_is_named(dataset, relative, cut, message, tmp_path, monkeypatch,
                                                          capsys):
    root = copy_split_files(tmp_path)
    path = root / relative
    lines = path.read_text().splitlines(keepends=True)
    half = "".join(lines[: len(lines) // 2])  # whole lines lost: a well-formed file that lists too little
    path.write_text(half if cut == "lines" else half + lines[len(lines) // 2][:5])  # cut in a line's first field
    monkeypatch.setenv("METALEARN_CACHE", str(tmp_path / "cache"))
    code, err = run_script("protonet", ["--dataset", dataset, "--data-dir", str(root), "--out", str(tmp_path / "out")],
                           capsys)
    assert code == 2
    assert_one_line(err, str(path), message, "delete it")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def fake_build(calls: list):
    def build():
        calls.append(1)
        return {"images": np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)}, {"classes": ["a", "b"]}
    return build


@pytest.mark.parametrize("damage", ["images.npy", "meta.json", "empty images.npy"])
def test_a_damaged_cache_entry_is_noticed_and_rebuilt(damage, tmp_path, capsys):
    entry, calls = tmp_path / "cache" / "toy" / "train", []
    store.cached_arrays(entry, {"source": [1, 2]}, fake_build(calls))
    name = damage.split()[-1]
    data = (entry / name).read_bytes()
    (entry / name).write_bytes(b"" if damage.startswith("empty") else data[: len(data) - 5])
    arrays, info = store.cached_arrays(entry, {"source": [1, 2]}, fake_build(calls))
    assert len(calls) == 2 and info == {"classes": ["a", "b"]}
    assert arrays["images"].tolist() == np.arange(24, dtype=np.uint8).reshape(2, 3, 4).tolist()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"the cache entry {entry} is damaged" in err and "rebuilding it" in err
    assert sorted(p.name for p in entry.parent.iterdir()) == ["train"]  # no staging folder left
    store.cached_arrays(entry, {"source": [1, 2]}, fake_build(calls))
    assert len(calls) == 2  # the rebuilt entry is used as it is


def test_a_data_root_without_write_permission_gets_no_cache_even_from_root(tmp_path, read_only, monkeypatch):
    monkeypatch.delenv("METALEARN_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    data = read_only(tmp_path / "data")
    cache = store.cache_root(data)
    assert cache == tmp_path / "home" / ".cache" / "metalearn"  # the documented place, not data/cache
    store.cached_arrays(cache / "toy" / "train", {"source": [1]}, fake_build([]))
    assert not any(data.iterdir()) and (cache / "toy" / "train" / "meta.json").exists()
    assert store.cache_root(tmp_path / "writable-data") == tmp_path / "writable-data" / "cache"


def test_read_only_data_and_home_say_to_set_metalearn_cache_before_decoding(tmp_path, read_only, monkeypatch,
                                                                         capsys):
    root = tmp_path / "data"
    for relative in ("omniglot/splits/vinyals/train.txt", "omniglot/images_background.zip",
                     "omniglot/images_evaluation.zip"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).symlink_to(require_data(relative))
    for folder in (root / "omniglot/splits/vinyals", root / "omniglot/splits", root / "omniglot", root):
        read_only(folder)
    home = read_only(tmp_path / "home")
    monkeypatch.delenv("METALEARN_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(home))
    code, err = run_script("protonet", ["--data-dir", str(root), "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    assert_one_line(err, "the decoded-image cache cannot be written", "read-only", "set METALEARN_CACHE")
    assert not any(home.iterdir()) and sorted(p.name for p in root.iterdir()) == ["omniglot"]
    assert not (tmp_path / "out").exists()


def enospc_after(calls_that_succeed: int, monkeypatch, module, name):
    """Make ``module.name`` (a writer) fail as a full disk does, after writing part of its output."""
    real, count = getattr(module, name), [0]

    def writer(target, *args, **kwargs):
        count[0] += 1
        if count[0] <= calls_that_succeed:
            return real(target, *args, **kwargs)
        if hasattr(target, "write"):
            target.write(b"half a file")
        else:
            Path(target).write_bytes(b"half a file")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(module, name, writer)


def test_a_full_disk_while_checkpointing_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    images = np.random.default_rng(0).integers(0, 256, size=(10, 6, 16, 16, 1), dtype=np.uint8)
    data = FewShotDataset("noise", "train", images, tuple(map(str, range(10))))
    sampler = EpisodeSampler(data, 3, 1, 2, seed=0)
    episodes = evaluation_episodes(data, 3, 1, 2, count=2)
    learner = metric_train.build_learner("protonet", "torch", 1, sampler.episode(0), 1e-3, None, seed=0)
    the_run = Run(algorithm="protonet", framework="torch", dataset="noise", way=3, shot=1, query=2, test_way=3,
                  test_shot=1, test_query=2, episodes=6, eval_every=2, val_episodes=2, test_episodes=2,
                  out=str(tmp_path))
    enospc_after(1, monkeypatch, np, "savez")  # the first checkpoint is written, the second is not
    with pytest.raises(SystemExit) as stop:
        run(train, the_run, learner, sampler, episodes, episodes, progress=False)
    assert stop.value.code == 2
    assert_one_line(capsys.readouterr().err, f"could not write {the_run.checkpoint} (No space left on device)",
                    f"the last good checkpoint ({the_run.checkpoint}) is kept", "run the same command again")
    monkeypatch.undo()
    assert load_weights(the_run.checkpoint)[1]["episode"] == 2
    assert sorted(p.name for p in the_run.folder.iterdir()) == ["checkpoint.npz", "curve.png"]  # no temporary file


def test_a_full_disk_while_caching_leaves_no_entry(tmp_path, monkeypatch, capsys):
    entry = tmp_path / "cache" / "toy" / "train"
    enospc_after(0, monkeypatch, np, "save")
    with pytest.raises(SystemExit) as stop:
        run(store.cached_arrays, entry, {"source": [1]}, fake_build([]))
    assert stop.value.code == 2
    assert_one_line(capsys.readouterr().err, f"could not write the cache entry {entry} (No space left on device)",
                    "nothing of it was kept", "METALEARN_CACHE")
    assert not any(entry.parent.iterdir())


def test_a_diverged_run_without_a_checkpoint_does_not_claim_one(tmp_path):
    class Exploding:
        def train_step(self, episode):
            return {"loss": float("nan"), "accuracy": 0.0}

        def predict(self, episode):
            return np.zeros(len(episode.query_y), int)

        def state(self):
            return {"w": np.zeros(1)}

        def load_state(self, arrays):
            pass

    images = np.zeros((4, 3, 8, 8, 1), np.uint8)
    data = FewShotDataset("zeros", "train", images, ("a", "b", "c", "d"))
    the_run = Run(algorithm="protonet", framework="torch", dataset="zeros", way=2, shot=1, query=1, test_way=2,
                  test_shot=1, test_query=1, episodes=4, eval_every=2, out=str(tmp_path))
    with pytest.raises(Exception, match="became nan at episode 0; lower the learning rate; no checkpoint had been "
                                        "written yet"):
        train(the_run, Exploding(), EpisodeSampler(data, 2, 1, 1), [], [], progress=False)
