"""MAML: the PyTorch, TensorFlow and Keras versions compute the same numbers, and the right ones.

1. Agreement. The same canonical weights (float64) and the same meta-batch of sinusoid tasks go
   into the three frameworks: the adapted parameters after k = 1 and k = 3 inner steps, the
   meta-loss and the meta-gradient agree to rounding error, second- and first-order alike, and
   so do the weights after meta-steps (PyTorch's Adam against ``common.episodic_tf.Adam``).
2. Order. With one task and one inner step, the meta-objective J(θ) = L_Q(θ − α ∇L_S(θ)) is a
   plain function of θ whose gradient central finite differences measure independently. The
   second-order meta-gradient must match them; the first-order one must not (it drops
   −α ∇²L_S(θ) ∇L_Q(θ')), and must equal ∇_θ' L_Q(θ') at θ' exactly. A "second-order" MAML that
   silently loses the Hessian term, or a "first-order" one that keeps it, fails here.
"""

import numpy as np
import pytest
import tensorflow as tf
import torch

from chapters.optimization import maml_keras, maml_tf, maml_torch
from common.data.sinusoid import SinusoidTasks, evaluation_tasks
from common.episodes import Episode
from common.episodic_tf import Adam
from common.errors import ConfigError
from common.weights import from_canonical, to_canonical
from tests.metric_helpers import assert_close, keras_floatx

FRAMEWORKS = ("torch", "tf", "keras")
MODULES = {"torch": maml_torch, "tf": maml_tf, "keras": maml_keras}
INNER_LR = 0.01  # α of Finn et al. Sec. 5.1
AGREE = 1e-10    # float64: the three frameworks differ by summation order only (~1e-15 measured)


def canonical_weights() -> dict:
    torch.manual_seed(0)
    return to_canonical(maml_torch.SinusoidMLP().double(), "torch")


def build(framework: str, weights: dict):
    """The sinusoid MLP of ``framework`` in float64, holding ``weights``."""
    if framework == "torch":
        model = maml_torch.SinusoidMLP().double()
    elif framework == "tf":
        model = maml_tf.SinusoidMLP(dtype=tf.float64, seed=0)
    else:
        with keras_floatx("float64"):
            model = maml_keras.SinusoidMLP()
    return from_canonical(weights, model, framework)


def float64(episode: Episode) -> Episode:
    return Episode(*(np.asarray(part, np.float64) for part in episode))


def meta_batch(index: int = 0, tasks: int = 4) -> Episode:
    return float64(SinusoidTasks(shot=5, query=10, seed=1).meta_batch(index, tasks))


def numpy_dict(params: dict) -> dict:
    return {name: np.array(value.detach().numpy() if isinstance(value, torch.Tensor) else value)
            for name, value in params.items()}


def adapted_loss_and_meta_gradient(framework, model, batch, inner_steps, first_order):
    """(θ' of the first task, the meta-loss, its gradient with respect to θ), as NumPy."""
    module = MODULES[framework]
    params = model.params()
    if framework == "torch":
        batch = Episode(*(torch.from_numpy(part) for part in batch))
    adapted = module.adapt(params, batch.support_x[0], batch.support_y[0], INNER_LR, inner_steps, first_order)
    if framework == "torch":
        value = module.meta_loss(params, batch, INNER_LR, inner_steps, first_order)
        gradients = torch.autograd.grad(value, list(params.values()))
    else:
        with tf.GradientTape() as tape:
            value = module.meta_loss(params, batch, INNER_LR, inner_steps, first_order)
        gradients = tape.gradient(value, list(params.values()))
    value = value.item() if framework == "torch" else float(value)
    return numpy_dict(adapted), value, numpy_dict(dict(zip(params, gradients)))


# ------------------------------------------------------------------------------- 1. agreement

