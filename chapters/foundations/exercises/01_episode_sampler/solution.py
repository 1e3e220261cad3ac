"""Exercise 1, a reference solution: one N-way K-shot episode.

It makes the same random draws, in the same order, as ``EpisodeSampler.episode`` in
``common/episodes.py``: given ``np.random.default_rng([seed, i])`` it returns the pixels of that
sampler's episode ``i`` (as uint8, before the conversion to float).
"""

import numpy as np


def sample_episode(images: np.ndarray, way: int, shot: int, query: int, rng: np.random.Generator):
    """Draw one episode from ``images`` (classes, examples, H, W, C); see exercise.py for the contract."""
    n_classes, n_examples = images.shape[:2]
    # N distinct classes, in random order: the order they are drawn in *is* their label.
    classes = rng.choice(n_classes, way, replace=False)
    # A random permutation of each chosen class's examples. The first K are the support set and
    # the next Q the query set: two slices of one permutation can never share an example.
    order = rng.random((way, n_examples)).argsort(axis=1)
    rows = classes[:, None]  # (way, 1) broadcasts against (way, K): row c picks from class c
    image_shape = images.shape[2:]
    support_x = images[rows, order[:, :shot]].reshape(way * shot, *image_shape)
    query_x = images[rows, order[:, shot:shot + query]].reshape(way * query, *image_shape)
    # Labels 0..N-1, class by class, whatever the classes' indices in the data set were.
    support_y = np.repeat(np.arange(way), shot)
    query_y = np.repeat(np.arange(way), query)
    return support_x, support_y, query_x, query_y
