"""The LSTM meta-learner (Ravi & Larochelle 2017): the PyTorch, TensorFlow and Keras versions
compute the same numbers, its input preprocessing is Andrychowicz et al.'s formula, and it learns.

1. Agreement. The same canonical weights (float64) for the learner (the sinusoid MLP) and the
   meta-learner, the same meta-batch: the learner's parameters after T updates, the meta-loss
   and the meta-gradient with respect to every meta-learner parameter agree to rounding error,
   and so do two Adam meta-steps and the adaptation curve after them.
2. Preprocessing. Hand-picked values on both sides of e^−10 give (log|x|/10, sign x) or
   (−1, e^10 x), in every framework.
3. Learning. A short PyTorch meta-training lowers the query MSE after the updates well below the
   MSE at c_0, and below what the untrained meta-learner reaches.
"""

import math

import numpy as np
import pytest
import tensorflow as tf
import torch

from chapters.optimization import lstm_meta_learner as script
from chapters.optimization import lstm_meta_learner_keras, lstm_meta_learner_tf, lstm_meta_learner_torch
from chapters.optimization import networks_torch
from common.data.sinusoid import SinusoidTasks, evaluation_tasks
from common.episodic_tf import Adam
from common.errors import ConfigError
from common.weights import from_canonical, load_weights, to_canonical
from tests.metric_helpers import assert_close, keras_floatx
from tests.optimization_helpers import (AGREE, FRAMEWORKS, assert_same_arrays, build, canonical_weights, float64,
                                        framework_batch, meta_batch, numpy_dict, task, value_and_gradient)

LSTM_META_LEARNER = {"torch": lstm_meta_learner_torch, "tf": lstm_meta_learner_tf, "keras": lstm_meta_learner_keras}
META_NAMES = ["lstm.kernel", "lstm.recurrent_kernel", "lstm.bias", "cell.input_kernel", "cell.input_bias",
              "cell.forget_kernel", "cell.forget_bias", "cell.initial_params"]


def build_meta_learner(framework, model, weights=None):
    """The framework's ``MetaLearnerLSTM`` for ``model`` (float64), holding ``weights`` if given."""
    module = LSTM_META_LEARNER[framework]
    if framework == "keras":
        with keras_floatx("float64"):
            meta_learner = module.MetaLearnerLSTM(model, seed=3)
    else:
        meta_learner = module.MetaLearnerLSTM(model, seed=3)
    return meta_learner if weights is None else from_canonical(weights, meta_learner, framework)


def varied_meta_weights():
    """Canonical meta-learner weights with every gate input in play: larger W_I, W_F than the
    paper's ±0.01 start, so that the meta-gradient exercises every term of the recursion."""
    weights = to_canonical(build_meta_learner("torch", build("torch", "mlp")), "torch")
    rng = np.random.default_rng(7)
    for name in ("cell.input_kernel", "cell.forget_kernel"):
        weights[name] = rng.uniform(-0.5, 0.5, weights[name].shape)
    return weights


def build_trainer(framework, weights, meta_weights, **settings):
    """The framework's ``LSTMMetaLearner`` in float64, learner and meta-learner holding the weights."""
    module, model = LSTM_META_LEARNER[framework], build(framework, "mlp", weights)
    if framework == "keras":
        with keras_floatx("float64"):
            trainer = module.LSTMMetaLearner(model, **settings)
            trainer.compile(optimizer=Adam(1e-3, epsilon=1e-8))
    else:
        trainer = module.LSTMMetaLearner(model, meta_lr=1e-3, **settings)
    from_canonical(meta_weights, trainer.meta_learner, framework)
    return trainer


def meta_arrays(state):
    return {k: v for k, v in state.items() if k.startswith("meta_learner.")}


# ------------------------------------------------------------------------------- 1. agreement

