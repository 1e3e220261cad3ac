"""Reptile's inner loop on mini-batches of the support set (Nichol et al. step through mini-batches
of 10 examples of a 10-shot task), written once for the three frameworks: it only slices the
support set and calls the framework's own ``adapt`` (``maml_<framework>.adapt``) one step at a time.

Step i uses the support rows [i·b, (i+1)·b) modulo the support size. Fed meta-batches whose support
sets are in random order (``common.episodes.MetaBatches(..., shuffle_support=True)``), each
mini-batch is a random sample without replacement, and the same one in every framework.
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


def adapt_on_minibatches(adapt, model, params: dict, support_x, support_y, inner_lr, inner_steps: int,
                         inner_batch: int | None) -> dict:
    """θ'_t: ``inner_steps`` first-order SGD steps from ``params`` with the framework's ``adapt``,
    step i on the support rows [i·b, (i+1)·b) modulo the support size (b = ``inner_batch``; the
    whole support set at every step when None)."""
    if inner_batch is None:
        return adapt(model, params, support_x, support_y, inner_lr, inner_steps, first_order=True)
    rows = support_rows(inner_batch, support_x.shape[0])
    for i in range(inner_steps):
        start = i * inner_batch % rows
        batch = slice(start, start + inner_batch)
        params = adapt(model, params, support_x[batch], support_y[batch], inner_lr, 1, first_order=True)
    return params
