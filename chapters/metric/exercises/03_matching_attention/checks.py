"""Checks for exercise 3. Run them with

    python -m common.exercises check chapters/metric/exercises/03_matching_attention
"""

import math

import numpy as np

EPSILON = 1e-8


def call_attention(module, query, support):
    result = module.attention(np.array(query, dtype=np.float64), np.array(support, dtype=np.float64))
    assert result is not None, "attention should return the (n_query, n_support) weights; it returned None"
    result = np.asarray(result)
    expected_shape = (len(query), len(support))
    hint = " (transposed?)" if result.shape == expected_shape[::-1] else ""
    assert result.shape == expected_shape, (
        f"attention({len(query)} queries, {len(support)} support examples) should return one row per "
        f"query and one column per support example, shape {expected_shape}; got {result.shape}{hint}")
    return result


def call_distribution(module, weights, support_y, way):
    result = module.label_distribution(np.array(weights, dtype=np.float64), np.array(support_y), way)
    assert result is not None, "label_distribution should return the (n_query, way) array; it returned None"
    result = np.asarray(result)
    expected_shape = (len(weights), way)
    assert result.shape == expected_shape, (
        f"label_distribution(attention of shape {np.shape(weights)}, support_y, way={way}) should return "
        f"one row per query and one column per class, shape {expected_shape}; got {result.shape}")
    return result


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def cosine(a, b):
    a = a / np.sqrt((a * a).sum(-1, keepdims=True) + EPSILON)
    b = b / np.sqrt((b * b).sum(-1, keepdims=True) + EPSILON)
    return a @ b.T


def diagnose_attention(query, support, result):
    """Name the usual mistake that gives exactly ``result``, if it is one of them."""
    query, support = np.asarray(query, float), np.asarray(support, float)
    c, dot = cosine(query, support), query @ support.T
    mistakes = [
        ("a softmax over the queries (axis 0)", "each query's weights over the support set should sum "
         "to 1: take the softmax along axis 1", softmax(c, axis=0)),
        ("a softmax of dot products", "divide by the norms of both embeddings first (cosine similarity)",
         softmax(dot, axis=1)),
        ("the cosine similarities without the softmax", "apply a softmax over the support set", c),
        ("the dot products without the softmax", "use cosine similarities, then a softmax", dot),
        ("a softmax of negative squared distances",
         "Matching Networks use cosine similarity", softmax(-((query[:, None] - support[None]) ** 2).sum(-1), 1)),
        ("a softmax of cosine similarities normalised by one norm only", "divide by both norms",
         softmax(query @ (support / np.linalg.norm(support, axis=1, keepdims=True)).T, axis=1)),
    ]
    for what, advice, wrong in mistakes:
        if wrong.shape == result.shape and np.allclose(result, wrong, rtol=1e-5, atol=1e-7):
            return f" Your numbers are {what}; {advice}."
    return ""


def check_rows_are_distributions_over_the_support_set(module):
    rng = np.random.default_rng(0)
    query, support = rng.normal(size=(3, 6)), rng.normal(size=(5, 6))
    weights = call_attention(module, query, support)
    diagnosis = diagnose_attention(query, support, weights)
    assert np.all(np.isfinite(weights)) and np.all(weights >= 0), (
        f"attention weights are softmax outputs, finite and >= 0; got {np.round(weights, 3).tolist()}.{diagnosis}")
    sums = weights.sum(axis=1)
    assert np.allclose(sums, 1), (
        f"each query spreads one unit of attention over the support set, so every row should sum to 1; "
        f"the rows sum to {np.round(sums, 4).tolist()}.{diagnosis}")


def check_by_hand(module):
    # Cosine similarities of (3, 0) with (2, 0), (0, 3), (-1, 0) are 1, 0, -1 (lengths do not matter),
    # so the weights are e^1, e^0, e^-1 over their sum.
    query, support = [[3.0, 0.0]], [[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]]
    expected = np.exp([1.0, 0.0, -1.0]) / np.exp([1.0, 0.0, -1.0]).sum()
    weights = call_attention(module, query, support)
    assert np.allclose(weights[0], expected, atol=1e-6), (
        f"the query (3, 0) has cosine similarities 1, 0, -1 with the support examples (2, 0), (0, 3), "
        f"(-1, 0), so its attention is softmax([1, 0, -1]) = {np.round(expected, 4).tolist()}; got "
        f"{np.round(weights[0], 4).tolist()}.{diagnose_attention(query, support, weights)}")


def check_identical_embeddings_attend_uniformly(module):
    support = np.tile([[0.3, 1.2, 0.0, 0.5]], (4, 1))
    weights = call_attention(module, support[:2] * 2.0, support)
    assert np.allclose(weights, 0.25), (
        f"four identical support embeddings are equally similar to any query: each should get 1/4 "
        f"of the attention; got {np.round(weights, 4).tolist()}")


