"""Model-Agnostic Meta-Learning (Finn, Abbeel & Levine, ICML 2017) in PyTorch.

MAML learns an *initialisation* θ from which a few gradient steps on a task's support set S give
parameters that do well on the task's query set Q. For one task, the inner update is Eq. (1):

    θ' = θ − α ∇_θ L_S(θ)                               (k steps: repeat k times from θ_0 = θ)

and the meta-objective, Eq. (2), is the query loss *after* adaptation, averaged over tasks:

    min_θ  E_T [ L_Q(θ'(θ)) ]      a bi-level problem: the inner level (θ → θ') is gradient
                                   descent on L_S, the outer level trains θ through it.

Its gradient is taken through the inner update (Eq. 3, the meta-update θ ← θ − β ∇_θ Σ_T L_Q(θ'),
with Adam as the meta-optimizer here, as in the paper's experiments). By the chain rule, with
∂θ'/∂θ = I − α ∇²L_S(θ) (the Hessian is symmetric):

    ∇_θ L_Q(θ') = (I − α ∇²L_S(θ)) ∇_θ' L_Q(θ')

and for k steps θ_{j+1} = θ_j − α ∇L_S(θ_j), one factor per step:

    ∇_θ L_Q(θ_k) = (I − α ∇²L_S(θ_0)) ··· (I − α ∇²L_S(θ_{k−1})) ∇_{θ_k} L_Q(θ_k)

No Hessian is ever formed: ``torch.autograd.grad(..., create_graph=True)`` records the
computation of ∇L_S itself, so the backward pass of the meta-loss runs through it and produces
the Hessian-vector products ∇²L_S(θ_j) v ("double backward"). This is **second-order MAML**.

**First-order MAML** (FOMAML, Finn et al. Sec. 5.2) treats the inner gradients as constants:
without ``create_graph`` they carry no graph, so ∂θ'/∂θ = I and the meta-gradient is just
∇_θ' L_Q(θ'), the query gradient at the adapted parameters, applied to θ. It drops the Hessian
term −α ∇²L_S(θ) ∇_θ' L_Q(θ'), saving the double backward. (For a ReLU network the Hessian with
respect to the *input* is zero almost everywhere, but not the one with respect to the *weights*:
the term is genuinely dropped, as ``tests/test_maml.py`` shows against finite differences.)

The functions here take the network as their first argument: any model of
``networks_torch.py`` (the sinusoid MLP of Sec. 5.1, the Conv-4 classifier of Sec. 5.2), which
provides ``params()`` (θ as a dict of canonical names), ``forward(params, x, reference=None)``,
``loss`` and ``metric``. The network is a *function* of the dict because MAML must run it on
adapted parameters θ' (tensors computed from θ), not only on the module's own.

**BatchNorm and the query set.** The Conv-4 network normalises with batch statistics, never
running ones (see ``networks_torch.py``). The support set is always normalised with its own
statistics. For the query set, ``transductive=True`` (Finn et al.'s code) uses the query batch's
own statistics, so each query's prediction depends on the other queries; ``transductive=False``
(the default: no information flows between queries unless asked for) uses the support set's, so
it depends on the support set and itself only.

**All tasks of a meta-batch at once.** Each task adapts its own copy of θ, so the tasks cannot
share one forward pass of an ordinary network. Here every function works on T tasks together:
θ is expanded to one copy per task (``θ.expand(T, ...)``, a view: no memory), the networks run
each layer of all tasks as one grouped convolution (``networks_torch.py``), and the support loss
summed over tasks gives each copy exactly its own task's gradient. The result is the loop over
tasks, computed in fewer, larger operations: 1.2-1.4x faster per meta-iteration on one CPU core
(``results/optimization/NOTES.md``), and equal to the loop to 1e-16 in float64 (``tests/test_maml.py``). (``torch.func.vmap`` does the same
batching automatically, but gave wrong second-order gradients through BatchNorm.) TensorFlow
and Keras loop over tasks inside their traced graph instead (``maml_tf.py``).
"""

from __future__ import annotations

import numpy as np
import torch

from common.adapters import to_torch
from chapters.optimization.maml import check_inner_steps, inner_loop_steps
from common.episodes import Episode
from common.learners import Checkpointed

# Images times inner steps run through the network together in one meta-step (see MAML.meta_step):
# Omniglot 5-way 1-shot, meta-batch 32, one step (320) all at once, peak memory about 1 GB (max-pool).
ROWS_AT_ONCE = 320


