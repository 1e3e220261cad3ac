"""Checks for exercise 2. Run them with

    python -m common.exercises check chapters/foundations/exercises/02_confidence_interval
"""

import math

import numpy as np

from common import evaluation

# Four episodes: mean 0.65, sample standard deviation sqrt(0.05 / 3) = 0.1291,
# so ci95 = 1.96 * 0.1291 / sqrt(4) = 0.12651.
KNOWN = [0.5, 0.7, 0.6, 0.8]
KNOWN_MEAN, KNOWN_CI = 0.65, 1.96 * math.sqrt(0.05 / 3) / 2


def call(module, values):
    result = module.mean_ci95(values)
    assert isinstance(result, (tuple, list)) and len(result) == 2, (
        f"mean_ci95 should return a pair (mean, ci95); got {result!r}")
    mean, ci95 = result
    for name, value in (("mean", mean), ("ci95", ci95)):
        assert isinstance(value, (int, float)) and not isinstance(value, bool), (
            f"mean_ci95 should return two Python floats; the {name} is a {type(value).__name__} "
            f"({value!r}): wrap it in float(...)")
    return float(mean), float(ci95)


def diagnose(values, ci95):
    """Name the usual mistake that gives this interval, if it is one of them."""
    values = np.asarray(values, dtype=np.float64)
    n, s1, s0 = len(values), values.std(ddof=1), values.std(ddof=0)
    mistakes = {
        "np.std's default ddof=0 (divide by n); the sample standard deviation uses ddof=1 (n - 1)":
            1.96 * s0 / math.sqrt(n),
        "the standard error s / sqrt(n) without the factor 1.96 of a 95% normal interval":
            s1 / math.sqrt(n),
        "ddof=0 and no factor 1.96": s0 / math.sqrt(n),
        "1.96 * s without dividing by sqrt(n): that is the spread of single episodes, not of their mean":
            1.96 * s1,
        "a division by n instead of sqrt(n)": 1.96 * s1 / n,
        "the variance where the standard deviation belongs": 1.96 * s1 ** 2 / math.sqrt(n),
    }
    for mistake, wrong in mistakes.items():
        if math.isclose(ci95, wrong, rel_tol=1e-6):
            return f" This is what {mistake} gives."
    return ""


def check_known_values(module):
    mean, ci95 = call(module, list(KNOWN))
    assert math.isclose(mean, KNOWN_MEAN, rel_tol=1e-9), f"the mean of {KNOWN} is {KNOWN_MEAN}; got {mean}"
    assert math.isclose(ci95, KNOWN_CI, rel_tol=1e-9), (
        f"mean_ci95({KNOWN}) should give ci95 = 1.96 * {math.sqrt(0.05 / 3):.5f} / sqrt(4) = "
        f"{KNOWN_CI:.5f}; got {ci95:.5f}.{diagnose(KNOWN, ci95)}")


def check_accepts_a_numpy_array(module):
    mean, ci95 = call(module, np.array(KNOWN, dtype=np.float32))
    assert math.isclose(mean, KNOWN_MEAN, rel_tol=1e-6) and math.isclose(ci95, KNOWN_CI, rel_tol=1e-6), (
        f"mean_ci95(np.array({KNOWN})) should give ({KNOWN_MEAN}, {KNOWN_CI:.5f}) like the list; "
        f"got ({mean}, {ci95})")


def check_matches_common_evaluation(module):
    rng = np.random.default_rng(0)
    for n in (2, 10, 600):
        accuracies = rng.binomial(75, 0.45, size=n) / 75  # n episodes of 5-way 15-query at ~45%
        expected = evaluation.mean_ci95(accuracies)
        mean, ci95 = call(module, list(accuracies))
        assert math.isclose(mean, expected[0], rel_tol=1e-9), \
            f"the mean of {n} accuracies should be {expected[0]:.6f}; got {mean:.6f}"
        assert math.isclose(ci95, expected[1], rel_tol=1e-9), (
            f"for {n} accuracies ci95 should be {expected[1]:.6f} (common.evaluation.mean_ci95); "
            f"got {ci95:.6f}.{diagnose(accuracies, ci95)}")


def check_one_episode_has_no_interval(module):
    mean, ci95 = call(module, [0.8])
    assert mean == 0.8 and ci95 == 0.0, (
        f"mean_ci95([0.8]) should be (0.8, 0.0): one value has no spread to estimate (and ddof=1 "
        f"would divide by n - 1 = 0); got ({mean}, {ci95})")


def check_no_episodes_is_an_error(module):
    try:
        result = module.mean_ci95([])
    except ValueError:
        return
    raise AssertionError(f"mean_ci95([]) should raise ValueError (there is no mean of nothing); "
                         f"it returned {result!r}")


def check_interval_shrinks_like_one_over_sqrt_n(module):
    # The same 150 accuracies, then each four times (600 values, the same spread): four times
    # the episodes should halve the interval, up to the small n - 1 correction (599 / 596).
    accuracies = list(np.random.default_rng(1).binomial(75, 0.45, size=150) / 75)
    _, ci150 = call(module, accuracies)
    _, ci600 = call(module, accuracies * 4)
    expected = 2 * math.sqrt(599 / 596)
    assert ci600 > 0 and math.isclose(ci150 / ci600, expected, rel_tol=1e-6), (
        f"with 4x as many episodes (same spread) the interval should shrink by sqrt(4) = 2 "
        f"(exactly {expected:.4f} with ddof=1); it went from {ci150:.5f} to {ci600:.5f}, a factor "
        f"{ci150 / ci600 if ci600 else float('inf'):.4f}")