@pytest.mark.parametrize("first_order", [False, True], ids=["second-order", "first-order"])
@pytest.mark.parametrize("inner_steps", [1, 3])
def test_adapted_params_meta_loss_and_meta_gradient_agree(inner_steps, first_order):
    weights, batch = canonical_weights(), meta_batch()
    results = {framework: adapted_loss_and_meta_gradient(framework, build(framework, weights), batch,
                                                         inner_steps, first_order)
               for framework in FRAMEWORKS}
    adapted, value, gradients = results["torch"]
    assert set(adapted) == set(gradients) == set(weights)
    assert not np.allclose(adapted["layers.1.kernel"], weights["layers.1.kernel"])  # the steps moved θ
    for framework in ("tf", "keras"):
        other_adapted, other_value, other_gradients = results[framework]
        assert_close(value, other_value, AGREE, f"{framework} meta-loss")
        for name in weights:
            assert_close(adapted[name], other_adapted[name], AGREE,
                         f"{framework} θ'[{name}] after {inner_steps} steps")
            assert_close(gradients[name], other_gradients[name], AGREE, f"{framework} meta-gradient {name}")


def test_meta_steps_and_adaptation_curves_agree():
    """Two second-order meta-steps (the second Adam step uses the moments of the first), then the
    evaluation protocol: query MSE after 0..k inner steps on a test task. (First-order meta-steps
    differ only in the meta-gradient, whose agreement is tested above; tracing them too would
    double this test's time.)"""
    weights = canonical_weights()
    with keras_floatx("float64"):
        keras_maml = maml_keras.MAML(build("keras", weights), INNER_LR, 1)
        keras_maml.compile(optimizer=Adam(1e-3, epsilon=1e-8))
        learners = {"torch": maml_torch.MAML(build("torch", weights), INNER_LR, 1, meta_lr=1e-3),
                    "tf": maml_tf.MAML(build("tf", weights), INNER_LR, 1, meta_lr=1e-3),
                    "keras": keras_maml}
        for index in range(2):
            losses = {name: learner.meta_step(meta_batch(index)) for name, learner in learners.items()}
            for name in ("tf", "keras"):
                assert_close(losses["torch"], losses[name], AGREE, f"{name} meta-loss at step {index}")
    after = {name: to_canonical(learner.model, name) for name, learner in learners.items()}
    for key in weights:
        assert not np.allclose(after["torch"][key], weights[key])
        for name in ("tf", "keras"):
            assert_close(after["torch"][key], after[name][key], AGREE, f"{name} {key} after two meta-steps")

    episode = float64(evaluation_tasks(shot=10)[0])
    curves = {name: learner.adaptation_curve(episode, steps=3) for name, learner in learners.items()}
    assert curves["torch"].shape == (4,) and len(set(curves["torch"])) == 4
    for name in ("tf", "keras"):
        assert_close(curves["torch"], curves[name], AGREE, f"{name} query MSE after 0..3 steps")


# ----------------------------------------------------------------------------------- 2. order

