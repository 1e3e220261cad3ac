"""Meta Networks: the PyTorch, TensorFlow and Keras versions compute the same numbers, the model
computes what the paper's equations say, it learns, and bad input gets one clear line.

From one set of canonical weights (``metanet.initial_weights``) the three frameworks see the same
episode; the task-level fast weights Q*, the memory M of example-level fast weights, the query's
attention over the support keys, the logits, the loss and every gradient must agree, and so must
the weights after one Adam step. The full model (every layer fast) runs on a small 3-way 2-shot
episode, and, but for the training test, with 8 conv channels and 16 dense units instead of 64 and
64 (``small``): the generators act on every weight coordinate, and 150,000 of them make a float64
step in three frameworks take a minute.
"""

import numpy as np
import pytest
import tensorflow as tf
import torch
import torch.nn.functional as F

from chapters.model_based import metanet, metanet_torch
from common.cli import run
from common.errors import ConfigError
from common.weights import gradients_to_canonical, to_canonical
from tests.metric_helpers import assert_close, keras_floatx, omniglot_like_episode, one_adam_step

WAY, SHOT, QUERY = 3, 2, 2
# Measured in float64 (relative difference of whole tensors, the worst over every tensor below):
# forward (fast weights, attention, logits, loss) 5e-15, gradients 3e-13. Tolerances 1e-10 and
# 1e-8: over 10^4 times the measurement, far below what a real difference gives (a transposed
# kernel, a missing ReLU, another gate order change whole tensors).
FORWARD, GRADIENTS, STEP = 1e-10, 1e-8, 1e-6


@pytest.fixture(autouse=True)
def small(request, monkeypatch):
    """The paper's layers with fewer channels and units (every test but the training run)."""
    if "omniglot_splits" not in request.fixturenames:
        monkeypatch.setattr(metanet, "CHANNELS", 8)
        monkeypatch.setattr(metanet, "HIDDEN", 16)


def three_models(dtype="float64", fast_layers=metanet.ALL_LAYERS, task_fast_weights=True, way=WAY):
    """The same MetaNet in torch, tf and keras, all holding ``metanet.initial_weights`` of seed 0."""
    models = [metanet.build_model(framework, (28, 28, 1), way, 0, fast_layers, task_fast_weights, dtype)
              for framework in ("torch", "tf")]
    with keras_floatx(dtype):
        models.append(metanet.build_model("keras", (28, 28, 1), way, 0, fast_layers, task_fast_weights, dtype))
    return models


def torch_inputs(episode):
    return (torch.from_numpy(episode.support_x).movedim(-1, 1), torch.from_numpy(episode.support_y),
            torch.from_numpy(episode.query_x).movedim(-1, 1))


def arrays(tensors):
    return [None if t is None else np.asarray(t.detach() if hasattr(t, "detach") else t) for t in tensors]


def assert_gradients_agree(expected, actual, name):
    """Every canonical gradient agrees; one that is zero in exact arithmetic (rounding only, below
    1e-12 of the largest) is checked to be as small in the other framework."""
    assert set(actual) == set(expected)
    largest = max(np.linalg.norm(value) for value in expected.values())
    for key, gradient in expected.items():
        if np.linalg.norm(gradient) < 1e-12 * largest:
            # e.g. the bias of m's dense output: one constant added to every fast weight of the
            # output layer shifts every logit alike, which the softmax cancels.
            assert np.linalg.norm(actual[key]) < 1e-12 * largest, f"{name} d loss / d {key}"
            continue
        assert_close(gradient, actual[key], GRADIENTS, f"{name} d loss / d {key}")


@pytest.mark.parametrize("fast_layers, task_fast_weights", [(metanet.ALL_LAYERS, True), (2, False)],
                         ids=["full model", "two dense fast layers, no task-level fast weights"])
