"""Reptile (Nichol, Achiam & Schulman 2018, "On First-Order Meta-Learning Algorithms") in PyTorch.

Reptile learns an initialisation θ like MAML, without differentiating through the inner loop at
all. For each task t of a meta-batch it runs k plain SGD steps on the task's support set from θ,

    θ'_t = SGD_k(θ, L_S_t, inner_lr)          (``maml_torch.adapt(..., first_order=True)``)

and then moves θ towards the adapted parameters (Nichol et al. Alg. 2, the batched version):

    θ ← θ + ε (mean_t θ'_t − θ)

Written as θ ← θ − ε g with g = θ − mean_t θ'_t, the difference vector is a "gradient", and the
outer update is one step of plain SGD with rate ε: that is how it is implemented here
(``torch.optim.SGD``), so the reader sees Reptile's g where MAML has its meta-gradient. Nichol et
al. show (Sec. 5, a Taylor expansion in α) that for k ≥ 2 steps the expectation of g contains the
gradient of the expected loss *and* a term that increases the inner product of the gradients of
successive inner steps (of different mini-batches, in their analysis): it seeks parameters from
which one step on a task also helps the next, the same effect as MAML's Hessian term, with
first-order gradients only. (With k = 1, g is the joint-training gradient and nothing is
meta-learned.) ε is annealed linearly to 0 over ``anneal_steps`` meta-steps when given,
ε_i = meta_lr · (1 − i / anneal_steps), as Nichol et al. do.

With ``inner_batch`` = b, step i of the inner loop uses the support rows [i·b, (i+1)·b) (cyclically;
``minibatches.py``), as Nichol et al. step through mini-batches of 10 of a 10-shot task. By default
every step uses the whole support set.

With ``inner_optimizer="adam"`` the inner steps are Nichol et al.'s: Adam with β1 = 0 and rate
``inner_lr`` (``minibatches.adam_step``), whose state (second moments v, step count t) is never
reset. It carries on from task to task within a meta-batch and across meta-iterations, and is part
of the checkpoint. A test task adapts with Adam too, from a copy of that state, which it does not
change: every test task starts from the same state, so the fixed test episodes give the same
numbers in any order. (Nichol et al.'s evaluation kept updating it; ours does not.)

Reptile has no query set in its update: the query loss ``meta_step`` returns is for monitoring
(the loss at each θ'_t, transductive or not as configured). At test time a task is adapted with
``test_inner_steps`` steps of the inner optimizer on its whole support set (SGD: as in MAML).
"""

from __future__ import annotations

import numpy as np
import torch

from chapters.optimization.maml_torch import InnerLoopLearner, adapt, query_outputs
from chapters.optimization.minibatches import adapt_task
from chapters.optimization.reptile import check_settings
from common.episodes import Episode


def support_gradients(model, params: dict[str, torch.Tensor], support_x, support_y) -> dict[str, torch.Tensor]:
    """∇_θ L_S(θ) at ``params``, as plain numbers (Reptile never differentiates through it)."""
    support_loss = model.loss(model.forward(params, support_x), support_y)
    return dict(zip(params, torch.autograd.grad(support_loss, list(params.values()))))


