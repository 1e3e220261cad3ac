"""Checks for exercise 2. Run them with

    python -m common.exercises check chapters/model_based/exercises/02_dilated_causal_conv
"""

import math

import numpy as np

# The sequence 1, 2, 3, 4, 5 (one channel) and a kernel whose two taps are easy to tell apart:
# y_t = 1 * x_{t-R} + 10 * x_t.
BY_HAND = np.arange(1.0, 6.0)[:, None]
TAPS = np.array([[[1.0]], [[10.0]]])


def call_conv(module, x, kernel, bias, dilation):
    result = module.causal_conv1d(np.asarray(x, float), np.asarray(kernel, float), np.asarray(bias, float), dilation)
    assert result is not None, "causal_conv1d should return the (T, C_out) outputs; it returned None"
    result = np.asarray(result)
    expected = (len(x), np.shape(kernel)[2])
    assert result.shape == expected, (
        f"causal_conv1d of a sequence of {len(x)} steps with a kernel of shape {np.shape(kernel)} should return "
        f"one row per step and one column per output channel, {expected}; got {result.shape}"
        + (" (padding added at both ends, or a 'valid' convolution?)" if result.shape[0] != len(x) else ""))
    return result


def diagnose_conv(x, dilation, result):
    """Name the usual mistake that gives exactly ``result`` for the BY_HAND sequence and TAPS."""
    x = x[:, 0]
    before = np.concatenate([np.zeros(dilation), x])[:len(x)]
    after = np.concatenate([x, np.zeros(dilation)])[dilation:]
    mistakes = [
        ("the taps swapped (x_t times kernel[0], x_{t-R} times kernel[1])", "kernel[0] multiplies the past",
         10 * before + x),
        ("reading x_{t+R}, a later step: the zeros were padded after the sequence", "pad before it", before * 0 + after + 10 * x),
        ("reading x_{t-1}: the dilation was ignored", "shift by R steps", np.concatenate([[0], x])[:len(x)] + 10 * x),
        ("a circular shift (np.roll): the first steps read the last ones", "pad with zeros instead",
         np.roll(x, dilation) + 10 * x),
    ]
    for what, advice, wrong in mistakes:
        if np.allclose(result[:, 0], wrong):
            return f" Your numbers are {what}; {advice}."
    return ""


def check_by_hand(module):
    for dilation, expected in ((1, [10, 21, 32, 43, 54]), (2, [10, 20, 31, 42, 53]), (4, [10, 20, 30, 40, 51])):
        result = call_conv(module, BY_HAND, TAPS, [0.0], dilation)
        assert np.allclose(result[:, 0], expected), (
            f"with y_t = 1 * x_(t-{dilation}) + 10 * x_t on the sequence 1, 2, 3, 4, 5 (zeros before it) the outputs "
            f"are {expected}; got {np.round(result[:, 0], 4).tolist()}.{diagnose_conv(BY_HAND, dilation, result)}")
    result = call_conv(module, BY_HAND, TAPS, [0.5], 1)
    assert np.allclose(result[:, 0], np.array([10, 21, 32, 43, 54]) + 0.5), (
        f"the bias is added to every output: expected {[10.5, 21.5, 32.5, 43.5, 54.5]}, got {result[:, 0].tolist()}")


def check_no_output_reads_a_later_step(module):
    rng = np.random.default_rng(0)
    x, kernel, bias = rng.normal(size=(7, 3)), rng.normal(size=(2, 3, 4)), rng.normal(size=4)
    for dilation in (1, 2, 4):
        before = call_conv(module, x, kernel, bias, dilation)
        for t in range(7):
            changed = x.copy()
            changed[t] += 1.0
            after = call_conv(module, changed, kernel, bias, dilation)
            moved = np.flatnonzero(~np.isclose(before, after).all(axis=1)).tolist()
            expected = [s for s in (t, t + dilation) if s < 7]
            assert moved == expected, (
                f"changing step {t} of a 7-step sequence (dilation {dilation}) should change the outputs at "
                f"steps {expected} (t and t + R) and no other; it changed {moved}"
                + (" — a causal convolution never reads a later step" if any(s < t for s in moved) else ""))


def random_block(rng, channels, filters, dilation):
    return (rng.normal(size=(2, channels, filters)) / 3, rng.normal(size=filters) / 3,
            rng.normal(size=(2, channels, filters)) / 3, rng.normal(size=filters) / 3, dilation)


