"""SNAIL: the PyTorch, TensorFlow and Keras versions compute the same numbers, and the model computes
what the paper's sequence model computes.

From one set of canonical weights the three frameworks see the same episode; query logits, the
attention weights of every query, the features of every step of the support sequence, the loss and
every gradient must agree, and so must the weights after one Adam step. A plain, full-sequence
reference (one sequence per query, PyTorch's own dilated ``conv1d`` and a masked attention matrix)
checks that running the support once and each query as one more step after it changes nothing.
Sizes are the paper's blocks on a small 3-way 2-shot episode (T = 7, three dense blocks per TC
block), so the whole file runs in seconds.
"""

import copy
import functools
import math

import numpy as np
import pytest
import tensorflow as tf
import torch
import torch.nn.functional as F

from chapters.model_based import snail, snail_keras, snail_tf, snail_torch
from common.errors import ConfigError
from common.weights import from_canonical, gradients_to_canonical, to_canonical
from tests.metric_helpers import (TOLERANCE, assert_close, assert_same_step, keras_floatx, omniglot_like_episode,
                                  one_adam_step)

WAY, SHOT, QUERY = 3, 2, 2


def episode_of(dtype, way=WAY, shot=SHOT, query=QUERY):
    """A 28x28 episode with its support pairs in a random order, as the training script feeds them."""
    episode = omniglot_like_episode(dtype, way, shot, query)
    order = np.random.default_rng(3).permutation(len(episode.support_y))
    return episode._replace(support_x=episode.support_x[order], support_y=episode.support_y[order])


def three_models(dtype, way=WAY, shot=SHOT):
    """The same SNAIL in torch, tf and keras, holding identical canonical weights."""
    torch.manual_seed(0)
    torch_model = snail_torch.SNAIL(1, way, shot)
    torch_model = torch_model.double() if dtype == "float64" else torch_model
    weights = to_canonical(torch_model, "torch")
    tf_model = snail_tf.SNAIL(1, way, shot, dtype=tf.float64 if dtype == "float64" else tf.float32, seed=0)
    from_canonical(weights, tf_model, "tf")
    with keras_floatx(dtype):
        keras_model = snail_keras.SNAIL(1, way, shot)
        example = episode_of(dtype, way, shot)
        keras_model((example.support_x, example.support_y, example.query_x))
    from_canonical(weights, keras_model, "keras")
    return torch_model, tf_model, keras_model


def torch_inputs(episode):
    return (torch.from_numpy(episode.support_x).movedim(-1, 1), torch.from_numpy(episode.support_y),
            torch.from_numpy(episode.query_x).movedim(-1, 1))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_forward_attention_loss_and_gradients_agree(dtype):
    tolerance = TOLERANCE[dtype]
    episode = episode_of(dtype)
    torch_model, tf_model, keras_model = three_models(dtype)

    torch_model.train()
    logits, attentions, support = torch_model.read(*torch_inputs(episode))
    loss = F.cross_entropy(logits, torch.from_numpy(episode.query_y))
    loss.backward()
    expected = (logits.detach().numpy(), [a.detach().numpy() for a in attentions], support.detach().numpy(),
                loss.item(), gradients_to_canonical(torch_model, "torch"))
    assert expected[1][0].shape == (WAY * QUERY, WAY * SHOT + 1)  # every query over (support, itself)

    for name, model in (("tf", tf_model), ("keras", keras_model)):
        with tf.GradientTape() as tape:
            if name == "tf":
                logits, attentions, support = model.read(episode.support_x, episode.support_y, episode.query_x,
                                                         training=True)
            else:
                logits, attentions, support = model.read(episode.support_x, episode.support_y, episode.query_x,
                                                         training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(episode.query_y, logits))
        variables = model.trainable_variables
        gradients = gradients_to_canonical(model, name, list(zip(tape.gradient(loss, variables), variables)))
        assert_close(expected[0], logits, tolerance["forward"], f"{name} logits")
        for block, (ours, theirs) in enumerate(zip(expected[1], attentions), 1):
            assert_close(ours, theirs, tolerance["forward"], f"{name} attention {block}")
        assert_close(expected[2], support, tolerance["forward"], f"{name} support sequence features")
        assert_close(expected[3], float(loss), tolerance["forward"], f"{name} loss")
        assert set(gradients) == set(expected[4])
        for key, gradient in expected[4].items():
            if key.endswith("conv.bias") or key.endswith("keys.bias"):
                # Zero but for rounding: BatchNorm right after a conv cancels its bias, and a key bias
                # adds q_t . b to every logit of row t, which the softmax cancels.
                assert np.abs(gradients[key]).max() <= tolerance["forward"] * np.abs(expected[4]["classifier.bias"]).max()
                continue
            assert_close(gradient, gradients[key], tolerance["gradients"], f"{name} d loss / d {key}")


