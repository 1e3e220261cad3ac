"""Siamese networks: the PyTorch, TensorFlow and Keras versions compute the same numbers.

All three start from the same canonical weights and see the same episode; embeddings, pair logits,
class logits, the pair loss and its gradients must agree, and so must the weights after one Adam
step through the shared learners (which train on the model's ``episode_loss``). Small analytic
tests pin down the pieces: the weighted L1 score, the max over shots, the balanced loss.
"""

import copy
import math

import numpy as np
import pytest
import tensorflow as tf
import torch

from chapters.metric import siamese_keras, siamese_tf, siamese_torch
from common.weights import from_canonical, gradients_to_canonical, to_canonical
from tests.metric_helpers import (TOLERANCE, assert_close, assert_gradients_close, assert_same_step,
                                  keras_floatx, omniglot_like_episode, one_adam_step)

MODULES = {"torch": siamese_torch, "tf": siamese_tf, "keras": siamese_keras}


def three_models(dtype):
    """The same SiameseNet, in torch, tf and keras, holding identical canonical weights."""
    torch_model = siamese_torch.SiameseNet()
    torch_model = torch_model.double() if dtype == "float64" else torch_model
    weights = to_canonical(torch_model, "torch")
    tf_model = siamese_tf.SiameseNet(dtype=tf.float64 if dtype == "float64" else tf.float32, seed=0)
    from_canonical(weights, tf_model, "tf")
    with keras_floatx(dtype):
        keras_model = siamese_keras.SiameseNet()
        example = omniglot_like_episode(dtype)
        keras_model((example.support_x, example.support_y, example.query_x))
    from_canonical(weights, keras_model, "keras")
    return torch_model, tf_model, keras_model


def torch_episode(episode):
    return (torch.from_numpy(episode.support_x).movedim(-1, 1), torch.from_numpy(episode.support_y),
            torch.from_numpy(episode.query_x).movedim(-1, 1), torch.from_numpy(episode.query_y))


def head_of(model, name):
    """(alpha (D,), bias ()) of the Dense head, as NumPy."""
    if name == "torch":
        return model.head.weight.detach().numpy()[0], model.head.bias.detach().numpy()[0]
    return np.asarray(model.head.kernel)[:, 0], np.asarray(model.head.bias)[0]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_forward_loss_and_gradients_agree(dtype):
    tolerance = TOLERANCE[dtype]
    episode = omniglot_like_episode(dtype)  # 5-way, 2-shot, 3 queries: 15 x 10 pairs, 30 of them "same"
    torch_model, tf_model, keras_model = three_models(dtype)

    x, y, q, qy = torch_episode(episode)
    torch_model.train()
    torch_loss, torch_logits = torch_model.episode_loss(x, y, q, qy)
    torch_loss.backward()
    torch_embeddings = torch_model.encoder(torch.cat([x, q])).detach()
    alpha, bias = head_of(torch_model, "torch")
    torch_pairs = siamese_torch.pair_logits(torch_embeddings[10:], torch_embeddings[:10],
                                            torch.from_numpy(alpha), torch.from_numpy(np.asarray(bias)))
    torch_gradients = gradients_to_canonical(torch_model, "torch")
    assert "head.kernel" in torch_gradients and "head.bias" in torch_gradients
    # The forward pass (prediction) gives the class logits episode_loss reports (accuracy).
    assert_close(torch_logits.detach().numpy(), torch_model(x, y, q).detach().numpy(), 1e-12, "torch forward")

    results = {}
    for name, model in (("tf", tf_model), ("keras", keras_model)):
        with tf.GradientTape() as tape:
            loss, logits = model.episode_loss(episode.support_x, episode.support_y, episode.query_x,
                                              episode.query_y, training=True)
        variables = model.trainable_variables
        gradients = gradients_to_canonical(model, name, list(zip(tape.gradient(loss, variables), variables)))
        inputs = (episode.support_x, episode.support_y, episode.query_x)
        forward = model(*inputs, training=True) if name == "tf" else model(inputs, training=True)
        assert_close(np.asarray(logits), np.asarray(forward), 1e-12, f"{name} forward")
        both = np.concatenate([episode.support_x, episode.query_x])
        embeddings = np.asarray(model.encoder(both, training=True))
        pairs = np.asarray(MODULES[name].pair_logits(embeddings[10:], embeddings[:10], *head_of(model, name)))
        results[name] = (np.asarray(logits), float(loss), gradients, embeddings, pairs)

    for name, (logits, loss, gradients, embeddings, pairs) in results.items():
        assert_close(torch_embeddings.numpy(), embeddings, tolerance["forward"], f"{name} embeddings")
        assert_close(torch_pairs.numpy(), pairs, tolerance["forward"], f"{name} pair logits")
        assert_close(torch_logits.detach().numpy(), logits, tolerance["forward"], f"{name} class logits")
        assert_close(torch_loss.item(), loss, tolerance["forward"], f"{name} loss")
        assert_gradients_close(torch_gradients, gradients, tolerance["gradients"], name)


