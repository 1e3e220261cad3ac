"""MAML: the PyTorch, TensorFlow and Keras versions compute the same numbers, and the right ones.

1. Agreement. The same canonical weights (float64) and the same meta-batch go into the three
   frameworks, for the sinusoid MLP and for MAML's Conv-4 with BatchNorm (both BatchNorm modes):
   the adapted parameters after k = 1 and k = 3 inner steps, the meta-loss and the meta-gradient
   agree to rounding error, second- and first-order alike, and so do the weights after meta-steps
   (PyTorch's Adam against ``common.episodic_tf.Adam``) and the predictions after adaptation.
2. Order. With one task and one inner step, the meta-objective J(θ) = L_Q(θ − α ∇L_S(θ)) is a
   plain function of θ whose gradient central finite differences measure independently. The
   second-order meta-gradient must match them; the first-order one must not (it drops
   −α ∇²L_S(θ) ∇L_Q(θ')), and must equal ∇_θ' L_Q(θ') at θ' exactly. A "second-order" MAML that
   silently loses the Hessian term (e.g. through ``tf.nn.moments`` in BatchNorm), or a
   "first-order" one that keeps it, fails here.
3. BatchNorm. Without ``transductive``, a query's prediction depends on the support set and itself
   only; with it, on the other queries too.
"""

import numpy as np
import pytest
import tensorflow as tf
import torch

from common.backbones import conv4_embedding_size, same_padding
from common.data.sinusoid import evaluation_tasks
from common.episodes import Episode
from common.errors import ConfigError
from common.weights import to_canonical
from tests.metric_helpers import assert_close
from tests.optimization_helpers import (AGREE, FRAMEWORKS, MAML, NETWORKS, assert_same_arrays, build,
                                        canonical_weights, float64, framework_batch, make_learner, meta_batch,
                                        model_arrays, numpy_dict, task, value_and_gradient)

INNER_LR = {"mlp": 0.01, "conv4": 0.4, "conv4-strided": 0.4}  # α of Finn et al. Sec. 5.1 and 5.2


def adapted_loss_and_meta_gradient(framework, network, model, batch, inner_steps, first_order, transductive):
    """(θ' of the first task, the meta-loss, its gradient with respect to θ), as NumPy."""
    module, params = MAML[framework], model.params()
    batch = framework_batch(framework, batch)
    first = task(batch, 0)
    adapted = module.adapt(model, params, first.support_x, first.support_y, INNER_LR[network], inner_steps,
                           first_order)
    value, _, gradients = value_and_gradient(framework, lambda: module.meta_loss(
        model, params, batch, INNER_LR[network], inner_steps, first_order, transductive), params)
    return numpy_dict(adapted), value, gradients


# ------------------------------------------------------------------------------- 1. agreement

CASES = [("mlp", 1, True), ("mlp", 3, True), ("conv4", 1, True), ("conv4", 2, False),
         ("conv4-strided", 1, True), ("conv4-strided", 2, False)]


@pytest.mark.parametrize("first_order", [False, True], ids=["second-order", "first-order"])
@pytest.mark.parametrize("network,inner_steps,transductive", CASES,
                         ids=[f"{n}-k{k}-{'transductive' if t else 'support-statistics'}" for n, k, t in CASES])
def test_adapted_params_meta_loss_and_meta_gradient_agree(network, inner_steps, transductive, first_order):
    weights, batch = canonical_weights(network), meta_batch(network)
    results = {framework: adapted_loss_and_meta_gradient(framework, network, build(framework, network, weights),
                                                         batch, inner_steps, first_order, transductive)
               for framework in FRAMEWORKS}
    adapted, value, gradients = results["torch"]
    assert set(adapted) == set(gradients) == set(weights)
    moved = [name for name in weights if not np.allclose(adapted[name], weights[name])]
    assert len(moved) >= len(weights) - 4, "the inner steps did not move θ"
    for framework in ("tf", "keras"):
        other_adapted, other_value, other_gradients = results[framework]
        assert_close(value, other_value, AGREE, f"{framework} meta-loss")
        assert_same_arrays(adapted, other_adapted, f"{framework} θ' after {inner_steps} steps")
        assert_same_arrays(gradients, other_gradients, f"{framework} meta-gradient")


