"""The reproduction runner (common/reproduce.py) and the chapters' protocol lists: every cell has a
published number to stand beside, a status tells measured from partial from missing, and a run
trains once, tests in every setting and copies each results file."""

import importlib
import importlib.util
import json
import threading

import pytest

from common.errors import ConfigError
from common.reproduce import Protocol, gap_text, is_done, run_protocol, status
from common.results import PUBLISHED, PUBLISHED_PRESENTATIONS

CHAPTERS = ["chapters.metric.reproduce", "chapters.optimization.reproduce", "chapters.model_based.reproduce"]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_protocol_cell_has_a_published_number_and_a_script(chapter):
    protocols = importlib.import_module(chapter).PROTOCOLS
    assert len({p.name for p in protocols}) == len(protocols), "protocol names must be unique"
    for protocol in protocols:
        assert protocol.tests, protocol.name
        for cell in protocol.tests:
            # Sequence learners (model-based chapter) are published per presentation of a class; a
            # setting no paper ran says why it is measured.
            assert cell in PUBLISHED or cell in PUBLISHED_PRESENTATIONS or protocol.unpublished, \
                f"{protocol.name}: no published number for {cell}, and no reason given (Protocol.unpublished)"
        assert importlib.util.find_spec(protocol.module) is not None, protocol.module
        assert protocol.training_episodes() > 0


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_protocols_of_one_cell_ask_for_different_options(chapter):
    """Matching Networks' three deviations fill the same cells; a run counts for a protocol only
    through the options it records, so two protocols of one cell with the same options would
    both claim the other's runs."""
    seen = {}
    for protocol in importlib.import_module(chapter).PROTOCOLS:
        for cell in protocol.tests:
            key = (cell, tuple(sorted(protocol.options.items())))
            assert key not in seen, f"{protocol.name} and {seen.get(key)} claim the same runs of {cell}"
            seen[key] = protocol.name


def fake(cell, framework, episodes, accuracy=90.0):
    algorithm, dataset, way, shot = cell
    return {"algorithm": algorithm, "dataset": dataset, "way": way, "shot": shot, "query": 15, "framework": framework,
            "train_episodes": episodes, "accuracy": accuracy, "ci95": 0.5, "date": "2026-12-01T00:00:00"}


def test_a_transductive_run_tested_on_other_queries_fills_no_protocol():
    """The same checkpoint tested on one query per class (Finn et al.'s released code) is a row of
    its own: the protocol's cell stays its test on the book's 15 queries per class."""
    cell = ("metasgd-transductive", "omniglot", 5, 1)
    protocol = Protocol("metasgd-5w1s", "chapters.optimization.metasgd", ("--episodes", "100"), {cell: ()})
    again = {**fake(cell, "tf", 100, 99.4), "query": 1, "date": "2026-12-02T00:00:00"}
    assert not is_done(protocol, "tf", [again])
    assert is_done(protocol, "tf", [fake(cell, "tf", 100, 98.6), again])
    assert "| 98.60 ± 0.50 (100 ep.) |" in status([protocol], [fake(cell, "tf", 100, 98.6), again])


def test_status_tells_measured_partial_and_missing():
    cells = {("protonet", "omniglot", 5, 1): ("--test-way", "5"), ("protonet", "omniglot", 20, 1): ("--test-way", "20")}
    protocol = Protocol("protonet-1shot", "chapters.metric.protonet", ("--episodes", "100"), cells)
    five, twenty = cells
    results = [fake(five, "torch", 100, 98.0), fake(twenty, "torch", 100, 95.0), fake(five, "tf", 40, 91.0)]
    table = status([protocol], results)
    assert ("| protonet-1shot | protonet, omniglot, 5, 1 | 98.8 | 98.00 ± 0.50 (100 ep.) | "
            "91.00 ± 0.50 (40 of 100 ep., partial) | – | -0.80 (torch, 100 ep.) |") in table
    assert "| protonet-1shot | protonet, omniglot, 20, 1 | 96.0 | 95.00 ± 0.50 (100 ep.) | – | – | -1.00 (torch, 100 ep.) |" in table
    assert is_done(protocol, "torch", results)
    assert not is_done(protocol, "tf", results)      # partial, and 20-way missing
    assert not is_done(protocol, "keras", results)


def test_the_gap_to_the_paper_is_the_best_frameworks():
    """Accuracy: the highest of the frameworks' numbers; mean squared error: the lowest."""
    cell = ("maml", "sinusoid", 1, 5)
    low = {**fake(cell, "torch", 100), "metric": "mse", "mse": 0.5, "mse_ci95": 0.1}
    high = {**fake(cell, "tf", 50), "metric": "mse", "mse": 0.7, "mse_ci95": 0.1}
    assert gap_text(1.13, {"torch": low, "tf": high, "keras": None}) == "-0.63 (torch, 100 ep.)"
    five = ("maml-transductive", "omniglot", 5, 1)
    assert gap_text(98.7, {"torch": fake(five, "torch", 500, 88.0), "tf": fake(five, "tf", 16000, 98.2)}) \
        == "-0.50 (tf, 16,000 ep.)"
    assert gap_text(None, {"tf": fake(five, "tf", 10)}) == gap_text(98.7, {"tf": None}) == "–"


