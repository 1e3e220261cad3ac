"""The optimization chapter's scripts: real Omniglot and sinusoid runs end to end, resumed runs,
short-run agreement between the frameworks, and clear errors for bad settings."""

import json

import numpy as np
import pytest

from chapters.optimization import maml as maml_script
from chapters.optimization import metasgd as metasgd_script
from chapters.optimization import reptile as reptile_script
from chapters.optimization import sinusoid
from chapters.optimization.train import Learner, build_learner
from common.episodes import EpisodeSampler, MetaBatches, evaluation_episodes
from common.errors import ConfigError
from common.training import TrainingDiverged
from tests.agreement_helpers import train_and_compare

SCRIPTS = {"maml": maml_script, "metasgd": metasgd_script, "reptile": reptile_script}
TINY = ["--episodes", "4", "--eval-every", "2", "--meta-batch", "2", "--val-episodes", "3",
        "--test-episodes", "4", "--quiet"]


def run_script(algorithm, argv):
    script = SCRIPTS[algorithm]
    return script.main(argv)


@pytest.mark.parametrize("algorithm,framework", [("maml", "torch"), ("maml", "tf"), ("maml", "keras"),
                                                 ("metasgd", "torch"), ("reptile", "keras")])
def test_omniglot_run_writes_results_and_resumes(algorithm, framework, omniglot_splits, tmp_path):
    argv = ["--framework", framework, "--way", "5", "--shot", "1", "--out", str(tmp_path), *TINY]
    if algorithm == "reptile":  # two steps on mini-batches of 5 of the 5 shuffled support examples
        argv += ["--inner-steps", "2", "--test-inner-steps", "3", "--inner-batch", "5"]
    result = run_script(algorithm, argv)
    assert result["algorithm"] == algorithm and result["framework"] == framework
    if algorithm == "reptile":
        assert result["options"]["inner_batch"] == 5
    assert result["way"] == 5 and result["test_episodes"] == 4 and 0 <= result["accuracy"] <= 100
    assert [point["episode"] for point in result["history"]] == [2, 4]
    folder = tmp_path / f"{algorithm}_{framework}_omniglot_5w1s"
    assert (folder / "checkpoint.npz").exists() and (folder / "curve.png").exists()
    if framework == "torch" and algorithm == "maml":
        # Continue the finished run to 6 meta-iterations: it resumes at 4 instead of starting over.
        longer = run_script(algorithm, argv[:-len(TINY)] + ["--episodes", "6", *TINY[2:]])
        assert [point["episode"] for point in longer["history"]] == [2, 4, 6]
        # The same folder with other settings is refused, and the checkpoint is left alone.
        before = (folder / "checkpoint.npz").read_bytes()
        with pytest.raises(ConfigError, match="belongs to another run"):
            run_script(algorithm, argv + ["--inner-lr", "0.1", "--episodes", "6"])
        assert (folder / "checkpoint.npz").read_bytes() == before


def test_transductive_runs_are_labelled(omniglot_splits, tmp_path):
    result = run_script("maml", ["--out", str(tmp_path), "--transductive", "--first-order", *TINY])
    assert result["algorithm"] == "fomaml-transductive" and result["options"]["transductive"] is True
    assert (tmp_path / "fomaml-transductive_torch_omniglot_5w1s").is_dir()


def test_the_released_codes_summed_loss_is_n_times_the_step_and_labelled(omniglot_splits, tmp_path):
    """``--inner-loss sum`` at α trains exactly as the mean loss at N·α, and is named as a variant."""
    summed = run_script("maml", ["--out", str(tmp_path), "--inner-loss", "sum", "--inner-lr", "0.1", *TINY])
    mean = run_script("maml", ["--out", str(tmp_path / "mean"), "--inner-lr", "0.5", *TINY])
    assert summed["options"]["inner_lr"] == 0.1 and summed["options"]["inner_loss"] == "sum"
    assert "inner_loss" not in mean["options"]  # the paper's loss: recorded as before the option existed
    assert [(p["loss"], p["val_accuracy"]) for p in summed["history"]] == [(p["loss"], p["val_accuracy"]) for p in mean["history"]]
    assert summed["accuracy"] == mean["accuracy"]
    assert (tmp_path / "maml_torch_omniglot_5w1s_inner_losssum" / "checkpoint.npz").exists()


