"""Matching Networks: the PyTorch, TensorFlow and Keras versions compute the same numbers.

All three start from the same canonical weights and see the same episode; embeddings, attention
weights, logits, loss and gradients must agree, and so must the weights after one Adam step,
with and without Full Context Embeddings (whose LSTMs also test the LSTM converters of
``common.weights``).
"""

import numpy as np
import pytest
import tensorflow as tf
import torch

from chapters.metric import matching_keras, matching_tf, matching_torch
from common.weights import from_canonical, gradients_to_canonical, to_canonical
from tests.metric_helpers import (TOLERANCE, assert_close, assert_gradients_close, assert_same_step,
                                  keras_floatx, omniglot_like_episode, one_adam_step)

MODULES = {"torch": matching_torch, "tf": matching_tf, "keras": matching_keras}


# The model variants every agreement test covers: Eq. 2 as printed, Full Context Embeddings, and
# the three labelled deviations: cosines scaled by 10, the squared Euclidean distance, and
# cosines times the query's length.
VARIANTS = {"plain": {"fce": False}, "fce": {"fce": True}, "scaled": {"fce": False, "cosine_scale": 10.0},
            "euclidean": {"fce": False, "distance": "squared_euclidean"},
            "query_norm": {"fce": False, "distance": "cosine_times_query_norm"}}


def three_models(dtype, variant):
    """The same MatchingNet, in torch, tf and keras, holding identical canonical weights."""
    options = VARIANTS[variant]
    torch.manual_seed(0)  # reproducible weights; every framework then loads them
    torch_model = matching_torch.MatchingNet(**options)
    torch_model = torch_model.double() if dtype == "float64" else torch_model
    weights = to_canonical(torch_model, "torch")
    tf_model = matching_tf.MatchingNet(**options, dtype=tf.float64 if dtype == "float64" else tf.float32, seed=0)
    from_canonical(weights, tf_model, "tf")
    with keras_floatx(dtype):
        keras_model = matching_keras.MatchingNet(**options)
        example = omniglot_like_episode(dtype)
        keras_model((example.support_x, example.support_y, example.query_x))
    from_canonical(weights, keras_model, "keras")
    return torch_model, tf_model, keras_model


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_forward_loss_and_gradients_agree(dtype, variant):
    tolerance = TOLERANCE[dtype]
    episode = omniglot_like_episode(dtype)
    torch_model, tf_model, keras_model = three_models(dtype, variant)
    scale = VARIANTS[variant].get("cosine_scale", 1.0)
    distance = VARIANTS[variant].get("distance", "cosine")

    x = torch.from_numpy(episode.support_x).movedim(-1, 1)
    q = torch.from_numpy(episode.query_x).movedim(-1, 1)
    y, qy = torch.from_numpy(episode.support_y), torch.from_numpy(episode.query_y)
    torch_model.train()
    torch_logits = torch_model(x, y, q)
    torch_loss = torch.nn.functional.cross_entropy(torch_logits, qy)
    torch_loss.backward()
    with torch.no_grad():
        support, query = torch_model.embed(x, q)
        torch_attention = matching_torch.attention(query, support, scale, distance).numpy()
        torch_embeddings = np.concatenate([support.numpy(), query.numpy()])
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
        support, query = model.embed(episode.support_x, episode.query_x, training=True)
        attention = np.asarray(MODULES[name].attention(query, support, scale, distance))
        embeddings = np.concatenate([np.asarray(support), np.asarray(query)])
        results[name] = (np.asarray(logits), float(loss), gradients, embeddings, attention)

    for name, (logits, loss, gradients, embeddings, attention) in results.items():
        assert_close(torch_embeddings, embeddings, tolerance["forward"], f"{name} embeddings")
        assert_close(torch_attention, attention, tolerance["forward"], f"{name} attention")
        assert_close(torch_logits.detach().numpy(), logits, tolerance["forward"], f"{name} logits")
        assert_close(torch_loss.item(), loss, tolerance["forward"], f"{name} loss")
        assert_gradients_close(torch_gradients, gradients, tolerance["gradients"], name)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_one_adam_step_keeps_the_weights_equal(variant, dtype="float64"):
    episode = omniglot_like_episode(dtype)
    torch_model, tf_model, keras_model = three_models(dtype, variant)
    losses, weights = one_adam_step((torch_model, tf_model, keras_model), episode, dtype)
    assert_same_step(losses, weights, dtype)