@pytest.mark.parametrize("network", ["mlp", "conv4-strided"])
def test_meta_steps_and_predictions_agree(network):
    """Two second-order meta-steps (the second Adam step uses the moments of the first), then the
    evaluation protocol: the query outputs after the test-time inner steps, and the query loss
    after 0..k steps. The max-pool Conv-4 takes the same steps through other convolutions, which
    the agreement of meta-losses and meta-gradients above covers (``conv4`` cases)."""
    weights = canonical_weights(network)
    settings = dict(inner_lr=INNER_LR[network], inner_steps=1, test_inner_steps=2, meta_lr=1e-3)
    learners = {framework: make_learner("maml", framework, build(framework, network, weights), **settings)
                for framework in FRAMEWORKS}
    for index in range(2):
        steps = {name: learner.meta_step(meta_batch(network, index)) for name, learner in learners.items()}
        metric = "mse" if network == "mlp" else "accuracy"
        assert set(steps["torch"]) == {"loss", metric}
        for name in ("tf", "keras"):
            assert_close(steps["torch"]["loss"], steps[name]["loss"], AGREE, f"{name} meta-loss at step {index}")
            assert_close(steps["torch"][metric], steps[name][metric], AGREE, f"{name} {metric} at step {index}")
    after = {name: model_arrays(learner.state()) for name, learner in learners.items()}
    for name in ("tf", "keras"):
        assert_same_arrays(after["torch"], after[name], f"{name} after two meta-steps", rtol=1e-8)

    episode = task(meta_batch(network, 5), 0) if network != "mlp" else float64(evaluation_tasks(shot=10)[0])
    outputs = {name: learner.predict(episode) for name, learner in learners.items()}
    curves = {name: learner.adaptation_curve(episode, steps=3) for name, learner in learners.items()}
    assert curves["torch"].shape == (4,) and len(set(curves["torch"])) == 4
    for name in ("tf", "keras"):
        assert_close(outputs["torch"], outputs[name], 1e-8, f"{name} query outputs after 2 inner steps")
        assert_close(curves["torch"], curves[name], 1e-8, f"{name} query loss after 0..3 steps")


def test_pytorch_takes_the_same_meta_step_however_it_groups_the_tasks(monkeypatch):
    """PyTorch adapts the tasks of a meta-batch together, in groups of about ``ROWS_AT_ONCE``
    image-steps (``maml_torch.MAML.meta_step``): one task at a time, two tasks and then one, and all
    three at once give the same meta-step (3-way 2-shot 3-query tasks: 15 images per task)."""
    weights = canonical_weights("conv4-strided")
    results = []
    for rows in (1, 30, 10**6):
        monkeypatch.setattr(MAML["torch"], "ROWS_AT_ONCE", rows)
        learner = make_learner("maml", "torch", build("torch", "conv4-strided", weights), inner_lr=0.4,
                               inner_steps=1, meta_lr=1e-3)
        results.append((learner.meta_step(meta_batch("conv4-strided", 0)), model_arrays(learner.state())))
    (one, one_weights), *others = results
    for step, after in others:
        assert_close(one["loss"], step["loss"], 1e-12, "meta-loss")
        assert_close(one["accuracy"], step["accuracy"], 1e-12, "accuracy")
        assert_same_arrays(one_weights, after, "weights after the meta-step", rtol=1e-10)


# ----------------------------------------------------------------------------------- 2. order

