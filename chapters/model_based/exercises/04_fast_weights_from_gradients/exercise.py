"""Exercise 4: fast weights from a gradient (see README.md in this folder).

Check your answer from the repository root with

    python -m common.exercises check chapters/model_based/exercises/04_fast_weights_from_gradients
"""

import numpy as np


def preprocess(gradient: np.ndarray, k: float = 7.0) -> np.ndarray:
    """``(max(log(|g| + eps) / k, -1), clip(g e^k, -1, 1))`` for every coordinate g: shape (..., 2)."""
    # ---- your code here: replace the line below (about 4 lines) ----
    raise NotImplementedError("preprocess: a log-size feature and a sign feature per coordinate, stacked last")


def fast_weights(gradient: np.ndarray, kernels: list, biases: list) -> np.ndarray:
    """The MLP m applied to every coordinate's two preprocessed numbers: one fast weight per
    coordinate, the gradient's shape."""
    # ---- your code here: replace the line below (about 5 lines) ----
    raise NotImplementedError("fast_weights: preprocess, then 2 -> 20 -> 20 -> 1 on the last axis")


def augmented_dense(x: np.ndarray, slow_kernel: np.ndarray, fast_kernel: np.ndarray) -> np.ndarray:
    """Layer augmentation: ``relu(x @ W) + relu(x @ W*)``."""
    # ---- your code here: replace the line below (about 1 line) ----
    raise NotImplementedError("augmented_dense: slow and fast paths, each with its own ReLU, added")