def test_one_adam_step_keeps_the_weights_equal():
    episode = episode_of("float64")
    losses, weights = one_adam_step(three_models("float64"), episode, "float64")
    assert_same_step(losses, weights, "float64")


# ------------------------------------------------ the paper's sequence model, written out plainly

def reference_logits(model, support_x, support_y, query_x):
    """One full sequence (support pairs, then the query) per query, through the blocks as the paper
    writes them: ``conv1d`` with kernel 2, dilation R and R zeros of left padding; attention with a
    (T, T) causal mask. The logits of each sequence's last position."""
    embeddings = snail_torch.embed(model.encoder, support_x, query_x, model.training)
    n_support, n_query = len(support_x), len(query_x)
    support = torch.cat([embeddings[:n_support], F.one_hot(support_y, model.way).double()], 1)
    query = F.pad(embeddings[n_support:], (0, model.way))
    x = torch.cat([support.expand(n_query, -1, -1), query[:, None]], 1)  # (Q, T, C)

    def conv(layer, x):  # (Q, T, C) -> (Q, T, D)
        weight = layer.kernel.permute(2, 1, 0)  # (2, in, out) -> conv1d's (out, in, 2)
        y = F.conv1d(F.pad(x.transpose(1, 2), (layer.dilation, 0)), weight, layer.bias, dilation=layer.dilation)
        return y.transpose(1, 2)

    def attention(block, x):
        logits = block.queries(x) @ block.keys(x).transpose(1, 2) / math.sqrt(block.keys.out_features)
        mask = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool).tril()
        return torch.cat([x, torch.softmax(logits.masked_fill(~mask, -math.inf), 2) @ block.values(x)], 2)

    def tc(block, x):
        for dense in block.blocks:
            x = torch.cat([x, torch.tanh(conv(dense.filter, x)) * torch.sigmoid(conv(dense.gate, x))], 2)
        return x

    x = attention(model.attention3, tc(model.tc2, attention(model.attention2, tc(model.tc1, attention(model.attention1, x)))))
    return model.classifier(x[:, -1])


def test_every_query_is_the_last_step_of_its_own_full_sequence():
    torch.manual_seed(1)
    model = snail_torch.SNAIL(1, WAY, SHOT).double().eval()
    inputs = torch_inputs(episode_of("float64"))
    with torch.no_grad():
        assert_close(reference_logits(model, *inputs), model(*inputs), 1e-12, "logits")


def test_causal_no_step_reads_a_later_one_and_no_query_reads_another():
    torch.manual_seed(1)
    model = snail_torch.SNAIL(1, WAY, SHOT).double().eval()
    support_x, support_y, query_x = torch_inputs(episode_of("float64"))
    with torch.no_grad():
        logits, _, support = model.read(support_x, support_y, query_x)
        # The last support step's label: its image would move every embedding through the support
        # set's BatchNorm statistics, which precede the sequence (snail_torch.embed).
        changed_labels = support_y.clone()
        changed_labels[-1] = (changed_labels[-1] + 1) % WAY
        _, _, support_after = model.read(support_x, changed_labels, query_x)
        changed_query = query_x.clone()
        changed_query[0] = torch.rand_like(changed_query[0])
        logits_after = model(support_x, support_y, changed_query)
    np.testing.assert_array_equal(support[:-1].numpy(), support_after[:-1].numpy())
    assert not np.allclose(support[-1].numpy(), support_after[-1].numpy())
    np.testing.assert_array_equal(logits[1:].numpy(), logits_after[1:].numpy())
    assert not np.allclose(logits[0].numpy(), logits_after[0].numpy())


def test_prediction_normalises_with_the_support_set_alone_in_every_framework():
    """At test time BatchNorm takes the support set's statistics, not the running averages
    (``snail_torch.embed``): the support rows are what the Conv-4 makes of the support set alone as
    a training batch, and the three frameworks give the same query logits."""
    episode = episode_of("float64")
    torch_model, tf_model, keras_model = three_models("float64")
    support_x, support_y, query_x = torch_inputs(episode)
    torch_model.eval()
    with torch.no_grad():
        embeddings = snail_torch.embed(torch_model.encoder, support_x, query_x, training=False)
        support_alone = copy.deepcopy(torch_model.encoder).train()(support_x)
        running = torch_model.encoder(torch.cat([support_x, query_x]))
        logits = torch_model(support_x, support_y, query_x).numpy()
    assert_close(support_alone.numpy(), embeddings[:len(support_x)].numpy(), 1e-12, "support rows")
    assert not np.allclose(running.numpy(), embeddings.numpy())  # not the running statistics
    tolerance = TOLERANCE["float64"]["forward"]
    assert_close(logits, tf_model(episode.support_x, episode.support_y, episode.query_x, training=False), tolerance,
                 "tf prediction logits")
    assert_close(logits, tf.function(tf_model.__call__)(episode.support_x, episode.support_y, episode.query_x),
                 tolerance, "tf compiled prediction logits")
    assert_close(logits, keras_model((episode.support_x, episode.support_y, episode.query_x), training=False), tolerance,
                 "keras prediction logits")