@pytest.mark.parametrize("steps", [1, 3])
def test_unrolled_params_meta_loss_and_meta_gradient_agree(steps):
    weights, meta_weights, batch = canonical_weights("mlp"), varied_meta_weights(), meta_batch("mlp")
    results = {}
    for framework in FRAMEWORKS:
        module, model = LSTM_META_LEARNER[framework], build(framework, "mlp", weights)
        meta_learner = build_meta_learner(framework, model, meta_weights)
        assert list(meta_learner.params()) == META_NAMES
        data = framework_batch(framework, batch)
        first = task(data, 0)
        unrolled = numpy_dict(module.unroll(meta_learner, model, first.support_x, first.support_y, steps))
        value, _, gradients = value_and_gradient(
            framework, lambda: module.meta_loss(meta_learner, model, data, steps), meta_learner.params())
        results[framework] = unrolled, value, gradients
    unrolled, value, gradients = results["torch"]
    assert set(unrolled) == set(weights) and set(gradients) == set(META_NAMES)
    # Every meta-parameter gets a meta-gradient; with one update, h_0 = 0 leaves the first LSTM's
    # recurrent kernel out of θ_1.
    moving = [name for name in META_NAMES if not (steps == 1 and name == "lstm.recurrent_kernel")]
    assert all(np.abs(gradients[name]).max() > 0 for name in moving), "a parameter got no meta-gradient"
    assert not np.allclose(unrolled["layers.0.kernel"], weights["layers.0.kernel"]), "the updates did not move θ"
    for framework in ("tf", "keras"):
        other_unrolled, other_value, other_gradients = results[framework]
        assert_close(value, other_value, AGREE, f"{framework} meta-loss")
        assert_same_arrays(unrolled, other_unrolled, f"{framework} θ after {steps} updates")
        assert_same_arrays(gradients, other_gradients, f"{framework} meta-gradient")


def test_meta_steps_and_adaptation_curves_agree():
    """Two meta-steps (the second Adam step uses the moments of the first), then the query loss of
    a fixed test task after 0..4 updates."""
    weights, meta_weights = canonical_weights("mlp"), varied_meta_weights()
    trainers = {framework: build_trainer(framework, weights, meta_weights, steps=2) for framework in FRAMEWORKS}
    for index in range(2):
        steps = {name: trainer.meta_step(meta_batch("mlp", index)) for name, trainer in trainers.items()}
        assert set(steps["torch"]) == {"loss", "mse"}
        for name in ("tf", "keras"):
            assert_close(steps["torch"]["loss"], steps[name]["loss"], AGREE, f"{name} meta-loss at step {index}")
    after = {name: meta_arrays(trainer.state()) for name, trainer in trainers.items()}
    assert not np.allclose(after["torch"]["meta_learner.cell.forget_bias"], meta_weights["cell.forget_bias"])
    for name in ("tf", "keras"):
        assert_same_arrays(after["torch"], after[name], f"{name} after two meta-steps", rtol=1e-8)
    episode = float64(evaluation_tasks(shot=10)[0])
    curves = {name: trainer.adaptation_curve(episode, 4) for name, trainer in trainers.items()}
    assert curves["torch"].shape == (5,)
    for name in ("tf", "keras"):
        assert_close(curves["torch"], curves[name], 1e-8, f"{name} query loss after 0..4 updates")


def test_a_restored_learner_continues_exactly():
    weights, meta_weights = canonical_weights("mlp"), varied_meta_weights()
    original = build_trainer("torch", weights, meta_weights, steps=2)
    original.meta_step(meta_batch("mlp", 0))
    restored = build_trainer("torch", weights, to_canonical(build_meta_learner("torch", build("torch", "mlp")),
                                                            "torch"), steps=2)
    restored.load_state(original.state())
    assert restored.meta_steps == 1
    for trainer in (original, restored):
        trainer.meta_step(meta_batch("mlp", 1))
    for key, value in original.state().items():
        np.testing.assert_array_equal(value, restored.state()[key], err_msg=key)


# --------------------------------------------------------------------------- 2. preprocessing

def test_preprocessing_is_andrychowicz_et_al_formula():
    p = 10.0
    values = np.array([3.0, -0.5, 1e-3, -2e-4, 5e-5, 4e-5, -1e-6, 0.0, 1e-12, -7.25], np.float64)
    large = np.abs(values) >= math.exp(-p)  # e^−10 ≈ 4.54e-5: 5e-5 is above it, 4e-5 below
    assert large.tolist() == [True] * 5 + [False] * 4 + [True]
    with np.errstate(divide="ignore"):
        expected = np.stack([np.where(large, np.log(np.abs(values)) / p, -1.0),
                             np.where(large, np.sign(values), math.exp(p) * values)], axis=-1)
    np.testing.assert_allclose(expected[0], [math.log(3) / 10, 1.0])
    np.testing.assert_allclose(expected[5], [-1.0, math.exp(10) * 4e-5])
    for framework, module in LSTM_META_LEARNER.items():
        x = torch.from_numpy(values) if framework == "torch" else tf.constant(values)
        out = module.preprocess(x)
        out = out.numpy() if framework == "torch" else np.asarray(out)
        assert out.shape == (len(values), 2)
        np.testing.assert_allclose(out, expected, rtol=1e-14, atol=1e-15, err_msg=framework)
    # Continuous at the threshold: both cases give (−1, ±1) there.
    edge = torch.tensor([math.exp(-p), -math.exp(-p)], dtype=torch.float64)
    np.testing.assert_allclose(lstm_meta_learner_torch.preprocess(edge).numpy(), [[-1, 1], [-1, -1]], atol=1e-12)


