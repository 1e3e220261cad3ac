"""Exercise 1: least-recently-used access, the write weights of a MANN (see README.md in this folder).

Check your answer from the repository root with

    python -m common.exercises check chapters/model_based/exercises/01_lrua_write_weights
"""

import numpy as np


def least_used(usage: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(w_lu, least)``, both ``(B, N)`` floats: 1 on the ``n`` rows of smallest usage, and 1 on
    the one row of smallest usage. Equal usages: the lower row index counts as less used."""
    # ---- your code here: replace the line below (about 5 lines) ----
    raise NotImplementedError("least_used: return (w_lu, least), 1 on the n least-used rows and on the least-used one")


def write_weights(previous_read: np.ndarray, w_lu: np.ndarray, gate: np.ndarray) -> np.ndarray:
    """w^w = σ(α) w^r_{t-1} + (1 - σ(α)) w^lu: ``(B, R, N)``, ``(B, N)``, ``(B, R)`` -> ``(B, R, N)``.
    ``gate`` holds σ(α), already between 0 and 1."""
    # ---- your code here: replace the line below (about 1 line) ----
    raise NotImplementedError("write_weights: interpolate the previous read weights and w_lu with the gate")


def next_usage(usage: np.ndarray, read_weights: np.ndarray, write_weights: np.ndarray, gamma: float) -> np.ndarray:
    """w^u_t = γ w^u_{t-1} + (read weights summed over heads) + (write weights summed over heads), ``(B, N)``."""
    # ---- your code here: replace the line below (about 1 line) ----
    raise NotImplementedError("next_usage: decay the usage by gamma and add every head's read and write weights")
