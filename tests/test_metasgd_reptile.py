"""Meta-SGD and Reptile: the three frameworks agree, and each update is the one of its paper.

Meta-SGD (Li et al. 2017, Eq. 2-3): the same θ and the same learned rates α (drawn from one seed in
every framework), the same meta-batch: the meta-gradient with respect to θ *and* α agrees across
frameworks, the α-gradient matches finite differences, and so do θ and α after meta-steps.

Reptile (Nichol et al. 2018, Alg. 2): weights after meta-steps (with the annealed ε) agree across
frameworks; with ε = 1 and one task, one meta-step lands exactly on that task's adapted weights.

Checkpoints: a learner restored from ``state()`` continues exactly as the original does.
"""

import numpy as np
import pytest
import tensorflow as tf
import torch

from common.errors import ConfigError
from tests.metric_helpers import assert_close
from tests.optimization_helpers import (AGREE, FRAMEWORKS, MAML, assert_same_arrays, build, canonical_weights,
                                        framework_batch, make_learner, meta_batch, model_arrays, numpy_dict, task,
                                        value_and_gradient)


def metasgd(framework, network, **settings):
    return make_learner("metasgd", framework, build(framework, network), inner_lr_range=(0.005, 0.1),
                        inner_steps=1, seed=3, **settings)


# --------------------------------------------------------------------------------- Meta-SGD

@pytest.mark.parametrize("network", ["mlp", "conv4", "conv4-strided"])
def test_metasgd_starts_from_the_same_rates_and_its_meta_gradient_agrees(network):
    learners = {framework: metasgd(framework, network) for framework in FRAMEWORKS}
    rates = {framework: numpy_dict(learner.learned_inner_lrs()) for framework, learner in learners.items()}
    weights = canonical_weights(network)
    assert list(rates["torch"]) == list(weights)  # one rate per parameter, same names and shapes
    for name, value in rates["torch"].items():
        assert value.shape == weights[name].shape and 0.005 <= value.min() and value.max() <= 0.1
    batch = meta_batch(network)
    gradients = {}
    for framework, learner in learners.items():
        model, module = learner.model, MAML[framework]
        params, inner_lrs = model.params(), learner.inner_lrs
        _, _, gradients[framework] = value_and_gradient(framework, lambda: module.meta_loss(
            model, params, framework_batch(framework, batch), inner_lrs, 1), params, inner_lrs)
    assert any(name.startswith("inner_lr.") for name in gradients["torch"])
    for framework in ("tf", "keras"):
        assert_same_arrays(rates["torch"], rates[framework], f"{framework} initial α")
        assert_same_arrays(gradients["torch"], gradients[framework], f"{framework} Meta-SGD gradient")


def test_metasgd_rate_gradient_matches_finite_differences():
    """d L_Q(θ − α ∘ ∇L_S(θ)) / dα = −∇L_S(θ) ∘ ∇L_Q(θ'); checked numerically on the MLP."""
    learner = metasgd("torch", "mlp")
    model, params = learner.model, learner.model.params()
    batch = framework_batch("torch", meta_batch("mlp", tasks=1))
    inner_lrs = {name: rate.detach().clone().requires_grad_() for name, rate in learner.inner_lrs.items()}
    loss, _ = MAML["torch"].meta_loss(model, params, batch, inner_lrs, 1)
    analytic = torch.autograd.grad(loss, list(inner_lrs.values()))
    h, rng = 1e-6, np.random.default_rng(0)
    for (name, rate), gradient in zip(inner_lrs.items(), analytic):
        for flat in rng.choice(rate.numel(), min(5, rate.numel()), replace=False):
            def value(delta):
                shifted = {n: r.detach().clone() for n, r in inner_lrs.items()}
                shifted[name].view(-1)[flat] += delta
                return MAML["torch"].meta_loss(model, params, batch, shifted, 1)[0].item()
            numeric = (value(h) - value(-h)) / (2 * h)
            assert abs(gradient.view(-1)[flat].item() - numeric) <= 1e-7 + 1e-5 * abs(numeric), name


def test_metasgd_meta_steps_agree_and_move_the_rates():
    learners = {framework: metasgd(framework, "conv4", meta_lr=1e-3) for framework in FRAMEWORKS}
    before = model_arrays(learners["torch"].state())
    for index in range(2):
        losses = {name: learner.meta_step(meta_batch("conv4", index))["loss"] for name, learner in learners.items()}
        for name in ("tf", "keras"):
            assert_close(losses["torch"], losses[name], AGREE, f"{name} Meta-SGD loss at step {index}")
    after = {name: model_arrays(learner.state()) for name, learner in learners.items()}
    assert any(not np.allclose(before[k], after["torch"][k]) for k in before if k.startswith("inner_lr."))
    for name in ("tf", "keras"):
        assert_same_arrays(after["torch"], after[name], f"{name} θ and α after two meta-steps", rtol=1e-8)


