"""Checks for exercise 2. Run them with

    python -m common.exercises check chapters/optimization/exercises/02_reptile_update
"""

import numpy as np

from chapters.optimization.exercises.tiny_mlp import one_thread

# Hand-worked meta-batch of two tasks, parameters "w" (2,) and "b" (1,), ε = 0.5:
#   θ = (w [1, 2], b [0]);  θ'_1 = (w [3, 2], b [1]),  θ'_2 = (w [1, 6], b [-3])
#   mean θ' = (w [2, 4], b [-1]);  θ + 0.5 (mean θ' − θ) = (w [1.5, 3], b [-0.5])
HAND_THETA = {"w": [1.0, 2.0], "b": [0.0]}
HAND_ADAPTED = [{"w": [3.0, 2.0], "b": [1.0]}, {"w": [1.0, 6.0], "b": [-3.0]}]
HAND_EPSILON = 0.5
HAND_EXPECTED = {"w": [1.5, 3.0], "b": [-0.5]}


def tensors(values):
    import torch

    return {name: torch.tensor(v, dtype=torch.float64) for name, v in values.items()}


def plain(params):
    return {name: np.round(p.detach().numpy(), 6).tolist() for name, p in params.items()}


def call_update(module, params, adapted, epsilon):
    import torch

    before = [{n: p.detach().clone() for n, p in d.items()} for d in [params, *adapted]]
    result = module.reptile_update(params, adapted, epsilon)
    assert result is not None, "reptile_update should return the new θ as a dict; it returned None"
    assert isinstance(result, dict), f"reptile_update should return a dict name -> tensor; got {type(result).__name__}"
    assert sorted(result) == sorted(params), f"reptile_update should return θ under its names {list(params)}; got {list(result)}"
    for name, p in result.items():
        assert isinstance(p, torch.Tensor) and p.shape == params[name].shape and p.dtype == params[name].dtype, (
            f"new θ[{name!r}] should be a {params[name].dtype} tensor of shape {tuple(params[name].shape)}; got "
            f"{type(p).__name__} {getattr(p, 'dtype', '')} {tuple(getattr(p, 'shape', ()))}")
    for original, now in zip(before, [params, *adapted]):
        for name, p in now.items():
            assert torch.equal(p.detach(), original[name]), (
                f"reptile_update modified its inputs in place ({name!r}): compute a new dict instead")
    return result


def diagnose(params, adapted, epsilon, result):
    """Name the usual mistake that gives exactly ``result``."""
    import torch

    mean = {n: torch.stack([a[n] for a in adapted]).mean(0) for n in params}
    total = {n: sum(a[n] - params[n] for a in adapted) for n in params}
    mistakes = [
        ("θ − ε (mean θ' − θ): the sign is flipped", "Reptile moves θ *towards* the adapted parameters",
         {n: params[n] - epsilon * (mean[n] - params[n]) for n in params}),
        ("θ + ε Σ_t (θ'_t − θ): the sum over tasks, not the mean", "divide by the number of tasks",
         {n: params[n] + epsilon * total[n] for n in params}),
        ("mean θ': ε is ignored", "take a step of size ε from θ towards it",
         mean),
        ("θ + ε (θ'_B − θ), the last task only", "average over every task of the meta-batch",
         {n: params[n] + epsilon * (adapted[-1][n] - params[n]) for n in params}),
        ("θ + (mean θ' − θ) / ε", "multiply by ε", {n: params[n] + (mean[n] - params[n]) / epsilon for n in params}),
    ]
    for what, advice, wrong in mistakes:
        if all(torch.allclose(result[n].detach(), wrong[n].detach()) for n in params):
            return f" Your numbers are {what}; {advice}."
    return ""


def check_hand_worked_meta_batch(module):
    import torch

    params, adapted = tensors(HAND_THETA), [tensors(a) for a in HAND_ADAPTED]
    result = call_update(module, params, adapted, HAND_EPSILON)
    expected = tensors(HAND_EXPECTED)
    assert all(torch.allclose(result[n], expected[n]) for n in expected), (
        f"θ = {HAND_THETA}, θ'_1 = {HAND_ADAPTED[0]}, θ'_2 = {HAND_ADAPTED[1]}, ε = {HAND_EPSILON}: the "
        f"mean of the θ'_t is {{'w': [2.0, 4.0], 'b': [-1.0]}}, and θ + ε (mean θ' − θ) = {HAND_EXPECTED}; "
        f"got {plain(result)}.{diagnose(params, adapted, HAND_EPSILON, result)}")


def check_epsilon_one_and_one_task_lands_on_adapted(module):
    import torch

    with one_thread():
        params = module.init_params(seed=0)
        rng = np.random.default_rng(0)
        x = torch.from_numpy(rng.uniform(-5, 5, (10, 1)))
        adapted = module.inner_sgd(params, x, 2 * torch.sin(x - 1), 0.02, 5)
        result = call_update(module, params, [adapted], 1.0)
        error = max(float((result[n] - adapted[n]).abs().max()) for n in params)
        assert error < 1e-12, (
            f"with ε = 1 and a single task, θ + ε (θ' − θ) is θ' itself: the new θ should equal the "
            f"adapted parameters, but differs from them by up to {error:.3g}."
            f"{diagnose(params, [adapted], 1.0, result)}")
        three = [module.inner_sgd(params, x[i::3], 2 * torch.sin(x[i::3] - 1), 0.02, 5) for i in range(3)]
        result = call_update(module, params, three, 1.0)
        mean = {n: (three[0][n] + three[1][n] + three[2][n]) / 3 for n in params}
        error = max(float((result[n] - mean[n]).abs().max()) for n in params)
        assert error < 1e-12, (
            f"with ε = 1 and three tasks the new θ should be the mean of their θ'_t; it differs by up to "
            f"{error:.3g}.{diagnose(params, three, 1.0, result)}")