def flat_objective(framework, network, weights, transductive):
    """The meta-objective of one task and one inner step as functions of a flat θ vector:
    ``value(θ)``, ``meta_gradient(θ, first_order)`` and ``query_gradient_at_adapted(θ)``."""
    module, model = MAML[framework], build(framework, network, weights)
    names, shapes = list(weights), [weights[name].shape for name in weights]
    sizes = [int(np.prod(shape)) for shape in shapes]
    batch = framework_batch(framework, meta_batch(network, tasks=1))
    one = task(batch, 0)
    alpha = INNER_LR[network]

    if framework == "torch":
        def unflatten(theta):
            parts = torch.split(torch.as_tensor(theta), sizes)
            return {n: p.reshape(s).requires_grad_() for n, p, s in zip(names, parts, shapes)}

        def value(theta):
            return module.meta_loss(model, unflatten(theta), batch, alpha, 1, True, transductive)[0].item()

        def meta_gradient(theta, first_order):
            params = unflatten(theta)
            loss, _ = module.meta_loss(model, params, batch, alpha, 1, first_order, transductive)
            return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(params.values()))]).numpy()

        def query_gradient_at_adapted(theta):
            adapted = module.adapt(model, unflatten(theta), one.support_x, one.support_y, alpha, 1, first_order=True)
            adapted = {n: p.detach().requires_grad_() for n, p in adapted.items()}  # θ' as a fresh point
            outputs = module.query_outputs(model, adapted, one.support_x, one.query_x, transductive)
            gradients = torch.autograd.grad(model.loss(outputs, one.query_y), list(adapted.values()))
            return torch.cat([g.reshape(-1) for g in gradients]).numpy()

        return value, meta_gradient, query_gradient_at_adapted

    def unflatten(theta):
        return {n: tf.reshape(p, s) for n, p, s in zip(names, tf.split(theta, sizes), shapes)}

    @tf.function(reduce_retracing=True)
    def value_graph(theta):  # one trace serves all the evaluations of the finite differences
        return module.meta_loss(model, unflatten(theta), batch, alpha, 1, True, transductive)[0]

    def value(theta):
        return float(value_graph(tf.constant(theta)))

    def meta_gradient(theta, first_order):
        theta = tf.constant(theta)
        with tf.GradientTape() as tape:
            tape.watch(theta)
            loss, _ = module.meta_loss(model, unflatten(theta), batch, alpha, 1, first_order, transductive)
        return tape.gradient(loss, theta).numpy()

    def query_gradient_at_adapted(theta):
        adapted = module.adapt(model, unflatten(tf.constant(theta)), one.support_x, one.support_y, alpha, 1,
                               first_order=True)
        adapted_flat = tf.concat([tf.reshape(p, [-1]) for p in adapted.values()], 0)  # θ' as a fresh point
        with tf.GradientTape() as tape:
            tape.watch(adapted_flat)
            outputs = module.query_outputs(model, unflatten(adapted_flat), one.support_x, one.query_x, transductive)
            loss = model.loss(outputs, one.query_y)
        return tape.gradient(loss, adapted_flat).numpy()

    return value, meta_gradient, query_gradient_at_adapted


