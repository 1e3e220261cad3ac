"""Exercise 3, a reference solution: SNAIL's causally masked attention in NumPy."""

import numpy as np


def causal_mask(length: int) -> np.ndarray:
    """(T, T) booleans, True where position t (row) may read position s (column): s <= t."""
    return np.tril(np.ones((length, length), dtype=bool))


def causal_attention(x: np.ndarray, query_kernel: np.ndarray, key_kernel: np.ndarray, value_kernel: np.ndarray):
    """(read (T, V), attention weights (T, T)): softmax of q_t . k_s / sqrt(K) over s <= t."""
    queries, keys, values = x @ query_kernel, x @ key_kernel, x @ value_kernel
    logits = queries @ keys.T / np.sqrt(key_kernel.shape[1])
    logits = np.where(causal_mask(len(x)), logits, -np.inf)  # before the softmax: exp(-inf) = 0
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    return weights @ values, weights
