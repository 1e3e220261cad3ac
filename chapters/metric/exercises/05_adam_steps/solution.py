"""Exercise 5, a reference solution: Adam's update (Kingma & Ba, 2015, Algorithm 1) in NumPy."""

import numpy as np


def adam_step(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, t: int,
              lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
    """``param - lr * m_hat / (sqrt(v_hat) + eps)``, with ``m`` and ``v`` the running means of the
    gradient and of its square, and ``m_hat``, ``v_hat`` their bias-corrected values."""
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad ** 2
    # Both means start at 0, so early on they are too small by factors 1 - beta^t; dividing by
    # those factors makes the first step's m_hat = grad and v_hat = grad ** 2 exactly.
    m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
    return param - lr * m_hat / (np.sqrt(v_hat) + eps), m, v
