"""Memory-augmented networks (Santoro et al. 2016): the PyTorch, TensorFlow and Keras versions
compute the same numbers, and the LRUA memory does what the paper says.

From one set of canonical weights (float64) and one batch of online episodes, the three
frameworks must give the same logits and the same state at every step (controller h and c,
memory, read and write weights, usage, read vectors), the same loss and gradients, and the same
weights after two RMSProp steps. Sizes are tiny (a 4x4 image, a 5-row memory, 7 steps), so the
whole file runs in seconds; the float64 agreement measured is ~1e-15, the tolerances are those of
the other chapters (tests/metric_helpers.TOLERANCE).
"""

import numpy as np
import pytest
import tensorflow as tf
import torch

from chapters.model_based import mann, mann_keras, mann_tf, mann_torch
from common.episodes import Episode
from common.errors import ConfigError
from common.weights import from_canonical, gradients_to_canonical, to_canonical
from tests.metric_helpers import TOLERANCE, assert_close

MODULES = {"torch": mann_torch, "tf": mann_tf, "keras": mann_keras}
TINY = {"mann": dict(way=3, image_size=4, controller=6, memory_rows=5, memory_width=3, read_heads=2, gamma=0.95),
        "lstm": dict(way=3, image_size=4, controller=6)}
TINY["mann-add"] = dict(TINY["mann"], add_vector=True)  # --add-vector: a_t, not k_t, is written


def tiny_batch(batch=2, steps=7, way=3, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.random((batch, steps, 4, 4, 1))
    labels = rng.integers(0, way, (batch, steps))
    return Episode(images, labels, images[:, :0], labels.copy())


def three_learners(model, lr=1e-2):
    """The same network in torch, tf and keras (float64), holding identical canonical weights."""
    learners = {name: mann.build_learner(name, model.split("-")[0], TINY[model], seed=0, lr=lr, dtype="float64")
                for name in MODULES}
    weights = to_canonical(learners["torch"].model, "torch")
    for name in ("tf", "keras"):
        from_canonical(weights, learners[name].model, name)
    return learners


def forward_with_gradients(name, learner, batch):
    """(logits, states, loss, canonical gradients) of one batch, every step's state included."""
    if name == "torch":
        images, labels = learner.tensors(batch)
        logits, states = learner.model(images, labels, trace=True)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())
        learner.model.zero_grad()
        loss.backward()
        numpy = {k: v.detach().numpy() for k, v in states.items()}
        return logits.detach().numpy(), numpy, loss.item(), gradients_to_canonical(learner.model, "torch")
    with tf.GradientTape() as tape:
        if name == "tf":
            logits, states = learner.model(batch.support_x, batch.support_y, trace=True)
        else:
            logits, states = learner.model.run_sequence(batch.support_x, batch.support_y)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(batch.support_y, logits))
    variables = learner.model.trainable_variables
    gradients = gradients_to_canonical(learner.model, name, list(zip(tape.gradient(loss, variables), variables)))
    return np.asarray(logits), {k: np.asarray(v) for k, v in states.items()}, float(loss), gradients


@pytest.mark.parametrize("model", ["mann", "mann-add", "lstm"])
def test_every_step_loss_and_gradients_agree(model):
    tolerance = TOLERANCE["float64"]
    batch = tiny_batch()
    results = {name: forward_with_gradients(name, learner, batch) for name, learner in three_learners(model).items()}
    logits, states, loss, gradients = results["torch"]
    expected_states = {"h", "c"} | ({"memory", "read_weights", "write_weights", "usage", "reads"} if model != "lstm" else set())
    assert set(states) == expected_states
    for name in ("tf", "keras"):
        other_logits, other_states, other_loss, other_gradients = results[name]
        assert_close(logits, other_logits, tolerance["forward"], f"{name} logits")
        for key, value in states.items():
            assert value.shape[:2] == (2, 7), key  # (batch, steps, ...): every step is compared
            assert_close(value, other_states[key], tolerance["forward"], f"{name} {key}")
        assert_close(loss, other_loss, tolerance["forward"], f"{name} loss")
        assert set(gradients) == set(other_gradients)
        for key, value in gradients.items():
            assert np.abs(value).max() > 0, f"no gradient reaches {key}"
            assert_close(value, other_gradients[key], tolerance["gradients"], f"{name} gradient of {key}")


