"""Checks for exercise 1. Run them with

    python -m common.exercises check chapters/optimization/exercises/01_first_order
"""

import numpy as np

from chapters.optimization.exercises.tiny_mlp import one_thread

INNER_LR = 0.1   # α: large enough on this tiny network that the Hessian term is clearly visible
SHOT, QUERY = 10, 20


def sinusoid_task(seed):
    """A task of Finn et al.'s sinusoid family: y = A sin(x − φ), A ~ U[0.1, 5], φ ~ U[0, π]."""
    import torch

    rng = np.random.default_rng(seed)
    amplitude, phase = rng.uniform(0.1, 5.0), rng.uniform(0, np.pi)
    x = rng.uniform(-5, 5, size=(SHOT + QUERY, 1))
    y = amplitude * np.sin(x - phase)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    return x[:SHOT], y[:SHOT], x[SHOT:], y[SHOT:]


def call_first_order(module, params, support_x, support_y, steps):
    import torch

    before = {name: p.detach().clone() for name, p in params.items()}
    result = module.adapt_first_order(params, support_x, support_y, INNER_LR, steps)
    assert result is not None, "adapt_first_order should return the dict of adapted parameters θ'; it returned None"
    assert isinstance(result, dict), f"adapt_first_order should return a dict name -> tensor; got {type(result).__name__}"
    assert list(result) == list(params), (
        f"adapt_first_order should return θ' under the names of θ, {list(params)}; got {list(result)}")
    for name, p in result.items():
        assert isinstance(p, torch.Tensor) and p.shape == params[name].shape, (
            f"θ'[{name!r}] should be a tensor of shape {tuple(params[name].shape)}; got "
            f"{type(p).__name__} {tuple(getattr(p, 'shape', ()))}")
    for name, p in params.items():
        assert torch.equal(p.detach(), before[name]), (
            f"adapt_first_order changed θ[{name!r}] in place: build new tensors (p - α g), do not "
            f"update params")
    return result


def flat(tensors):
    import torch

    return torch.cat([t.reshape(-1) for t in tensors]).detach().numpy()


def meta_gradient(module, adapt, params, task, steps):
    """∇_θ L_Q(θ'(θ)) through the given inner loop."""
    import torch

    support_x, support_y, query_x, query_y = task
    adapted = adapt(params, support_x, support_y, INNER_LR, steps)
    assert all(p.requires_grad for p in adapted.values()), (
        "θ' carries no gradient: you detached θ' itself, so the meta-gradient cannot reach θ")
    query_loss = module.loss(adapted, query_x, query_y)
    gradients = torch.autograd.grad(query_loss, list(params.values()), allow_unused=True)
    return gradients