def test_where_queries_look_is_read_off_the_prediction_path_in_every_framework():
    """``figures.snail_inspect`` (the chapter's "label by elimination" numbers) scores the same
    attention in the three frameworks, with the accuracy of the prediction logits."""
    from chapters.model_based.figures import snail_inspect

    episode = episode_of("float64")
    models = three_models("float64")
    summaries = [snail_inspect(model, [episode], framework) for model, framework in zip(models, ("torch", "tf", "keras"))]
    with torch.no_grad():
        logits = models[0](*torch_inputs(episode)).numpy()
    torch_summary = summaries[0]
    assert torch_summary["accuracy"] == np.mean(logits.argmax(1) == episode.query_y)
    assert torch_summary["even"] == 1 / (WAY * SHOT + 1) and torch_summary["queries"] == WAY * QUERY
    for own, itself in zip(torch_summary["own_class"], torch_summary["itself"]):
        assert 0 < own < 1 - itself  # the other classes' steps hold the rest
    for summary in summaries[1:]:
        for key in ("accuracy", "own_class", "itself", "own_class_largest"):
            assert_close(np.asarray(summary[key]), np.asarray(torch_summary[key]), 1e-12, key)


def test_sizes_follow_the_paper():
    assert snail.sequence_length(5, 1) == 6 and snail.sequence_length(20, 5) == 101
    assert snail.dilations(6) == [2, 4, 8] and snail.dilations(101) == [2, 4, 8, 16, 32, 64, 128]
    # 64 + N + 32 + 128 * 3 + 128 + 128 * 3 + 256 features reach the output layer at 5-way 1-shot.
    assert snail.channels(5, 1) == 64 + 5 + 32 + 384 + 128 + 384 + 256
    assert snail_torch.SNAIL(1, 5, 1).classifier.in_features == snail.channels(5, 1)


# ------------------------------------------------------------------------------------ bad input

BAD = {"too long": (dict(shot=SHOT + 1), "built for 3-way 2-shot"),
       "labels outside the way": (dict(label_offset=WAY), "support labels must lie in 0..2"),
       "no query": (dict(query=0), "the episode has no query")}


def bad_episode(shot=SHOT, query=QUERY, label_offset=0):
    episode = omniglot_like_episode("float32", WAY, shot, max(query, 1))
    return episode._replace(support_y=episode.support_y + label_offset, query_x=episode.query_x[:query * WAY])


@functools.lru_cache(maxsize=1)
def float32_models():
    """Built once for the bad-input cases, which change no weight."""
    return three_models("float32")


@pytest.mark.parametrize("case", BAD)
def test_bad_episodes_get_a_clear_error_in_every_framework(case):
    changes, message = BAD[case]
    episode = bad_episode(**changes)
    torch_model, tf_model, keras_model = float32_models()
    with pytest.raises(ConfigError, match=message):
        torch_model(*torch_inputs(episode))
    with pytest.raises(ConfigError, match=message):
        tf_model(episode.support_x, episode.support_y, episode.query_x)
    with pytest.raises(ConfigError, match=message):
        keras_model((episode.support_x, episode.support_y, episode.query_x))
    # Inside a compiled step the values are known only when it runs: the same message, from an assertion.
    with pytest.raises(tf.errors.InvalidArgumentError, match=message.split(" 0..")[0].split(" 3-way")[0]):
        tf.function(tf_model.__call__)(episode.support_x, episode.support_y, episode.query_x)


@pytest.mark.parametrize("argv, message", [
    (["--way", "5", "--shot", "1", "--test-shot", "5"], "built for 5-way 1-shot"),
    (["--way", "5", "--test-way", "20"], "test it 5-way"),
    (["--query", "0"], "query must be at least 1"),
])
def test_the_script_refuses_settings_that_do_not_fit_before_any_work(argv, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        snail.main(argv + ["--out", str(tmp_path), "--data-dir", str(tmp_path / "nothing here")])
    assert not any(tmp_path.iterdir())