def adapt(model, params: dict[str, torch.Tensor], support_x: torch.Tensor, support_y: torch.Tensor,
          inner_lr, inner_steps: int, first_order: bool = False) -> dict[str, torch.Tensor]:
    """θ' after ``inner_steps`` gradient steps θ ← θ − α ∇_θ L_S(θ) (Eq. 1) for T tasks at once.

    ``params`` holds each task's parameters along a leading axis T, ``support_x`` (T, N·K, ...)
    and ``support_y`` (T, N·K) the tasks' support sets; the result is each task's θ', as a new dict.
    The loss differentiated is the sum over tasks of each task's mean support loss (``model.loss``
    of task-batched outputs): task t's parameters appear in task t's term only, so their gradient
    is exactly that task's ∇L_S. Without a task axis (``params`` as θ itself, one task's support
    set) it adapts that one task.

    ``inner_lr`` is α: a float (MAML), or a dict name -> tensor shaped like θ (Meta-SGD's learned
    rates, the step α ∘ ∇ elementwise, the same for every task). The support set is normalised
    with its own statistics. Second order (default): ``create_graph=True`` keeps the graph of each
    inner gradient, so a backward pass from the query loss differentiates through it (the Hessian
    term). First order: the inner gradients are plain numbers, constants for the meta-gradient.
    """
    check_inner_steps(inner_steps)
    for _ in range(inner_steps):
        support_loss = model.loss(model.forward(params, support_x), support_y)  # the sum of the tasks' means
        gradients = torch.autograd.grad(support_loss, list(params.values()), create_graph=not first_order)
        params = {name: p - (inner_lr[name] if isinstance(inner_lr, dict) else inner_lr) * g
                  for (name, p), g in zip(params.items(), gradients)}
    return params


def _per_task(params: dict[str, torch.Tensor], tasks: int) -> dict[str, torch.Tensor]:
    """θ once per task, along a new leading axis: ``expand`` views, so the copies share θ's memory
    and every copy's gradient flows back into θ."""
    return {name: p.unsqueeze(0).expand(tasks, *p.shape) for name, p in params.items()}


def query_outputs(model, params: dict[str, torch.Tensor], support_x: torch.Tensor, query_x: torch.Tensor,
                  transductive: bool = False) -> torch.Tensor:
    """f_θ'(query_x): BatchNorm statistics from the query batch itself (transductive) or from the
    support set (not). Networks without BatchNorm give the same either way."""
    if transductive:
        return model.forward(params, query_x)
    return model.forward(params, query_x, reference=support_x)


