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

Reptile has no query set in its update: the query loss ``meta_step`` returns is for monitoring
(the loss at each θ'_t, transductive or not as configured). At test time a task is adapted as in
MAML, with ``test_inner_steps`` SGD steps on its support set.
"""

from __future__ import annotations

import torch

from chapters.optimization.maml_torch import InnerLoopLearner, adapt, query_outputs
from chapters.optimization.minibatches import adapt_on_minibatches, check_inner_batch
from common.episodes import Episode


class Reptile(InnerLoopLearner):
    """Meta-training of a network of ``networks_torch.py`` with Reptile's outer SGD step."""

    def __init__(self, model, inner_lr: float = 1e-3, inner_steps: int = 5, meta_lr: float = 1.0,
                 anneal_steps: int | None = None, transductive: bool = False,
                 test_inner_steps: int | None = None, inner_batch: int | None = None):
        super().__init__(model, inner_lr, inner_steps, transductive, test_inner_steps)
        check_inner_batch(inner_batch)
        self.meta_lr, self.anneal_steps, self.inner_batch = meta_lr, anneal_steps, inner_batch
        self.optimizer = torch.optim.SGD(model.parameters(), lr=meta_lr)  # steps counts for the annealing

    def outer_lr(self) -> float:
        """ε of the current meta-step: meta_lr, or annealed linearly to 0 over ``anneal_steps``."""
        if not self.anneal_steps:
            return self.meta_lr
        return self.meta_lr * max(0.0, 1 - self.steps / self.anneal_steps)

    def meta_step(self, meta_batch: Episode) -> dict[str, float]:
        """One Reptile update on a meta-batch; returns the mean query loss and metric at the θ'_t."""
        support_x, support_y, query_x, query_y = self._tensors(meta_batch)
        theta = self.model.params()
        tasks = len(support_x)
        mean_adapted = {name: torch.zeros_like(p) for name, p in theta.items()}
        total_loss, total_metric = 0.0, 0.0
        for t in range(tasks):
            # Plain SGD from θ: detached copies, no meta-gradient is ever needed.
            start = {name: p.detach().requires_grad_() for name, p in theta.items()}
            adapted = adapt_on_minibatches(adapt, self.model, start, support_x[t], support_y[t], self.inner_lr,
                                           self.inner_steps, self.inner_batch)
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
        self.steps += 1
        return {"loss": total_loss / tasks, self.model.metric_name: total_metric / tasks}
