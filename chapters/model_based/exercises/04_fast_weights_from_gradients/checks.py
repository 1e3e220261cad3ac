"""Checks for exercise 4. Run them with

    python -m common.exercises check chapters/model_based/exercises/04_fast_weights_from_gradients
"""

import numpy as np

# Gradients you can preprocess by hand (k = 7, e^7 = 1096.6): a large one, a small one, one below
# e^-7 (9.1e-4), zero, and a negative one.
BY_HAND = np.array([1.0, -1e-3, 1e-4, 0.0, -2.0])
EXPECTED = np.array([[0.0, 1.0], [np.log(1e-3) / 7, -1.0], [-1.0, 1e-4 * np.exp(7)], [-1.0, 0.0],
                     [np.log(2.0) / 7, -1.0]])


def random_mlp(rng):
    sizes = [2, 20, 20, 1]
    kernels = [rng.normal(size=(a, b)) / np.sqrt(a) for a, b in zip(sizes, sizes[1:])]
    return kernels, [rng.normal(size=b) / 3 for b in sizes[1:]]


def call(module, name, *args):
    result = getattr(module, name)(*args)
    assert result is not None, f"{name} should return an array; it returned None"
    return np.asarray(result, dtype=float)


def diagnose_preprocess(result):
    """Name the usual mistake that gives exactly ``result`` for BY_HAND."""
    eps = np.finfo(np.float64).eps
    log = np.log(np.abs(BY_HAND) + eps)
    mistakes = [
        ("the log feature is not clamped at -1 (a zero gradient gives log(eps) / 7 = -5.2)", "use np.maximum(..., -1)",
         np.stack([log / 7, EXPECTED[:, 1]], -1)),
        ("the log feature is not divided by k", "divide it by k = 7", np.stack([np.maximum(log, -1), EXPECTED[:, 1]], -1)),
        ("the sign feature is not clipped to [-1, 1]", "use np.clip(g * e^k, -1, 1)",
         np.stack([EXPECTED[:, 0], BY_HAND * np.exp(7)], -1)),
        ("the two features are in the other order", "the log-size feature comes first", EXPECTED[:, ::-1]),
    ]
    for what, advice, wrong in mistakes:
        if result.shape == wrong.shape and np.allclose(result, wrong):
            return f" Your numbers have {what}; {advice}."
    return ""


def check_preprocess_by_hand(module):
    result = call(module, "preprocess", BY_HAND.copy(), 7.0)
    assert result.shape == (5, 2), (f"preprocess of 5 gradient coordinates should return (5, 2), two features per "
                                    f"coordinate on a new last axis; got {result.shape}")
    assert np.allclose(result, EXPECTED, atol=1e-9), (
        f"preprocess({BY_HAND.tolist()}) should be {np.round(EXPECTED, 4).tolist()}; got "
        f"{np.round(result, 4).tolist()}.{diagnose_preprocess(result)}")


def check_fast_weights_have_the_gradients_shape(module):
    rng = np.random.default_rng(0)
    kernels, biases = random_mlp(rng)
    gradient = rng.normal(size=(3, 3, 2, 4)) * 1e-3
    assert call(module, "preprocess", gradient, 7.0).shape == (3, 3, 2, 4, 2), (
        "preprocess of a (3, 3, 2, 4) conv kernel's gradient should be (3, 3, 2, 4, 2): the two features on a new last axis")
    result = call(module, "fast_weights", gradient, kernels, biases)
    assert result.shape == gradient.shape, (
        f"fast_weights of a {gradient.shape} gradient should be one fast weight per coordinate, {gradient.shape}; got "
        f"{result.shape}" + (" (drop the last axis of size 1)" if result.shape == gradient.shape + (1,) else ""))


def check_each_fast_weight_reads_its_own_coordinate(module):
    rng = np.random.default_rng(1)
    kernels, biases = random_mlp(rng)
    gradient = rng.normal(size=(4, 5)) * 1e-2
    before = call(module, "fast_weights", gradient, kernels, biases)
    changed = gradient.copy()
    changed[2, 3] = -changed[2, 3] * 50
    moved = np.argwhere(~np.isclose(before, call(module, "fast_weights", changed, kernels, biases))).tolist()
    assert moved == [[2, 3]], (
        f"changing gradient coordinate (2, 3) should change that fast weight alone (m acts on each coordinate on its "
        f"own); it changed {moved}")


def check_fast_weights_match_the_chapters_meta_learner(module):
    # An unwritten starter stops before the slow import of torch.
    rng = np.random.default_rng(2)
    kernels, biases = random_mlp(rng)
    gradient = rng.normal(size=(64, 5)) * np.logspace(-6, 0, 64)[:, None]
    result = call(module, "fast_weights", gradient, kernels, biases)
    import torch

    from chapters.model_based import metanet_torch
    mlp = metanet_torch.CoordinateMLP().double()
    with torch.no_grad():
        for parameter, value in zip([*mlp.kernels, *mlp.biases], [*kernels, *biases]):
            parameter.copy_(torch.from_numpy(value))
        expected = mlp(metanet_torch.preprocess(torch.from_numpy(gradient))).numpy()
    hint = ""
    relu_last = np.maximum(expected, 0)
    if np.allclose(result, relu_last) and not np.allclose(expected, relu_last):
        hint = " (the last layer has no ReLU: a fast weight may be negative)"
    assert np.allclose(result, expected, atol=1e-10), (
        f"your fast_weights differ from chapters.model_based.metanet_torch.CoordinateMLP on preprocess(gradient) by up "
        f"to {np.abs(result - expected).max():.3g}{hint}")


def check_augmented_dense(module):
    x = np.array([[1.0, 2.0]])
    slow, fast = np.array([[1.0], [-1.0]]), np.array([[-1.0], [1.0]])  # x W = -1, x W* = 1
    result = call(module, "augmented_dense", x, slow, fast)
    expected = [[1.0]]  # relu(-1) + relu(1)
    advice = ""
    if np.allclose(result, 0.0):
        advice = " You added the weights (or the pre-activations) before the ReLU: relu(x W + x W*) = relu(0) = 0."
    elif np.allclose(result, 2.0):
        advice = " The ReLUs are missing: x W + x W* would be 0, and |x W| + |x W*| is 2."
    assert result.shape == (1, 1) and np.allclose(result, expected), (
        f"with x W = -1 and x W* = 1 the augmented layer gives relu(-1) + relu(1) = 1; got {result.tolist()}.{advice}")
    rng = np.random.default_rng(3)
    x, slow, fast = rng.normal(size=(6, 5)), rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    expected = np.maximum(x @ slow, 0) + np.maximum(x @ fast, 0)
    assert np.allclose(call(module, "augmented_dense", x, slow, fast), expected), (
        "augmented_dense on a (6, 5) batch with (5, 4) kernels should be relu(x @ W) + relu(x @ W*)")