@pytest.mark.parametrize("dtype", ["float64"])
def test_one_adam_step_keeps_the_weights_equal(dtype):
    episode = omniglot_like_episode(dtype)
    torch_model, tf_model, keras_model = three_models(dtype)
    # What the learners must train on: the pair loss, not a cross-entropy of the class logits.
    # (A copy: a training-mode forward moves BatchNorm's running statistics.)
    expected, _ = copy.deepcopy(torch_model).train().episode_loss(*torch_episode(episode))
    losses, weights = one_adam_step((torch_model, tf_model, keras_model), episode, dtype)
    assert_close(expected.item(), losses["torch"], TOLERANCE[dtype]["forward"], "torch learner loss")
    assert_same_step(losses, weights, dtype)


@pytest.mark.parametrize("name", MODULES)
def test_identical_embeddings_score_the_bias(name):
    rng = np.random.default_rng(0)
    embeddings, alpha = rng.normal(size=(3, 4)), rng.normal(size=4)
    args = (embeddings, embeddings, alpha, np.float64(0.25))
    if name == "torch":
        args = tuple(torch.from_numpy(np.asarray(a)) for a in args)
    scores = np.asarray(MODULES[name].pair_logits(*args))
    np.testing.assert_allclose(np.diag(scores), [0.25, 0.25, 0.25])  # |q - s| = 0: only the bias is left
    expected = np.abs(embeddings[0] - embeddings[1]) @ alpha + 0.25  # and otherwise the weighted L1
    np.testing.assert_allclose(scores[0, 1], expected)


@pytest.mark.parametrize("name", MODULES)
def test_class_logits_take_the_best_shot(name):
    scores = np.array([[1.0, 5.0, 2.0, 0.0, -3.0, 4.0],
                       [7.0, -1.0, 0.5, 3.0, 2.0, 2.5]])
    support_y = np.array([0, 1, 1, 2, 0, 2])  # 3 classes, 2 shots each, in any order
    args = (scores, support_y, 3)
    if name == "torch":
        args = (torch.from_numpy(scores), torch.from_numpy(support_y), 3)
    np.testing.assert_allclose(np.asarray(MODULES[name].class_logits(*args)), [[1.0, 5.0, 4.0], [7.0, 0.5, 3.0]])


@pytest.mark.parametrize("name", MODULES)
def test_positives_and_negatives_count_equally(name):
    # 4-way 1-shot, 2 queries per class: 8 x 4 pairs, of which 8 "same" and 24 "different".
    support_y, query_y = np.arange(4), np.repeat(np.arange(4), 2)
    same = query_y[:, None] == support_y[None, :]
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(8, 4))

    def loss_and_gradient(s):
        if name == "torch":
            s = torch.tensor(s, requires_grad=True)
            loss = siamese_torch.pair_loss(s, torch.from_numpy(support_y), torch.from_numpy(query_y))
            loss.backward()
            return loss.item(), s.grad.numpy()
        s = tf.constant(s)
        with tf.GradientTape() as tape:
            tape.watch(s)
            loss = MODULES[name].pair_loss(s, support_y, query_y)
        return float(loss), tape.gradient(loss, s).numpy()

    # The loss is the mean of the two kinds' mean cross-entropies ...
    loss, _ = loss_and_gradient(scores)
    p = 1 / (1 + np.exp(-scores))
    np.testing.assert_allclose(loss, 0.5 * (-np.log(p[same]).mean() - np.log(1 - p[~same]).mean()))
    # ... so at p = 1/2 (logit 0) every pair is log 2 off, and each kind pulls with total weight
    # 1/4 (dL/ds = weight * (p - target) = weight * (+-1/2), weights summing to 1/2 per kind),
    # although "different" pairs outnumber "same" ones 3 to 1.
    loss, gradient = loss_and_gradient(np.zeros((8, 4)))
    np.testing.assert_allclose(loss, math.log(2))
    np.testing.assert_allclose([gradient[same].sum(), gradient[~same].sum()], [-0.25, 0.25])
