"""Checks for exercise 3. Run them with

    python -m common.exercises check chapters/model_based/exercises/03_causal_attention_mask
"""

import numpy as np


def softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def call_attention(module, x, wq, wk, wv):
    result = module.causal_attention(*(np.asarray(a, float) for a in (x, wq, wk, wv)))
    assert result is not None and len(result) == 2, (
        "causal_attention should return two arrays, the read (T, V) and the attention weights (T, T)")
    read, weights = map(np.asarray, result)
    T, V = len(x), np.shape(wv)[1]
    assert read.shape == (T, V) and weights.shape == (T, T), (
        f"for a {T}-step sequence and {V}-dimensional values the read is ({T}, {V}) and the weights ({T}, {T}); "
        f"got {read.shape} and {weights.shape}")
    return read, weights


def diagnose(x, wq, wk, weights):
    """Name the usual mistake that gives exactly ``weights``, if it is one of them."""
    logits = (x @ wq) @ (x @ wk).T / np.sqrt(wk.shape[1])
    lower = np.tril(np.ones(logits.shape, bool))
    mistakes = [
        ("the mask applied after the softmax", "replace the masked logits by -inf before it",
         np.where(lower, softmax(logits), 0.0)),
        ("masked logits set to 0 instead of -inf", "exp(0) = 1 still gives the future a weight",
         softmax(np.where(lower, logits, 0.0))),
        ("the transposed mask: each position reads the later ones", "keep s <= t (np.tril)",
         softmax(np.where(lower.T, logits, -np.inf))),
        ("without the mask", "every position must read only itself and the earlier ones", softmax(logits)),
        ("without the 1 / sqrt(K) scaling", "divide the dot products by sqrt(key size)",
         softmax(np.where(lower, logits * np.sqrt(wk.shape[1]), -np.inf))),
        ("a softmax over each column (axis 0)", "normalise each row, the weights position t spreads",
         np.where(lower, np.exp(logits), 0) / np.where(lower, np.exp(logits), 0).sum(0, keepdims=True)),
    ]
    for what, advice, wrong in mistakes:
        if np.allclose(weights, wrong, atol=1e-8):
            return f" Your weights are {what}; {advice}."
    return ""


def random_case(seed, T=5, C=4, K=3, V=2):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(T, C)), rng.normal(size=(C, K)), rng.normal(size=(C, K)), rng.normal(size=(C, V))


def check_mask(module):
    mask = module.causal_mask(3)
    assert mask is not None, "causal_mask should return the (T, T) boolean matrix; it returned None"
    mask = np.asarray(mask)
    expected = np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1]], bool)
    hint = " (transposed: row t is the reader, column s what it reads)" if np.array_equal(mask, expected.T) else ""
    hint += " (the diagonal: a position reads itself too)" if np.array_equal(mask, np.tril(expected, -1)) else ""
    assert mask.shape == (3, 3) and np.array_equal(mask.astype(bool), expected), (
        f"causal_mask(3) is True where row t may read column s <= t: {expected.astype(int).tolist()}; "
        f"got {mask.astype(int).tolist()}{hint}")


def check_by_hand(module):
    # Two steps, one channel, K = 1: q = k = v = x = (1, 2). Step 0 reads only itself (weight 1);
    # step 1 has logits q_1 k_0 = 2 and q_1 k_1 = 4, so weights e^2, e^4 over their sum.
    x, one = np.array([[1.0], [2.0]]), np.array([[1.0]])
    read, weights = call_attention(module, x, one, one, one)
    expected = np.array([[1.0, 0.0], [np.exp(2) / (np.exp(2) + np.exp(4)), np.exp(4) / (np.exp(2) + np.exp(4))]])
    assert np.allclose(weights, expected), (
        f"with q = k = v = x = (1, 2) the first step reads only itself and the second has logits 2 and 4: "
        f"weights {np.round(expected, 4).tolist()}; got {np.round(weights, 4).tolist()}.{diagnose(x, one, one, weights)}")
    assert np.allclose(read[:, 0], expected @ x[:, 0]), (
        f"the read is the weighted sum of the values: {np.round(expected @ x[:, 0], 4).tolist()}; "
        f"got {np.round(read[:, 0], 4).tolist()}")


def check_rows_are_distributions_over_the_past(module):
    x, wq, wk, wv = random_case(0)
    _, weights = call_attention(module, x, wq, wk, wv)
    hint = diagnose(x, wq, wk, weights)
    assert np.all(np.isfinite(weights)), f"the weights should be finite; got {weights.tolist()}.{hint}"
    assert np.allclose(np.triu(weights, 1), 0), (
        f"position t must give no weight to a later position s > t; the weights above the diagonal are "
        f"{np.round(np.triu(weights, 1), 3).tolist()}.{hint}")
    assert np.allclose(weights.sum(axis=1), 1), (
        f"each position spreads one unit of attention over itself and the earlier positions: every row sums "
        f"to 1; the rows sum to {np.round(weights.sum(axis=1), 4).tolist()}.{hint}")
    expected = softmax(np.where(np.tril(np.ones((5, 5), bool)), (x @ wq) @ (x @ wk).T / np.sqrt(3), -np.inf))
    assert np.allclose(weights, expected), (
        f"the weights differ from softmax(q_t . k_s / sqrt(K)) over s <= t by up to "
        f"{np.abs(weights - expected).max():.3g}.{hint}")


def check_no_position_reads_a_later_one(module):
    x, wq, wk, wv = random_case(1)
    read, _ = call_attention(module, x, wq, wk, wv)
    for t in range(len(x)):
        changed = x.copy()
        changed[t] += 1.0
        moved = np.flatnonzero(~np.isclose(read, call_attention(module, changed, wq, wk, wv)[0]).all(axis=1))
        assert moved.size == 0 or moved.min() >= t, (
            f"changing step {t} changed the read at steps {moved.tolist()}: a position may depend only on "
            f"itself and earlier steps")


def check_matches_the_chapters_snail(module):
    # An unwritten starter stops on the next line, before the slow import of torch.
    module.causal_mask(2)
    import torch

    from chapters.model_based import snail_torch

    torch.manual_seed(0)
    block = snail_torch.AttentionBlock(6, 4, 3).double()
    with torch.no_grad():
        for layer in (block.queries, block.keys, block.values):
            layer.bias.zero_()  # the exercise's attention has no biases
        x = torch.randn(7, 6, dtype=torch.float64)
        out, _, _ = block(x, x[:1])
    kernels = [layer.weight.detach().numpy().T for layer in (block.queries, block.keys, block.values)]
    read, _ = call_attention(module, x.numpy(), *kernels)
    expected = out[:, 6:].numpy()
    assert np.allclose(read, expected, atol=1e-10), (
        f"your read differs from the support sequence of chapters.model_based.snail_torch.AttentionBlock "
        f"by up to {np.abs(read - expected).max():.3g}")
