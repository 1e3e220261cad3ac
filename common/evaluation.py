"""Few-shot evaluation: mean accuracy over fixed test episodes, with a 95% confidence interval.

Papers report ``accuracy +- ci95`` where, over n test episodes with accuracies a_1..a_n,

    ci95 = 1.96 * std(a) / sqrt(n)

(the normal approximation to the standard error of the mean; ``std`` is the sample standard
deviation, ddof=1, as the torchnet meter in the Prototypical Networks code computes it — with
n = 600 the difference from ddof=0 is under 0.1% of the interval).
"""

from __future__ import annotations

import math
import time
from typing import Callable, Iterable

import numpy as np

from common.episodes import Episode


def mean_ci95(values: Iterable[float]) -> tuple[float, float]:
    """(mean, 1.96 * std / sqrt(n)) of the values; the interval is 0 for a single value."""
    values = np.asarray(list(values), dtype=np.float64)
    if values.size == 0:
        raise ValueError("mean_ci95 needs at least one value")
    if values.size == 1:
        return float(values[0]), 0.0
    return float(values.mean()), float(1.96 * values.std(ddof=1) / math.sqrt(values.size))


def episode_accuracy(predicted_labels, query_y) -> float:
    """Fraction of query examples whose predicted label is right."""
    return float(np.mean(np.asarray(predicted_labels) == np.asarray(query_y)))


def evaluate(predict: Callable[[Episode], np.ndarray], episodes: Iterable[Episode],
             progress: bool = False) -> dict:
    """Score ``predict(episode) -> predicted query labels`` on every episode.

    Returns ``{"accuracy", "ci95"}`` in percent, plus ``episodes`` and ``seconds_per_episode``;
    the framework-specific part (adapting, predicting) lives entirely in ``predict``.
    """
    if progress:
        from tqdm.auto import tqdm
        episodes = tqdm(episodes, desc="evaluating", leave=False)
    accuracies, start = [], time.perf_counter()
    for episode in episodes:
        accuracies.append(episode_accuracy(predict(episode), episode.query_y))
    mean, ci95 = mean_ci95(accuracies)
    return {"accuracy": 100 * mean, "ci95": 100 * ci95, "episodes": len(accuracies),
            "seconds_per_episode": (time.perf_counter() - start) / len(accuracies)}