def test_fast_weights_outputs_loss_and_gradients_agree(fast_layers, task_fast_weights):
    episode = omniglot_like_episode("float64", WAY, SHOT, QUERY)
    torch_model, tf_model, keras_model = three_models("float64", fast_layers, task_fast_weights)

    logits, attention, task_fast, memory = torch_model.read(*torch_inputs(episode))
    loss = F.cross_entropy(logits, torch.from_numpy(episode.query_y))
    loss.backward()
    expected = [logits, attention, *task_fast, *memory]
    expected_gradients = gradients_to_canonical(torch_model, "torch")
    assert attention.shape == (WAY * QUERY, WAY * SHOT)  # each query over every support example
    assert sum(m is not None for m in memory) == fast_layers
    assert sum(q is not None for q in task_fast) == (min(fast_layers, metanet.KEY_LAYER + 1) if task_fast_weights
                                                     else 0)

    for name, model in (("tf", tf_model), ("keras", keras_model)):
        with tf.GradientTape() as tape:
            logits, attention, task_fast, memory = model.read(episode.support_x, episode.support_y, episode.query_x)
            their_loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(episode.query_y, logits))
        variables = model.trainable_variables
        gradients = gradients_to_canonical(model, name, list(zip(tape.gradient(their_loss, variables), variables)))
        for i, (ours, theirs) in enumerate(zip(arrays(expected), arrays([logits, attention, *task_fast, *memory]))):
            assert (ours is None) == (theirs is None), f"{name} output {i}"
            if ours is not None:
                assert_close(ours, theirs, FORWARD, f"{name} output {i} (logits, attention, Q*, M)")
        assert_close(loss.item(), float(their_loss), FORWARD, f"{name} loss")
        assert_gradients_agree(expected_gradients, gradients, name)


def test_one_adam_step_keeps_the_weights_equal():
    episode = omniglot_like_episode("float64", WAY, SHOT, QUERY)
    models = three_models("float64")
    torch_model = models[0]
    torch_model.zero_grad()
    F.cross_entropy(torch_model(*torch_inputs(episode)), torch.from_numpy(episode.query_y)).backward()
    gradients = gradients_to_canonical(torch_model, "torch")
    largest = max(np.linalg.norm(value) for value in gradients.values())
    losses, weights = one_adam_step(models, episode, "float64")
    for name in ("tf", "keras"):
        assert_close(losses["torch"], losses[name], FORWARD, f"{name} loss")
        for key, value in weights["torch"].items():
            if key in gradients and np.linalg.norm(gradients[key]) < 1e-12 * largest:
                # Adam divides a gradient by its own size: a zero gradient's rounding noise (its
                # sign differs between frameworks) becomes a step of lr either way.
                continue
            assert_close(value, weights[name][key], STEP, f"{name} {key} after one step")


# ------------------------------------------------ what the equations say, checked in PyTorch

def test_zero_fast_weights_leave_the_slow_network():
    """Layer augmentation adds act(x W*) to act(x W): with W* = 0 the base learner is b(W, x)."""
    model = metanet.build_model("torch", (28, 28, 1), WAY, 0, dtype="float64")
    support_x, support_y, query_x = torch_inputs(omniglot_like_episode("float64", WAY, SHOT, QUERY))
    with torch.no_grad():
        for generator in model.example_meta.values():
            generator.kernels[-1].zero_()
            generator.biases[-1].zero_()
        logits, _, _, memory = model.read(support_x, support_y, query_x)
        assert all(float(kernels.abs().max()) == 0 for kernels in memory)
        assert_close(model.base(query_x), logits, 1e-14, "logits with zero fast weights")


