"""Exercise 2: the 95% confidence interval of a mean accuracy (see README.md in this folder).

Check your answer from the repository root with

    python -m common.exercises check chapters/foundations/exercises/02_confidence_interval
"""

import math

import numpy as np


def mean_ci95(accuracies):
    """Return ``(mean, ci95)`` of per-episode accuracies (a list or a NumPy array of floats).

    ``ci95 = 1.96 * s / sqrt(n)``, with ``s`` the *sample* standard deviation of the n values.
    A single value has no spread to estimate: return an interval of 0.0. No values at all is a
    mistake: raise ``ValueError``. Return two Python floats.
    """
    # ---- your code here: replace the line below (about 6 lines) ----
    raise NotImplementedError("mean_ci95: return (mean, 1.96 * sample std / sqrt(n))")
