"""Exercise 2, a reference solution: the 95% confidence interval of a mean accuracy.

The same formula as ``common.evaluation.mean_ci95``, which every chapter's evaluation calls.
"""

import math

import numpy as np


def mean_ci95(accuracies):
    """``(mean, 1.96 * s / sqrt(n))`` of the values, ``s`` the sample standard deviation."""
    values = np.asarray(accuracies, dtype=np.float64)
    if values.size == 0:
        raise ValueError("mean_ci95 needs at least one accuracy")
    if values.size == 1:
        return float(values[0]), 0.0  # ddof=1 would divide by n - 1 = 0
    # ddof=1: divide the squared deviations by n - 1, the unbiased estimate of the variance
    # (np.std divides by n unless told otherwise).
    standard_error = values.std(ddof=1) / math.sqrt(values.size)
    return float(values.mean()), float(1.96 * standard_error)
