"""Exercise 3, a reference solution: Matching Networks' attention and label distribution in NumPy."""

import numpy as np

EPSILON = 1e-8  # under the square root of the norms: an all-zero embedding gets cosine 0, not nan


def attention(query_embeddings: np.ndarray, support_embeddings: np.ndarray) -> np.ndarray:
    """Softmax over the support set (axis 1) of cosine similarities, (n_query, n_support)."""
    query = query_embeddings / np.sqrt((query_embeddings ** 2).sum(axis=-1, keepdims=True) + EPSILON)
    support = support_embeddings / np.sqrt((support_embeddings ** 2).sum(axis=-1, keepdims=True) + EPSILON)
    cosine = query @ support.T
    weights = np.exp(cosine - cosine.max(axis=1, keepdims=True))  # the max changes nothing but overflow
    return weights / weights.sum(axis=1, keepdims=True)


def label_distribution(attention: np.ndarray, support_y: np.ndarray, way: int) -> np.ndarray:
    """``attention @ onehot(support_y)``: the attention paid to each class, (n_query, way)."""
    return attention @ np.eye(way, dtype=attention.dtype)[support_y]
