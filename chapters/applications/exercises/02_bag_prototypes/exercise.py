"""Exercise 2: a prototype classifier on a bag of embeddings (see README.md in this folder).

Check your answer from the repository root with

    python -m common.exercises check chapters/applications/exercises/02_bag_prototypes
"""

import numpy as np


def bag_of_embeddings(table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``(n, D)``: the mean embedding of each text's non-padding words (id 0 is padding)."""
    # ---- your code here: replace the line below (about 3 lines) ----
    raise NotImplementedError("bag_of_embeddings: return the (n, D) mean embeddings of the non-padding words")


def classify(table: np.ndarray, support_ids: np.ndarray, support_labels: np.ndarray, query_ids: np.ndarray,
             way: int) -> np.ndarray:
    """``(m,)`` labels: each query text's nearest class prototype (squared Euclidean distance)."""
    # ---- your code here: replace the line below (about 4 lines) ----
    raise NotImplementedError("classify: return the label of the nearest prototype for every query text")
