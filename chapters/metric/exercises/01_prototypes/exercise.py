"""Exercise 1: class prototypes and squared Euclidean distances (see README.md in this folder).

Check your answer from the repository root with

    python -m common.exercises check chapters/metric/exercises/01_prototypes
"""

import numpy as np


def prototypes(embeddings: np.ndarray, labels: np.ndarray, way: int) -> np.ndarray:
    """Eq. (1) of Snell et al.: the mean embedding of each class, ``(way, D)``.

    ``embeddings`` is ``(n, D)``, ``labels`` ``(n,)`` integers in ``0 .. way-1`` in any order
    (do not assume the examples come class by class). Row ``k`` of the result is the mean of the
    rows of ``embeddings`` whose label is ``k``.
    """
    # ---- your code here: replace the line below (about 2 lines) ----
    raise NotImplementedError("prototypes: return the (way, D) array of per-class mean embeddings")


def squared_euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``||a_i - b_j||^2`` for every pair: ``(n, D)``, ``(m, D)`` -> ``(n, m)``."""
    # ---- your code here: replace the line below (about 1 line) ----
    raise NotImplementedError("squared_euclidean: return the (n, m) array of squared distances")
