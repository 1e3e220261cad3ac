"""Exercise 2: cosine similarity or squared Euclidean distance? (see README.md in this folder).

Check your answer from the repository root with

    python -m common.exercises check chapters/metric/exercises/02_cosine_vs_euclidean
"""

import numpy as np


def cosine_logits(query_embeddings: np.ndarray, prototypes: np.ndarray, scale: float) -> np.ndarray:
    """``scale * cos(q_i, c_k)`` for every query and prototype: (n_query, D), (way, D) -> (n_query, way).

    ``cos(u, v) = u . v / (|u| |v|)``. An all-zero embedding has cosine 0 with everything (never
    nan): put a small epsilon such as 1e-8 under the square root of the norms.
    """
    # ---- your code here: replace the line below (about 3 lines) ----
    raise NotImplementedError("cosine_logits: return scale * cosine similarity of every query with every prototype")
