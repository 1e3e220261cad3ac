"""The shared training loop: exact resume, NaN stops keeping the last good checkpoint,
a checkpoint from another run is refused, results and curve are written."""

import json
import shutil

import numpy as np
import pytest

from common.data.base import FewShotDataset
from common.episodes import EpisodeSampler, evaluation_episodes
from common.errors import ConfigError
from common.training import Run, TrainingDiverged, train
from common.weights import load_weights


def small_dataset() -> FewShotDataset:
    """16x16 noise images: Conv-4 maps them to 1x1x64, training steps take milliseconds."""
    images = np.random.default_rng(0).integers(0, 256, size=(10, 6, 16, 16, 1), dtype=np.uint8)
    return FewShotDataset("noise", "train", images, tuple(map(str, range(10))))


def make_run(tmp_path, framework, episodes, **changes):
    fields = dict(algorithm="protonet", framework=framework, dataset="noise", way=3, shot=1, query=2,
                  test_way=3, test_shot=1, test_query=2, episodes=episodes, seed=0, eval_every=2,
                  val_episodes=3, test_episodes=4, out=str(tmp_path))
    fields.update(changes)
    return Run(**fields)


def protonet_learner(framework, example):
    from chapters.metric.train import build_learner
    return build_learner("protonet", framework, 1, example, 1e-3, None, seed=0)


def run_training(tmp_path, framework, episodes, **changes):
    data = small_dataset()
    sampler = EpisodeSampler(data, 3, 1, 2, seed=0)
    episodes_set = evaluation_episodes(data, 3, 1, 2, count=3)
    learner = protonet_learner(framework, sampler.episode(0))
    result = train(make_run(tmp_path, framework, episodes, **changes), learner, sampler, episodes_set,
                   episodes_set, progress=False)
    return learner, result


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(tmp_path, framework):
    straight, _ = run_training(tmp_path / "straight", framework, 6)
    run_training(tmp_path / "resumed", framework, 4)              # stopped after 4 episodes
    resumed, result = run_training(tmp_path / "resumed", framework, 6)  # same options: resumes
    a = load_weights(make_run(tmp_path / "straight", framework, 6).checkpoint)[0]
    b = load_weights(make_run(tmp_path / "resumed", framework, 6).checkpoint)[0]
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-7, err_msg=key)
    assert [h["episode"] for h in result["history"]] == [2, 4, 6]
    assert result["train_episodes"] == 6 and result["wall_seconds"] > 0


def test_results_json_and_curve_are_written(tmp_path):
    _, result = run_training(tmp_path, "torch", 4)
    folder = make_run(tmp_path, "torch", 4).folder
    assert (folder / "curve.png").stat().st_size > 1000
    written = json.loads((folder / "result.json").read_text())
    assert written["accuracy"] == result["accuracy"] and written["framework"] == "torch"
    assert written["command"] and written["commit"]
    assert written["test_seconds"] > 0 and all(point["seconds_per_episode"] > 0 for point in written["history"])


def at_commit(monkeypatch, commit):
    """Pretend this process's code is ``commit`` (what ``common.results`` reads at import)."""
    import common.results
    monkeypatch.setattr(common.results, "COMMIT_AT_START", commit)


def test_results_name_the_commits_the_training_ran_at_when_not_their_own(tmp_path, monkeypatch):
    at_commit(monkeypatch, "aaa")
    _, first = run_training(tmp_path, "torch", 4)
    assert first["commit"] == "aaa" and "trained_at" not in first  # one commit: nothing to add
    at_commit(monkeypatch, "bbb")                                   # a later commit tests it again
    _, again = run_training(tmp_path, "torch", 4)
    assert again["commit"] == "bbb" and again["trained_at"] == ["aaa"]
    assert again["accuracy"] == first["accuracy"]
    _, longer = run_training(tmp_path, "torch", 6)                  # and resumes it for 2 more episodes
    assert longer["trained_at"] == ["aaa", "bbb"]


def test_a_run_without_a_progress_bar_reports_each_evaluation_as_a_line(tmp_path, capsys):
    _, result = run_training(tmp_path, "torch", 4)  # progress=False, as with --quiet
    lines = [line for line in capsys.readouterr().out.splitlines() if " s/episode" in line]
    assert [line.split(":")[0] for line in lines] == ["protonet (torch) episode 2 of 4", "protonet (torch) episode 4 of 4"]
    assert f"validation {result['history'][-1]['val_accuracy']:.2f} ± " in lines[-1]


