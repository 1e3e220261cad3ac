"""The shared episode sampler: shapes, labels, no leaks, determinism, and clear errors."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from common import episodes as episodes_module
from common.data.base import FewShotDataset
from common.episodes import Episode, EpisodeSampler, evaluation_episodes, to_float
from common.errors import ConfigError


def labelled_dataset(n_classes=30, per_class=12) -> FewShotDataset:
    """A synthetic split whose pixels name their source: (0,0)=class, (0,1)=example."""
    images = np.zeros((n_classes, per_class, 4, 4, 1), np.uint8)
    images[:, :, 0, 0, 0] = np.arange(n_classes)[:, None]
    images[:, :, 0, 1, 0] = np.arange(per_class)[None, :]
    return FewShotDataset("synthetic", "train", images, tuple(f"c{i}" for i in range(n_classes)))


def provenance(x):
    """(class, example) of each image of a float episode array of labelled_dataset."""
    pixels = np.rint(x * 255).astype(int)
    return pixels[:, 0, 0, 0], pixels[:, 0, 1, 0]


@pytest.mark.parametrize("way,shot,query", [(5, 1, 11), (20, 5, 5), (3, 2, 0), (30, 1, 11)])
def test_episode_shapes_labels_and_classes(way, shot, query):
    dataset = labelled_dataset()
    sampler = EpisodeSampler(dataset, way, shot, query, seed=1)
    for index in range(20):
        episode = sampler.episode(index)
        assert episode.support_x.shape == (way * shot, 4, 4, 1) and episode.support_x.dtype == np.float32
        assert episode.query_x.shape == (way * query, 4, 4, 1)
        np.testing.assert_array_equal(episode.support_y, np.repeat(np.arange(way), shot))
        np.testing.assert_array_equal(episode.query_y, np.repeat(np.arange(way), query))
        classes = sampler.classes_of(index)
        assert len(set(classes)) == way, "the N classes of an episode must be distinct"
        for x, y in ((episode.support_x, episode.support_y), (episode.query_x, episode.query_y)):
            source_class, _ = provenance(x)
            np.testing.assert_array_equal(source_class, classes[y]), "label l must be class classes_of()[l]"


def test_support_and_query_never_share_an_example():
    sampler = EpisodeSampler(labelled_dataset(), 10, 5, 7, seed=0)
    for index in range(200):
        episode = sampler.episode(index)
        support = set(zip(*provenance(episode.support_x)))
        query = set(zip(*provenance(episode.query_x)))
        assert len(support) == 50 and len(query) == 70, "no example may appear twice in an episode"
        assert not support & query


def test_every_class_and_example_gets_drawn():
    sampler = EpisodeSampler(labelled_dataset(), 5, 1, 1, seed=0)
    seen = set()
    for index in range(400):
        seen.update(zip(*provenance(sampler.episode(index).support_x)))
    assert {c for c, _ in seen} == set(range(30))
    assert {e for _, e in seen} == set(range(12))


def test_same_seed_same_episodes_other_seed_other_episodes():
    dataset = labelled_dataset()
    a, b, c = (EpisodeSampler(dataset, 5, 1, 5, seed=s) for s in (7, 7, 8))
    for index in (0, 1, 99):
        for x, y in zip(a.episode(index), b.episode(index)):
            np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(a.episode(i).support_x, c.episode(i).support_x) for i in range(5))
    # episode i does not depend on which episodes were asked for before it
    np.testing.assert_array_equal(a.episode(42).query_x, EpisodeSampler(dataset, 5, 1, 5, seed=7).episode(42).query_x)


def digest(sampler, count=25) -> str:
    h = hashlib.sha256()
    for episode in sampler.episodes(0, count):
        for part in episode:
            h.update(part.tobytes())
    return h.hexdigest()


def test_episodes_are_identical_in_another_process(omniglot_train):
    here = digest(EpisodeSampler(omniglot_train, 5, 1, 15, seed=3))
    code = ("from common.data import load_dataset; from common.episodes import EpisodeSampler;"
            "from tests.test_sampler import digest;"
            "print(digest(EpisodeSampler(load_dataset('omniglot', 'train'), 5, 1, 15, seed=3)))")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert here == there


def test_precomputed_and_per_episode_pixels_are_bit_identical(monkeypatch):
    dataset = labelled_dataset()
    fast = EpisodeSampler(dataset, 5, 2, 3, seed=4)
    monkeypatch.setattr(episodes_module, "PIXELS_IN_MEMORY_LIMIT", 0)
    slow = EpisodeSampler(dataset, 5, 2, 3, seed=4)
    assert slow._pixels.dtype == np.uint8 and fast._pixels.dtype == np.float32
    for index in range(10):
        for x, y in zip(fast.episode(index), slow.episode(index)):
            np.testing.assert_array_equal(x, y)


def test_samplers_of_one_data_set_share_one_float_copy_until_it_is_freed():
    """The samplers of a split share one float32 copy (the Omniglot training split: 258 MB), each
    class converted when an episode first draws it, and the copy goes when the data set's pixels go."""
    import gc

    dataset = labelled_dataset()
    first, second = EpisodeSampler(dataset, 5, 2, 3, seed=4), EpisodeSampler(dataset, 3, 1, 1, seed=0)
    assert first._pixels is second._pixels and first._pixels.dtype == np.float32
    assert not first._copy.converted.any()
    first.episode(0)
    drawn = np.sort(first.classes_of(0))
    assert np.array_equal(np.flatnonzero(second._copy.converted), drawn)
    np.testing.assert_array_equal(second._pixels[drawn], dataset.images[drawn] * np.float32(1 / 255))
    # (the entry of this data set only: earlier tests' data sets may be collected by the same gc.collect)
    key, = (key for key, copy in episodes_module._FLOAT_PIXELS.items() if copy.floats is first._pixels)
    del dataset, first, second
    gc.collect()
    assert key not in episodes_module._FLOAT_PIXELS


