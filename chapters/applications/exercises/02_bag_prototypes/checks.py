"""Checks for exercise 2. Run them with

    python -m common.exercises check chapters/applications/exercises/02_bag_prototypes
"""

import numpy as np

# A 2-D table: id 0 pads (its row is not zero, so a mean over padding shows), ids 1-4 are words.
TABLE = np.array([[9.0, 9.0], [0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [4.0, 4.0]])
IDS = np.array([[2, 3, 0, 0], [4, 0, 0, 0], [2, 4, 3, 4]])
HAND = np.array([[1.0, 2.0], [4.0, 4.0], [2.5, 3.0]])


def call_bag(module, table, ids):
    result = module.bag_of_embeddings(table.copy(), ids.copy())
    assert result is not None, "bag_of_embeddings should return the (n, D) array; it returned None"
    result = np.asarray(result, dtype=float)
    assert result.shape == (len(ids), table.shape[1]), (
        f"bag_of_embeddings(table {table.shape}, ids {ids.shape}) should return one row per text, shape "
        f"{(len(ids), table.shape[1])}; got {result.shape}")
    return result


def diagnose(table, ids, result):
    over_all = table[ids].mean(axis=1)
    if np.allclose(result, over_all):
        return " That is the mean over every position, padding included: leave out the ids that are 0."
    sums = (table[ids] * (ids != 0)[..., None]).sum(axis=1)
    if np.allclose(result, sums):
        return " That is the sum of the word embeddings: divide by the number of words that are not padding."
    return ""


def check_bag_by_hand(module):
    result = call_bag(module, TABLE, IDS)
    assert np.allclose(result, HAND), (
        f"texts {IDS.tolist()} (0 pads) over the table {TABLE.tolist()} have mean word embeddings "
        f"{HAND.tolist()}; got {result.tolist()}.{diagnose(TABLE, IDS, result)}")


def check_padding_changes_nothing(module):
    short = call_bag(module, TABLE, np.array([[2, 3, 0, 0]]))
    long = call_bag(module, TABLE, np.array([[2, 3, 0, 0, 0, 0, 0, 0, 0, 0]]))
    assert np.allclose(short, long), (f"the same two words with 2 or 8 padding ids after them should give the "
                                      f"same vector; got {short.tolist()} and {long.tolist()}")


def check_a_text_of_padding_only_is_zero(module):
    result = call_bag(module, TABLE, np.array([[0, 0, 0]]))
    assert np.all(np.isfinite(result)) and np.allclose(result, 0), (
        f"a text of padding only has no words: its vector should be zeros (not NaN); got {result.tolist()}")


def check_classify_by_hand(module):
    support = np.array([[2, 2, 0], [3, 0, 0]])     # class 0: word 2 -> (2, 0); class 1: word 3 -> (0, 4)
    query = np.array([[2, 0, 0], [3, 3, 0], [2, 3, 3]])  # (2, 0), (0, 4), (2/3, 8/3): nearer class 1
    result = np.asarray(module.classify(TABLE, support, np.array([0, 1]), query, 2))
    assert result.tolist() == [0, 1, 1], (f"queries {query.tolist()} are nearest to prototypes 0, 1, 1; got "
                                          f"{result.tolist()}")


def check_matches_the_chapters_encoder_and_protonet(module):
    call_bag(module, TABLE, IDS)  # an unwritten starter stops here, before the slow import of torch
    import torch

    from chapters.applications.encoders_torch import BagOfEmbeddings
    from chapters.metric.protonet_torch import prototypes, squared_euclidean

    rng = np.random.default_rng(0)
    way, shot, queries, vocabulary, length = 5, 3, 10, 30, 12
    table = rng.normal(size=(vocabulary, 8))
    encoder = BagOfEmbeddings(vocabulary, word_dim=8).double()
    with torch.no_grad():
        encoder.words.embeddings.copy_(torch.from_numpy(table))
    ids = rng.integers(1, vocabulary, size=(way * shot + queries, length))
    ids[np.arange(len(ids)), rng.integers(1, length, size=len(ids))] = 0
    ids = np.where(np.arange(length) > rng.integers(2, length, size=(len(ids), 1)), 0, ids)
    with torch.no_grad():
        expected = encoder(torch.from_numpy(ids[..., None])).numpy()
    result = call_bag(module, table, ids)
    assert np.allclose(result, expected), (f"on random texts your vectors differ from the chapter's BagOfEmbeddings "
                                           f"by up to {np.abs(result - expected).max():.3g}.{diagnose(table, ids, result)}")
    labels = rng.permutation(np.repeat(np.arange(way), shot))
    support = torch.from_numpy(expected[:way * shot])
    centres = prototypes(support, torch.from_numpy(labels), way)
    nearest = squared_euclidean(torch.from_numpy(expected[way * shot:]), centres).argmin(dim=1).numpy()
    mine = np.asarray(module.classify(table, ids[:way * shot], labels, ids[way * shot:], way))
    assert np.array_equal(mine, nearest), (f"with shuffled support labels {labels.tolist()} the nearest prototypes "
                                           f"are {nearest.tolist()}; got {mine.tolist()}")
