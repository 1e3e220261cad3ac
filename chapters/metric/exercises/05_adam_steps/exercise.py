"""Exercise 5: Adam's update, and why one step is enough for a CPU and a GPU to part (see README.md
in this folder).

Check your answer from the repository root with

    python -m common.exercises check chapters/metric/exercises/05_adam_steps
"""

import numpy as np


def adam_step(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, t: int,
              lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
    """One Adam update (Kingma & Ba, 2015, Algorithm 1) of the array ``param``.

    ``grad`` is the gradient at ``param``; ``m`` and ``v`` are the moment estimates after step
    ``t - 1`` (zeros before the first step); ``t`` is this step's number, 1 for the first. Return
    ``(new_param, new_m, new_v)`` as new arrays; do not modify the arrays you are given.
    """
    # ---- your code here: replace the line below (about 5 lines) ----
    raise NotImplementedError("adam_step: update m and v, correct their bias, and step param by lr * m_hat / (sqrt(v_hat) + eps)")
