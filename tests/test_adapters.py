"""The torch, tf.data and Keras adapters hand every framework the very same numbers."""

import numpy as np
import pytest

from common.adapters import TorchEpisodes, keras_episodes, tf_dataset, to_torch
from common.data.sinusoid import SinusoidTasks
from common.episodes import EpisodeSampler
from tests.test_sampler import labelled_dataset


@pytest.fixture(scope="module")
def sampler():
    return EpisodeSampler(labelled_dataset(), 5, 2, 3, seed=11)


def nhwc(tensor):
    return tensor.movedim(-3, -1).numpy()


def test_torch_episodes_match_numpy_and_are_channels_last_views(sampler):
    import torch

    for index, episode in enumerate(TorchEpisodes(sampler, 4, 8), start=4):
        expected = sampler.episode(index)
        assert episode.support_x.shape == (10, 1, 4, 4)
        assert episode.support_x.is_contiguous(memory_format=torch.channels_last)
        np.testing.assert_array_equal(nhwc(episode.support_x), expected.support_x)
        np.testing.assert_array_equal(nhwc(episode.query_x), expected.query_x)
        assert episode.query_y.dtype == torch.int64
        np.testing.assert_array_equal(episode.query_y.numpy(), expected.query_y)
    assert len(TorchEpisodes(sampler, 4, 8)) == 4


def test_torch_meta_batches(sampler):
    batch = next(iter(TorchEpisodes(sampler, 2, 3, meta_batch_size=4)))
    assert tuple(batch.support_x.shape) == (4, 10, 1, 4, 4)
    np.testing.assert_array_equal(nhwc(batch.query_x), sampler.meta_batch(2, 4).query_x)


def test_tf_dataset_matches_numpy(sampler):
    episodes = list(tf_dataset(sampler, 0, 3))
    assert len(episodes) == 3
    for index, episode in enumerate(episodes):
        for ours, expected in zip(episode, sampler.episode(index)):
            np.testing.assert_array_equal(ours.numpy(), expected)
    batch = next(iter(tf_dataset(sampler, 5, 6, meta_batch_size=2)))
    np.testing.assert_array_equal(batch.support_x.numpy(), sampler.meta_batch(5, 2).support_x)


def test_keras_pydataset_item_i_is_episode_start_plus_i(sampler):
    data = keras_episodes(sampler, count=4, start=10)
    assert len(data) == 4
    for i in (1, 3, 0):  # any order: Keras prefetches ahead
        (support_x, support_y, query_x), query_y = data[i]
        expected = sampler.episode(10 + i)
        np.testing.assert_array_equal(support_x, expected.support_x)
        np.testing.assert_array_equal(query_y, expected.query_y)
    data.on_epoch_end()  # Keras calls this before training starts; it must change nothing
    np.testing.assert_array_equal(data[1][0][0], sampler.episode(11).support_x)
    with pytest.raises(IndexError):
        data[4]


def test_regression_inputs_are_not_permuted():
    tasks = SinusoidTasks(shot=5, query=10, seed=0)
    episode = to_torch(tasks.episode(0))
    assert tuple(episode.support_x.shape) == (5, 1)
    np.testing.assert_array_equal(episode.support_y.numpy(), tasks.episode(0).support_y)