def check_dense_block(module):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 4))
    f_kernel, f_bias, g_kernel, g_bias, dilation = random_block(rng, 4, 3, 2)
    result = module.dense_block(x, f_kernel, f_bias, g_kernel, g_bias, dilation)
    assert result is not None, "dense_block should return concat(x, activations); it returned None"
    result = np.asarray(result)
    assert result.shape == (6, 7), (
        f"a dense block concatenates its D = 3 new channels to the input's 4: shape (6, 7), got {result.shape}"
        + (" (the input is missing: concatenate it)" if result.shape == (6, 3) else ""))
    assert np.allclose(result[:, :4], x), "the first columns of a dense block's output are its input, unchanged"
    f = call_conv(module, x, f_kernel, f_bias, dilation)
    g = call_conv(module, x, g_kernel, g_bias, dilation)
    expected = np.tanh(f) / (1 + np.exp(-g))
    hint = ""
    if np.allclose(result[:, 4:], np.tanh(g) / (1 + np.exp(-f))):
        hint = " Your numbers are tanh(gate) * sigmoid(filter): the tanh goes on the filter f, the sigmoid on the gate g."
    elif np.allclose(result[:, 4:], np.tanh(f)):
        hint = " The gate is missing: multiply tanh(f) by sigmoid(g)."
    assert np.allclose(result[:, 4:], expected), (
        f"the new channels are tanh(f) * sigmoid(g), f and g the causal convolutions with the filter and the gate "
        f"kernels; they differ by up to {np.abs(result[:, 4:] - expected).max():.3g}.{hint}")


def check_dilations(module):
    for length, expected in ((2, [2]), (3, [2, 4]), (6, [2, 4, 8]), (16, [2, 4, 8, 16]), (101, [2, 4, 8, 16, 32, 64, 128])):
        result = module.tc_dilations(length)
        assert result is not None and [int(d) for d in result] == expected, (
            f"a TC block over T = {length} positions has ceil(log2 {length}) = {math.ceil(math.log2(length))} dense "
            f"blocks with dilations {expected}; got {result}")


def check_tc_block_sees_the_whole_sequence(module):
    rng = np.random.default_rng(2)
    length, channels, filters = 9, 3, 2
    blocks, width = [], channels
    for dilation in module.tc_dilations(length):
        blocks.append(random_block(rng, width, filters, dilation))
        width += filters
    x = rng.normal(size=(length, channels))
    result = np.asarray(module.tc_block(x, blocks))
    assert result.shape == (length, width), (
        f"{len(blocks)} dense blocks of D = {filters} on {channels} channels give {width} channels; got shape {result.shape}")
    changed = x.copy()
    changed[0] += 1.0
    moved = ~np.isclose(result, np.asarray(module.tc_block(changed, blocks))).all(axis=1)
    assert moved[-1], (f"after a TC block over T = {length} steps the last step should depend on the first "
                       f"(the dilations reach back 2 + 4 + 8 + 16 steps); it does not")


def check_matches_the_chapters_snail(module):
    # An unwritten starter stops on the next line, before the slow import of torch.
    call_conv(module, BY_HAND, TAPS, [0.0], 1)
    import torch

    from chapters.model_based import snail_torch

    torch.manual_seed(0)
    block = snail_torch.TCBlock(5, 11, 4).double()
    x = torch.randn(11, 5, dtype=torch.float64)
    with torch.no_grad():
        expected = block(x, x[:1])[0].numpy()  # the support sequence's rows
        conv = block.blocks[0].filter
        expected_conv = conv(x, x[:1])[0].numpy()
    parameters = [(b.filter.kernel.detach().numpy(), b.filter.bias.detach().numpy(), b.gate.kernel.detach().numpy(),
                   b.gate.bias.detach().numpy(), b.filter.dilation) for b in block.blocks]
    result = call_conv(module, x.numpy(), *parameters[0][:2], parameters[0][4])
    assert np.allclose(result, expected_conv, atol=1e-10), (
        f"your causal_conv1d differs from chapters.model_based.snail_torch.CausalConv1d by up to "
        f"{np.abs(result - expected_conv).max():.3g}")
    result = np.asarray(module.tc_block(x.numpy(), parameters))
    assert result.shape == expected.shape and np.allclose(result, expected, atol=1e-10), (
        f"your tc_block differs from chapters.model_based.snail_torch.TCBlock(5, 11, 4) (dilations 2, 4, 8, 16) "
        f"on a random 11-step sequence" + (f" by up to {np.abs(result - expected).max():.3g}"
                                          if result.shape == expected.shape else f": shapes {result.shape}, {expected.shape}"))
