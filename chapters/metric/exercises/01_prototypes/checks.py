"""Checks for exercise 1. Run them with

    python -m common.exercises check chapters/metric/exercises/01_prototypes
"""

import numpy as np

# Hand-worked example: 2-D embeddings of a 2-way 2-shot support set, class by class.
#   class 0: (0, 0) and (2, 0)  -> prototype (1, 0)
#   class 1: (0, 4) and (0, 2)  -> prototype (0, 3)
HAND_EMBEDDINGS = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 2.0]])
HAND_LABELS = np.array([0, 0, 1, 1])
HAND_PROTOTYPES = np.array([[1.0, 0.0], [0.0, 3.0]])

# Squared distances by hand: ||(0,0)-(3,4)||^2 = 25, ||(1,1)-(3,4)||^2 = 4 + 9 = 13, ...
HAND_A = np.array([[0.0, 0.0], [1.0, 1.0]])
HAND_B = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
HAND_DISTANCES = np.array([[25.0, 0.0, 1.0], [13.0, 2.0, 1.0]])


def call_prototypes(module, embeddings, labels, way):
    result = module.prototypes(embeddings.copy(), labels.copy(), way)
    assert result is not None, "prototypes should return the (way, D) array; it returned None"
    result = np.asarray(result)
    expected_shape = (way, embeddings.shape[1])
    assert result.shape == expected_shape, (
        f"prototypes(embeddings of shape {embeddings.shape}, labels, way={way}) should return one row "
        f"per class, shape {expected_shape}; got {result.shape}"
        + (" (transposed?)" if result.shape == expected_shape[::-1] else ""))
    assert result.dtype.kind == "f", f"prototypes should return floats; got dtype {result.dtype}"
    return result


def call_squared_euclidean(module, a, b):
    result = module.squared_euclidean(a.copy(), b.copy())
    assert result is not None, "squared_euclidean should return the (n, m) array; it returned None"
    result = np.asarray(result)
    expected_shape = (len(a), len(b))
    hint = ""
    if result.shape == expected_shape[::-1]:
        hint = " It looks transposed: row i should hold the distances of a[i] to every row of b."
    assert result.shape == expected_shape, (
        f"squared_euclidean(a of shape {a.shape}, b of shape {b.shape}) should return shape "
        f"{expected_shape}, one distance per (row of a, row of b); got {result.shape}.{hint}")
    return result


def diagnose_prototypes(embeddings, labels, way, result):
    """Name the usual mistake that gives exactly ``result``, if it is one of them."""
    dim = embeddings.shape[1]
    sums = np.stack([embeddings[labels == k].sum(axis=0) for k in range(way)])
    mistakes = [("the sum of each class's embeddings", "divide by the number of examples of the class", sums)]
    if len(embeddings) % way == 0:
        blocks = embeddings.reshape(way, -1, dim)
        mistakes += [
            ("what you get if the rows are assumed to come class by class (`embeddings.reshape(way, shot, D)`)",
             "the labels say which class each row belongs to: use them", blocks.mean(axis=1)),
            ("sums of blocks of rows, as if the rows came class by class",
             "take the mean of the rows *labelled* k", blocks.sum(axis=1))]
    mistakes.append(("the mean of all the embeddings", "take one mean per class",
                     np.repeat(embeddings.mean(axis=0, keepdims=True), way, axis=0)))
    for what, advice, wrong in mistakes:
        if wrong.shape == result.shape and np.allclose(result, wrong, rtol=1e-5, atol=1e-6):
            return f" Your numbers are {what}; {advice}."
    return ""


def diagnose_distances(a, b, result):
    differences = a[:, None, :] - b[None, :, :]
    mistakes = [
        ("the Euclidean distance, with its square root",
         "a Prototypical Network uses the *squared* distance (the root keeps the nearest prototype "
         "but changes every softmax probability)", np.sqrt((differences ** 2).sum(axis=-1))),
        ("the L1 distance, sum |a - b|", "square the differences instead", np.abs(differences).sum(axis=-1)),
        ("the sum of the differences", "sum their squares", differences.sum(axis=-1)),
        ("dot products", "compute distances, ||a_i - b_j||^2", a @ b.T),
    ]
    for what, advice, wrong in mistakes:
        if np.allclose(result, wrong, rtol=1e-5, atol=1e-6):
            return f" Your numbers are {what}; {advice}."
    return ""


def check_prototypes_by_hand(module):
    result = call_prototypes(module, HAND_EMBEDDINGS, HAND_LABELS, 2)
    assert np.allclose(result, HAND_PROTOTYPES), (
        f"class 0 has embeddings (0, 0) and (2, 0), class 1 has (0, 4) and (0, 2): the prototypes are "
        f"their means, {HAND_PROTOTYPES.tolist()}; got {result.tolist()}."
        f"{diagnose_prototypes(HAND_EMBEDDINGS, HAND_LABELS, 2, result)}")


def check_squared_euclidean_by_hand(module):
    result = call_squared_euclidean(module, HAND_A, HAND_B)
    assert np.allclose(result, HAND_DISTANCES), (
        f"squared_euclidean({HAND_A.tolist()}, {HAND_B.tolist()}) should be {HAND_DISTANCES.tolist()} "
        f"(e.g. ||(1, 1) - (3, 4)||^2 = 2^2 + 3^2 = 13); got {np.round(result, 4).tolist()}."
        f"{diagnose_distances(HAND_A, HAND_B, result)}")


