"""Checks for exercise 4. Run them with

    python -m common.exercises check chapters/metric/exercises/04_contrastive_loss
"""

import math

import numpy as np

LOG2 = math.log(2)


def call(module, logits, support_y, query_y):
    logits, support_y, query_y = np.array(logits, dtype=np.float64), np.array(support_y), np.array(query_y)
    with np.errstate(all="ignore"):  # a wrong answer may divide by zero; the checks say so in words
        result = module.pair_loss(logits, support_y, query_y)
    assert result is not None, "pair_loss should return the loss, one float; it returned None"
    assert np.ndim(result) == 0, (
        f"pair_loss should return one number (the episode's loss); got an array of shape {np.shape(result)}: "
        f"average the per-pair losses")
    return float(result)


def episode(way, shot, query):
    """Labels of an episode ordered class by class, as the book's sampler makes them."""
    return np.repeat(np.arange(way), shot), np.repeat(np.arange(way), query)


def softplus(x):
    return np.logaddexp(0.0, x)


def diagnose(logits, support_y, query_y, result):
    """Name the usual mistake that gives exactly ``result``, if it is one of them."""
    logits = np.asarray(logits, np.float64)
    same = np.asarray(query_y)[:, None] == np.asarray(support_y)[None, :]
    bce = np.where(same, softplus(-logits), softplus(logits))
    swapped = np.where(same, softplus(logits), softplus(-logits))
    with np.errstate(all="ignore"):
        double_sigmoid = 1 / (1 + np.exp(-1 / (1 + np.exp(-logits))))
        twice = -(same * np.log(double_sigmoid) + (~same) * np.log(1 - double_sigmoid))
    mistakes = [
        ("the plain mean BCE over all pairs", "average the same-class pairs and the different-class pairs "
         "separately and weight the two means 1/2 each (in an N-way episode only 1/N of the pairs are "
         "'same')", bce.mean()),
        ("the sum of the two means", "multiply each by 1/2", bce[same].mean() + bce[~same].mean()),
        ("a sum over pairs, not a mean", "divide by the number of pairs of each kind",
         0.5 * bce[same].sum() + 0.5 * bce[~same].sum()),
        ("the loss with the targets swapped", "a pair is 'same' (target 1) when query_y[i] == support_y[j]",
         0.5 * swapped[same].mean() + 0.5 * swapped[~same].mean()),
        ("BCE of the sigmoid applied twice", "apply the sigmoid once (or none: use the logit formula)",
         0.5 * twice[same].mean() + 0.5 * twice[~same].mean()),
    ]
    for what, advice, wrong in mistakes:
        if math.isfinite(result) and math.isclose(result, float(wrong), rel_tol=1e-6, abs_tol=1e-9):
            return f" Your number is {what}; {advice}."
    if not math.isfinite(result):
        return (" A loss that is not a finite number comes from a log of 0 or of a negative number: "
                "pair_logits are scores *before* the sigmoid, not probabilities (np.log(s) of a logit s <= 0 "
                "is nan or -inf); write the BCE with the logit, -log sigma(s) = np.logaddexp(0, -s) and "
                "-log(1 - sigma(s)) = np.logaddexp(0, s).")
    return ""


def check_all_logits_zero_give_log_2(module):
    # sigma(0) = 1/2: every pair, same or different, costs -log(1/2) = log 2, and so does the loss.
    support_y, query_y = episode(5, 1, 3)
    logits = np.zeros((len(query_y), len(support_y)))
    result = call(module, logits, support_y, query_y)
    assert math.isclose(result, LOG2, rel_tol=1e-6), (
        f"with every logit 0 each pair has probability 1/2 and costs log 2, so the loss is log 2 = "
        f"{LOG2:.6f}; got {result:.6f}.{diagnose(logits, support_y, query_y, result)}")


def check_both_kinds_of_pairs_weigh_the_same(module):
    # 5-way 1-shot, 2 queries per class: 10 same pairs, 40 different. The network is sure about every
    # different pair (logit -40: BCE ~ 4e-18) and unsure about every same pair (logit 0: BCE log 2).
    # Balanced: 1/2 log 2. A plain mean over the 50 pairs would give 10/50 log 2 = log 2 / 5.
    support_y, query_y = episode(5, 1, 2)
    same = query_y[:, None] == support_y[None, :]
    logits = np.where(same, 0.0, -40.0)
    result = call(module, logits, support_y, query_y)
    assert math.isclose(result, LOG2 / 2, rel_tol=1e-6), (
        f"a 5-way episode where the network is sure about the 40 different-class pairs (logit -40) and "
        f"unsure about the 10 same-class pairs (logit 0) should cost 1/2 * log 2 + 1/2 * 0 = {LOG2 / 2:.6f}; "
        f"got {result:.6f}.{diagnose(logits, support_y, query_y, result)}")