def relative(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def check_adapted_parameters_still_depend_on_theta(module):
    with one_thread():
        params = module.init_params(seed=0)
        support_x, support_y, query_x, query_y = sinusoid_task(1)
        adapted = call_first_order(module, params, support_x, support_y, 1)
        detached = [name for name, p in adapted.items() if not p.requires_grad]
        assert not detached, (
            f"θ'{detached[:2]}... carry no gradient: you detached θ' itself. First-order MAML treats the "
            f"inner *gradients* as constants, θ' = θ − α·g with g fixed, so θ' still depends on θ (with "
            f"Jacobian I) and the meta-gradient reaches θ")
        gradients = meta_gradient(module, module.adapt_first_order, params, (support_x, support_y, query_x, query_y), 1)
        missing = [name for name, g in zip(params, gradients) if g is None]
        assert not missing, f"the query loss at θ' has no gradient with respect to θ{missing}: θ' was cut off from θ"


def check_same_adapted_parameters_as_second_order(module):
    import torch

    with one_thread():
        for steps in (1, 3):
            params = module.init_params(seed=0)
            support_x, support_y, _, _ = sinusoid_task(1)
            mine = call_first_order(module, params, support_x, support_y, steps)
            theirs = module.adapt(params, support_x, support_y, INNER_LR, steps)
            one_step = module.adapt(params, support_x, support_y, INNER_LR, 1)
            error = max(float((mine[n] - theirs[n]).detach().abs().max()) for n in params)
            hint = ""
            if steps > 1 and all(torch.allclose(mine[n], one_step[n]) for n in params):
                hint = " Your θ' is the one after a single step: repeat the step inner_steps times."
            elif all(torch.allclose(mine[n], params[n]) for n in params):
                hint = " Your θ' equals θ: no step was taken."
            assert error < 1e-12, (
                f"with {steps} inner step(s) (α = {INNER_LR}) the first-order θ' must have the same values "
                f"as the second-order one of `adapt` (only its meta-gradient differs); they differ by up "
                f"to {error:.3g}.{hint}")


def check_meta_gradient_is_the_query_gradient_at_adapted(module):
    import torch

    with one_thread():
        for steps in (1, 3):
            params = module.init_params(seed=0)
            task = sinusoid_task(2)
            mine = flat(meta_gradient(module, module.adapt_first_order, params, task, steps))
            # ∇_θ' L_Q(θ') at θ' taken as a fresh point: what first-order MAML applies to θ.
            adapted = module.adapt(params, task[0], task[1], INNER_LR, steps)
            fresh = {name: p.detach().requires_grad_() for name, p in adapted.items()}
            expected = flat(torch.autograd.grad(module.loss(fresh, task[2], task[3]), list(fresh.values())))
            second = flat(meta_gradient(module, module.adapt, params, task, steps))
            hint = ""
            if relative(mine, second) < 1e-8:
                hint = (" Your gradient is the second-order one: the inner gradients still carry their "
                        "graph (create_graph=True). Leave it out, or detach them.")
            assert relative(mine, expected) < 1e-10, (
                f"with {steps} inner step(s), the meta-gradient through your θ' should be ∇_θ' L_Q(θ'), the "
                f"query gradient at the adapted parameters (∂θ'/∂θ = I); the relative error is "
                f"{relative(mine, expected):.3g}.{hint}")


def check_differs_from_second_order_and_finite_differences(module):
    import torch

    with one_thread():
        params = module.init_params(seed=0)
        task = sinusoid_task(3)
        first = flat(meta_gradient(module, module.adapt_first_order, params, task, 1))
        second = flat(meta_gradient(module, module.adapt, params, task, 1))
        # The meta-objective J(θ) = L_Q(θ − α ∇L_S(θ)) as a plain function of the flat θ.
        names, shapes = list(params), [p.shape for p in params.values()]
        theta = torch.cat([p.detach().reshape(-1) for p in params.values()])

        def objective(vector):
            parts = torch.split(vector, [int(np.prod(s)) for s in shapes])
            point = {n: part.reshape(s).clone().requires_grad_() for n, part, s in zip(names, parts, shapes)}
            return module.loss(module.adapt(point, task[0], task[1], INNER_LR, 1), task[2], task[3]).item()

        h, numeric = 1e-6, np.empty(theta.numel())
        for i in range(theta.numel()):
            step = torch.zeros_like(theta)
            step[i] = h
            numeric[i] = (objective(theta + step) - objective(theta - step)) / (2 * h)
        assert relative(second, numeric) < 1e-6, "the given second-order `adapt` disagrees with finite differences (a bug of the exercise)"
        gap = relative(first, numeric)
        assert gap > 0.05, (
            f"the first-order meta-gradient should differ from the true gradient of J(θ) = L_Q(θ'(θ)) (finite "
            f"differences) by the dropped Hessian term; it is within {gap:.2g} of it. Did you keep "
            f"create_graph=True?")


def check_difference_is_exactly_the_hessian_term(module):
    import torch

    with one_thread():
        params = module.init_params(seed=0)
        task = sinusoid_task(4)
        first = meta_gradient(module, module.adapt_first_order, params, task, 1)
        second = meta_gradient(module, module.adapt, params, task, 1)
        # −α ∇²L_S(θ) v with v = ∇_θ' L_Q(θ'): a Hessian-vector product, by double backward.
        adapted = module.adapt(params, task[0], task[1], INNER_LR, 1)
        fresh = {name: p.detach().requires_grad_() for name, p in adapted.items()}
        v = torch.autograd.grad(module.loss(fresh, task[2], task[3]), list(fresh.values()))
        support_gradient = torch.autograd.grad(module.loss(params, task[0], task[1]), list(params.values()),
                                               create_graph=True)
        hessian_v = torch.autograd.grad(support_gradient, list(params.values()), grad_outputs=v)
        dropped = flat(hessian_v) * -INNER_LR
        difference = flat(second) - flat(first)
        hint = " Yours are equal: your first-order θ' kept the Hessian term." if not difference.any() else ""
        assert relative(difference, dropped) < 1e-8, (
            f"second-order minus first-order meta-gradient should be exactly the dropped term "
            f"−α ∇²L_S(θ) ∇_θ' L_Q(θ'); the relative error is {relative(difference, dropped):.3g}.{hint}")
        share = np.linalg.norm(dropped) / np.linalg.norm(flat(second))
        assert share > 0.05, f"the Hessian term is only {share:.2g} of the meta-gradient here"
