"""The shared results format and the table beside the published numbers."""

import json
import subprocess
import sys

import pytest

from common.errors import ConfigError
from common.results import (DEVIATION_MEANINGS, DEVIATIONS, PUBLISHED, check_result, deviation_meaning, load_results,
                            make_result, results_table, write_result)


def a_result(**overrides):
    fields = dict(algorithm="protonet", framework="torch", dataset="omniglot", way=5, shot=1, query=15,
                  train_episodes=1000, accuracy=97.5, ci95=0.31, wall_seconds=120.0,
                  seconds_per_episode=0.12)
    fields.update(overrides)
    return make_result(**fields)


def test_make_result_fills_in_provenance():
    result = a_result()
    assert {"versions", "machine", "commit", "command", "date"} <= set(result)
    assert result["versions"]["numpy"] and result["command"].startswith("python")
    check_result(result)


def test_the_machine_is_recorded_with_its_vector_instructions():
    """Seconds per episode depend on the CPU: a result names it, and the cores and instruction
    set are this machine's, not placeholders."""
    import os

    from common.results import machine
    found = machine()
    assert found["cpu"] and found["cores"] == os.cpu_count()
    assert found["vector"] in ("amx", "avx512", "avx2", "avx", "neon", "unknown")
    if os.path.exists("/proc/cpuinfo") and " avx2" in open("/proc/cpuinfo").read():
        assert found["vector"] in ("amx", "avx512", "avx2")


def test_a_run_on_a_gpu_names_the_gpu_and_its_cuda(monkeypatch):
    """On a GPU the timings are the GPU's: the result names it as the framework does, and the CUDA
    the framework was built for (no GPU is needed here: the name is what
    ``torch.cuda.get_device_name`` answers, the version what ``torch.version.cuda`` says)."""
    import torch

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"Test GPU {index}")
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    on_gpu = a_result(device="cuda:1")
    assert on_gpu["machine"]["gpu"] == "Test GPU 1" and on_gpu["versions"]["cuda"] == "13.0"
    on_cpu = a_result(device="cpu")
    assert "gpu" not in on_cpu["machine"] and "cuda" not in on_cpu["versions"]

    def no_gpu(index):
        raise RuntimeError("No CUDA GPUs are available")
    monkeypatch.setattr(torch.cuda, "get_device_name", no_gpu)  # the result is still written
    assert a_result(device="cuda:0")["machine"]["gpu"] == "unknown GPU"


@pytest.mark.parametrize("change,message", [
    ({"framework": "tensorflow"}, "framework must be one of"),
    ({"accuracy": "97.5"}, "'accuracy' should be float"),
    ({"way": 5.0}, "'way' should be int"),
])
def test_malformed_results_are_rejected(change, message):
    result = a_result()
    result.update(change)
    with pytest.raises(ConfigError, match=message):
        check_result(result)
    del result["ci95"]
    with pytest.raises(ConfigError, match="missing 'ci95'"):
        check_result(result)


def test_written_results_load_back_and_table_shows_paper_and_frameworks(tmp_path):
    write_result(a_result(), tmp_path)
    write_result(a_result(framework="keras", accuracy=97.1, date="2999-01-01T00:00:00+00:00"), tmp_path)
    write_result(a_result(framework="keras", accuracy=50.0, date="2000-01-01T00:00:00+00:00"), tmp_path)
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "sampler.json").write_text(json.dumps({"benchmark": "x"}))
    results = load_results(tmp_path)
    assert len(results) == 3
    table = results_table(results)
    row = next(line for line in table.splitlines() if line.startswith("| protonet"))
    assert f"{PUBLISHED[('protonet', 'omniglot', 5, 1)][0]:.2f}" in row
    assert "97.50 ± 0.31" in row and "97.10 ± 0.31" in row, "the latest keras run is the one shown"
    assert "50.00" not in row
    assert "Snell et al. 2017" in table