def flat_objective(framework, weights):
    """The meta-objective of one task and one inner step as functions of a flat θ vector:
    ``value(θ)``, ``meta_gradient(θ, first_order)`` and ``query_gradient_at_adapted(θ)``."""
    module = MODULES[framework]
    names, shapes = list(weights), [weights[name].shape for name in weights]
    sizes = [int(np.prod(shape)) for shape in shapes]
    task = float64(SinusoidTasks(shot=10, query=10, seed=2).meta_batch(0, 1))
    support_x, support_y, query_x, query_y = (part[0] for part in task)

    if framework == "torch":
        def unflatten(theta):
            parts = torch.split(torch.as_tensor(theta), sizes)
            return {n: p.reshape(s).requires_grad_() for n, p, s in zip(names, parts, shapes)}

        batch = Episode(*(torch.from_numpy(part) for part in task))
        support_x, support_y, query_x, query_y = (part[0] for part in batch)

        def value(theta):
            return module.meta_loss(unflatten(theta), batch, INNER_LR, 1, first_order=True).item()

        def meta_gradient(theta, first_order):
            params = unflatten(theta)
            gradients = torch.autograd.grad(module.meta_loss(params, batch, INNER_LR, 1, first_order),
                                            list(params.values()))
            return torch.cat([g.reshape(-1) for g in gradients]).numpy()

        def query_gradient_at_adapted(theta):
            adapted = module.adapt(unflatten(theta), support_x, support_y, INNER_LR, 1, first_order=True)
            adapted = {n: p.detach().requires_grad_() for n, p in adapted.items()}  # θ' as a fresh point
            gradients = torch.autograd.grad(module.loss(adapted, query_x, query_y), list(adapted.values()))
            return torch.cat([g.reshape(-1) for g in gradients]).numpy()

        return value, meta_gradient, query_gradient_at_adapted

    def unflatten(theta):
        return {n: tf.reshape(p, s) for n, p, s in zip(names, tf.split(theta, sizes), shapes)}

    @tf.function(reduce_retracing=True)
    def value_graph(theta):  # one trace serves all the evaluations of the finite differences
        return module.meta_loss(unflatten(theta), task, INNER_LR, 1, first_order=True)

    def value(theta):
        return float(value_graph(tf.constant(theta)))

    def meta_gradient(theta, first_order):
        theta = tf.constant(theta)
        with tf.GradientTape() as tape:
            tape.watch(theta)
            meta = module.meta_loss(unflatten(theta), task, INNER_LR, 1, first_order)
        return tape.gradient(meta, theta).numpy()

    def query_gradient_at_adapted(theta):
        params = unflatten(tf.constant(theta))
        adapted = module.adapt(params, support_x, support_y, INNER_LR, 1, first_order=True)
        adapted_flat = tf.concat([tf.reshape(p, [-1]) for p in adapted.values()], 0)  # θ' as a fresh point
        with tf.GradientTape() as tape:
            tape.watch(adapted_flat)
            query_loss = module.loss(unflatten(adapted_flat), query_x, query_y)
        return tape.gradient(query_loss, adapted_flat).numpy()

    return value, meta_gradient, query_gradient_at_adapted


def relative_error(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_second_order_matches_finite_differences_and_first_order_does_not(framework):
    weights = canonical_weights()
    theta = np.concatenate([weights[name].reshape(-1) for name in weights])
    value, meta_gradient, query_gradient_at_adapted = flat_objective(framework, weights)
    # 300 of the 1,761 coordinates (all of them take 2 x 1,761 evaluations of J: too slow here),
    # drawn from every layer; central differences err by ~h² J''' + eps J / h, ~1e-10 here.
    coordinates, h = np.sort(np.random.default_rng(0).choice(theta.size, 300, replace=False)), 1e-5
    finite_differences = np.empty(coordinates.size)
    for j, i in enumerate(coordinates):
        step = np.zeros_like(theta)
        step[i] = h
        finite_differences[j] = (value(theta + step) - value(theta - step)) / (2 * h)

    second, first = meta_gradient(theta, first_order=False), meta_gradient(theta, first_order=True)
    second_error = relative_error(second[coordinates], finite_differences)
    first_error = relative_error(first[coordinates], finite_differences)
    print(f"{framework}: relative error against finite differences: second order {second_error:.1e}, "
          f"first order {first_error:.1e}")
    assert second_error < 1e-6, "second-order MAML lost the Hessian term"
    # The dropped term, -α ∇²L_S(θ) ∇_θ' L_Q(θ'), is over half the meta-gradient here (0.62 measured).
    assert first_error > 0.1, "first-order MAML kept the Hessian term"
    assert_close(query_gradient_at_adapted(theta), first, 1e-12, "first-order meta-gradient vs ∇L_Q(θ')")


# ------------------------------------------------------------------------------ validation

@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_zero_inner_steps_is_a_clear_error(framework):
    module, weights, batch = MODULES[framework], canonical_weights(), meta_batch()
    model = build(framework, weights)
    support_x, support_y = batch.support_x[0], batch.support_y[0]
    if framework == "torch":
        support_x, support_y = torch.from_numpy(support_x), torch.from_numpy(support_y)
    with pytest.raises(ConfigError, match="inner_steps >= 1"):
        module.adapt(model.params(), support_x, support_y, INNER_LR, inner_steps=0)
    with pytest.raises(ConfigError, match="inner_steps >= 1"):
        module.MAML(model, INNER_LR, inner_steps=0)
