"""Sinusoid regression tasks (Finn et al., 2017, Sec. 5.1): the "hello world" of meta-learning.

Each task is a sine wave ``y = amplitude * sin(x - phase)`` with amplitude ~ U[0.1, 5.0] and
phase ~ U[0, pi]; inputs x ~ U[-5, 5]. K examples of a task form its support set ("K-shot
regression"), further points its query set. No single function fits all tasks, so a learner must
adapt from the K points: exactly what MAML's sinusoid experiment measures (MSE after adaptation).

Like the image episodes, task i of seed s is a pure function of (s, i).
"""

from __future__ import annotations

import numpy as np

from common.episodes import EVALUATION_SEED, Episode, EpisodeSource, FixedEpisodes
from common.errors import ConfigError

AMPLITUDE = (0.1, 5.0)
PHASE = (0.0, np.pi)
X_RANGE = (-5.0, 5.0)


def sinusoid(x: np.ndarray, amplitude: float, phase: float) -> np.ndarray:
    """The target function of one task."""
    return amplitude * np.sin(x - phase)


class SinusoidTasks(EpisodeSource):
    """K-shot sinusoid regression tasks: ``support_x`` and ``support_y`` are (K, 1) float32."""

    def __init__(self, shot: int, query: int, seed: int = 0):
        for name, value in (("shot", shot), ("query", query)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"sinusoid tasks need {name} >= 1, got {value!r}")
        self.shot, self.query, self.seed = shot, query, int(seed)

    def task(self, index: int) -> tuple[float, float]:
        """(amplitude, phase) of task ``index``: the ground truth, e.g. for plotting."""
        rng = np.random.default_rng([self.seed, index])
        return float(rng.uniform(*AMPLITUDE)), float(rng.uniform(*PHASE))

    def episode(self, index: int) -> Episode:
        rng = np.random.default_rng([self.seed, index])
        amplitude, phase = rng.uniform(*AMPLITUDE), rng.uniform(*PHASE)  # same draws as task()
        x = rng.uniform(*X_RANGE, size=(self.shot + self.query, 1))
        y = sinusoid(x, amplitude, phase)
        x, y = x.astype(np.float32), y.astype(np.float32)
        return Episode(x[:self.shot], y[:self.shot], x[self.shot:], y[self.shot:])


def evaluation_tasks(shot: int, query: int = 100, count: int = 600) -> FixedEpisodes:
    """The fixed sinusoid test tasks (MAML evaluates MSE on 600 tasks)."""
    return FixedEpisodes(SinusoidTasks(shot, query, seed=EVALUATION_SEED), count)