@pytest.mark.parametrize("argv,message", [
    (["--inner-steps", "0"], "--inner-steps must be at least 1"),
    (["--test-way", "20"], "tested 5-way"),
    (["--meta-lr", "nan"], "--meta-lr must be a positive number"),
    (["--meta-batch", "0"], "--meta-batch must be at least 1"),
])
def test_bad_settings_are_clear_errors(argv, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        run_script("maml", ["--out", str(tmp_path), *TINY, *argv])


def test_a_diverging_inner_rate_stops_with_a_clear_message(omniglot_splits, tmp_path):
    argv = ["--out", str(tmp_path), "--inner-lr", "1e30", *TINY]
    with pytest.raises(TrainingDiverged, match="at episode 0") as error:
        run_script("maml", argv)
    assert "lower the learning rate" in str(error.value)


def test_a_meta_batch_larger_than_the_distinct_tasks_is_refused():
    from common.data.base import FewShotDataset
    images = np.zeros((4, 3, 28, 28, 1), np.uint8)
    sampler = EpisodeSampler(FewShotDataset("tiny", "train", images, ("a", "b", "c", "d")), 3, 1, 1)
    with pytest.raises(ConfigError, match="more than the 4 distinct 3-way tasks"):
        MetaBatches(sampler, 5)
    assert MetaBatches(sampler, 4).episode(0).support_x.shape == (4, 3, 28, 28, 1)


MAML_TOLERANCE_POINTS = 2.5  # accuracy spread of the three frameworks: 1.8x the largest over seeds 0-3 (1.40)
MAML_UPDATE_RATIO = 1.10  # the last meta-steps' size in TensorFlow or Keras over PyTorch's (measured 0.985-1.035)
MAML_UNLIKE_LABELS = 380  # of the 2,500 labels, TensorFlow's or Keras' own trained MAML unlike PyTorch's (234-315)
MAML_SAME_MODEL_FLIPS = 2  # of the 2,500 labels of PyTorch's trained MAML, adapted in TensorFlow or Keras (measured 0)


def test_short_maml_training_reaches_the_same_accuracy_in_every_framework(omniglot_splits):
    """float32, 60 second-order meta-iterations (5-way 1-shot, meta-batch 4, meta rate 1e-3, the
    stride-2 network of the Omniglot protocols) from the same weights on the same tasks, scored on
    100 fixed validation episodes (2,500 queries, adapted with 3 inner steps; ~65%, chance 20%). The
    exact tests prove one step agrees; over many float32 steps oneDNN's and PyTorch's rounding part
    the trajectories, most at the start of MAML's training, where accuracy moves fastest: after 60
    meta-iterations the three models label 9-13% of the queries differently. So four checks
    (``tests/agreement_helpers.py``), each with a tolerance from the spread of correct runs with seeds
    0-3 of the sampler and the initial weights (results/optimization/NOTES.md, "The MAML agreement
    test's tolerances"):

    * the accuracy spread: measured 0.28-1.40 points; tolerance 2.5. It sees a framework that learns
      2.5 points less or more in 60 meta-iterations;
    * the last five meta-steps' size over PyTorch's: measured 0.985-1.035; tolerance 1.10. Adam's steps
      have the size of the meta learning rate whatever the trajectory: it sees a framework that
      meta-trains at a rate 10% off or more;
    * the labels of TensorFlow's and Keras' own trained models unlike PyTorch's: measured 234-315 of
      2,500; tolerance 380. It sees a framework that trains another model, however close its accuracy;
    * PyTorch's trained MAML, loaded into TensorFlow and Keras and adapted there to each test
      episode: 0 of the 2,500 labels differ on every seed; tolerance 2. It sees an adaptation or
      evaluation path (inner rate, test inner steps, BatchNorm mode) that changes a few labels.

    Planted (``python -m tools.mutations``): Keras adapting a test task with one inner step instead
    of three changed 449 moved-model labels, TensorFlow always transductive 305; TensorFlow
    meta-training first order took steps 1.20 times PyTorch's and labelled 423 queries unlike it.
    A learner that ignores ``first_order`` or ``transductive`` runs this test's own settings (second
    order, support-set statistics), and an ignored meta rate falls back to Adam's 1e-3, this test's:
    those are for the exact tests (``test_maml.py``, ``test_learner_options.py``)."""
    sampler = MetaBatches(EpisodeSampler(omniglot_splits["train"], 5, 1, 1, seed=0), 4)
    episodes = evaluation_episodes(omniglot_splits["val"], 5, 1, 5, count=100)
    settings = dict(inner_lr=0.4, inner_steps=1, test_inner_steps=3, meta_lr=1e-3, transductive=False,
                    first_order=False)
    learners = {framework: Learner(build_learner("maml", framework, 5, (28, 28, 1), 0, settings, backbone="strided"))
                for framework in ("torch", "tf", "keras")}
    run = train_and_compare(learners, sampler, episodes, 60)
    print(run)  # pytest -s shows what was measured
    assert min(run.accuracy.values()) > 20 + 25, f"MAML did not learn: {run.accuracy}"  # chance: 20
    run.check("MAML", update_ratio=MAML_UPDATE_RATIO, flips=MAML_SAME_MODEL_FLIPS, spread=MAML_TOLERANCE_POINTS,
              unlike=MAML_UNLIKE_LABELS, why_unlike="another meta-gradient or rate?",
              why_steps="another meta learning rate?", why_flips="another adaptation or evaluation path?")


# ---------------------------------------------------------------------------------- sinusoid

@pytest.mark.parametrize("algorithm,framework", [("maml", "torch"), ("fomaml", "tf"), ("metasgd", "keras"),
                                                 ("reptile", "torch"), ("maml", "keras")])
def test_sinusoid_runs_write_mse_results_and_resume(algorithm, framework, tmp_path):
    argv = ["--framework", framework, "--algorithm", algorithm, "--shot", "5", "--iterations", "20",
            "--log-every", "10", "--test-tasks", "5", "--eval-steps", "3", "--out", str(tmp_path)]
    result = sinusoid.main(argv)
    assert result["metric"] == "mse" and result["algorithm"] == algorithm and np.isfinite(result["mse"])
    assert "mse_after_3_steps" in result and [p["iteration"] for p in result["history"]] == [10, 20]
    folder = tmp_path / f"{algorithm}_{framework}_sinusoid_1w5s"
    assert (folder / "weights.npz").exists() and (folder / "checkpoint.npz").exists()
    if algorithm != "reptile":  # (Reptile's annealing schedule is tied to --iterations: a new run)
        longer = sinusoid.main([*argv[:7], "30", *argv[8:]])
        assert [p["iteration"] for p in longer["history"]] == [10, 20, 30]
    if framework == "torch" and algorithm == "maml":  # other settings in the same folder: refused, file kept
        before = (folder / "checkpoint.npz").read_bytes()
        with pytest.raises(ConfigError, match="belongs to another run.*inner_lr: 0.01 there, 0.02 here"):
            sinusoid.main([*argv, "--inner-lr", "0.02"])
        with pytest.raises(ConfigError, match="has trained 30 meta-iterations, more than --iterations 20"):
            sinusoid.main(argv)
        assert (folder / "checkpoint.npz").read_bytes() == before
    written = json.loads(next(folder.glob("*_sinusoid_1w5s_*.json")).read_text())
    assert written["command"].startswith("python")


def test_sinusoid_results_name_the_commits_the_training_ran_at(tmp_path, monkeypatch):
    """As the episodic runs (tests/test_training.py): a run resumed at a later commit lists both."""
    import common.results
    argv = ["--framework", "torch", "--algorithm", "maml", "--shot", "5", "--iterations", "10",
            "--log-every", "10", "--test-tasks", "3", "--out", str(tmp_path)]
    monkeypatch.setattr(common.results, "COMMIT_AT_START", "aaa")
    first = sinusoid.main(argv)
    assert first["commit"] == "aaa" and "trained_at" not in first  # one commit: nothing to add
    monkeypatch.setattr(common.results, "COMMIT_AT_START", "bbb")
    longer = sinusoid.main([*argv[:7], "20", *argv[8:]])
    assert longer["commit"] == "bbb" and longer["trained_at"] == ["aaa", "bbb"]


def test_sinusoid_bad_settings_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="--inner-steps must be at least 1"):
        sinusoid.main(["--inner-steps", "0", "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match="multiple of --log-every"):
        sinusoid.main(["--iterations", "15", "--log-every", "10", "--out", str(tmp_path)])
