"""Exercise 4, a reference solution: a Meta Network's fast weights from a gradient, in NumPy."""

import numpy as np


def preprocess(gradient: np.ndarray, k: float = 7.0) -> np.ndarray:
    """``(max(log(|g| + eps) / k, -1), clip(g e^k, -1, 1))`` for every coordinate g: shape (..., 2)."""
    eps = np.finfo(np.float64).eps
    size = np.maximum(np.log(np.abs(gradient) + eps) / k, -1.0)  # -1 for every |g| below e^-k
    sign = np.clip(gradient * np.exp(k), -1.0, 1.0)              # the sign, or g e^k for tiny ones
    return np.stack([size, sign], -1)


def fast_weights(gradient: np.ndarray, kernels: list, biases: list) -> np.ndarray:
    """The MLP m applied to every coordinate's two preprocessed numbers."""
    h = preprocess(gradient)
    for i, (kernel, bias) in enumerate(zip(kernels, biases)):
        h = h @ kernel + bias  # acts on the last axis: the same MLP for every coordinate
        if i < len(kernels) - 1:
            h = np.maximum(h, 0.0)
    return h[..., 0]


def augmented_dense(x: np.ndarray, slow_kernel: np.ndarray, fast_kernel: np.ndarray) -> np.ndarray:
    """Layer augmentation: ``relu(x @ W) + relu(x @ W*)``."""
    return np.maximum(x @ slow_kernel, 0.0) + np.maximum(x @ fast_kernel, 0.0)