def check_by_hand(module):
    # 2 queries (labels 0, 1) x 3 support examples (labels 0, 1, 1). Same pairs: (0,0) logit 2,
    # (1,1) logit 1, (1,2) logit -1. Different pairs: (0,1) logit 0, (0,2) logit -3, (1,0) logit 4.
    support_y, query_y = np.array([0, 1, 1]), np.array([0, 1])
    logits = np.array([[2.0, 0.0, -3.0], [4.0, 1.0, -1.0]])
    same_bce = [math.log1p(math.exp(-2.0)), math.log1p(math.exp(-1.0)), math.log1p(math.exp(1.0))]
    different_bce = [math.log1p(math.exp(0.0)), math.log1p(math.exp(-3.0)), math.log1p(math.exp(4.0))]
    expected = 0.5 * np.mean(same_bce) + 0.5 * np.mean(different_bce)
    result = call(module, logits, support_y, query_y)
    assert math.isclose(result, expected, rel_tol=1e-6), (
        f"for logits {logits.tolist()}, query_y {query_y.tolist()}, support_y {support_y.tolist()} the "
        f"three same pairs cost log(1 + e^-s) = {np.round(same_bce, 4).tolist()}, the three different pairs "
        f"log(1 + e^s) = {np.round(different_bce, 4).tolist()}, so the loss is {expected:.6f}; got "
        f"{result:.6f}.{diagnose(logits, support_y, query_y, result)}")


def check_confident_logits_stay_finite(module):
    # Right and sure: same pairs +1000, different pairs -1000 -> loss ~ 0 (e^-1000).
    # Wrong and sure: the opposite -> every pair costs 1000, and so does the loss.
    support_y, query_y = episode(3, 2, 2)
    same = query_y[:, None] == support_y[None, :]
    for logits, expected, what in [(np.where(same, 1000.0, -1000.0), 0.0, "right"),
                                   (np.where(same, -1000.0, 1000.0), 1000.0, "wrong")]:
        result = call(module, logits, support_y, query_y)
        overflow = ("" if math.isfinite(result) else
                    " Going through the probability (sigmoid, then log) overflows: sigma(-1000) is 0 in "
                    "floating point and log 0 = -inf. Use the logit: -log sigma(s) = log(1 + e^-s) = "
                    "np.logaddexp(0, -s), and -log(1 - sigma(s)) = np.logaddexp(0, s).")
        assert math.isfinite(result) and math.isclose(result, expected, abs_tol=1e-6), (
            f"a network that is {what} about every pair with logits of +-1000 should lose {expected:g}; "
            f"got {result}.{overflow or diagnose(logits, support_y, query_y, result)}")


def check_queries_and_support_are_not_mixed_up(module):
    # 4 queries, 6 support examples, labels not in order: rows are queries, columns support examples.
    rng = np.random.default_rng(0)
    support_y, query_y = np.array([2, 0, 1, 1, 0, 2]), np.array([1, 2, 0, 1])
    same = query_y[:, None] == support_y[None, :]
    logits = rng.normal(size=(4, 6))
    bce = np.where(same, softplus(-logits), softplus(logits))
    expected = 0.5 * bce[same].mean() + 0.5 * bce[~same].mean()
    result = call(module, logits, support_y, query_y)
    assert math.isclose(result, expected, rel_tol=1e-6), (
        f"with 4 queries (query_y {query_y.tolist()}) and 6 support examples (support_y "
        f"{support_y.tolist()}), pair (i, j) is row i, column j of pair_logits and is 'same' when "
        f"query_y[i] == support_y[j]; expected {expected:.6f}, got {result:.6f}."
        f"{diagnose(logits, support_y, query_y, result)}")


def check_matches_the_chapters_siamese_network(module):
    # An unwritten starter stops on the next line, before the slow import of torch.
    call(module, np.zeros((2, 2)), np.array([0, 1]), np.array([0, 1]))
    import torch

    from chapters.metric import siamese_torch

    rng = np.random.default_rng(1)
    for way, shot, query in [(5, 1, 15), (20, 5, 5), (60, 1, 5)]:
        support_y, query_y = episode(way, shot, query)
        logits = rng.normal(0, 3, size=(len(query_y), len(support_y)))
        expected = float(siamese_torch.pair_loss(torch.from_numpy(logits), torch.from_numpy(support_y),
                                                 torch.from_numpy(query_y)))
        result = call(module, logits, support_y, query_y)
        assert math.isclose(result, expected, rel_tol=1e-6), (
            f"on random logits of a {way}-way {shot}-shot episode with {query} queries per class, "
            f"chapters.metric.siamese_torch.pair_loss gives {expected:.6f}; yours {result:.6f}."
            f"{diagnose(logits, support_y, query_y, result)}")