def test_meta_batch_stacks_consecutive_episodes():
    sampler = EpisodeSampler(labelled_dataset(), 5, 1, 2, seed=0)
    batch = sampler.meta_batch(3, batch_size=4)
    assert batch.support_x.shape == (4, 5, 4, 4, 1) and batch.query_y.shape == (4, 10)
    for b in range(4):
        np.testing.assert_array_equal(batch.query_x[b], sampler.episode(12 + b).query_x)
    with pytest.raises(ConfigError, match="at least one task"):
        sampler.meta_batch(0, 0)


def test_split_samplers_only_draw_their_own_classes(omniglot_splits):
    # Each split's images come from characters no other split has (tests/test_omniglot.py),
    # and a sampler only indexes its own split: check pixels against the split they came from.
    val = omniglot_splits["val"]
    sampler = EpisodeSampler(val, 5, 1, 1, seed=0)
    for index in range(20):
        episode = sampler.episode(index)
        for label, c in enumerate(sampler.classes_of(index)):
            assert any(np.array_equal(episode.support_x[label], x) for x in to_float(val.images[c]))


def test_fixed_evaluation_episodes_are_fixed():
    dataset = labelled_dataset()
    first, second = evaluation_episodes(dataset, 5, 1, 3), evaluation_episodes(dataset, 5, 1, 3)
    assert len(first) == 600
    for index in (0, 17, 599, -1):
        np.testing.assert_array_equal(first[index].query_x, second[index].query_x)
    assert sum(1 for _ in first) == 600
    with pytest.raises(IndexError):
        first[600]
    assert isinstance(first[0], Episode)


@pytest.mark.parametrize("way,shot,query,message", [
    (31, 1, 1, "only 30; use --way 30 or fewer"),
    (5, 10, 3, "need 13 examples per class.*shot \\+ query <= 12"),
    (0, 1, 1, "way must be an integer >= 1"),
    (5, 0, 1, "shot must be an integer >= 1"),
    (5, 1, -1, "query must be an integer >= 0"),
    (5.0, 1, 1, "way must be an integer"),
])
def test_impossible_settings_say_what_to_change(way, shot, query, message):
    with pytest.raises(ConfigError, match=message):
        EpisodeSampler(labelled_dataset(), way, shot, query)


def test_meta_batches_with_shuffled_support_keep_the_tasks_and_their_labels():
    from common.episodes import MetaBatches

    sampler = EpisodeSampler(labelled_dataset(), 3, 4, 2, seed=5)
    plain, shuffled = MetaBatches(sampler, 2), MetaBatches(sampler, 2, shuffle_support=True)
    a, b = plain.episode(3), shuffled.episode(3)
    np.testing.assert_array_equal(a.query_x, b.query_x)
    assert not np.array_equal(a.support_y, b.support_y)  # labels are no longer class by class
    for t in range(2):  # the same (image, label) pairs, in another order
        def pairs(e):
            return sorted((int(y), x.tobytes()) for x, y in zip(e.support_x[t], e.support_y[t]))
        assert pairs(a) == pairs(b)
    np.testing.assert_array_equal(b.support_x, shuffled.episode(3).support_x)  # the same order every time