def meta_loss(model, params: dict[str, torch.Tensor], meta_batch: Episode, inner_lr, inner_steps: int,
              first_order: bool = False, transductive: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (2)/(3): the mean over the meta-batch's tasks of L_Q at each task's adapted θ', and the
    mean of the model's metric there (for monitoring; it carries no gradient).

    ``meta_batch`` holds B tasks along a leading axis (support_x (B, N·K, C, H, W) or (B, K, 1), ...),
    all adapted at once from one copy of θ each. The loss's gradient with respect to ``params``
    is the meta-gradient (second or first order).
    """
    support_x, support_y, query_x, query_y = meta_batch
    tasks = len(support_x)
    adapted = adapt(model, _per_task(params, tasks), support_x, support_y, inner_lr, inner_steps, first_order)
    outputs = query_outputs(model, adapted, support_x, query_x, transductive)
    # the model sums the tasks' losses and metrics: their means are the sums / tasks
    return model.loss(outputs, query_y) / tasks, model.metric(outputs.detach(), query_y) / tasks


def adaptation_curve(model, params: dict[str, torch.Tensor], episode: Episode, inner_lr, steps: int,
                     transductive: bool = False) -> np.ndarray:
    """Query loss of one task after 0, 1, ..., ``steps`` gradient steps on its support set.

    Entry 0 is f_θ without adaptation; entry k is what the paper reports "after k steps"
    (Finn et al. Fig. 3). No meta-gradient is needed, so the steps are first-order.
    """
    support_x, support_y, query_x, query_y = episode
    params = {name: p.detach().requires_grad_() for name, p in params.items()}
    curve = []
    for k in range(steps + 1):
        if k:
            params = adapt(model, params, support_x, support_y, inner_lr, 1, first_order=True)
        with torch.no_grad():
            curve.append(model.loss(query_outputs(model, params, support_x, query_x, transductive),
                                    query_y).item())
    return np.array(curve)


class InnerLoopLearner(Checkpointed):
    """What every learner of this chapter shares (MAML, Meta-SGD, Reptile): the settings of the
    inner loop, adapting to a test task (:meth:`predict`, :meth:`adaptation_curve`) and the state
    of a checkpoint. The learners differ in their outer optimizer and in ``meta_step``.

    ``test_inner_steps`` is the number of inner steps :meth:`predict` takes (default:
    ``inner_steps``); Finn et al. train Omniglot 5-way with 1 and test with 3.
    """

    framework, counters = "torch", ("steps",)  # meta-updates taken, saved with the checkpoint

    def __init__(self, model, inner_lr, inner_steps: int, transductive: bool, test_inner_steps: int | None):
        inner_steps, test_inner_steps = inner_loop_steps(inner_steps, test_inner_steps)
        self.model, self.inner_lr, self.inner_steps = model, inner_lr, inner_steps
        self.transductive, self.test_inner_steps = transductive, test_inner_steps
        self.optimizer = None  # the outer optimizer: each learner sets its own
        self.steps = 0  # meta-updates taken

    def _inputs(self, episode: Episode) -> Episode:
        """NumPy episode -> torch (images as NCHW views), floating parts in the model's dtype."""
        reference = next(self.model.parameters())
        parts = to_torch(Episode(*(np.asarray(part) for part in episode)))
        return Episode(*(part.to(reference.device, reference.dtype) if part.is_floating_point()
                         else part.to(reference.device) for part in parts))

    def predict(self, episode: Episode) -> np.ndarray:
        """Query outputs (logits, or regression values) of one task after ``test_inner_steps``
        first-order steps on its support set. θ itself is not changed."""
        support_x, support_y, query_x, _ = self._inputs(episode)
        params = {name: p.detach().requires_grad_() for name, p in self.model.params().items()}
        adapted = adapt(self.model, params, support_x, support_y, self.inner_lr, self.test_inner_steps,
                        first_order=True)
        with torch.no_grad():
            return query_outputs(self.model, adapted, support_x, query_x, self.transductive).cpu().numpy()

    def adaptation_curve(self, episode: Episode, steps: int = 10) -> np.ndarray:
        """Query loss of one task after 0..``steps`` inner steps (see :func:`adaptation_curve`)."""
        return adaptation_curve(self.model, self.model.params(), self._inputs(episode), self.inner_lr,
                                steps, self.transductive)


class MAML(InnerLoopLearner):
    """Meta-training of a network of ``networks_torch.py``: Adam (rate β) on the meta-loss, Eq. (3)."""

    def __init__(self, model, inner_lr=0.01, inner_steps: int = 1, first_order: bool = False,
                 meta_lr: float = 1e-3, transductive: bool = False, test_inner_steps: int | None = None):
        super().__init__(model, inner_lr, inner_steps, transductive, test_inner_steps)
        self.first_order = first_order
        self.optimizer = torch.optim.Adam(model.parameters(), lr=meta_lr)

    def meta_step(self, meta_batch: Episode) -> dict[str, float]:
        """One meta-update on a meta-batch of tasks; returns the meta-loss and metric before it.

        The meta-gradient of the mean over tasks is the mean of the tasks' meta-gradients, so the
        tasks can be taken a group at a time, each group's share back-propagated on its own and
        accumulated in ``.grad``: a group's graph is freed before the next is built. Groups of
        about ``ROWS_AT_ONCE`` image-steps keep memory bounded (20-way 5-shot with 5 inner steps
        goes one task at a time) while small tasks still run together.
        """
        batch = self._inputs(meta_batch)
        tasks = len(batch.support_x)
        rows = (batch.support_x.shape[1] + batch.query_x.shape[1]) * self.inner_steps
        group = max(1, min(tasks, ROWS_AT_ONCE // rows))
        self.optimizer.zero_grad(set_to_none=True)
        total_loss, total_metric = 0.0, 0.0
        for start in range(0, tasks, group):
            part = Episode(*(x[start:start + group] for x in batch))
            share = len(part.support_x) / tasks
            loss, metric = meta_loss(self.model, self.model.params(), part, self.inner_lr, self.inner_steps,
                                     self.first_order, self.transductive)
            (loss * share).backward()  # through every inner update: this group's share of the meta-gradient
            total_loss, total_metric = total_loss + share * loss.item(), total_metric + share * metric.item()
        self.optimizer.step()
        self.steps += 1
        return {"loss": total_loss, self.model.metric_name: total_metric}