def test_a_shorter_later_run_does_not_push_out_a_longer_one(tmp_path):
    """Of two runs of one row, the table shows the one trained longer (a stopped continuation or a
    quick check run afterwards does not replace it); of equally long runs, the most recent."""
    write_result(a_result(train_episodes=8000, accuracy=98.4, date="2001-01-01T00:00:00+00:00"), tmp_path)
    write_result(a_result(train_episodes=500, accuracy=91.0, date="2999-01-01T00:00:00+00:00"), tmp_path)
    row = next(line for line in results_table(load_results(tmp_path)).splitlines() if line.startswith("| protonet"))
    assert "98.40 ± 0.31 (8,000 ep.)" in row and "91.00" not in row
    write_result(a_result(train_episodes=8000, accuracy=98.6, date="2002-01-01T00:00:00+00:00"), tmp_path)
    assert "98.60 ± 0.31 (8,000 ep.)" in results_table(load_results(tmp_path))


def test_training_on_another_way_is_a_row_of_its_own(tmp_path):
    """Snell et al. train on 60-way episodes and test 5-way: the way column says so, and a run of the
    same cell trained on 5-way episodes keeps its own row."""
    write_result(a_result(train_way=60, accuracy=98.5), tmp_path)
    write_result(a_result(train_way=5, accuracy=97.9, date="2999-01-01T00:00:00+00:00"), tmp_path)
    table = results_table(load_results(tmp_path))
    paper = f"{PUBLISHED[('protonet', 'omniglot', 5, 1)][0]:.2f}"
    assert f"| protonet | omniglot | 5 | 1 | {paper} | 97.90 ± 0.31" in table
    assert f"| protonet | omniglot | 5 (60 in training) | 1 | {paper} | 98.50 ± 0.31" in table
    assert "A way such as `5 (60 in training)`: trained on 60-way episodes, tested on 5-way ones." in table


