"""Reptile's inner loop on mini-batches of the support set (Nichol et al. step through mini-batches
of 10 examples of a 10-shot task), written once for the three frameworks: it only slices the
support set and calls the framework's own ``adapt`` (``maml_<framework>.adapt``), or its own
``support_gradients`` for the Adam steps, one step at a time.

Step i uses the support rows [i·b, (i+1)·b) modulo the support size. Fed meta-batches whose support
sets are in random order (``common.episodes.MetaBatches(..., shuffle_support=True)``), each
mini-batch is a random sample without replacement, and the same one in every framework.

**Nichol et al.'s inner optimizer** is Adam with β1 = 0 (``tf.train.AdamOptimizer(lr, beta1=0)``
in their code), and its state is never reset: Reptile restores the network's weights before each
task, but the optimizer's second moments and step count carry on from task to task and from one
meta-iteration to the next. :func:`adam_step` is that rule, written with arithmetic operators only,
so the same lines run on PyTorch and TensorFlow tensors.
"""

from __future__ import annotations

from common.errors import ConfigError


def check_inner_batch(inner_batch: int | None) -> None:
    """Reptile's mini-batch size: a positive whole number, or None (the whole support set)."""
    if inner_batch is not None and (isinstance(inner_batch, bool) or not isinstance(inner_batch, int)
                                    or inner_batch < 1):
        raise ConfigError(f"inner_batch (--inner-batch) must be at least 1, or None for the whole support set; "
                          f"got {inner_batch!r}")


def support_rows(inner_batch: int, rows: int) -> int:
    """``rows``, the support size, once it is a multiple of ``inner_batch`` (every mini-batch full)."""
    if rows % inner_batch:
        raise ConfigError(f"--inner-batch {inner_batch} does not divide the {rows} support examples of a task; "
                          f"choose a divisor of {rows}")
    return rows


def minibatches(support_x, support_y, inner_steps: int, inner_batch: int | None):
    """The (x, y) of each of the ``inner_steps`` steps: rows [i·b, (i+1)·b) modulo the support
    size for step i (b = ``inner_batch``), or the whole support set every time when None."""
    if inner_batch is None:
        for _ in range(inner_steps):
            yield support_x, support_y
        return
    rows = support_rows(inner_batch, support_x.shape[0])
    for i in range(inner_steps):
        start = i * inner_batch % rows
        yield support_x[start:start + inner_batch], support_y[start:start + inner_batch]


def adapt_on_minibatches(adapt, model, params: dict, support_x, support_y, inner_lr, inner_steps: int,
                         inner_batch: int | None) -> dict:
    """θ'_t: ``inner_steps`` first-order SGD steps from ``params`` with the framework's ``adapt``,
    one per mini-batch of :func:`minibatches`."""
    for x, y in minibatches(support_x, support_y, inner_steps, inner_batch):
        params = adapt(model, params, x, y, inner_lr, 1, first_order=True)
    return params


# tf.compat.v1.train.AdamOptimizer's defaults, which Nichol et al. keep (beta1 = 0 aside).
ADAM_BETA2, ADAM_EPSILON = 0.999, 1e-8
INNER_OPTIMIZERS = ("sgd", "adam")


def check_inner_optimizer(name: str) -> None:
    if name not in INNER_OPTIMIZERS:
        raise ConfigError(f"inner_optimizer (--inner-optimizer) must be one of {', '.join(INNER_OPTIMIZERS)}; "
                          f"got {name!r}")


def adam_step(params: dict, gradients: dict, moments: dict, step, inner_lr):
    """One Adam step with β1 = 0, in the form of TensorFlow's (and Keras') Adam, ε outside the
    bias correction:

        t ← t + 1,   v ← β2 v + (1 − β2) g²,   θ ← θ − α √(1 − β2^t) g / (√v + ε).

    With β1 = 0 the first moment is the gradient itself, so only v and t are state. Dividing by
    √v makes the step about α in every coordinate whatever the gradient's scale: this is why
    Nichol et al.'s α = 0.001 is not comparable to a plain gradient-descent rate. Returns
    (θ, v, t), all new values."""
    step = step + 1
    rate = inner_lr * (1 - ADAM_BETA2 ** step) ** 0.5
    moments = {name: ADAM_BETA2 * moments[name] + (1 - ADAM_BETA2) * g * g for name, g in gradients.items()}
    params = {name: p - rate * gradients[name] / (moments[name] ** 0.5 + ADAM_EPSILON) for name, p in params.items()}
    return params, moments, step


def adam_on_minibatches(support_gradients, model, params: dict, support_x, support_y, inner_lr,
                        inner_steps: int, inner_batch: int | None, moments: dict, step):
    """θ'_t by ``inner_steps`` Adam steps (:func:`adam_step`) from ``params``, one per mini-batch,
    continuing the optimizer state (v, t) given; returns (θ'_t, v, t) to carry to the next task.
    ``support_gradients(model, params, x, y)`` is the framework's ∇_θ L, a dict like ``params``."""
    for x, y in minibatches(support_x, support_y, inner_steps, inner_batch):
        params, moments, step = adam_step(params, support_gradients(model, params, x, y), moments, step, inner_lr)
    return params, moments, step


def adapt_task(adapt, support_gradients, model, inner_optimizer: str, params: dict, support_x, support_y,
               inner_lr, inner_steps: int, inner_batch: int | None, moments: dict, step):
    """θ'_t from ``params`` with Reptile's inner optimizer, ``"sgd"`` (the framework's ``adapt``)
    or ``"adam"`` (its ``support_gradients``); returns (θ'_t, v, t), where (v, t) is the inner
    Adam's state after it, passed through unchanged for SGD."""
    if inner_optimizer == "sgd":
        return (adapt_on_minibatches(adapt, model, params, support_x, support_y, inner_lr, inner_steps,
                                     inner_batch), moments, step)
    return adam_on_minibatches(support_gradients, model, params, support_x, support_y, inner_lr, inner_steps,
                               inner_batch, moments, step)
