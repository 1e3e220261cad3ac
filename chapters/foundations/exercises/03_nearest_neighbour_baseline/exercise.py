"""Exercise 3: the pixel-space nearest-neighbour baseline (see README.md in this folder).

Check your answer from the repository root with

    python -m common.exercises check chapters/foundations/exercises/03_nearest_neighbour_baseline
"""

import numpy as np


def predict(support_x: np.ndarray, support_y: np.ndarray, query_x: np.ndarray) -> np.ndarray:
    """Label each query image with the label of its nearest support image.

    ``support_x`` (S, H, W, C) and ``query_x`` (Q, H, W, C) are float images, ``support_y`` (S,)
    their integer labels (in any order). "Nearest" means the smallest Euclidean distance between
    the images seen as vectors of H*W*C pixels. Returns (Q,) integer labels taken from
    ``support_y``. No training, no learning: this is the baseline every meta-learner must beat.
    """
    # ---- your code here: replace the line below (about 4 lines) ----
    raise NotImplementedError("predict: return support_y of the nearest support image of each query")
