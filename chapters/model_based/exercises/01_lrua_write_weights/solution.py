"""Exercise 1, a reference solution: least-recently-used access (see README.md in this folder)."""

import numpy as np


def least_used(usage: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(w_lu, least)``, both ``(B, N)`` floats: 1 on the ``n`` rows of smallest usage, and 1 on
    the one row of smallest usage. Equal usages: the lower row index counts as less used."""
    order = np.argsort(usage, axis=1, kind="stable")  # least used first; ties in row order
    w_lu, least = np.zeros_like(usage, dtype=float), np.zeros_like(usage, dtype=float)
    np.put_along_axis(w_lu, order[:, :n], 1.0, axis=1)
    np.put_along_axis(least, order[:, :1], 1.0, axis=1)
    return w_lu, least


def write_weights(previous_read: np.ndarray, w_lu: np.ndarray, gate: np.ndarray) -> np.ndarray:
    """w^w = σ(α) w^r_{t-1} + (1 - σ(α)) w^lu: ``(B, R, N)``, ``(B, N)``, ``(B, R)`` -> ``(B, R, N)``."""
    return gate[..., None] * previous_read + (1 - gate[..., None]) * w_lu[:, None, :]


def next_usage(usage: np.ndarray, read_weights: np.ndarray, write_weights: np.ndarray, gamma: float) -> np.ndarray:
    """w^u_t = γ w^u_{t-1} + (read weights summed over heads) + (write weights summed over heads), ``(B, N)``."""
    return gamma * usage + read_weights.sum(axis=1) + write_weights.sum(axis=1)