def test_each_query_reads_its_own_fast_weights_from_the_memory():
    """Eqs. 6-8 written out for one query at a time: a = softmax(cos(R, r)), W* = sum_i a_i M_i,
    then b(W, W*, x) with one conv per query (the model batches the queries in a grouped conv)."""
    model = metanet.build_model("torch", (28, 28, 1), WAY, 0, dtype="float64")
    support_x, support_y, query_x = torch_inputs(omniglot_like_episode("float64", WAY, SHOT, QUERY))
    with torch.no_grad():
        logits, attention, task_fast, memory = model.read(support_x, support_y, query_x)
        keys = model.representation.key(torch.cat([support_x, query_x]), task_fast)
        for q in range(len(query_x)):
            key = keys[len(support_x) + q]
            cosine = torch.stack([key @ r / torch.sqrt((key @ key) * (r @ r) + metanet.COSINE_EPS)
                                  for r in keys[:len(support_x)]])
            assert_close(torch.softmax(cosine, 0), attention[q], 1e-12, f"attention of query {q}")
            fast = [sum(a * m[i] for i, a in enumerate(attention[q])) for m in memory]
            one = model.base(query_x[q:q + 1], [f[None] for f in fast])
            assert_close(one[0], logits[q], 1e-12, f"logits of query {q}")


def test_the_figure_reads_the_same_norms_and_attention_in_every_framework():
    """``figures.metanet_inspect`` (what the chapter's fast-weights figure draws) gives the same slow
    and fast norms and the same attention from the same weights in the three frameworks."""
    from chapters.model_based.figures import metanet_inspect

    episode = omniglot_like_episode("float64", WAY, SHOT, QUERY)
    torch_data, *others = [metanet_inspect(model, episode, framework)
                           for model, framework in zip(three_models(), ("torch", "tf", "keras"))]
    assert np.all(np.asarray(torch_data["fast_norms"]) > 0) and len(torch_data["slow_norms"]) == 7
    for framework, data in zip(("tf", "keras"), others):
        for key in ("slow_norms", "fast_norms", "example_norms", "attention"):
            assert_close(np.asarray(torch_data[key]), np.asarray(data[key]), FORWARD, f"{framework} {key}")


def test_a_checkpoint_is_inspected_as_the_model_that_wrote_it(tmp_path, omniglot_splits):
    """``figures.metanet_checkpoint_inspect`` (the chapter's numbers of a trained run) reads a run's
    checkpoint into the model it was trained as and averages ``metanet_inspect`` over test episodes."""
    from chapters.model_based.figures import metanet_checkpoint_inspect, metanet_inspect
    from common.episodes import FixedEpisodes, evaluation_episodes
    from common.weights import model_state, save_weights

    model = metanet.build_model("torch", (28, 28, 1), 5, 3, fast_layers=metanet.ALL_LAYERS)
    save_weights(tmp_path / "checkpoint.npz", model_state(to_canonical(model, "torch")))
    summary = metanet_checkpoint_inspect(tmp_path / "checkpoint.npz", 5, episodes=2)
    episodes = FixedEpisodes(evaluation_episodes(omniglot_splits["test"], 5, 1, 15).source, 2)
    direct = [metanet_inspect(model, episode, "torch") for episode in episodes]
    assert summary["slow_norms"] == direct[0]["slow_norms"]
    for key in ("fast_norms", "example_norms"):
        assert summary[key] == pytest.approx(np.mean([d[key] for d in direct], axis=0), rel=1e-6)
    own = [d["attention"][np.arange(len(d["query_y"])), [list(d["support_y"]).index(y) for y in d["query_y"]]]
           for d in direct]  # at 1 shot, the one support example of each query's class
    assert summary["own_class"] == pytest.approx(float(np.concatenate(own).mean()), rel=1e-6)


def test_meta_information_is_each_support_examples_gradient_preprocessed():
    """Eq. 4 for support example i: m applied to the preprocessed gradient of its own loss alone."""
    model = metanet.build_model("torch", (28, 28, 1), WAY, 0, dtype="float64")
    support_x, support_y, _ = torch_inputs(omniglot_like_episode("float64", WAY, SHOT, QUERY))
    with torch.no_grad():
        memory = model.example_fast_weights(support_x, support_y)
    i = 3
    loss = F.cross_entropy(model.base(support_x[i:i + 1]), support_y[i:i + 1])
    gradient = torch.autograd.grad(loss, model.base.kernels[-1])[0]
    g, k = gradient.numpy(), metanet.GRADIENT_SCALE
    features = np.stack([np.maximum(np.log(np.abs(g) + np.finfo(g.dtype).eps) / k, -1),
                         np.clip(g * np.exp(k), -1, 1)], -1)
    with torch.no_grad():
        expected = model.example_meta["dense"](torch.from_numpy(features))
    assert_close(expected, memory[-1][i], 1e-12, "fast output kernel of support example 3")