@pytest.mark.parametrize("model", ["mann", "mann-add", "lstm"])
def test_two_rmsprop_steps_give_the_same_weights(model):
    """The learners' own training steps (RMSProp with momentum, the Keras/TF update written as
    PyTorch's) take the frameworks to the same weights. Keras keeps the learning rate in a float32
    variable, so the steps differ in the 9th digit (measured 1e-9 relative): the "step" tolerance."""
    learners = three_learners(model)
    for index, tolerance in enumerate(("forward", "step")):  # the second loss is computed after a step
        metrics = {name: learner.train_step(tiny_batch(seed=index)) for name, learner in learners.items()}
        for name in ("tf", "keras"):
            assert_close(metrics["torch"]["loss"], metrics[name]["loss"], TOLERANCE["float64"][tolerance], name)
    weights = {name: to_canonical(learner.model, name) for name, learner in learners.items()}
    start = to_canonical(three_learners(model)["torch"].model, "torch")
    for key, value in weights["torch"].items():
        assert not np.allclose(value, start[key]), f"{key} did not move"
        for name in ("tf", "keras"):
            assert_close(value, weights[name][key], TOLERANCE["float64"]["step"], f"{name} {key} after two steps")


def test_predictions_and_checkpoint_state_agree():
    learners = three_learners("mann")
    episode = Episode(*(part[0] for part in tiny_batch()))
    predictions = {name: learner.predict(episode) for name, learner in learners.items()}
    assert predictions["torch"].shape == (7,)
    for name in ("tf", "keras"):
        np.testing.assert_array_equal(predictions["torch"], predictions[name])
    learners["torch"].train_step(tiny_batch())
    state = learners["torch"].state()
    fresh = mann.build_learner("torch", "mann", TINY["mann"], seed=1, dtype="float64")
    fresh.load_state(state)
    np.testing.assert_array_equal(fresh.predict(episode), learners["torch"].predict(episode))


# ------------------------------------------------------------------------------- the LRUA memory

