"""``--pipeline-check``: meta-training on some test classes, testing on the others, labelled as such.

The offline mini-ImageNet copy has only the 20 test classes. A pipeline check trains on the first
12 (sorted by name) and validates and tests on the other 8; the two sides must never share a class,
the train split must not even be looked for, and the results must say what the run was so that a
table can never show it as a reproduction. A tiny synthetic data set stands in for the real one.
"""

import json

import numpy as np
import pytest

from chapters.metric import protonet
from chapters.metric import train as metric_train
from common import episodes
from common.data.base import FewShotDataset
from common.errors import ConfigError


def shuffled_test_split(n_classes=20, examples=8) -> FewShotDataset:
    """16x16 noise images; class names in a scrambled order, each class's pixels tagged with its
    index in the first pixel, so that every image can be traced back to its class."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n_classes, examples, 16, 16, 1), dtype=np.uint8)
    images[:, :, 0, 0, 0] = np.arange(n_classes)[:, None]
    names = [f"n{code:08d}" for code in rng.permutation(n_classes) * 1000 + 7]
    return FewShotDataset("toy", "test", images, tuple(names))


def test_subset_keeps_the_chosen_classes_and_their_images():
    data = shuffled_test_split()
    part = data.subset([3, 1], name="toy-part", split="train")
    assert (part.name, part.split, part.class_names) == ("toy-part", "train", (data.class_names[3], data.class_names[1]))
    np.testing.assert_array_equal(part.images, data.images[[3, 1]])
    assert data.subset([data.class_names[5]]).class_names == (data.class_names[5],)  # by name
    assert (data.subset([0]).name, data.subset([0]).split) == ("toy", "test")      # labels kept by default
    for bad in ([], [2, 2], [20], ["nope"]):
        with pytest.raises(ConfigError):
            data.subset(bad)


def test_classes_are_split_disjointly_in_sorted_order_and_labelled():
    data = shuffled_test_split()
    train_set, held_out, note = metric_train.pipeline_check_splits(data)
    assert (train_set.n_classes, held_out.n_classes) == (12, 8)
    assert not set(train_set.class_names) & set(held_out.class_names)
    assert sorted(train_set.class_names + held_out.class_names) == sorted(data.class_names)
    assert list(train_set.class_names + held_out.class_names) == sorted(data.class_names)
    # the images travel with their class names
    for part in (train_set, held_out):
        for i, name in enumerate(part.class_names):
            assert (part.images[i, :, 0, 0, 0] == data.class_names.index(name)).all()
    assert train_set.name == held_out.name == "toy-pipeline-check"
    assert (train_set.split, held_out.split) == ("train", "test")
    assert note["note"].startswith("PIPELINE CHECK, NOT A REPRODUCTION")
    assert note["train_classes"] == list(train_set.class_names)
    assert note["test_classes"] == list(held_out.class_names)
    with pytest.raises(ConfigError, match="at least one class on each side"):
        metric_train.pipeline_check_splits(data, train_classes=20)


def test_a_pipeline_check_run_trains_only_on_its_classes_and_says_so(tmp_path, monkeypatch):
    data = shuffled_test_split()
    asked = []

    def load_dataset(name, split, data_dir=None):
        asked.append(split)
        if split != "test":
            raise AssertionError(f"a pipeline check must not load the {split} split")
        return data

    monkeypatch.setattr(metric_train, "load_dataset", load_dataset)
    seen = set()
    original = episodes.EpisodeSampler

    class RecordingSampler(original):  # every episode the run trains or evaluates on
        def episode(self, index):
            episode = super().episode(index)
            seen.add((self.dataset.split, *np.unique(np.concatenate(
                [episode.support_x[:, 0, 0, 0], episode.query_x[:, 0, 0, 0]]) * 255).round().astype(int)))
            return episode

    monkeypatch.setattr(episodes, "EpisodeSampler", RecordingSampler)  # the training and evaluation episodes
    result = protonet.main(["--dataset", "toy", "--pipeline-check", "--way", "3", "--shot", "1",
                                            "--query", "2", "--episodes", "2", "--eval-every", "2",
                                            "--val-episodes", "2", "--test-episodes", "3", "--out", str(tmp_path),
                                            "--quiet"])
    assert asked == ["test"]
    train_classes, _, _ = metric_train.pipeline_check_splits(data)
    train_ids = {data.class_names.index(name) for name in train_classes.class_names}
    used = {split: set() for split in ("train", "test")}
    for split, *classes in seen:
        used[split].update(classes)
    assert used["train"] and used["train"] <= train_ids
    assert used["test"] and not used["test"] & train_ids

    assert result["dataset"] == "toy-pipeline-check"
    assert result["options"]["train_split"] == "pipeline-check"
    assert "NOT A REPRODUCTION" in result["options"]["pipeline_check"]["note"]
    folder = tmp_path / "protonet_torch_toy-pipeline-check_3w1s"
    assert json.loads((folder / "result.json").read_text())["dataset"] == "toy-pipeline-check"


def test_pipeline_check_refuses_another_train_split(monkeypatch):
    monkeypatch.setattr(metric_train, "load_dataset", lambda *args, **kwargs: shuffled_test_split())
    with pytest.raises(ConfigError, match="drop --train-split"):
        protonet.main(["--pipeline-check", "--train-split", "trainval", "--quiet"])