@pytest.mark.parametrize("framework", ["torch", "tf", "keras"])
def test_attention_and_label_distribution(framework):
    """A query along support example 0 and orthogonal to the others: cosines (1, 0, 0), so
    Eq. (2) gives it weights (e, 1, 1) / (e + 2), most of it on example 0; Eq. (1) sums them by
    class; log ŷ is a log-distribution, so its softmax cross-entropy is -log ŷ[true class]."""
    module = MODULES[framework]
    support = np.array([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 0.5]])
    query = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    labels = np.array([0, 1, 1])
    if framework == "torch":
        support, query, labels = torch.from_numpy(support), torch.from_numpy(query), torch.from_numpy(labels)
    weights = np.asarray(module.attention(query, support))
    np.testing.assert_allclose(weights.sum(axis=1), [1.0, 1.0], rtol=1e-12)
    e = np.exp(1.0)
    np.testing.assert_allclose(weights[0], [e / (e + 2), 1 / (e + 2), 1 / (e + 2)], rtol=1e-7)
    np.testing.assert_allclose(weights[1], [1 / 3] * 3, rtol=1e-7)  # equally similar to all three
    cosines = np.asarray(module.cosine_similarity(query, support))
    np.testing.assert_allclose(cosines[1], [1 / np.sqrt(3)] * 3, rtol=1e-7)
    probabilities = np.asarray(module.label_distribution(module.attention(query, support), labels, 2))
    np.testing.assert_allclose(probabilities[0], [e / (e + 2), 2 / (e + 2)], rtol=1e-7)
    np.testing.assert_allclose(probabilities.sum(axis=1), [1.0, 1.0], rtol=1e-12)
    # With the cosines scaled by s the weights are (e^s, 1, 1) / (e^s + 2): s = 10 puts 99.99 %
    # of the attention on example 0, where s = 1 can put at most e / (e + 2) = 58 % there.
    sharp = np.asarray(module.attention(query, support, 10.0))
    e10 = np.exp(10.0)
    np.testing.assert_allclose(sharp[0], [e10 / (e10 + 2), 1 / (e10 + 2), 1 / (e10 + 2)], rtol=1e-7)
    np.testing.assert_allclose(sharp[1], [1 / 3] * 3, rtol=1e-7)  # equal cosines stay equal weights


@pytest.mark.parametrize("framework", ["torch", "tf", "keras"])
def test_squared_euclidean_attention_and_a_log_likelihood_that_cannot_underflow(framework):
    """With the squared distance, Eq. (2) is a softmax of -||q - s||^2; log ŷ, computed by
    log-sum-exp, equals log of Eq. (1) where that is representable, and stays finite (with a
    gradient) where the attention underflows to exactly 0 in float32."""
    module = MODULES[framework]
    support = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    query = np.array([[0.0, 1.0]])  # squared distances 1, 2, 1
    labels = np.array([0, 1, 1])
    far = np.array([[60.0, 0.0]], dtype=np.float32)  # distances 3600, 3481, 3604: e^-119 is 0 in float32
    if framework == "torch":
        support, query, labels = torch.from_numpy(support), torch.from_numpy(query), torch.from_numpy(labels)
    attention = module.attention(query, support, distance="squared_euclidean")
    weights = np.asarray(attention)
    expected = np.exp([-1.0, -2.0, -1.0]) / np.exp([-1.0, -2.0, -1.0]).sum()
    np.testing.assert_allclose(weights[0], expected, rtol=1e-12)
    scores = module.similarity(query, support, distance="squared_euclidean")
    log_y = np.asarray(module.log_label_distribution(scores, labels, 2))
    np.testing.assert_allclose(log_y, np.log(np.asarray(module.label_distribution(attention, labels, 2))), rtol=1e-12)

    support32 = np.asarray(support, dtype=np.float32)
    if framework == "torch":
        far, support32 = torch.from_numpy(far), torch.from_numpy(support32)
    scores = module.similarity(far, support32, distance="squared_euclidean")
    assert np.asarray(module.attention(far, support32, distance="squared_euclidean"))[0, 0] == 0.0
    log_y = np.asarray(module.log_label_distribution(scores, labels, 2))
    np.testing.assert_allclose(log_y[0, 0], -119.0, rtol=1e-5)  # log e^-3600 / (e^-3481 + ...) = -119
    assert np.isfinite(log_y).all()


@pytest.mark.parametrize("framework", ["torch", "tf", "keras"])
def test_cosine_times_query_norm_normalises_only_the_support(framework):
    """f(x̂) . g(x_i) / |g(x_i)|: the cosine of Eq. 2 times |f(x̂)|, so a longer query embedding
    makes a sharper softmax (the cosine alone would not change)."""
    module = MODULES[framework]
    support = np.array([[3.0, 4.0], [1.0, 0.0]])
    query = np.array([[6.0, 8.0], [12.0, 16.0]])  # the same direction, lengths 10 and 20
    if framework == "torch":
        support, query = torch.from_numpy(support), torch.from_numpy(query)
    scores = np.asarray(module.similarity(query, support, distance="cosine_times_query_norm"))
    # (6*3 + 8*4) / 5 = 10 and 6 / 1 = 6; twice as much for the query twice as long
    np.testing.assert_allclose(scores, [[10.0, 6.0], [20.0, 12.0]], rtol=1e-7)
    np.testing.assert_allclose(np.asarray(module.similarity(query, support)), [[1.0, 0.6], [1.0, 0.6]], rtol=1e-7)


