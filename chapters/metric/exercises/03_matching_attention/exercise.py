"""Exercise 3: the attention of a Matching Network (see README.md in this folder).

Check your answer from the repository root with

    python -m common.exercises check chapters/metric/exercises/03_matching_attention
"""

import numpy as np


def attention(query_embeddings: np.ndarray, support_embeddings: np.ndarray) -> np.ndarray:
    """Eq. (2) of Vinyals et al.: a softmax over the support set of cosine similarities.

    ``query_embeddings`` (n_query, D), ``support_embeddings`` (n_support, D) -> (n_query, n_support);
    every row sums to 1. An all-zero embedding has cosine 0 with everything (never nan).
    """
    # ---- your code here: replace the line below (about 5 lines) ----
    raise NotImplementedError("attention: return softmax over the support set of cosine similarities")


def label_distribution(attention: np.ndarray, support_y: np.ndarray, way: int) -> np.ndarray:
    """Eq. (1): ``sum_i a(x, x_i) * onehot(y_i)``, (n_query, way); each row sums to 1.

    ``support_y`` holds the (n_support,) integer labels of the support set, in any order.
    """
    # ---- your code here: replace the line below (about 1 line) ----
    raise NotImplementedError("label_distribution: return attention summed over the support examples of each class")