# ---------------------------------------------------------------------------------- Reptile

@pytest.mark.parametrize("network", ["mlp", "conv4"])
def test_reptile_meta_steps_agree(network):
    settings = dict(inner_lr=0.02 if network == "mlp" else 0.1, inner_steps=3, meta_lr=0.5, anneal_steps=4)
    learners = {framework: make_learner("reptile", framework, build(framework, network), **settings)
                for framework in FRAMEWORKS}
    for index in range(2):
        steps = {name: learner.meta_step(meta_batch(network, index)) for name, learner in learners.items()}
        for name in ("tf", "keras"):
            assert_close(steps["torch"]["loss"], steps[name]["loss"], AGREE, f"{name} Reptile query loss")
    after = {name: model_arrays(learner.state()) for name, learner in learners.items()}
    for name in ("tf", "keras"):
        assert_same_arrays(after["torch"], after[name], f"{name} θ after two Reptile steps")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_reptile_with_step_one_lands_on_the_adapted_weights(framework):
    """θ ← θ + ε (θ' − θ) with ε = 1 and a single task is θ ← θ'."""
    model = build(framework, "conv4")
    batch = meta_batch("conv4", tasks=1)
    one = task(framework_batch(framework, batch), 0)
    adapted = numpy_dict(MAML[framework].adapt(model, model.params(), one.support_x, one.support_y, 0.1, 3,
                                               first_order=True))
    learner = make_learner("reptile", framework, model, inner_lr=0.1, inner_steps=3, meta_lr=1.0)
    learner.meta_step(batch)
    after = {k[len("model."):]: v for k, v in model_arrays(learner.state()).items()}
    assert_same_arrays(adapted, after, f"{framework} θ after one Reptile step with ε = 1", rtol=1e-12)


# ------------------------------------------------------------------------------ checkpoints