@pytest.mark.parametrize("name", list(MODULES))
def test_least_used_rows_and_ties(name):
    """w^lu marks the n smallest usages; among equal usages the lower row comes first."""
    usage = np.array([[0.5, 0.1, 0.1, 0.9, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    convert = torch.from_numpy if name == "torch" else tf.constant
    least, least_one = (np.asarray(a) for a in MODULES[name].least_used(convert(usage), 2))
    np.testing.assert_array_equal(least, [[0, 1, 0, 0, 1], [1, 1, 0, 0, 0]])
    np.testing.assert_array_equal(least_one, [[0, 0, 0, 0, 1], [1, 0, 0, 0, 0]])


def test_write_weights_interpolate_last_read_and_least_used():
    previous_read = torch.tensor([[[0.7, 0.2, 0.1, 0.0]]], dtype=torch.float64)  # (B=1, R=1, N=4)
    least = torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    for gate, expected in ((1.0, [0.7, 0.2, 0.1, 0.0]), (0.0, [0, 0, 0, 1.0]), (0.25, [0.175, 0.05, 0.025, 0.75])):
        got = mann_torch.write_weights(previous_read, least, torch.tensor([[gate]], dtype=torch.float64))
        np.testing.assert_allclose(got[0, 0].numpy(), expected)


def test_first_step_writes_to_the_least_used_rows_and_updates_usage():
    """At t = 1 nothing was read yet: the write goes to the n least-used rows (rows 0..n-1 by the
    tie rule) with weight 1 - σ(α), row 0 is zeroed first, and usage = read + write weights."""
    learner = three_learners("mann")["torch"]
    images, labels = learner.tensors(tiny_batch())
    _, states = learner.model(images, labels, trace=True)
    writes = states["write_weights"][:, 0].detach().numpy()         # (B, R, N)
    assert np.all(writes[..., 2:] == 0) and np.all(writes[..., :2] > 0)
    np.testing.assert_allclose(writes[..., 0], writes[..., 1])
    reads = states["read_weights"][:, 0].detach().numpy()
    np.testing.assert_allclose(reads.sum(-1), 1.0)
    np.testing.assert_allclose(states["usage"][:, 0].detach().numpy(), reads.sum(1) + writes.sum(1))
    memory = states["memory"][:, 0].detach().numpy()
    np.testing.assert_allclose(memory[:, 2:], mann_torch.MEMORY_INIT)  # untouched rows


# ------------------------------------------------------------------------------- the sequences

def test_presentation_numbers_count_each_class():
    np.testing.assert_array_equal(mann.presentation_numbers(np.array([2, 0, 2, 2, 1, 0])), [1, 1, 2, 3, 1, 2])


def test_presentation_accuracy_per_presentation():
    labels = np.array([0, 1, 0, 1])
    episode = Episode(np.zeros((4, 2, 2, 1)), labels, np.zeros((0, 2, 2, 1)), labels)
    scores = mann.presentation_accuracy(lambda e: np.array([1, 1, 0, 0]), [episode, episode], (1, 2))
    assert scores["accuracy"] == 50.0
    assert scores["presentations"]["1"] == [50.0, 0.0] and scores["presentations"]["2"] == [50.0, 0.0]


def test_previous_labels_are_one_step_late():
    shifted = mann.previous_labels(np.array([[2, 0, 1]]), 3)
    np.testing.assert_array_equal(shifted[0], [[0, 0, 0], [0, 0, 1], [1, 0, 0]])


class _Dataset:
    """A stand-in split: 12 classes of 20 random 6x6 drawings."""
    name, split, n_classes, examples_per_class, image_shape = "fake", "train", 12, 20, (6, 6, 1)
    images = np.random.default_rng(0).integers(0, 256, (12, 20, 6, 6, 1)).astype(np.uint8)


def test_sequence_sampler_is_a_shuffled_episode_and_deterministic():
    sampler = mann.SequenceSampler(_Dataset(), way=3, presentations=4, seed=5, shift=1.0, angle=5.0)
    episode = sampler.episode(7)
    assert episode.support_x.shape == (12, 6, 6, 1) and episode.query_x.shape == (0, 6, 6, 1)
    np.testing.assert_array_equal(np.bincount(episode.support_y), [4, 4, 4])
    np.testing.assert_array_equal(episode.support_y, episode.query_y)
    assert not np.array_equal(episode.support_y, np.sort(episode.support_y))  # shuffled
    again = mann.SequenceSampler(_Dataset(), way=3, presentations=4, seed=5, shift=1.0, angle=5.0).episode(7)
    np.testing.assert_array_equal(episode.support_x, again.support_x)


def test_augment_without_shift_or_angle_is_the_identity():
    images = np.random.default_rng(1).random((5, 8, 8, 1)).astype(np.float32)
    np.testing.assert_array_equal(mann.augment(images, np.random.default_rng(0), 0.0, 0.0), images)
    shifted = mann.augment(images, np.random.default_rng(0), 3.0, 0.0)
    assert shifted.shape == images.shape and not np.allclose(shifted, images)


# ------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("name", list(MODULES))
def test_labels_outside_the_way_are_refused(name):
    learner = three_learners("mann")[name]
    batch = tiny_batch()
    bad = batch._replace(support_y=batch.support_y + 3, query_y=batch.query_y + 3)
    with pytest.raises(ConfigError, match="built for 3 classes"):
        learner.train_step(bad)


def test_an_empty_sequence_is_refused():
    learner = three_learners("lstm")["torch"]
    empty = Episode(np.zeros((0, 4, 4, 1)), np.zeros(0, np.int64), np.zeros((0, 4, 4, 1)), np.zeros(0, np.int64))
    with pytest.raises(ConfigError, match="no steps"):
        learner.predict(empty)


@pytest.mark.parametrize("argv, message", [
    (["--read-heads", "9", "--memory-rows", "8"], "least-used rows"),
    (["--gamma", "1.5"], "between 0 and 1"),
    (["--episodes", "10", "--eval-every", "3"], "multiple"),
    (["--presentations", "0"], "at least 1"),
    (["--model", "lstm", "--add-vector"], "LSTM baseline has none"),
])
def test_script_refuses_bad_options_before_loading_data(argv, message):
    with pytest.raises(ConfigError, match=message):
        mann.main(argv + ["--data-dir", "/nonexistent"])


def test_results_table_sets_presentations_beside_the_paper():
    from common.results import presentations_table
    run = {"algorithm": "mann", "dataset": "omniglot", "way": 5, "shot": 10, "framework": "tf",
           "train_episodes": 1000, "date": "2026", "presentations": {"1": [30.0, 1.0], "10": [90.0, 0.5]}}
    table = presentations_table([run])
    assert "| paper (Santoro et al. 2016, Table 1 (MANN, one-hot labels)) | 36.4 | 82.8 |" in table
    assert "| tf (1,000 ep.) | 30.0 ± 1.0 | – | – | – | – | 90.0 ± 0.5 |" in table
    assert presentations_table([{**run, "presentations": None} for _ in ()]) == ""
    # A run of the deviation --add-vector, trained longer, has rows of its own: the paper's model keeps its row.
    variant = {**run, "train_episodes": 2000, "options": {"add_vector": True}, "presentations": {"1": [40.0, 1.0]}}
    table = presentations_table([run, variant])
    assert "| mann | omniglot | 5 | 10 | tf (1,000 ep.) | 30.0 ± 1.0 |" in table
    assert "| mann [add_vector] | omniglot | 5 | 10 | tf (2,000 ep.) | 40.0 ± 1.0 |" in table
    assert table.count("| paper (") == 1


def test_lrua_exercise_names_a_swapped_gate(tmp_path):
    """The exercise's checks catch the usual mistake and say which it is."""
    import shutil
    from pathlib import Path

    from common.exercises import FAIL, check_exercise

    folder = tmp_path / "01_lrua_write_weights"
    shutil.copytree(Path(__file__).parent.parent / "chapters/model_based/exercises/01_lrua_write_weights", folder)
    solution = (folder / "solution.py").read_text()
    wrong = solution.replace("return gate[..., None] * previous_read + (1 - gate[..., None]) * w_lu[:, None, :]",
                             "return (1 - gate[..., None]) * previous_read + gate[..., None] * w_lu[:, None, :]")
    assert wrong != solution
    (folder / "exercise.py").write_text(wrong)
    outcomes = {outcome.name: outcome for outcome in check_exercise(folder)}
    assert outcomes["check_write_weights_by_hand"].status == FAIL
    assert "swapped" in outcomes["check_write_weights_by_hand"].message


def test_script_trains_resumes_and_scores_each_presentation(tmp_path, capsys):
    """The chapter's script end to end on real data at tiny sizes: a results JSON with the
    accuracy per presentation, and a second command with more updates resumes the checkpoint."""
    from tests.conftest import require_data

    require_data("omniglot/images_background.zip")
    tiny = ["--controller", "8", "--memory-rows", "8", "--memory-width", "4", "--read-heads", "2", "--batch", "2",
            "--eval-every", "2", "--val-episodes", "2", "--test-episodes", "3", "--quiet", "--out", str(tmp_path)]
    first = mann.main(["--episodes", "2", *tiny])
    assert set(first["presentations"]) == {"1", "2", "3", "4", "5", "10"}
    assert first["way"] == 5 and first["shot"] == 10 and first["test_episodes"] == 3
    second = mann.main(["--episodes", "4", *tiny])
    assert "resuming" in capsys.readouterr().out
    assert second["train_episodes"] == 4 and [h["episode"] for h in second["history"]] == [2, 4]
