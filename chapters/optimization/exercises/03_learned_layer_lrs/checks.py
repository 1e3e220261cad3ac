"""Checks for exercise 3. Run them with

    python -m common.exercises check chapters/optimization/exercises/03_learned_layer_lrs
"""

import numpy as np

from chapters.optimization.exercises.tiny_mlp import one_thread

SHOT, QUERY = 10, 10


def sinusoid_task(rng):
    """y = A sin(x − φ), A ~ U[0.1, 5], φ ~ U[0, π], x ~ U[−5, 5] (Finn et al. Sec. 5.1)."""
    import torch

    amplitude, phase = rng.uniform(0.1, 5.0), rng.uniform(0, np.pi)
    x = rng.uniform(-5, 5, size=(SHOT + QUERY, 1))
    x, y = torch.from_numpy(x), torch.from_numpy(amplitude * np.sin(x - phase))
    return x[:SHOT], y[:SHOT], x[SHOT:], y[SHOT:]


def call_init(module, params, value):
    import torch

    rates = module.init_layer_lrs(params, value)
    assert rates is not None, "init_layer_lrs should return a dict name -> rate; it returned None"
    assert isinstance(rates, dict) and sorted(rates) == sorted(params), (
        f"init_layer_lrs should return one rate per parameter tensor, under the names {list(params)}; got "
        f"{list(rates) if isinstance(rates, dict) else type(rates).__name__}")
    for name, rate in rates.items():
        assert isinstance(rate, torch.Tensor), (
            f"the rate of {name!r} should be a tensor (the outer loop trains it); got {type(rate).__name__}")
        assert rate.shape == (), (
            f"the rate of {name!r} should be one scalar, a 0-d tensor of shape (), not shape {tuple(rate.shape)}"
            + (": a rate per *element* is Meta-SGD; here it is one per tensor" if rate.shape == params[name].shape else ""))
        assert rate.dtype == params[name].dtype, f"the rate of {name!r} should have dtype {params[name].dtype}; got {rate.dtype}"
        assert rate.requires_grad and rate.is_leaf, (
            f"the rate of {name!r} should be a leaf tensor with requires_grad=True, so that Adam can train it")
        assert abs(rate.item() - value) < 1e-12, f"the rate of {name!r} should start at {value}; got {rate.item()}"
    return rates


def call_adapt(module, params, rates, support_x, support_y, steps):
    import torch

    before = {name: p.detach().clone() for name, p in params.items()}
    adapted = module.adapt_with_layer_lrs(params, rates, support_x, support_y, steps)
    assert adapted is not None, "adapt_with_layer_lrs should return the dict θ'; it returned None"
    assert isinstance(adapted, dict) and list(adapted) == list(params), (
        f"adapt_with_layer_lrs should return θ' under the names {list(params)}")
    for name, p in adapted.items():
        assert isinstance(p, torch.Tensor) and p.shape == params[name].shape, (
            f"θ'[{name!r}] should have shape {tuple(params[name].shape)}; got {tuple(getattr(p, 'shape', ()))}")
        assert torch.equal(params[name].detach(), before[name]), f"adapt_with_layer_lrs modified θ[{name!r}] in place"
    return adapted


def flat_gradient(values, wrt):
    import torch

    gradients = torch.autograd.grad(values, wrt, allow_unused=True)
    return gradients


