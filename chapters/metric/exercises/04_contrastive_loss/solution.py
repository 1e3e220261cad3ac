"""Exercise 4, a reference solution: the Siamese chapter's balanced pair loss in NumPy."""

import numpy as np


def pair_loss(pair_logits: np.ndarray, support_y: np.ndarray, query_y: np.ndarray) -> float:
    """``0.5 * mean_{same} -log sigma(s) + 0.5 * mean_{different} -log(1 - sigma(s))``."""
    logits = np.asarray(pair_logits, dtype=np.float64)
    same = np.asarray(query_y)[:, None] == np.asarray(support_y)[None, :]  # the targets, (n_query, n_support)
    # -log sigma(s) = log(1 + e^-s) and -log(1 - sigma(s)) = log(1 + e^s): logaddexp never overflows.
    bce = np.where(same, np.logaddexp(0.0, -logits), np.logaddexp(0.0, logits))
    return float(0.5 * bce[same].mean() + 0.5 * bce[~same].mean())