# -------------------------------------------------------------------------------- 3. learning

def test_short_training_makes_the_updates_lower_the_query_mse():
    """200 meta-iterations of 2 tasks (a few seconds; a large meta-rate, 3e-2, to learn that fast):
    after training, the meta-learner's 3 updates bring the query MSE on 40 test tasks well below
    the MSE at c_0, and below where the untrained meta-learner's updates (≈ gradient descent with
    step ≈ 0.01) bring it."""
    torch.manual_seed(0)
    learner = lstm_meta_learner_torch.LSTMMetaLearner(networks_torch.SinusoidMLP(), steps=3, meta_lr=3e-2)
    tasks, episodes = SinusoidTasks(10, 10, seed=0), list(evaluation_tasks(10, count=40))

    def curve():
        return np.mean([learner.adaptation_curve(episode) for episode in episodes], axis=0)

    before = curve()
    for index in range(200):
        learner.meta_step(tasks.meta_batch(index, 2))
    after = curve()
    print(f"query MSE at c_0 / after 3 updates: untrained {before[0]:.2f} / {before[-1]:.2f}, "
          f"trained {after[0]:.2f} / {after[-1]:.2f}")
    assert after[-1] < 0.8 * after[0], f"the trained updates hardly lower the MSE: {after}"
    assert after[-1] < before[-1], f"training did not improve the adapted MSE: {before} -> {after}"


# ------------------------------------------------------------------------------ validation

@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_zero_steps_is_a_clear_error(framework):
    module, model = LSTM_META_LEARNER[framework], build(framework, "mlp")
    meta_learner = build_meta_learner(framework, model)
    one = task(framework_batch(framework, meta_batch("mlp")), 0)
    with pytest.raises(ConfigError, match="steps >= 1"):
        module.unroll(meta_learner, model, one.support_x, one.support_y, 0)
    with pytest.raises(ConfigError, match="steps >= 1"):
        module.LSTMMetaLearner(model, steps=0)


def test_script_writes_an_mse_result_and_refuses_bad_settings(tmp_path):
    result = script.main(["--framework", "torch", "--shot", "5", "--iterations", "4", "--meta-batch", "2",
                          "--steps", "2", "--test-tasks", "5", "--log-every", "2", "--out", str(tmp_path)])
    assert result["metric"] == "mse" and result["algorithm"] == "lstm-meta-learner"
    assert result["way"] == 1 and result["shot"] == 5 and np.isfinite(result["mse"])
    assert result["adaptation_steps"] == 2 and [p["iteration"] for p in result["history"]] == [2, 4]
    folder = tmp_path / "lstm-meta-learner_torch_sinusoid_1w5s"
    assert (folder / "weights.npz").exists() and len(list(folder.glob("*.json"))) == 1
    for argv, message in [(["--steps", "0"], "--steps must be at least 1"),
                          (["--meta-lr", "nan"], "--meta-lr must be a positive number"),
                          (["--meta-batch", "0"], "--meta-batch must be at least 1")]:
        with pytest.raises(ConfigError, match=message):
            script.main([*argv, "--out", str(tmp_path)])


@pytest.mark.parametrize("framework", ["torch", "tf", "keras"])
def test_script_resumes_exactly_where_an_uninterrupted_run_ends(framework, tmp_path):
    argv = ["--framework", framework, "--shot", "5", "--meta-batch", "2", "--steps", "2", "--test-tasks", "3",
            "--log-every", "2"]
    straight = script.main([*argv, "--iterations", "4", "--out", str(tmp_path / "straight")])
    script.main([*argv, "--iterations", "2", "--out", str(tmp_path / "resumed")])     # stopped after 2
    resumed = script.main([*argv, "--iterations", "4", "--out", str(tmp_path / "resumed")])
    assert [p["iteration"] for p in resumed["history"]] == [2, 4]
    np.testing.assert_allclose(resumed["mse"], straight["mse"], rtol=1e-6)
    folder = f"lstm-meta-learner_{framework}_sinusoid_1w5s"
    a = load_weights(tmp_path / "straight" / folder / "checkpoint.npz")[0]
    b = load_weights(tmp_path / "resumed" / folder / "checkpoint.npz")[0]
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-8, err_msg=key)
    with pytest.raises(ConfigError, match="belongs to another run.*hidden: 20 there, 8 here"):
        script.main([*argv, "--iterations", "4", "--hidden", "8", "--out", str(tmp_path / "resumed")])