def test_a_checkpoint_of_another_run_is_refused_and_left_alone(tmp_path):
    run_training(tmp_path, "torch", 2)
    checkpoint = make_run(tmp_path, "torch", 2).checkpoint
    before = checkpoint.read_bytes()
    with pytest.raises(ConfigError, match="belongs to another run than this one: query: 2 there, 3 here"):
        run_training(tmp_path, "torch", 4, query=3)
    # the same file copied into another framework's folder
    other = make_run(tmp_path, "tf", 2).checkpoint
    other.parent.mkdir(parents=True)
    shutil.copy(checkpoint, other)
    with pytest.raises(ConfigError, match="--framework torch.*--framework tf"):
        run_training(tmp_path, "tf", 2)
    assert checkpoint.read_bytes() == before


def test_a_labelled_deviation_gets_its_own_run_folder(tmp_path):
    """A variant of the method (Matching Networks with scaled cosines) and the paper's own never
    share a folder, so neither resumes the other's checkpoint."""
    plain = make_run(tmp_path, "torch", 4, algorithm="matching", options={"fce": False})
    scaled = make_run(tmp_path, "torch", 4, algorithm="matching", options={"fce": False, "cosine_scale": 10.0})
    assert plain.folder.name == "matching_torch_noise_3w1s"
    assert scaled.folder.name == "matching_torch_noise_3w1s_cosine_scale10"
    euclidean = make_run(tmp_path, "torch", 4, algorithm="matching",
                         options={"fce": False, "distance": "squared_euclidean"})
    assert euclidean.folder.name == "matching_torch_noise_3w1s_distancesquared_euclidean"


def test_each_seed_gets_its_own_run_folder_and_an_earlier_seed_run_still_resumes(tmp_path, capsys):
    """Seed 0 keeps the plain name (the book's commands); other seeds add ``_seed<N>``, so runs of
    several seeds share one --out. A seed run from before that, in a plain folder, is resumed there."""
    assert make_run(tmp_path, "torch", 4).folder.name == "protonet_torch_noise_3w1s"
    assert make_run(tmp_path, "torch", 4, seed=2).folder.name == "protonet_torch_noise_3w1s_seed2"
    run_training(tmp_path, "torch", 2)
    run_training(tmp_path, "torch", 2, seed=1)  # no longer refused: a folder of its own
    assert load_weights(make_run(tmp_path, "torch", 2, seed=1).checkpoint)[1]["identity"]["seed"] == 1

    earlier = tmp_path / "earlier"  # a seed-1 run written where seeds had no folder of their own
    run_training(earlier, "torch", 2, seed=1)
    (earlier / "protonet_torch_noise_3w1s_seed1").rename(earlier / "protonet_torch_noise_3w1s")
    assert make_run(earlier, "torch", 4, seed=1).folder.name == "protonet_torch_noise_3w1s"
    assert make_run(earlier, "torch", 4, seed=2).folder.name == "protonet_torch_noise_3w1s_seed2"
    capsys.readouterr()
    run_training(earlier, "torch", 4, seed=1)
    assert f"resuming {earlier / 'protonet_torch_noise_3w1s' / 'checkpoint.npz'} at episode 2 of 4" in capsys.readouterr().out


class ExplodingLearner:
    """Learns nothing; its loss becomes NaN at episode 5."""

    def __init__(self):
        self.steps, self.weight = 0, np.zeros(3)

    def train_step(self, episode):
        self.steps += 1
        self.weight += 1
        return {"loss": float("nan") if self.steps == 6 else 1.0, "accuracy": 0.5}

    def predict(self, episode):
        return np.zeros_like(episode.query_y)

    def state(self):
        return {"weight": self.weight.copy()}

    def load_state(self, arrays):
        self.weight = arrays["weight"].copy()


def test_a_nan_loss_stops_with_the_episode_and_keeps_the_last_good_checkpoint(tmp_path):
    data = small_dataset()
    sampler = EpisodeSampler(data, 3, 1, 2)
    run = make_run(tmp_path, "torch", 10)
    with pytest.raises(TrainingDiverged, match="became nan at episode 5.*lower the learning rate"):
        train(run, ExplodingLearner(), sampler, evaluation_episodes(data, 3, 1, 2, count=2), [], progress=False)
    weights, meta = load_weights(run.checkpoint)
    assert meta["episode"] == 4 and weights["weight"].tolist() == [4, 4, 4]


def test_episodes_must_be_a_multiple_of_eval_every(tmp_path):
    with pytest.raises(ConfigError, match="multiple of --eval-every"):
        run_training(tmp_path, "torch", 5)


def test_a_checkpoint_past_episodes_is_not_tested_as_a_shorter_run(tmp_path):
    run_training(tmp_path, "torch", 4)
    with pytest.raises(ConfigError, match="has trained 4 episodes, more than --episodes 2; pass --episodes 4"):
        run_training(tmp_path, "torch", 2)
    _, result = run_training(tmp_path, "torch", 4)  # the finished run, tested again: no training
    assert result["train_episodes"] == 4
