"""Checks for exercise 3. Run them with

    python -m common.exercises check chapters/foundations/exercises/03_nearest_neighbour_baseline
"""

import numpy as np

from common.episodes import evaluation_episodes
from common.evaluation import evaluate
from common.exercises import require_dataset

# 1-NN with Euclidean distance scores 44.11% on these 100 fixed episodes (measured with solution.py).
# Implementations differ only in how they break near-ties, a few queries out of 7,500 at most;
# other distances land outside: L1 gives 41.6%, a dot product 46.1%, cosine similarity 50.4%.
OMNIGLOT_5_WAY_1_SHOT = (43.0, 45.5)


def images(values, size=3):
    """Images (len(values), size, size, 1) of constant brightness: their distances are easy to see."""
    return np.ones((len(values), size, size, 1), np.float32) * np.asarray(values, np.float32)[:, None, None, None]


def call(module, support_x, support_y, query_x):
    labels = module.predict(support_x, support_y, query_x)
    assert labels is not None, "predict should return the predicted labels; it returned None"
    labels = np.asarray(labels)
    assert labels.shape == (len(query_x),), (
        f"predict should return one label per query image, shape ({len(query_x)},); got {labels.shape}")
    assert labels.dtype.kind in "iu", f"predict should return integer labels; got dtype {labels.dtype}"
    return labels


def check_returns_one_label_per_query(module):
    rng = np.random.default_rng(0)
    support_x, query_x = rng.random((6, 5, 5, 1)), rng.random((7, 5, 5, 1))
    labels = call(module, support_x.astype(np.float32), np.array([0, 0, 1, 1, 2, 2]), query_x.astype(np.float32))
    assert set(labels.tolist()) <= {0, 1, 2}, f"labels should come from support_y (0, 1, 2); got {labels.tolist()}"


def check_clear_problem(module):
    rng = np.random.default_rng(1)
    way, shot, query = 4, 2, 5
    centres = rng.random((way, 8, 8, 1))
    support_x = np.repeat(centres, shot, axis=0) + 0.02 * rng.standard_normal((way * shot, 8, 8, 1))
    query_x = np.repeat(centres, query, axis=0) + 0.02 * rng.standard_normal((way * query, 8, 8, 1))
    expected = np.repeat(np.arange(way), query)
    labels = call(module, support_x.astype(np.float32), np.repeat(np.arange(way), shot), query_x.astype(np.float32))
    assert np.array_equal(labels, expected), (
        f"each query is a slightly noisy copy of its class's support images, so 1-NN should get "
        f"them all right: expected {expected.tolist()}, got {labels.tolist()}")


def check_labels_come_from_support_y(module):
    # Support labels in no particular order; each query is an exact copy of one support image.
    support_x, support_y = images([0.1, 0.4, 0.7, 0.9]), np.array([3, 1, 0, 2])
    labels = call(module, support_x, support_y, images([0.7, 0.1, 0.9, 0.4]))
    expected = np.array([0, 3, 2, 1])
    hint = ""
    if np.array_equal(labels, [2, 0, 3, 1]):
        hint = (" These are the *positions* of the nearest support images: return their labels, "
                "support_y[position].")
    assert np.array_equal(labels, expected), (
        f"with support_y = {support_y.tolist()} (not in order) and queries that are copies of support "
        f"images 2, 0, 3, 1, predict should return {expected.tolist()}; got {labels.tolist()}.{hint}")


def check_nearest_neighbour_not_nearest_mean(module):
    # Class 0 has two support images, of brightness 0.0 and 1.0; class 1 one of brightness 0.65.
    # A query of brightness 0.9 is nearest to an image of class 0 (1.0), but nearest to the
    # *mean* of class 1 (0.65, against 0.5 for class 0): 1-NN and nearest-mean disagree.
    labels = call(module, images([0.0, 1.0, 0.65]), np.array([0, 0, 1]), images([0.9]))
    assert labels.tolist() == [0], (
        f"a query of brightness 0.9 is nearest to the support image of brightness 1.0 (label 0); "
        f"got label {labels.tolist()[0]}. Compare the query with each support *image*, not with the "
        f"mean of each class (that is a Prototypical Network in pixel space, a later chapter)")


def check_distance_is_euclidean(module):
    # A dark query (0.2) is identical to support image 1 (label 0); support image 0 (label 1) is
    # bright (1.0). A dot product or cosine similarity prefers the bright image (or ties).
    labels = call(module, images([1.0, 0.2]), np.array([1, 0]), images([0.2, 0.25]))
    assert labels.tolist() == [0, 0], (
        f"queries of brightness 0.2 and 0.25 are nearest (Euclidean distance) to the support image "
        f"of brightness 0.2, label 0; got {labels.tolist()}. A dot product or cosine similarity "
        f"prefers bright images: use the distance sqrt(sum((q - s)**2)) between pixel vectors")
    # Distances must be summed over *all* pixels: these two images differ in one corner only.
    support_x = np.zeros((2, 4, 4, 1), np.float32)
    support_x[1, 3, 3, 0] = 1.0
    query_x = support_x[::-1].copy()
    labels = call(module, support_x, np.array([0, 1]), query_x)
    assert labels.tolist() == [1, 0], (
        f"two images that differ only in their last pixel were told apart wrongly (got "
        f"{labels.tolist()}, expected [1, 0]): compare every pixel, e.g. flatten each image with "
        f"x.reshape(len(x), -1)")


def check_omniglot_5_way_1_shot(module):
    dataset = require_dataset("omniglot", "val")
    episodes = evaluation_episodes(dataset, way=5, shot=1, query=15, count=100)
    result = evaluate(lambda e: call(module, e.support_x, e.support_y, e.query_x), episodes)
    low, high = OMNIGLOT_5_WAY_1_SHOT
    assert low <= result["accuracy"] <= high, (
        f"on 100 fixed Omniglot 5-way 1-shot validation episodes, pixel-space 1-NN (Euclidean) "
        f"scores 44.1%; the check accepts {low}-{high}%, yours scored {result['accuracy']:.2f}%")