class Reptile(InnerLoopLearner):
    """Meta-training of a network of ``networks_torch.py`` with Reptile's outer SGD step."""

    def __init__(self, model, inner_lr: float = 1e-3, inner_steps: int = 5, meta_lr: float = 1.0,
                 anneal_steps: int | None = None, transductive: bool = False,
                 test_inner_steps: int | None = None, inner_batch: int | None = None,
                 inner_optimizer: str = "sgd"):
        super().__init__(model, inner_lr, inner_steps, transductive, test_inner_steps)
        check_settings(inner_batch, inner_optimizer, anneal_steps)
        self.meta_lr, self.anneal_steps, self.inner_batch = meta_lr, anneal_steps, inner_batch
        self.inner_optimizer = inner_optimizer
        self.optimizer = torch.optim.SGD(model.parameters(), lr=meta_lr)  # steps counts for the annealing
        # The inner Adam's state (v per parameter, step count t), kept across tasks and meta-steps.
        self.adam_moments = {name: torch.zeros_like(p) for name, p in model.params().items()}
        self.adam_step = 0

    def adapt_task(self, params, support_x, support_y, inner_steps: int, inner_batch: int | None,
                   moments: dict, step):
        """θ'_t and the inner Adam's state after it (``minibatches.adapt_task``)."""
        return adapt_task(adapt, support_gradients, self.model, self.inner_optimizer, params, support_x, support_y,
                          self.inner_lr, inner_steps, inner_batch, moments, step)

    def outer_lr(self) -> float:
        """ε of the current meta-step: meta_lr, or annealed linearly to 0 over ``anneal_steps``."""
        if not self.anneal_steps:
            return self.meta_lr
        return self.meta_lr * max(0.0, 1 - self.steps / self.anneal_steps)

    def meta_step(self, meta_batch: Episode) -> dict[str, float]:
        """One Reptile update on a meta-batch; returns the mean query loss and metric at the θ'_t."""
        support_x, support_y, query_x, query_y = self._inputs(meta_batch)
        theta = self.model.params()
        tasks = len(support_x)
        mean_adapted = {name: torch.zeros_like(p) for name, p in theta.items()}
        total_loss, total_metric = 0.0, 0.0
        moments, step = self.adam_moments, self.adam_step
        for t in range(tasks):
            # Each task starts from θ (detached copies: no meta-gradient is ever needed); the inner
            # Adam's state goes on from the previous task.
            start = {name: p.detach().requires_grad_() for name, p in theta.items()}
            adapted, moments, step = self.adapt_task(start, support_x[t], support_y[t], self.inner_steps,
                                                     self.inner_batch, moments, step)
            with torch.no_grad():
                for name, p in adapted.items():
                    mean_adapted[name] += p / tasks
                outputs = query_outputs(self.model, adapted, support_x[t], query_x[t], self.transductive)
                total_loss += self.model.loss(outputs, query_y[t]).item()
                total_metric += self.model.metric(outputs, query_y[t]).item()
        for group in self.optimizer.param_groups:
            group["lr"] = self.outer_lr()
        for name, p in theta.items():
            p.grad = p.detach() - mean_adapted[name]  # g = θ − mean_t θ'_t, Reptile's "gradient"
        self.optimizer.step()  # θ ← θ − ε g = θ + ε (mean_t θ'_t − θ)
        self.optimizer.zero_grad(set_to_none=True)
        self.adam_moments, self.adam_step = {name: v.detach() for name, v in moments.items()}, step
        self.steps += 1
        return {"loss": total_loss / tasks, self.model.metric_name: total_metric / tasks}

    def predict(self, episode: Episode) -> np.ndarray:
        """Query outputs of one task after ``test_inner_steps`` steps of the inner optimizer on its
        whole support set; neither θ nor the inner Adam's state is changed."""
        if self.inner_optimizer == "sgd":
            return super().predict(episode)
        support_x, support_y, query_x, _ = self._inputs(episode)
        start = {name: p.detach().requires_grad_() for name, p in self.model.params().items()}
        adapted, _, _ = self.adapt_task(start, support_x, support_y, self.test_inner_steps, None,
                                        self.adam_moments, self.adam_step)
        with torch.no_grad():
            return query_outputs(self.model, adapted, support_x, query_x, self.transductive).cpu().numpy()

    def state(self) -> dict[str, np.ndarray]:
        """:meth:`InnerLoopLearner.state`, and the inner Adam's state (``inner_adam.<name>``, in
        this framework's layout, and ``inner_adam.step``)."""
        arrays = super().state()
        arrays.update({f"inner_adam.{name}": v.cpu().numpy() for name, v in self.adam_moments.items()})
        arrays["inner_adam.step"] = np.array(self.adam_step)
        return arrays

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        super().load_state(arrays)
        self.adam_moments = {name: torch.as_tensor(arrays[f"inner_adam.{name}"]).to(v)
                             for name, v in self.adam_moments.items()}
        self.adam_step = int(arrays["inner_adam.step"])