@pytest.mark.parametrize("variant", ["maml", "metasgd", "reptile", "reptile-adam"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_learner_restored_from_its_state_continues_exactly(framework, variant):
    settings = {"maml": dict(inner_lr=0.01, inner_steps=1, meta_lr=1e-2),
                "metasgd": dict(inner_lr_range=(0.005, 0.1), inner_steps=1, seed=3, meta_lr=1e-2),
                "reptile": dict(inner_lr=0.02, inner_steps=2, meta_lr=1.0, anneal_steps=6),
                "reptile-adam": dict(inner_lr=0.01, inner_steps=2, meta_lr=1.0, anneal_steps=6,
                                     inner_optimizer="adam")}[variant]
    kind = variant.split("-")[0]
    original = make_learner(kind, framework, build(framework, "mlp"), **dict(settings))
    for index in range(2):
        original.meta_step(meta_batch("mlp", index))
    state = original.state()
    restored = make_learner(kind, framework, build(framework, "mlp", canonical_weights("mlp")), **dict(settings))
    restored.load_state(state)
    for index in (2, 3):
        expected, got = original.meta_step(meta_batch("mlp", index)), restored.meta_step(meta_batch("mlp", index))
        assert_close(expected["loss"], got["loss"], 1e-12, f"{kind} {framework} loss after resuming")
    assert_same_arrays(model_arrays(original.state()), model_arrays(restored.state()),
                       f"{kind} {framework} after resuming", rtol=1e-12)


def test_reptile_on_minibatches_agrees_and_steps_through_the_support_set():
    """inner_batch = b: step i on support rows [i·b, (i+1)·b), the same in every framework."""
    network = "conv4"  # 3-way 2-shot: 6 support rows, mini-batches of 3
    settings = dict(inner_lr=0.1, inner_steps=3, meta_lr=0.5, inner_batch=3)
    learners = {framework: make_learner("reptile", framework, build(framework, network), **settings)
                for framework in FRAMEWORKS}
    for index in range(2):
        for learner in learners.values():
            learner.meta_step(meta_batch(network, index))
    after = {name: model_arrays(learner.state()) for name, learner in learners.items()}
    for name in ("tf", "keras"):
        assert_same_arrays(after["torch"], after[name], f"{name} θ after two mini-batch Reptile steps")
    # One task, ε = 1: θ lands on the θ' of three one-step adaptations on rows 0-2, 3-5, 0-2.
    model = build("torch", network)
    batch = meta_batch(network, tasks=1)
    one = task(framework_batch("torch", batch), 0)
    params = model.params()
    for rows in (slice(0, 3), slice(3, 6), slice(0, 3)):
        params = MAML["torch"].adapt(model, params, one.support_x[rows], one.support_y[rows], settings["inner_lr"],
                                     1, first_order=True)
    learner = make_learner("reptile", "torch", model, **{**settings, "meta_lr": 1.0})
    learner.meta_step(batch)
    after = {k[len("model."):]: v for k, v in model_arrays(learner.state()).items()}
    assert_same_arrays(numpy_dict(params), after, "θ after one mini-batch Reptile step with ε = 1", rtol=1e-12)


def test_an_inner_batch_that_does_not_divide_the_support_set_is_refused():
    learner = make_learner("reptile", "torch", build("torch", "conv4"), inner_lr=0.1, inner_steps=2, inner_batch=4)
    with pytest.raises(ConfigError, match="--inner-batch 4 does not divide the 6 support examples"):
        learner.meta_step(meta_batch("conv4"))
    with pytest.raises(ConfigError, match="inner_batch \\(--inner-batch\\) must be at least 1"):
        make_learner("reptile", "tf", build("tf", "conv4"), inner_lr=0.1, inner_batch=0)



# ------------------------------------------------------------------- Reptile's inner Adam

def test_the_inner_adam_step_is_keras_adam_with_beta1_zero():
    """minibatches.adam_step, three steps, against Keras' Adam(β1 = 0, β2 = 0.999, ε = 1e-8): the
    form of TensorFlow's Adam that Nichol et al. ran (ε outside the bias correction)."""
    import keras
    from chapters.optimization.minibatches import adam_step
    rng = np.random.default_rng(0)
    theta = rng.normal(size=(3, 2))
    gradients = [rng.normal(size=(3, 2)) * scale for scale in (1.0, 1e-3, 10.0)]
    variable = keras.Variable(theta.copy(), dtype="float64")
    optimizer = keras.optimizers.Adam(learning_rate=0.01, beta_1=0.0, beta_2=0.999, epsilon=1e-8)
    params, moments, step = {"w": theta}, {"w": np.zeros_like(theta)}, 0
    for g in gradients:
        optimizer.apply_gradients([(tf.constant(g), variable)])
        params, moments, step = adam_step(params, {"w": g}, moments, step, 0.01)
    assert step == 3
    # Keras rounds β2 to float32 (0.999 is 0.99900001) in part of its computation: a relative
    # 7e-6 in each step (measured). A wrong bias correction or ε would be off by far more.
    np.testing.assert_allclose(theta - params["w"], theta - variable.numpy(), rtol=1e-4)


@pytest.mark.parametrize("network", ["mlp", "conv4"])
def test_reptile_with_the_inner_adam_agrees_and_keeps_its_state_across_tasks(network):
    settings = dict(inner_lr=0.01, inner_steps=3, meta_lr=0.5, anneal_steps=4, inner_optimizer="adam",
                    inner_batch=3 if network == "conv4" else None)
    learners = {framework: make_learner("reptile", framework, build(framework, network), **settings)
                for framework in FRAMEWORKS}
    for index in range(2):
        for learner in learners.values():
            learner.meta_step(meta_batch(network, index))  # 3 tasks of 3 inner steps each
    after = {name: learner.state() for name, learner in learners.items()}
    for name, state in after.items():
        # The state went on through 2 meta-steps x 3 tasks x 3 steps: it was never reset.
        assert int(state["inner_adam.step"]) == 18, name
    # Looser than AGREE: a conv bias followed by BatchNorm has a zero gradient up to round-off,
    # and Adam divides that noise by √v + ε (measured: 1.6e-10 relative on those biases).
    agree = 1e-8
    for name in ("tf", "keras"):
        assert_same_arrays(model_arrays(after["torch"]), model_arrays(after[name]), f"{name} θ, inner Adam", agree)
    # A test task adapts from the state without changing it; the frameworks agree on its outputs.
    episode = task(meta_batch(network, 5), 0)
    outputs = {name: np.asarray(learner.predict(episode)) for name, learner in learners.items()}
    for name in ("tf", "keras"):
        assert_close(outputs["torch"], outputs[name], agree, f"{name} outputs after test-time Adam")
    for name, learner in learners.items():
        state = learner.state()
        for key, value in after[name].items():
            np.testing.assert_array_equal(state[key], value, err_msg=f"{name} {key} changed by predict")


def test_an_unknown_inner_optimizer_is_refused():
    with pytest.raises(ConfigError, match="inner_optimizer \\(--inner-optimizer\\) must be one of sgd, adam"):
        make_learner("reptile", "torch", build("torch", "mlp"), inner_lr=0.1, inner_optimizer="rmsprop")
