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

Reptile has no query set in its update: the query loss ``meta_step`` returns is for monitoring
(the loss at each θ'_t, transductive or not as configured). At test time a task is adapted as in
MAML, with ``test_inner_steps`` SGD steps on its support set.
"""

from __future__ import annotations

import numpy as np
import torch

from chapters.optimization.maml_torch import adapt, adaptation_curve, check_inner_steps, query_outputs
from common.adapters import to_torch
from common.episodes import Episode
from common.weights import canonical_to_torch, torch_to_canonical


class Reptile:
    """Meta-training of a network of ``networks_torch.py`` with Reptile's outer SGD step."""

    def __init__(self, model, inner_lr: float = 1e-3, inner_steps: int = 5, meta_lr: float = 1.0,
                 anneal_steps: int | None = None, transductive: bool = True,
                 test_inner_steps: int | None = None):
        check_inner_steps(inner_steps)
        test_inner_steps = inner_steps if test_inner_steps is None else test_inner_steps
        check_inner_steps(test_inner_steps)
        self.model, self.inner_lr, self.inner_steps = model, inner_lr, inner_steps
        self.meta_lr, self.anneal_steps = meta_lr, anneal_steps
        self.transductive, self.test_inner_steps = transductive, test_inner_steps
        self.optimizer = torch.optim.SGD(model.parameters(), lr=meta_lr)
        self.steps = 0  # meta-updates taken: the annealing schedule's clock

    def _tensors(self, episode: Episode) -> Episode:
        """NumPy episode -> torch (images as NCHW views), floating parts in the model's dtype."""
        reference = next(self.model.parameters())
        parts = to_torch(Episode(*(np.asarray(part) for part in episode)))
        return Episode(*(part.to(reference.device, reference.dtype) if part.is_floating_point()
                         else part.to(reference.device) for part in parts))

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
            adapted = adapt(self.model, start, support_x[t], support_y[t], self.inner_lr,
                            self.inner_steps, first_order=True)
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

    def predict(self, episode: Episode) -> np.ndarray:
        """Query outputs (logits, or regression values) of one task after ``test_inner_steps``
        SGD steps on its support set. θ itself is not changed."""
        support_x, support_y, query_x, _ = self._tensors(episode)
        params = {name: p.detach().requires_grad_() for name, p in self.model.params().items()}
        adapted = adapt(self.model, params, support_x, support_y, self.inner_lr, self.test_inner_steps,
                        first_order=True)
        with torch.no_grad():
            return query_outputs(self.model, adapted, support_x, query_x, self.transductive).cpu().numpy()

    def adaptation_curve(self, episode: Episode, steps: int = 10) -> np.ndarray:
        """Query loss of one task after 0..``steps`` inner steps (see ``maml_torch.adaptation_curve``)."""
        return adaptation_curve(self.model, self.model.params(), self._tensors(episode), self.inner_lr,
                                steps, self.transductive)

    def state(self) -> dict[str, np.ndarray]:
        """θ (``model.<canonical name>``) and the meta-step counter (``steps``, for the annealing).
        Plain SGD keeps no slots; any an optimizer has are saved as ``optimizer.<index>.<slot>``."""
        arrays = {f"model.{k}": v for k, v in torch_to_canonical(self.model).items()}
        for index, slots in self.optimizer.state_dict()["state"].items():
            arrays.update({f"optimizer.{index}.{k}": v.detach().cpu().numpy().copy()
                           for k, v in slots.items() if v is not None})
        arrays["steps"] = np.array(self.steps)
        return arrays

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """The inverse of :meth:`state`: meta-training then continues exactly where it was."""
        canonical_to_torch({k[6:]: v for k, v in arrays.items() if k.startswith("model.")}, self.model)
        slots = {}
        for key, value in arrays.items():
            if key.startswith("optimizer."):
                _, index, name = key.split(".", 2)
                slots.setdefault(int(index), {})[name] = torch.from_numpy(np.array(value))
        self.optimizer.load_state_dict({"state": slots,
                                        "param_groups": self.optimizer.state_dict()["param_groups"]})
        self.steps = int(arrays["steps"])