# ------------------------------------------------------------------------------------ it learns

def test_a_short_training_run_learns(omniglot_splits):
    """20 episodes of 5-way 1-shot Omniglot, each seen three times (the model with dense fast
    layers, as the measured run): the queries' loss falls well below chance's ln 5 = 1.61.
    Measured: 1.64 over the first pass, 0.83 over the last."""
    from common.episodes import EpisodeSampler
    torch.manual_seed(0)
    sampler = EpisodeSampler(omniglot_splits["train"], 5, 1, 3, seed=0)
    episodes = [sampler.episode(i) for i in range(20)]
    learner = metanet.build_learner("torch", (28, 28, 1), 5, episodes[0], 1e-3, None, 0, fast_layers=2)
    losses = [learner.train_step(episode)["loss"] for _ in range(3) for episode in episodes]
    first, last = np.mean(losses[:20]), np.mean(losses[-20:])
    assert last < first - 0.4 and last < 1.2, f"loss {first:.2f} over the first pass, {last:.2f} over the last"


# ------------------------------------------------------------------------------------ bad input

def test_bad_episodes_get_a_clear_error_in_every_framework():
    episode = omniglot_like_episode("float32", WAY, SHOT, QUERY)
    outside = episode._replace(support_y=episode.support_y + WAY)
    torch_model, tf_model, keras_model = three_models("float32", fast_layers=2)
    message = "support labels must lie in 0..2"
    with pytest.raises(ConfigError, match=message):
        torch_model(*torch_inputs(outside))
    with pytest.raises(ConfigError, match=message):
        tf_model(outside.support_x, outside.support_y, outside.query_x)
    with pytest.raises(ConfigError, match=message):
        keras_model((outside.support_x, outside.support_y, outside.query_x))
    no_query = episode._replace(query_x=episode.query_x[:0])
    with pytest.raises(ConfigError, match="the episode has no query"):
        torch_model(*torch_inputs(no_query))


@pytest.mark.parametrize("argv, message", [
    (["--fast-layers", "0"], "error: --fast-layers must be a whole number between 1 and 7, got 0"),
    (["--fast-layers", "8"], "error: --fast-layers must be a whole number between 1 and 7, got 8"),
    (["--lr", "nan"], "error: --lr must be a positive number, got nan"),
    (["--query", "0"], "error: --query must be at least 1, got 0"),
    (["--episodes", "1200", "--eval-every", "500"], "error: --episodes must be"),
    (["--way", "5", "--test-way", "20"], "error: a MetaNet's output layer has one unit per training class (5); "
                                         "test it 5-way"),
], ids=["fast-layers 0", "fast-layers 8", "lr nan", "query 0", "episodes not a multiple", "test-way"])
def test_bad_options_are_one_line_and_exit_2_before_any_work(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        run(metanet.main, argv + ["--out", str(tmp_path / "out"), "--data-dir", str(tmp_path / "no-data")])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "no-data").exists()


def test_initial_weights_do_not_depend_on_the_configuration():
    full = metanet.initial_weights((28, 28, 1), 5, 0)
    small = metanet.initial_weights((28, 28, 1), 5, 0, fast_layers=2, task_fast_weights=False)
    assert set(small) < set(full) and not any(name.startswith("task_meta.") for name in small)
    assert all(np.array_equal(full[name], small[name]) for name in small)
    assert metanet.feature_size((28, 28, 1)) == 8 and metanet.feature_size((84, 84, 3)) == 3 * 3 * 8  # small
    assert [list(g) for g in metanet.groups(5)] == [[0], [1], [2], [3], [4]]
    assert [len(g) for g in metanet.groups(20)] == [4] * 5
