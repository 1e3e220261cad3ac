"""Checks for exercise 5. Run them with

    python -m common.exercises check chapters/metric/exercises/05_adam_steps
"""

import numpy as np

LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-8


def call(module, param, grad, m, v, t):
    arrays = [np.array(x, dtype=np.float64) for x in (param, grad, m, v)]
    result = module.adam_step(*arrays, t)
    assert isinstance(result, tuple) and len(result) == 3, (
        f"adam_step should return a tuple (new_param, new_m, new_v); got {type(result).__name__}"
        + (f" of length {len(result)}" if isinstance(result, tuple) else ""))
    result = tuple(np.asarray(x, dtype=np.float64) for x in result)
    for name, x in zip(("new_param", "new_m", "new_v"), result):
        assert x.shape == arrays[0].shape, f"{name} should have param's shape {arrays[0].shape}; got {x.shape}"
    return result


def mistakes(param, grad, m, v, t):
    """What the usual wrong answers return for new_param: (what, advice, value)."""
    param, grad, m, v = (np.asarray(x, np.float64) for x in (param, grad, m, v))
    m1, v1 = B1 * m + (1 - B1) * grad, B2 * v + (1 - B2) * grad ** 2
    c1, c2 = 1 - B1 ** t, 1 - B2 ** t
    with np.errstate(all="ignore"):
        return [
            ("Adam without the bias correction", "divide m by 1 - beta1**t and v by 1 - beta2**t before the "
             "step: the means start at 0, and uncorrected the first step is sqrt(1000)/10 = 3.2 times too long",
             param - LR * m1 / (np.sqrt(v1) + EPS)),
            ("Adam with only m corrected", "divide v by 1 - beta2**t too", param - LR * (m1 / c1) / (np.sqrt(v1) + EPS)),
            ("Adam with only v corrected", "divide m by 1 - beta1**t too", param - LR * m1 / (np.sqrt(v1 / c2) + EPS)),
            ("plain gradient descent, param - lr * grad", "Adam divides the (averaged) gradient by the root of "
             "its averaged square", param - LR * grad),
            ("the step without the square root", "divide by sqrt(v_hat) + eps, not v_hat + eps",
             param - LR * (m1 / c1) / (v1 / c2 + EPS)),
            ("a step uphill", "subtract the step: param - lr * m_hat / (sqrt(v_hat) + eps)",
             param + LR * (m1 / c1) / (np.sqrt(v1 / c2) + EPS)),
            ("the moments with beta and 1 - beta swapped", "m = beta1 * m + (1 - beta1) * grad keeps 90% of the "
             "old mean", param - LR * ((1 - B1) * m + B1 * grad) / c1 / (np.sqrt(((1 - B2) * v + B2 * grad ** 2) / c2) + EPS)),
        ]


def diagnose(param, grad, m, v, t, new_param):
    for what, advice, wrong in mistakes(param, grad, m, v, t):
        if np.allclose(new_param, wrong, rtol=1e-9, atol=1e-15):
            return f" Your new_param is {what}; {advice}."
    return ""


def check_the_first_step_moves_every_weight_by_about_lr(module):
    # At t = 1 the bias correction gives m_hat = g and v_hat = g^2: the step is lr * g / (|g| + eps),
    # lr times the gradient's sign, whether the gradient is 1e-6 or 1000.
    param, grad = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1e-6, 0.5, -3.0, 1000.0])
    zeros = np.zeros(4)
    new_param, _, _ = call(module, param, grad, zeros, zeros, 1)
    expected = param - LR * grad / (np.abs(grad) + EPS)
    assert np.allclose(new_param, expected, rtol=1e-12, atol=1e-15), (
        f"the first step with gradients {grad.tolist()} should move the weights {param.tolist()} by "
        f"-lr * g / (|g| + eps), about lr = 0.001 against each gradient's sign, to {expected.tolist()}; got "
        f"{new_param.tolist()}.{diagnose(param, grad, zeros, zeros, 1, new_param)}")