def test_a_protocol_counts_only_runs_of_its_own_variant():
    """A protocol that sets an option (here Matching Networks' cosine scale) is not filled by a
    run of the plain equation in the same cell, and its status names the deviation."""
    cell = ("matching", "omniglot", 5, 1)
    protocol = Protocol("matching-5w1s", "chapters.metric.matching", ("--episodes", "100"), {cell: ()},
                        options={"cosine_scale": 10.0})
    plain = {**fake(cell, "torch", 100, 86.0), "options": {"fce": False}}
    assert not is_done(protocol, "torch", [plain])
    scaled = {**fake(cell, "torch", 100, 97.0), "options": {"fce": False, "cosine_scale": 10.0}}
    assert is_done(protocol, "torch", [plain, scaled])
    assert "97.00 ± 0.50 [cosine_scale 10] (100 ep.)" in status([protocol], [plain, scaled])


def test_the_papers_own_method_is_not_filled_by_a_deviation():
    """Matching Networks' Eq. 2 as printed asks for no option, and a run with a labelled deviation
    (the scaled run of the same cell, more recent and better) does not count for it."""
    cell = ("matching", "omniglot", 5, 1)
    printed = Protocol("matching-printed-5w1s", "chapters.metric.matching", ("--episodes", "100"), {cell: ()})
    scaled = {**fake(cell, "torch", 100, 97.0), "options": {"fce": False, "cosine_scale": 10.0}, "date": "2026-12-02"}
    assert not is_done(printed, "torch", [scaled])
    plain = {**fake(cell, "torch", 100, 86.0), "options": {"fce": False}}
    assert is_done(printed, "torch", [plain, scaled])
    assert "| 86.00 ± 0.50 (100 ep.) |" in status([printed], [plain, scaled])


def test_a_protocol_trains_once_and_is_tested_in_every_setting(tmp_path, omniglot_train):
    cells = {("protonet", "omniglot", 5, 1): ("--test-way", "5"), ("protonet", "omniglot", 3, 1): ("--test-way", "3")}
    protocol = Protocol("tiny", "chapters.metric.protonet",
                        ("--way", "5", "--shot", "1", "--query", "2", "--episodes", "4", "--eval-every", "2",
                         "--val-episodes", "3", "--test-episodes", "5", "--quiet"), cells)
    # A results file that another run writes into the same folder meanwhile is not copied.
    stranger = tmp_path / "runs" / "other_run" / "protonet_tf_omniglot_5w1s_20261201T000000.json"
    stranger.parent.mkdir(parents=True)
    threading.Timer(2.0, lambda: stranger.write_text(json.dumps(fake(("protonet", "omniglot", 5, 1), "tf", 9)))).start()
    copies = run_protocol(protocol, "torch", str(tmp_path / "runs"), tmp_path / "results")
    assert len(copies) == 2 and all(path.parent == tmp_path / "results" for path in copies)
    results = [json.loads(path.read_text()) for path in copies]
    assert [r["way"] for r in results] == [5, 3]
    assert results[0]["command"].startswith("python -m chapters.metric.protonet --framework torch --way 5")
    assert results[0]["history"] == results[1]["history"]  # the second setting only evaluated
    assert is_done(protocol, "torch", results)


def test_a_failing_protocol_is_a_clear_error(tmp_path):
    protocol = Protocol("broken", "chapters.metric.protonet", ("--episodes", "4", "--eval-every", "3"),
                        {("protonet", "omniglot", 5, 1): ()})
    with pytest.raises(ConfigError, match="protocol broken \\(torch\\) stopped.*exited with status 2.*run the same line"):
        run_protocol(protocol, "torch", str(tmp_path / "runs"), tmp_path / "results")


def test_device_runs_stop_at_the_deadline_and_test_the_last_checkpoint(tmp_path, monkeypatch, omniglot_train):
    """tools/device_runs.py (for a briefly lent GPU, here on the CPU): the training is stopped at the
    deadline, the last checkpoint is tested with ``--episodes`` at its count, and the run folder is packed."""
    import tarfile

    from tools import device_runs

    protocol = Protocol("tiny", "chapters.metric.protonet",
                        ("--way", "5", "--shot", "1", "--query", "2", "--episodes", "100000", "--eval-every", "1",
                         "--val-episodes", "2", "--test-episodes", "3", "--quiet"), {("protonet", "omniglot", 5, 1): ()})
    monkeypatch.setattr(device_runs, "protocols_of", lambda chapter: {"tiny": protocol})
    with pytest.raises(ConfigError, match="no protocol other in chapters/optimization/reproduce.py; choose from tiny"):
        device_runs.main(["other"])
    with pytest.raises(ConfigError, match="--minutes must be above 0"):
        device_runs.main(["tiny", "--minutes", "0"])
    row, = device_runs.main(["tiny", "--minutes", "0.15", "--device", "cpu", "--runs", str(tmp_path / "runs"),
                             "--pack", str(tmp_path / "packs")])
    assert row["stopped"] and row["episodes"] > 0 and "error" not in row, row
    folder = tmp_path / "runs" / "tiny" / "protonet_torch_omniglot_5w1s"
    result = json.loads((folder / row["result"]).read_text())
    assert result["train_episodes"] == row["episodes"]
    assert f"--episodes {row['episodes']} " in result["command"]
    assert f"at episode {row['episodes']:,} of {row['episodes']:,}" in (tmp_path / "runs" / "tiny" / "log.txt").read_text()
    with tarfile.open(tmp_path / "packs" / "tiny.tar.gz") as pack:
        assert "tiny/protonet_torch_omniglot_5w1s/checkpoint.npz" in pack.getnames()
