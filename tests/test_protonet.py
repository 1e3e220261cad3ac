"""Prototypical Networks: the PyTorch, TensorFlow and Keras versions compute the same numbers.

All three start from the same canonical weights and see the same episode; embeddings, prototypes,
logits, loss and gradients must agree, and so must the weights after one Adam step.
"""

import numpy as np
import pytest
import tensorflow as tf
import torch

from chapters.metric import protonet_keras, protonet_tf, protonet_torch
from common.weights import from_canonical, gradients_to_canonical, to_canonical
from tests.metric_helpers import (TOLERANCE, assert_close, assert_gradients_close, assert_same_step,
                                  keras_floatx, omniglot_like_episode, one_adam_step)


def three_models(dtype):
    """The same ProtoNet, in torch, tf and keras, holding identical canonical weights."""
    torch.manual_seed(0)  # reproducible weights; every framework then loads them
    torch_model = protonet_torch.ProtoNet()
    torch_model = torch_model.double() if dtype == "float64" else torch_model
    weights = to_canonical(torch_model, "torch")
    tf_model = protonet_tf.ProtoNet(dtype=tf.float64 if dtype == "float64" else tf.float32, seed=0)
    from_canonical(weights, tf_model, "tf")
    with keras_floatx(dtype):
        keras_model = protonet_keras.ProtoNet()
        example = omniglot_like_episode(dtype)
        keras_model((example.support_x, example.support_y, example.query_x))
    from_canonical(weights, keras_model, "keras")
    return torch_model, tf_model, keras_model


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_forward_loss_and_gradients_agree(dtype):
    tolerance = TOLERANCE[dtype]
    episode = omniglot_like_episode(dtype)
    torch_model, tf_model, keras_model = three_models(dtype)

    x = torch.from_numpy(episode.support_x).movedim(-1, 1)
    q = torch.from_numpy(episode.query_x).movedim(-1, 1)
    y, qy = torch.from_numpy(episode.support_y), torch.from_numpy(episode.query_y)
    torch_model.train()
    torch_logits = torch_model(x, y, q)
    torch_loss = torch.nn.functional.cross_entropy(torch_logits, qy)
    torch_loss.backward()
    torch_embeddings = torch_model.encoder(torch.cat([x, q])).detach().numpy()
    torch_prototypes = protonet_torch.prototypes(torch.from_numpy(torch_embeddings[:len(x)]), y, 5).numpy()
    torch_gradients = gradients_to_canonical(torch_model, "torch")

    results = {}
    for name, model in (("tf", tf_model), ("keras", keras_model)):
        with tf.GradientTape() as tape:
            if name == "tf":
                logits = model(episode.support_x, episode.support_y, episode.query_x, training=True)
            else:
                logits = model((episode.support_x, episode.support_y, episode.query_x), training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(episode.query_y, logits))
        variables = model.trainable_variables
        gradients = gradients_to_canonical(model, name, list(zip(tape.gradient(loss, variables), variables)))
        both = np.concatenate([episode.support_x, episode.query_x])
        embeddings = (model.encoder(both, training=True)).numpy()
        results[name] = (np.asarray(logits), float(loss), gradients, embeddings)

    for name, (logits, loss, gradients, embeddings) in results.items():
        assert_close(torch_embeddings, embeddings, tolerance["forward"], f"{name} embeddings")
        module = protonet_tf if name == "tf" else protonet_keras
        assert_close(torch_prototypes, np.asarray(module.prototypes(embeddings[:10], episode.support_y, 5)),
                     tolerance["forward"], f"{name} prototypes")
        assert_close(torch_logits.detach().numpy(), logits, tolerance["forward"], f"{name} logits")
        assert_close(torch_loss.item(), loss, tolerance["forward"], f"{name} loss")
        assert_gradients_close(torch_gradients, gradients, tolerance["gradients"], name)


@pytest.mark.parametrize("dtype", ["float64"])
def test_one_adam_step_keeps_the_weights_equal(dtype):
    episode = omniglot_like_episode(dtype)
    torch_model, tf_model, keras_model = three_models(dtype)
    losses, weights = one_adam_step((torch_model, tf_model, keras_model), episode, dtype)
    assert_same_step(losses, weights, dtype)


def test_prototypes_are_class_means():
    embeddings = torch.tensor([[0.0, 0.0], [2.0, 2.0], [10.0, 0.0], [1.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 0])
    np.testing.assert_allclose(protonet_torch.prototypes(embeddings, labels, 2).numpy(), [[1, 1], [10, 0]])
    np.testing.assert_allclose(protonet_tf.prototypes(embeddings.numpy(), labels.numpy(), 2).numpy(), [[1, 1], [10, 0]])
    np.testing.assert_allclose(np.asarray(protonet_keras.prototypes(embeddings.numpy(), labels.numpy(), 2)), [[1, 1], [10, 0]])
    distances = protonet_torch.squared_euclidean(torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 1.0], [4.0, 5.0]]))
    np.testing.assert_allclose(distances.numpy(), [[0.0, 25.0]])