def test_results_table_command(tmp_path):
    write_result(a_result(framework="tf"), tmp_path)
    out = tmp_path / "README.md"
    done = subprocess.run([sys.executable, "-m", "common.results", "table", str(tmp_path), "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "| protonet | omniglot | 5 | 1 |" in out.read_text()
    (tmp_path / "broken.json").write_text("{not json")
    done = subprocess.run([sys.executable, "-m", "common.results", "table", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2 and "broken.json is not valid JSON" in done.stderr and "Traceback" not in done.stderr


def test_a_chapter_gets_its_rows_between_its_markers(tmp_path):
    """`table --into` rewrites only what lies between the two marker lines, and again the same way."""
    from common.results import TABLE_BEGIN, TABLE_END
    results = tmp_path / "results"
    write_result(a_result(framework="tf"), results)
    chapter = tmp_path / "README.md"
    chapter.write_text(f"# A chapter\n\nBefore.\n\n{TABLE_BEGIN}\nold rows\n{TABLE_END}\n\nAfter.\n")
    command = [sys.executable, "-m", "common.results", "table", str(results), "--into", str(chapter)]
    for _ in range(2):
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        text = chapter.read_text()
        assert "old rows" not in text and "| protonet | omniglot | 5 | 1 |" in text
        assert text.startswith("# A chapter\n\nBefore.\n") and text.endswith(f"{TABLE_END}\n\nAfter.\n")
    chapter.write_text("# No markers\n")
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 2 and "needs one line" in done.stderr and "Traceback" not in done.stderr
    assert chapter.read_text() == "# No markers\n"

def test_regression_results_carry_mse_instead_of_accuracy(tmp_path):
    fields = dict(algorithm="maml", framework="tf", dataset="sinusoid", way=1, shot=10, query=100,
                  train_episodes=70000, metric="mse", mse=0.81, mse_ci95=0.05, wall_seconds=10.0,
                  seconds_per_episode=0.01)
    write_result(make_result(**fields), tmp_path)
    row = next(line for line in results_table(load_results(tmp_path)).splitlines() if line.startswith("| maml"))
    assert "0.85" in row and "0.81 ± 0.05" in row
    with pytest.raises(ConfigError, match="missing 'mse_ci95'"):
        make_result(**{k: v for k, v in fields.items() if k != "mse_ci95"})
    with pytest.raises(ConfigError, match="metric must be one of"):
        make_result(**dict(fields, metric="rmse"))


def test_a_labelled_deviation_has_its_own_row_beside_the_paper(tmp_path):
    """Matching Networks with scaled cosines do not replace the row of the paper's equation: each
    has a row, the variant's named by its deviation, both beside the published number."""
    write_result(a_result(algorithm="matching", accuracy=86.68, options={"fce": False}), tmp_path)
    write_result(a_result(algorithm="matching", accuracy=97.0, date="2999-01-01T00:00:00+00:00",
                          options={"fce": False, "cosine_scale": 10.0}), tmp_path)
    table = results_table(load_results(tmp_path))
    paper = f"{PUBLISHED[('matching', 'omniglot', 5, 1)][0]:.2f}"
    assert f"| matching | omniglot | 5 | 1 | {paper} | 86.68 ± 0.31" in table
    assert f"| matching [cosine_scale 10] | omniglot | 5 | 1 | {paper} | 97.00 ± 0.31" in table
    write_result(a_result(algorithm="matching", accuracy=98.2, date="2999-01-02T00:00:00+00:00",
                          options={"fce": False, "distance": "squared_euclidean"}), tmp_path)
    table = results_table(load_results(tmp_path))
    assert f"| matching [distance squared_euclidean] | omniglot | 5 | 1 | {paper} | 98.20 ± 0.31" in table
    assert f"| matching [cosine_scale 10] | omniglot | 5 | 1 | {paper} | 97.00 ± 0.31" in table  # still there


def test_a_transductive_run_tested_on_other_queries_has_its_own_row(tmp_path):
    """Normalising the query set as one batch makes the accuracy depend on how many queries share
    it: a transductive run tested on one query per class (Finn et al.'s released code) never stands
    in the row of the book's 15, while a non-transductive run's query count labels nothing."""
    write_result(a_result(algorithm="maml-transductive", accuracy=96.5), tmp_path)
    write_result(a_result(algorithm="maml-transductive", accuracy=98.2, query=1, train_episodes=2000,
                          date="2999-01-01T00:00:00+00:00"), tmp_path)
    write_result(a_result(algorithm="protonet", dataset="omniglot-lake", way=20, accuracy=84.0, query=1), tmp_path)
    table = results_table(load_results(tmp_path))
    paper = f"{PUBLISHED[('maml-transductive', 'omniglot', 5, 1)][0]:.2f}"
    assert f"| maml-transductive | omniglot | 5 | 1 | {paper} | 96.50 ± 0.31 (1,000 ep.)" in table
    assert f"| maml-transductive [test_query 1] | omniglot | 5 | 1 | {paper} | 98.20 ± 0.31 (2,000 ep.)" in table
    assert "| protonet | omniglot-lake | 20 | 1 |" in table and "a test other than the book's" in table
    assert "`[test_query 1]`: tested on this many queries per class instead of the book's 15" in table


def test_the_notes_explain_the_deviations_the_table_shows_and_no_others(tmp_path):
    write_result(a_result(algorithm="matching", accuracy=97.0, options={"fce": False, "cosine_scale": 10.0}), tmp_path)
    table = results_table(load_results(tmp_path))
    assert "`[cosine_scale 10]`: Matching Networks' cosines times this scale" in table
    assert "backbone strided" not in table and "inner_loss" not in table
    # Every option that can label a run has a meaning for its label (by name, or name and value).
    for name in DEVIATIONS:
        assert any(key.split()[0] == name for key in DEVIATION_MEANINGS), name
    assert deviation_meaning("fast_layers 2").startswith("fast weights in this many")


def test_explorations_stay_out_of_the_table(tmp_path):
    """A one-off run under results/<chapter>/explorations/ is kept and readable, but not a table entry."""
    write_result(a_result(accuracy=97.5), tmp_path / "metric")
    write_result(a_result(accuracy=12.0), tmp_path / "metric" / "explorations")
    assert [r["accuracy"] for r in load_results(tmp_path)] == [97.5]
    assert [r["accuracy"] for r in load_results(tmp_path / "metric" / "explorations")] == [12.0]
    assert "12.00" not in results_table(load_results(tmp_path))