def relative(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


def check_one_scalar_rate_per_parameter_tensor(module):
    params = module.init_params(seed=0)
    call_init(module, params, 0.01)
    call_init(module, params, 0.25)


def check_equal_rates_are_plain_maml(module):
    import torch

    with one_thread():
        params = module.init_params(seed=0)
        support_x, support_y, _, _ = sinusoid_task(np.random.default_rng(0))
        for steps in (1, 3):
            mine = call_adapt(module, params, call_init(module, params, 0.05), support_x, support_y, steps)
            theirs = module.adapt(params, support_x, support_y, 0.05, steps)
            error = max(float((mine[n] - theirs[n]).detach().abs().max()) for n in params)
            assert error < 1e-12, (
                f"with every rate α_l = 0.05, {steps} step(s) of θ_l − α_l ∇_l L_S must give MAML's θ' with "
                f"α = 0.05 (`adapt`); they differ by up to {error:.3g}")


def check_each_rate_scales_its_own_tensor(module):
    import torch

    with one_thread():
        params = module.init_params(seed=0)
        support_x, support_y, _, _ = sinusoid_task(np.random.default_rng(1))
        point = {n: p.detach().clone().requires_grad_() for n, p in params.items()}
        gradients = dict(zip(params, torch.autograd.grad(module.loss(point, support_x, support_y), list(point.values()))))
        rates = call_init(module, params, 0.0)
        values = {name: 0.01 * (i + 1) for i, name in enumerate(params)}  # 0.01, 0.02, ... : all different
        with torch.no_grad():
            for name, rate in rates.items():
                rate.fill_(values[name])
        adapted = call_adapt(module, params, rates, support_x, support_y, 1)
        for name in params:
            expected = params[name] - values[name] * gradients[name]
            error = float((adapted[name] - expected).detach().abs().max())
            assert error < 1e-12, (
                f"after one step, θ'[{name!r}] should be θ[{name!r}] − α[{name!r}] ∇L_S (with α[{name!r}] = "
                f"{values[name]:.2f}); it is off by {error:.3g}: each tensor takes its own rate, by name")


def check_rate_gradient_matches_finite_differences(module):
    # Two inner steps: the second step's gradient depends on the first step's rates, so a
    # first-order inner loop (no create_graph) gives the wrong rate gradient here.
    import torch

    with one_thread():
        params = module.init_params(seed=0)
        task = sinusoid_task(np.random.default_rng(2))
        rates = call_init(module, params, 0.03)
        query = module.loss(call_adapt(module, params, rates, task[0], task[1], 2), task[2], task[3])
        gradients = flat_gradient(query, list(rates.values()))
        missing = [name for name, g in zip(rates, gradients) if g is None]
        assert not missing, (
            f"the query loss after adaptation has no gradient with respect to the rates of {missing}: use the "
            f"rate tensors themselves in the update (not .item(), float() or a detached copy)")
        analytic = np.array([g.item() for g in gradients])

        def objective(name, value):
            shifted = {n: torch.tensor(value if n == name else 0.03, dtype=torch.float64) for n in rates}
            with torch.enable_grad():
                adapted = module.adapt_with_layer_lrs(params, shifted, task[0], task[1], 2)
                return module.loss(adapted, task[2], task[3]).item()

        h = 1e-6
        numeric = np.array([(objective(n, 0.03 + h) - objective(n, 0.03 - h)) / (2 * h) for n in rates])
        assert relative(analytic, numeric) < 1e-6, (
            f"with 2 inner steps the gradient of L_Q(θ') with respect to the rates, {np.round(analytic, 5).tolist()}, "
            f"should match central finite differences, {np.round(numeric, 5).tolist()} (relative error "
            f"{relative(analytic, numeric):.3g}). With one step a first-order inner loop still gets the rate "
            f"gradient right, with two it does not: compute the inner gradients with create_graph=True")


def check_one_step_rate_gradient_is_an_inner_product(module):
    # One step: ∂L_Q(θ')/∂α_l = −∇_l L_S(θ) · ∇_l L_Q(θ'). A rate grows where the support and the
    # query gradient of its tensor point the same way.
    import torch

    with one_thread():
        params = module.init_params(seed=0)
        task = sinusoid_task(np.random.default_rng(3))
        rates = call_init(module, params, 0.05)
        adapted = call_adapt(module, params, rates, task[0], task[1], 1)
        gradients = flat_gradient(module.loss(adapted, task[2], task[3]), list(rates.values()))
        assert all(g is not None for g in gradients), "the query loss has no gradient with respect to some rates"
        point = {n: p.detach().clone().requires_grad_() for n, p in params.items()}
        support = torch.autograd.grad(module.loss(point, task[0], task[1]), list(point.values()))
        fresh = {n: p.detach().requires_grad_() for n, p in adapted.items()}
        query = torch.autograd.grad(module.loss(fresh, task[2], task[3]), list(fresh.values()))
        expected = np.array([-(s * q).sum().item() for s, q in zip(support, query)])
        mine = np.array([g.item() for g in gradients])
        assert relative(mine, expected) < 1e-10, (
            f"after one step the gradient of each rate should be −∇_l L_S(θ) · ∇_l L_Q(θ'), "
            f"{np.round(expected, 5).tolist()}; got {np.round(mine, 5).tolist()}")


def check_theta_gradient_keeps_the_hessian_term(module):
    import torch

    with one_thread():
        params = module.init_params(seed=0, hidden=4)
        task = sinusoid_task(np.random.default_rng(4))
        rates = call_init(module, params, 0.1)
        query = module.loss(call_adapt(module, params, rates, task[0], task[1], 1), task[2], task[3])
        analytic = torch.cat([g.reshape(-1) for g in flat_gradient(query, list(params.values()))]).numpy()
        names, shapes = list(params), [p.shape for p in params.values()]
        theta = torch.cat([p.detach().reshape(-1) for p in params.values()])

        def objective(vector):
            parts = torch.split(vector, [int(np.prod(s)) for s in shapes])
            point = {n: part.reshape(s).clone().requires_grad_() for n, part, s in zip(names, parts, shapes)}
            return module.loss(module.adapt_with_layer_lrs(point, rates, task[0], task[1], 1), task[2], task[3]).item()

        h, numeric = 1e-6, np.empty(theta.numel())
        for i in range(theta.numel()):
            step = torch.zeros_like(theta)
            step[i] = h
            numeric[i] = (objective(theta + step) - objective(theta - step)) / (2 * h)
        assert relative(analytic, numeric) < 1e-6, (
            f"the meta-gradient with respect to θ should match finite differences (second order, with the "
            f"Hessian term); the relative error is {relative(analytic, numeric):.3g}. Compute the inner "
            f"gradients with create_graph=True")


def check_meta_training_lowers_the_loss_after_adaptation(module):
    # 80 meta-steps of Adam (rate 0.01) on θ and the rates, meta-batches of 5 sinusoid tasks, one
    # inner step from α_l = 0.01. The query MSE after adaptation on 20 new tasks falls from about
    # 4.8 to about 2.7, and every rate moves (some far: the first layer's bias to about 0.3).
    import torch

    with one_thread():
        params = module.init_params(seed=0)
        rates = call_init(module, params, 0.01)
        test = [sinusoid_task(np.random.default_rng([9, i])) for i in range(20)]
        before = module.meta_loss(params, rates, test, 1).item()
        rng = np.random.default_rng(0)
        module.meta_train(params, rates, [[sinusoid_task(rng) for _ in range(5)] for _ in range(80)], 1, 0.01)
        with torch.enable_grad():
            after = module.meta_loss(params, rates, test, 1).item()
        still = [name for name, rate in rates.items() if abs(rate.item() - 0.01) < 1e-6]
        assert not still, f"after 80 meta-steps the rates of {still} never moved from 0.01: they get no gradient"
        assert after < 0.8 * before, (
            f"80 meta-steps should lower the query MSE after one adaptation step on new tasks from "
            f"{before:.2f} to about 3; it is {after:.2f}")
