"""Exercise 3: the causal attention mask (see README.md in this folder).

Check your answer from the repository root with

    python -m common.exercises check chapters/model_based/exercises/03_causal_attention_mask
"""

import numpy as np


def causal_mask(length: int) -> np.ndarray:
    """(T, T) booleans, True where position t (row) may read position s (column): s <= t."""
    # ---- your code here: replace the line below (about 1 line) ----
    raise NotImplementedError("causal_mask: True on and below the diagonal")


def causal_attention(x: np.ndarray, query_kernel: np.ndarray, key_kernel: np.ndarray, value_kernel: np.ndarray):
    """Algorithm 3 of Mishra et al. without biases: (read (T, V), attention weights (T, T)).

    ``x`` (T, C); ``query_kernel`` and ``key_kernel`` (C, K); ``value_kernel`` (C, V). Row t of the
    weights is a softmax of q_t . k_s / sqrt(K) over s <= t, and 0 for every later s.
    """
    # ---- your code here: replace the line below (about 6 lines) ----
    raise NotImplementedError("causal_attention: scaled dot products, masked before a softmax over each row")