def check_the_update_is_not_differentiated(module):
    params = {n: p.clone().requires_grad_() for n, p in tensors(HAND_THETA).items()}
    adapted = [tensors(a) for a in HAND_ADAPTED]
    result = call_update(module, params, adapted, HAND_EPSILON)
    kept = [name for name, p in result.items() if p.grad_fn is not None]
    assert not kept, (
        f"the new θ{kept} carries an autograd graph back to the old θ. Reptile never differentiates its "
        f"outer update; over thousands of meta-steps such a graph grows without end. Compute it under "
        f"torch.no_grad(), or detach the result")


def check_one_inner_step_is_sgd_on_the_task_loss(module):
    # Nichol et al. Sec. 5: with k = 1 inner step, θ' − θ = −α ∇L(θ), so Reptile's update is
    # θ − ε α ∇L(θ): plain SGD on the expected loss, joint training. Only k > 1 learns to adapt.
    import torch

    with one_thread():
        params = module.init_params(seed=1)
        rng = np.random.default_rng(1)
        x = torch.from_numpy(rng.uniform(-5, 5, (10, 1)))
        y = 3 * torch.sin(x - 0.5)
        alpha, epsilon = 0.02, 0.3
        result = call_update(module, params, [module.inner_sgd(params, x, y, alpha, 1)], epsilon)
        point = {n: p.clone().requires_grad_() for n, p in params.items()}
        gradients = torch.autograd.grad(module.loss(point, x, y), list(point.values()))
        expected = {n: params[n] - epsilon * alpha * g for n, g in zip(params, gradients)}
        error = max(float((result[n] - expected[n]).abs().max()) for n in params)
        assert error < 1e-12, (
            f"with one inner SGD step (α = {alpha}) Reptile's update (ε = {epsilon}) should be θ − ε α ∇L(θ); "
            f"it differs by up to {error:.3g}")


def check_linear_annealing(module):
    cases = [((1.0, 0, 100), 1.0), ((1.0, 50, 100), 0.5), ((1.0, 75, 100), 0.25), ((0.1, 10, 40), 0.075),
             ((1.0, 100, 100), 0.0), ((1.0, 150, 100), 0.0), ((0.5, 12345, None), 0.5)]
    for (meta_lr, step, anneal_steps), expected in cases:
        value = module.annealed_epsilon(meta_lr, step, anneal_steps)
        assert value is not None, "annealed_epsilon should return ε as a number; it returned None"
        hint = ""
        if anneal_steps is None:
            hint = " anneal_steps=None means no annealing: ε = meta_lr at every step."
        elif step > anneal_steps:
            hint = " After anneal_steps the rate stays at 0; it must never become negative."
        assert abs(float(value) - expected) < 1e-12, (
            f"annealed_epsilon(meta_lr={meta_lr}, step={step}, anneal_steps={anneal_steps}) should be "
            f"{expected} (meta_lr · (1 − step / anneal_steps)); got {value}.{hint}")


def sinusoid_task(rng, n=10):
    import torch

    amplitude, phase = rng.uniform(0.1, 5), rng.uniform(0, np.pi)
    x = rng.uniform(-5, 5, (2 * n, 1))
    y = amplitude * np.sin(x - phase)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    return x[:n], y[:n], x[n:], y[n:]


def check_reptile_learns_an_initialisation(module):
    # 150 meta-steps of 5 sinusoid tasks (k = 5 SGD steps, α = 0.02, ε = 1 annealed to 0), then the
    # query MSE after adapting on 10 points of 20 new tasks. From a random θ it is about 5; a
    # correct Reptile roughly halves it (about 2.4 measured).
    with one_thread():
        module.annealed_epsilon(1.0, 0, 10)  # stops here, before the training, while a TODO remains
        test = [sinusoid_task(np.random.default_rng([9, i])) for i in range(20)]

        def after_adaptation(params):
            return float(np.mean([module.loss(module.inner_sgd(params, sx, sy, 0.02, 5), qx, qy).item()
                                  for sx, sy, qx, qy in test]))

        params = module.init_params(seed=0)
        before = after_adaptation(params)
        rng, steps = np.random.default_rng(0), 150
        for i in range(steps):
            tasks = [sinusoid_task(rng)[:2] for _ in range(5)]
            params = module.meta_step(params, tasks, 0.02, 5, module.annealed_epsilon(1.0, i, steps))
        after = after_adaptation(params)
        assert after < 0.75 * before, (
            f"150 Reptile meta-steps should lower the query MSE after 5 adaptation steps on new tasks "
            f"clearly (from {before:.2f} to about 2.5); it went to {after:.2f}")