def check_lengths_do_not_matter(module):
    # Cosine similarity ignores the length of the embeddings: rescaling changes no weight.
    rng = np.random.default_rng(1)
    query, support = rng.normal(size=(4, 8)), rng.normal(size=(6, 8))
    before = call_attention(module, query, support)
    scaled_query, scaled_support = query * rng.uniform(0.1, 10, (4, 1)), support * rng.uniform(0.1, 10, (6, 1))
    after = call_attention(module, scaled_query, scaled_support)
    assert np.allclose(before, after, atol=1e-7), (
        f"multiplying each embedding by a positive number should change no attention weight (the cosine "
        f"only sees directions), but the weights moved by up to {np.abs(before - after).max():.3g}."
        f"{diagnose_attention(scaled_query, scaled_support, after)}")


def check_zero_embedding_gives_no_nan(module):
    # A ReLU network can embed an image as all zeros: it has no direction, so cosine 0 with everything.
    support = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]])
    with np.errstate(all="ignore"):
        weights = call_attention(module, [[1.0, 0.0], [0.0, 0.0]], support)
    assert np.all(np.isfinite(weights)), (
        f"with an all-zero embedding (among the support examples, and as a query) attention returned "
        f"{weights.tolist()}: 0 / 0 in the cosine. Add a small epsilon under the square root of the "
        f"norms, sqrt(sum(u * u) + 1e-8), so that a zero vector gets cosine 0 with everything")
    expected = np.exp([1.0, 0.0, 0.0]) / (math.e + 2)
    assert np.allclose(weights[0], expected, atol=1e-6) and np.allclose(weights[1], 1 / 3, atol=1e-6), (
        f"the query (1, 0) has cosines 1, 0, 0 with the support (1, 0), (0, 0), (0, 2), so attention "
        f"{np.round(expected, 4).tolist()}; the zero query has cosine 0 with all three, so 1/3 each; got "
        f"{np.round(weights, 4).tolist()}")


def check_label_distribution_by_hand(module):
    # Support labels [1, 0, 1, 0]: class 0 gets 0.2 + 0.4, class 1 gets 0.1 + 0.3.
    weights, support_y = [[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]], [1, 0, 1, 0]
    expected = np.array([[0.6, 0.4], [0.2, 0.8]])
    result = call_distribution(module, weights, support_y, 2)
    hint = ""
    if np.allclose(result, np.asarray(weights).reshape(2, 2, 2).sum(-1)):
        hint = (" Your numbers sum blocks of consecutive support examples, as if they came class by "
                "class; sum the weights of the examples *labelled* k (support_y) instead.")
    assert np.allclose(result, expected), (
        f"with attention {weights} over support examples labelled {support_y}, class 0 gets "
        f"0.2 + 0.4 and class 1 gets 0.1 + 0.3 in the first row: expected {expected.tolist()}, got "
        f"{np.round(result, 4).tolist()}.{hint}")


def check_matches_the_chapters_matching_network(module):
    # An unwritten starter stops on the next line, before the slow import of torch.
    call_distribution(module, call_attention(module, [[1.0, 0.0]], [[1.0, 0.0]]), [0], 1)
    import torch

    from chapters.metric import matching_torch

    rng = np.random.default_rng(2)
    for way, shot, n_query, dim in [(5, 1, 15, 64), (5, 5, 10, 64), (20, 3, 7, 16)]:
        support_y = rng.permutation(np.repeat(np.arange(way), shot))
        support = np.maximum(rng.normal(size=(way * shot, dim)), 0)  # non-negative, like Conv-4's (ReLU)
        query = np.maximum(rng.normal(size=(n_query, dim)), 0)
        expected = matching_torch.attention(torch.from_numpy(query), torch.from_numpy(support))
        weights = call_attention(module, query, support)
        assert np.allclose(weights, expected.numpy(), rtol=1e-6, atol=1e-8), (
            f"on random {dim}-D embeddings ({n_query} queries, {way}-way {shot}-shot support set) your "
            f"attention differs from chapters.metric.matching_torch.attention by up to "
            f"{np.abs(weights - expected.numpy()).max():.3g}.{diagnose_attention(query, support, weights)}")
        distribution = matching_torch.label_distribution(expected, torch.from_numpy(support_y), way).numpy()
        result = call_distribution(module, expected.numpy(), support_y, way)
        assert np.allclose(result, distribution, rtol=1e-6, atol=1e-8), (
            f"with shuffled labels (support_y = {support_y[:8].tolist()}...) your label distribution "
            f"differs from chapters.metric.matching_torch.label_distribution by up to "
            f"{np.abs(result - distribution).max():.3g}; row k of onehot(support_y) is the class of "
            f"support example k")
        assert np.allclose(result.sum(axis=1), 1), (
            f"each row of the label distribution should sum to 1 (it sums attention weights that do); "
            f"got {np.round(result.sum(axis=1), 4).tolist()}")