def test_the_distance_and_the_cosine_scale_do_not_combine(tmp_path):
    """A clear error before training (the command line turns it into a message and status 2)."""
    from chapters.metric import matching
    from common.errors import ConfigError
    with pytest.raises(ConfigError, match="cannot be combined with --distance squared_euclidean"):
        matching.main(["--distance", "squared_euclidean", "--cosine-scale", "10", "--episodes", "1",
                       "--out", str(tmp_path)])
    assert not list(tmp_path.iterdir())  # nothing written


def test_the_command_line_offers_the_models_distances():
    import argparse
    from chapters.metric import matching
    parser = argparse.ArgumentParser()
    matching.add_arguments(parser)
    choices = next(a.choices for a in parser._actions if a.dest == "distance")
    assert tuple(choices) == matching_torch.DISTANCES == matching_tf.DISTANCES == matching_keras.DISTANCES


@pytest.mark.parametrize("framework", ["torch", "tf", "keras"])
def test_an_unknown_distance_is_a_clear_error(framework):
    from common.errors import ConfigError
    with pytest.raises(ConfigError, match="unknown distance 'manhattan'.*cosine, squared_euclidean"):
        MODULES[framework].similarity(np.ones((1, 2)), np.ones((2, 2)), distance="manhattan")


def test_zero_embedding_gives_no_nan():
    """A query whose embedding is all zero (a dead ReLU) has cosine 0 to everything, not NaN."""
    support = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    query = torch.zeros(1, 2, requires_grad=True)
    weights = matching_torch.attention(query, support)
    weights[0, 0].backward()
    np.testing.assert_allclose(weights.detach().numpy(), [[0.5, 0.5]])
    assert torch.isfinite(query.grad).all() and torch.isfinite(support.grad).all()


def test_logits_are_log_probabilities():
    """softmax(logits) = exp(logits): the learners' cross-entropy is the paper's -log ŷ."""
    episode = omniglot_like_episode("float64")
    torch.manual_seed(0)
    model = matching_torch.MatchingNet(fce=True).double()
    x = torch.from_numpy(episode.support_x).movedim(-1, 1)
    q = torch.from_numpy(episode.query_x).movedim(-1, 1)
    logits = model(x, torch.from_numpy(episode.support_y), q).detach()
    np.testing.assert_allclose(torch.softmax(logits, 1).numpy(), logits.exp().numpy(), rtol=1e-9)


def test_torch_lstm_biases_are_exported_as_their_sum():
    """PyTorch's two LSTM biases become one canonical bias (their sum) and come back as
    bias_ih = bias, bias_hh = 0; MatchingNet keeps bias_hh at 0 and out of training."""
    lstm = torch.nn.LSTM(3, 2, bidirectional=True)
    weights = to_canonical(lstm, "torch")
    assert sorted(weights) == sorted(f"{d}.{p}" for d in ("forward", "backward")
                                     for p in ("kernel", "recurrent_kernel", "bias"))
    assert weights["forward.kernel"].shape == (3, 8) and weights["backward.recurrent_kernel"].shape == (2, 8)
    np.testing.assert_array_equal(weights["backward.bias"],
                                  (lstm.bias_ih_l0_reverse + lstm.bias_hh_l0_reverse).detach().numpy())
    before = lstm(torch.ones(4, 1, 3))[0]
    from_canonical(weights, lstm, "torch")
    assert not lstm.bias_hh_l0.any() and not lstm.bias_hh_l0_reverse.any()
    torch.testing.assert_close(lstm(torch.ones(4, 1, 3))[0], before)  # the same function
    model = matching_torch.MatchingNet(fce=True)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen == ["support_lstm.bias_hh_l0", "support_lstm.bias_hh_l0_reverse", "query_lstm.bias_hh"]


@pytest.mark.parametrize("scale", ["0", "-1", "nan", "inf", "ten"])
def test_a_bad_cosine_scale_is_a_clear_error(scale, tmp_path, capsys):
    """Rejected while parsing, before any data is loaded or anything trained."""
    from chapters.metric import matching
    from common.cli import run
    with pytest.raises(SystemExit) as stop:
        run(matching.main, ["--cosine-scale", scale, "--out", str(tmp_path), "--data-dir", str(tmp_path / "nowhere")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --cosine-scale must be a ") and "positive number" in err and scale in err
    assert err.count("\n") == 1 and not (tmp_path / "nowhere").exists()