def check_two_steps_by_hand(module):
    # A scalar weight at 0 with gradient 2, then -1.
    # Step 1: m = 0.1 * 2 = 0.2, v = 0.001 * 4 = 0.004; m_hat = 0.2 / 0.1 = 2, v_hat = 0.004 / 0.001 = 4;
    #         param = 0 - 0.001 * 2 / (2 + 1e-8).
    # Step 2: m = 0.9 * 0.2 + 0.1 * (-1) = 0.08, v = 0.999 * 0.004 + 0.001 * 1 = 0.004996;
    #         m_hat = 0.08 / (1 - 0.81), v_hat = 0.004996 / (1 - 0.998001).
    p1_expected = -LR * 2 / (2 + EPS)
    m_hat, v_hat = 0.08 / (1 - 0.9 ** 2), 0.004996 / (1 - 0.999 ** 2)
    p2_expected = p1_expected - LR * m_hat / (np.sqrt(v_hat) + EPS)
    p1, m1, v1 = call(module, [0.0], [2.0], [0.0], [0.0], 1)
    assert np.allclose([m1[0], v1[0]], [0.2, 0.004], rtol=1e-12), (
        f"after a first gradient of 2 the moments should be m = (1 - 0.9) * 2 = 0.2 and v = (1 - 0.999) * 4 = "
        f"0.004 (before any bias correction: return m and v, not m_hat and v_hat); got m = {m1[0]}, v = {v1[0]}")
    assert np.isclose(p1[0], p1_expected, rtol=1e-12), (
        f"after a first gradient of 2 the weight should go from 0 to {p1_expected:.10f}; got {p1[0]:.10f}."
        f"{diagnose([0.0], [2.0], [0.0], [0.0], 1, p1)}")
    p2, m2, v2 = call(module, p1, [-1.0], m1, v1, 2)
    assert np.allclose([m2[0], v2[0]], [0.08, 0.004996], rtol=1e-12), (
        f"after gradients 2 then -1 the moments should be m = 0.9 * 0.2 + 0.1 * (-1) = 0.08 and "
        f"v = 0.999 * 0.004 + 0.001 * 1 = 0.004996; got m = {m2[0]}, v = {v2[0]}")
    assert np.isclose(p2[0], p2_expected, rtol=1e-12), (
        f"the second step (t = 2: m_hat = 0.08 / 0.19, v_hat = 0.004996 / 0.001999) should take the weight "
        f"to {p2_expected:.10f}; got {p2[0]:.10f}.{diagnose(p1, [-1.0], m1, v1, 2, p2)}")


def check_the_inputs_are_left_alone(module):
    param, grad, m, v = np.ones(3), np.array([0.1, -0.2, 0.3]), np.full(3, 0.01), np.full(3, 1e-4)
    copies = [x.copy() for x in (param, grad, m, v)]
    module.adam_step(param, grad, m, v, 3)
    for name, before, after in zip(("param", "grad", "m", "v"), copies, (param, grad, m, v)):
        assert np.array_equal(before, after), (
            f"adam_step changed its input {name} in place (from {before.tolist()} to {after.tolist()}); "
            f"compute new arrays (m = beta1 * m + ..., not m *= beta1)")


def check_matches_torch_adam(module):
    # An unwritten starter stops on the next line, before the slow import of torch.
    call(module, [0.0], [1.0], [0.0], [0.0], 1)
    import torch

    rng = np.random.default_rng(0)
    weight = torch.tensor(rng.normal(size=(4, 3)), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([weight], lr=LR, betas=(B1, B2), eps=EPS)
    param, m, v = weight.detach().numpy().copy(), np.zeros((4, 3)), np.zeros((4, 3))
    for t in range(1, 7):
        grad = rng.normal(scale=10.0 ** rng.integers(-6, 3), size=(4, 3))
        weight.grad = torch.from_numpy(grad.copy())
        optimizer.step()
        new_param, m, v = call(module, param, grad, m, v, t)
        assert np.allclose(new_param, weight.detach().numpy(), rtol=1e-12, atol=1e-15), (
            f"after step {t} of random gradients, torch.optim.Adam (lr {LR}, betas ({B1}, {B2}), eps {EPS}) has "
            f"the weights {np.round(weight.detach().numpy(), 8).tolist()}; yours "
            f"{np.round(new_param, 8).tolist()}.{diagnose(param, grad, m, v, t, new_param)}")
        param = new_param


def check_a_flipped_tiny_gradient_moves_a_whole_step(module):
    # Two runs whose gradients differ by 2e-6, in the sign of one tiny entry, as rounding can make
    # them: plain gradient descent would put the weights 2e-9 apart, Adam puts them ~2 lr apart.
    zeros = np.zeros(2)
    plus, _, _ = call(module, zeros, [1e-6, 1.0], zeros, zeros, 1)
    minus, _, _ = call(module, zeros, [-1e-6, 1.0], zeros, zeros, 1)
    gap = abs(plus[0] - minus[0])
    expected = 2 * LR * 1e-6 / (1e-6 + EPS)
    assert np.isclose(gap, expected, rtol=1e-9), (
        f"gradients +1e-6 and -1e-6 should move a weight by -lr * g / (|g| + eps) each, {expected:.6g} "
        f"apart in all; yours are {gap:.6g} apart.")