def relative_error(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


ORDER_CASES = [("mlp", True), ("conv4", True), ("conv4", False), ("conv4-strided", True)]


@pytest.mark.parametrize("network,transductive", ORDER_CASES,
                         ids=[f"{n}-{'transductive' if t else 'support-statistics'}" for n, t in ORDER_CASES])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_second_order_matches_finite_differences_and_first_order_does_not(framework, network, transductive):
    weights = canonical_weights(network)
    theta = np.concatenate([weights[name].reshape(-1) for name in weights])
    value, meta_gradient, query_gradient_at_adapted = flat_objective(framework, network, weights, transductive)
    # A sample of the coordinates, from every layer (all of them would take 2 x |θ| evaluations
    # of J); conv biases are left out: BatchNorm cancels them, their gradient is 0. Central
    # differences err by ~h² J''' + eps J / h, ~1e-10 here, except where θ ± h straddles a kink of
    # ReLU or max-pooling: there ∇L_S(θ), hence θ' and J, jump, and the quotient is meaningless.
    # Such coordinates show as quotients at h and h/2 that disagree; they are left out (a missing
    # Hessian term would agree at both step sizes, and still be caught).
    names = np.concatenate([[name] * weights[name].size for name in weights])
    candidates = np.flatnonzero(~np.char.endswith(names.astype(str), "conv.bias"))
    count = 200 if network == "mlp" else 60
    coordinates, h = np.sort(np.random.default_rng(0).choice(candidates, count, replace=False)), 1e-5

    def central_difference(i, size):
        step = np.zeros_like(theta)
        step[i] = size
        return (value(theta + step) - value(theta - step)) / (2 * size)

    differences = np.array([[central_difference(i, h), central_difference(i, h / 2)] for i in coordinates])
    smooth = np.abs(differences[:, 0] - differences[:, 1]) <= 1e-6 * np.abs(differences).max() + 1e-9
    assert smooth.mean() >= 0.6, f"only {smooth.sum()} of {count} coordinates are away from a kink"
    coordinates, finite_differences = coordinates[smooth], differences[smooth, 1]

    second, first = meta_gradient(theta, first_order=False), meta_gradient(theta, first_order=True)
    second_error = relative_error(second[coordinates], finite_differences)
    first_error = relative_error(first[coordinates], finite_differences)
    print(f"{framework} {network}: relative error against finite differences: second order "
          f"{second_error:.1e}, first order {first_error:.1e}")
    assert second_error < 1e-6, "second-order MAML lost (part of) the Hessian term"
    # The dropped term, -α ∇²L_S(θ) ∇_θ' L_Q(θ'), is a large part of the meta-gradient here.
    assert first_error > 0.05, "first-order MAML kept the Hessian term"
    assert_close(query_gradient_at_adapted(theta), first, 1e-12, "first-order meta-gradient vs ∇L_Q(θ')")


# ------------------------------------------------------------------------------ 3. BatchNorm

@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_support_statistics_keep_queries_independent_and_transductive_does_not(framework):
    model = build(framework, "conv4")
    episode = framework_batch(framework, task(meta_batch("conv4"), 0))
    changed_x = episode.query_x.clone() if framework == "torch" else episode.query_x.copy()
    changed_x[0] = changed_x[0] * 0 + 1  # the first query becomes a white image

    def logits(query_x, transductive):
        out = MAML[framework].query_outputs(model, model.params(), episode.support_x, query_x, transductive)
        return np.asarray(out.detach().numpy() if framework == "torch" else out)

    for transductive in (False, True):
        before, after = logits(episode.query_x, transductive), logits(changed_x, transductive)
        others_moved = np.abs(before[1:] - after[1:]).max()
        assert np.abs(before[0] - after[0]).max() > 1e-6  # the changed query's own logits change
        if transductive:
            assert others_moved > 1e-6, "transductive BatchNorm should let one query move the others"
        else:
            assert others_moved < 1e-12, "with support statistics, a query must not affect the others"


# ------------------------------------------------------------------------------ validation

@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_zero_inner_steps_is_a_clear_error(framework):
    model = build(framework, "mlp")
    one = task(framework_batch(framework, meta_batch("mlp")), 0)
    with pytest.raises(ConfigError, match="inner_steps >= 1"):
        MAML[framework].adapt(model, model.params(), one.support_x, one.support_y, 0.01, inner_steps=0)
    with pytest.raises(ConfigError, match="inner_steps >= 1"):
        MAML[framework].MAML(model, 0.01, inner_steps=0)


def test_networks_have_the_same_canonical_parameters_in_every_framework():
    for network in ("mlp", "conv4", "conv4-strided"):
        shapes = {framework: {k: tuple(v.shape) for k, v in numpy_dict(build(framework, network).params()).items()}
                  for framework in FRAMEWORKS}
        assert list(shapes["torch"]) == list(shapes["tf"]) == list(shapes["keras"])  # same names, same order
        assert shapes["torch"] == shapes["tf"] == shapes["keras"]
        assert set(shapes["torch"]) == set(to_canonical(build("torch", network), "torch"))
    assert shapes["torch"]["head.kernel"] == (8, 3) and shapes["torch"]["blocks.0.conv.kernel"] == (3, 3, 1, 8)
    assert NETWORKS["torch"].Conv4Classifier.metric_name == "accuracy"


def test_strided_backbone_pads_as_tensorflow_and_ends_in_the_mean_of_its_map():
    """The released code's network: "SAME" padding puts the extra pixel after (28 -> 14 -> 7 -> 4 -> 2),
    the head reads the mean over the 2x2 map (D = hidden, as the max-pool network's 1x1x64), and a
    backbone that does not exist is one clear error in every framework."""
    assert [same_padding(size, 2) for size in (28, 14, 7, 4)] == [(0, 1), (0, 1), (1, 1), (0, 1)]
    assert conv4_embedding_size((28, 28, 1), 64, 4, "strided") == conv4_embedding_size((28, 28, 1)) == 64
    assert conv4_embedding_size((84, 84, 3), 32, 4, "strided") == 32
    model = build("torch", "conv4-strided")
    images = torch.from_numpy(meta_batch("conv4-strided").support_x[0]).permute(0, 3, 1, 2)
    maps = images
    for i in range(4):  # the feature map after each block: halved, rounding up (one task: a task axis of 1)
        maps = NETWORKS["torch"].conv2d(maps, model.params()[f"blocks.{i}.conv.kernel"][None],
                                        model.params()[f"blocks.{i}.conv.bias"][None], stride=2)
        assert maps.shape[2:] == ((14, 14), (7, 7), (4, 4), (2, 2))[i]
    for framework in FRAMEWORKS:
        with pytest.raises(ConfigError, match="unknown backbone 'avgpool'; choose one of maxpool, strided"):
            NETWORKS[framework].Conv4Classifier(way=5, backbone="avgpool")
