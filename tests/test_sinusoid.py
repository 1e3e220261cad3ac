"""Sinusoid regression tasks (Finn et al. 2017): ranges, ground truth, determinism."""

import numpy as np
import pytest

from common.data.sinusoid import AMPLITUDE, PHASE, SinusoidTasks, evaluation_tasks, sinusoid
from common.errors import ConfigError


def test_tasks_follow_the_maml_distribution():
    tasks = SinusoidTasks(shot=10, query=20, seed=0)
    amplitudes, phases = zip(*(tasks.task(i) for i in range(2000)))
    assert AMPLITUDE[0] <= min(amplitudes) and max(amplitudes) <= AMPLITUDE[1]
    assert PHASE[0] <= min(phases) and max(phases) <= PHASE[1]
    assert np.mean(amplitudes) == pytest.approx(2.55, abs=0.1)
    episode = tasks.episode(3)
    assert episode.support_x.shape == (10, 1) and episode.query_y.shape == (20, 1)
    assert episode.support_x.dtype == np.float32
    assert np.all(np.abs(episode.query_x) <= 5)
    amplitude, phase = tasks.task(3)
    np.testing.assert_allclose(episode.support_y, sinusoid(episode.support_x, amplitude, phase), atol=1e-5)


def test_tasks_are_deterministic_and_evaluation_tasks_fixed():
    a, b = SinusoidTasks(5, 5, seed=2), SinusoidTasks(5, 5, seed=2)
    np.testing.assert_array_equal(a.episode(9).query_x, b.episode(9).query_x)
    assert len(evaluation_tasks(5)) == 600
    np.testing.assert_array_equal(evaluation_tasks(5)[7].query_y, evaluation_tasks(5)[7].query_y)
    assert a.meta_batch(0, 3).support_x.shape == (3, 5, 1)


def test_bad_shot_is_a_clear_error():
    with pytest.raises(ConfigError, match="shot >= 1"):
        SinusoidTasks(0, 5)
