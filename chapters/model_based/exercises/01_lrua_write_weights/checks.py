"""Checks for exercise 1. Run them with

    python -m common.exercises check chapters/model_based/exercises/01_lrua_write_weights
"""

import numpy as np

# Hand-worked: one episode (B = 1), five rows. Usages 0.5, 0.1, 0.1, 0.9, 0.0: the two least used
# are row 4 (0.0) and, of the tied rows 1 and 2, row 1 (the lower index).
HAND_USAGE = np.array([[0.5, 0.1, 0.1, 0.9, 0.0]])
HAND_LU = np.array([[0.0, 1.0, 0.0, 0.0, 1.0]])
HAND_LEAST = np.array([[0.0, 0.0, 0.0, 0.0, 1.0]])


def as_array(result, name, shape):
    assert result is not None, f"{name} returned None; return the array"
    result = np.asarray(result, dtype=float)
    assert result.shape == shape, f"{name} should return shape {shape}; got {result.shape}"
    return result


def call_least_used(module, usage, n):
    result = module.least_used(usage.copy(), n)
    assert isinstance(result, tuple) and len(result) == 2, "least_used should return a pair (w_lu, least)"
    return as_array(result[0], "least_used's w_lu", usage.shape), as_array(result[1], "least_used's least", usage.shape)


def check_least_used_by_hand(module):
    w_lu, least = call_least_used(module, HAND_USAGE, 2)
    if np.array_equal(w_lu, [[1.0, 0.0, 0.0, 1.0, 0.0]]):
        raise AssertionError("w_lu marks the two *largest* usages; LRUA writes to the least used rows")
    if np.array_equal(w_lu, [[0.0, 0.0, 1.0, 0.0, 1.0]]):
        raise AssertionError("rows 1 and 2 have the same usage 0.1: the lower index (row 1) counts as less used")
    assert np.array_equal(w_lu, HAND_LU), f"for usage {HAND_USAGE[0]} and n=2, w_lu should be {HAND_LU[0]}; got {w_lu[0]}"
    assert np.array_equal(least, HAND_LEAST), f"the least-used row is row 4 (usage 0.0): expected {HAND_LEAST[0]}; got {least[0]}"


def check_least_used_at_the_start(module):
    """Every usage is 0 when an episode starts: the ties rule sends the first writes to rows 0..n-1."""
    w_lu, least = call_least_used(module, np.zeros((2, 6)), 3)
    assert np.array_equal(w_lu, [[1, 1, 1, 0, 0, 0]] * 2), (
        f"with all usages equal, w_lu should mark rows 0, 1, 2 (the lower indices); got {w_lu[0]}")
    assert np.array_equal(least, [[1, 0, 0, 0, 0, 0]] * 2), f"with all usages equal, the least-used row is row 0; got {least[0]}"


def check_write_weights_by_hand(module):
    previous_read = np.array([[[0.7, 0.2, 0.1, 0.0]]])  # one head
    w_lu = np.array([[0.0, 0.0, 0.0, 1.0]])
    result = as_array(module.write_weights(previous_read.copy(), w_lu.copy(), np.array([[0.25]])), "write_weights",
                      (1, 1, 4))
    expected = [0.25 * 0.7, 0.25 * 0.2, 0.25 * 0.1, 0.75]
    swapped = [0.75 * 0.7, 0.75 * 0.2, 0.75 * 0.1, 0.25]
    if np.allclose(result[0, 0], swapped):
        raise AssertionError("the gate's two sides are swapped: σ(α) multiplies the previous *read* weights, "
                             "1 - σ(α) the least-used ones")
    assert np.allclose(result[0, 0], expected), f"with gate 0.25 expected {expected}; got {result[0, 0].tolist()}"


def check_next_usage_by_hand(module):
    usage = np.array([[1.0, 0.0]])
    reads = np.array([[[0.5, 0.5], [1.0, 0.0]]])   # two heads
    writes = np.array([[[0.0, 1.0], [0.0, 0.5]]])
    result = as_array(module.next_usage(usage.copy(), reads, writes, 0.5), "next_usage", (1, 2))
    expected = [0.5 * 1.0 + 1.5 + 0.0, 0.5 * 0.0 + 0.5 + 1.5]
    if np.allclose(result[0], [1.0 + 1.5, 0.0 + 2.0]):
        raise AssertionError("the old usage is not decayed: multiply it by gamma")
    if np.allclose(result[0], [0.5 + 0.5 + 0.0, 0.5 + 1.0]) or np.allclose(result[0], [0.5 + 1.0, 0.0 + 0.5 + 0.5]):
        raise AssertionError("only one head is counted: sum the read and write weights over the heads (axis 1)")
    assert np.allclose(result[0], expected), f"expected {expected}; got {result[0].tolist()}"


def check_against_the_chapter(module):
    """Random batches against ``chapters/model_based/mann_torch.py``."""
    import torch

    from chapters.model_based import mann_torch

    rng = np.random.default_rng(0)
    usage = rng.integers(0, 4, (8, 16)).astype(float) / 2  # many ties
    w_lu, least = call_least_used(module, usage, 4)
    expected_lu, expected_least = (t.numpy() for t in mann_torch.least_used(torch.from_numpy(usage), 4))
    assert np.array_equal(w_lu, expected_lu), "w_lu differs from the chapter's on a random batch with ties"
    assert np.array_equal(least, expected_least), "least differs from the chapter's on a random batch with ties"
    previous_read = rng.dirichlet(np.ones(16), (8, 4))
    gate = rng.random((8, 4))
    writes = as_array(module.write_weights(previous_read, w_lu, gate), "write_weights", (8, 4, 16))
    expected = mann_torch.write_weights(*(torch.from_numpy(a) for a in (previous_read, expected_lu, gate))).numpy()
    assert np.allclose(writes, expected), "write_weights differs from the chapter's on a random batch"
    reads = rng.dirichlet(np.ones(16), (8, 4))
    assert np.allclose(module.next_usage(usage, reads, writes, 0.95), 0.95 * usage + reads.sum(1) + writes.sum(1)), \
        "next_usage differs from w^u = γ w^u + Σ w^r + Σ w^w on a random batch"