def check_labels_in_any_order(module):
    # The hand example with its rows shuffled: the prototypes must not change.
    order = np.array([2, 0, 3, 1])
    embeddings, labels = HAND_EMBEDDINGS[order], HAND_LABELS[order]  # labels [1, 0, 1, 0]
    result = call_prototypes(module, embeddings, labels, 2)
    assert np.allclose(result, HAND_PROTOTYPES), (
        f"with the rows in another order, embeddings {embeddings.tolist()} and labels {labels.tolist()}, "
        f"the prototypes are still {HAND_PROTOTYPES.tolist()}; got {result.tolist()}."
        f"{diagnose_prototypes(embeddings, labels, 2, result)}")


def check_several_shots_per_class(module):
    # 3-way 4-shot, 5-D, labels shuffled; class k's embeddings are centred on k * (1, 1, 1, 1, 1).
    rng = np.random.default_rng(0)
    way, shot, dim = 3, 4, 5
    labels = rng.permutation(np.repeat(np.arange(way), shot))
    embeddings = labels[:, None] + rng.normal(0, 0.3, size=(way * shot, dim))
    expected = np.stack([embeddings[labels == k].mean(axis=0) for k in range(way)])
    result = call_prototypes(module, embeddings, labels, way)
    assert np.allclose(result, expected), (
        f"in a {way}-way {shot}-shot support set (labels {labels.tolist()}) row k of the result should "
        f"be the mean of the {shot} embeddings labelled k; row 0 should be {np.round(expected[0], 4).tolist()}, "
        f"got {np.round(result[0], 4).tolist()}.{diagnose_prototypes(embeddings, labels, way, result)}")


def check_classes_of_different_sizes(module):
    # Nothing in Eq. (1) needs the same number of examples in every class.
    embeddings = np.array([[1.0], [2.0], [3.0], [10.0], [20.0], [6.0]])
    labels = np.array([0, 0, 0, 1, 1, 2])
    expected = np.array([[2.0], [15.0], [6.0]])
    result = call_prototypes(module, embeddings, labels, 3)
    assert np.allclose(result, expected), (
        f"classes of 3, 2 and 1 examples ({embeddings.ravel().tolist()} with labels {labels.tolist()}) "
        f"have means {expected.ravel().tolist()}; got {result.ravel().tolist()}."
        f"{diagnose_prototypes(embeddings, labels, 3, result)}")


def check_matches_the_chapters_protonet(module):
    # An unwritten starter stops on the next line, before the slow import of torch.
    call_squared_euclidean(module, HAND_A, call_prototypes(module, HAND_EMBEDDINGS, HAND_LABELS, 2))
    import torch

    from chapters.metric import protonet_torch

    rng = np.random.default_rng(1)
    for way, shot, n_query, dim in [(5, 1, 15, 64), (5, 5, 10, 64), (20, 3, 7, 16)]:
        labels = rng.permutation(np.repeat(np.arange(way), shot))
        support = rng.normal(size=(way * shot, dim))
        query = rng.normal(size=(n_query, dim))
        expected_prototypes = protonet_torch.prototypes(torch.from_numpy(support), torch.from_numpy(labels), way)
        mine = call_prototypes(module, support, labels, way)
        assert np.allclose(mine, expected_prototypes.numpy(), rtol=1e-6, atol=1e-9), (
            f"on random {dim}-D embeddings of a {way}-way {shot}-shot support set (shuffled labels) your "
            f"prototypes differ from chapters.metric.protonet_torch.prototypes by up to "
            f"{np.abs(mine - expected_prototypes.numpy()).max():.3g}."
            f"{diagnose_prototypes(support, labels, way, mine)}")
        expected = protonet_torch.squared_euclidean(torch.from_numpy(query), expected_prototypes).numpy()
        distances = call_squared_euclidean(module, query, expected_prototypes.numpy())
        assert np.allclose(distances, expected, rtol=1e-6, atol=1e-9), (
            f"squared distances of {n_query} random queries to {way} prototypes ({dim}-D) differ from "
            f"chapters.metric.protonet_torch.squared_euclidean by up to {np.abs(distances - expected).max():.3g}."
            f"{diagnose_distances(query, expected_prototypes.numpy(), distances)}")


def check_nearest_prototype_classifies(module):
    # Together, the two functions are a Prototypical Network's classifier (Eq. 2 before the softmax).
    rng = np.random.default_rng(2)
    way, shot, n_query, dim = 4, 3, 8, 10
    centres = rng.normal(0, 3, size=(way, dim))
    support_y = rng.permutation(np.repeat(np.arange(way), shot))
    support = centres[support_y] + rng.normal(0, 0.5, size=(way * shot, dim))
    query_y = rng.integers(0, way, size=n_query)
    query = centres[query_y] + rng.normal(0, 0.5, size=(n_query, dim))
    logits = -call_squared_euclidean(module, query, call_prototypes(module, support, support_y, way))
    assert np.array_equal(logits.argmax(axis=1), query_y), (
        f"with well-separated classes every query should be nearest to its own prototype: "
        f"expected labels {query_y.tolist()}, -squared_euclidean(query, prototypes(...)).argmax(1) "
        f"gives {logits.argmax(axis=1).tolist()}")
