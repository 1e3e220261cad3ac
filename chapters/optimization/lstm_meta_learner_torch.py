"""The LSTM meta-learner (Ravi & Larochelle, ICLR 2017, "Optimization as a model for few-shot
learning") in PyTorch.

A gradient step on the learner's parameters θ has the form of an LSTM's cell-state update:

    θ_t = θ_{t−1} − α_t ∇_t                 gradient descent, ∇_t = ∇_{θ_{t−1}} L_t
    c_t = f_t ⊙ c_{t−1} + i_t ⊙ c̃_t          an LSTM cell (Hochreiter & Schmidhuber 1997)

with c_t = θ_t, c̃_t = −∇_t, f_t = 1 and i_t = α_t. Ravi & Larochelle (Sec. 3, Eq. 2) make the two
gates learned functions of what an optimizer sees, one coordinate of θ at a time:

    i_t = σ( W_I · [h_t, θ_{t−1}, i_{t−1}] + b_I )       a learned rate, per coordinate and step
    f_t = σ( W_F · [h_t, θ_{t−1}, f_{t−1}] + b_F )       a learned shrinking of θ (weight decay)
    θ_t = c_t = f_t ⊙ c_{t−1} − i_t ⊙ ∇_t

where h_t is the output of a first, ordinary LSTM (20 units, as in the authors' code) whose input
is the coordinate's gradient and the learner's loss, each preprocessed as Andrychowicz et al.
(2016) do (Sec. 3.3; :func:`preprocess`). Every coordinate of θ is a row of one batch: the two
LSTMs are *shared* by all 1,761 coordinates of the sinusoid MLP, so the meta-learner has a few
hundred weights of its own (plus c_0), whatever the size of the learner. The initial cell state
c_0 = θ_0 is a parameter of the meta-learner: it meta-learns MAML's initialisation too.

**What the meta-gradient goes through.** The meta-loss is the query loss at θ_T, after T updates
on the support set. Ravi & Larochelle "ignore the second derivatives" (Sec. 3.2): the learner's
gradients ∇_t and losses L_t, which the meta-learner reads, are treated as constants (here they
are computed on a detached copy of θ_{t−1}). What stays differentiable is the cell-state
recursion: θ_T depends on the meta-learner's weights through i_t and f_t (and h_t), and on c_0
through f_t ⊙ c_{t−1} and the θ_{t−1} that both gates read. This is first-order MAML's
simplification, applied to a learned update rule.

**Initialisation** (Sec. 3.2 and the authors' code): b_F is drawn in [4, 6], so f ≈ 1 (no
forgetting), and b_I in [−5, −4], so i ≈ 0.01: the meta-learner starts as plain gradient descent
with a small step from c_0, the learner's own initial weights. W_I and W_F are uniform in ±0.01,
the first LSTM uniform in ±1/sqrt(20) (PyTorch's default). All of them are drawn with
``np.random.default_rng(seed)`` in the order of :meth:`MetaLearnerLSTM.params`, so the three
frameworks start from the same meta-learner for one seed.

The functions take the meta-learner and the learner network (``networks_torch.SinusoidMLP``,
whose ``forward(params, x)`` runs it on any parameter dict) as their first arguments, as
``maml_torch.py``'s take the network; the names and structure are the same in
``lstm_meta_learner_tf.py`` and ``lstm_meta_learner_keras.py``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from common.adapters import to_torch
from chapters.optimization.lstm_meta_learner import HIDDEN, PREPROCESS_P, check_steps, updates
from common.episodes import Episode
from common.learners import Checkpointed


def preprocess(x: torch.Tensor, p: float = PREPROCESS_P) -> torch.Tensor:
    """Andrychowicz et al.'s preprocessing of gradients and losses (Ravi & Larochelle Sec. 3.3):
    each value x becomes two, on a scale an LSTM can read whatever the magnitude of x,

        (log|x| / p, sign(x))   if |x| ≥ e^−p
        (−1, e^p · x)           otherwise

    shape (...) -> (..., 2). The two cases meet at |x| = e^−p, so it is continuous. ``log`` reads
    |x| clipped at e^−p, so the unused branch never computes log 0.
    """
    threshold = math.exp(-p)
    magnitude = x.abs()
    large = magnitude >= threshold
    log_part = torch.where(large, torch.log(magnitude.clamp(min=threshold)) / p, -torch.ones_like(x))
    sign_part = torch.where(large, torch.sign(x), math.exp(p) * x)
    return torch.stack([log_part, sign_part], dim=-1)


def lstm_cell(x, state, kernel, recurrent_kernel, bias):
    """One step of an ordinary LSTM, ``(x, (h, c)) -> (h', c')``, the gates in the canonical order
    input, forget, candidate, output of the 4H columns (``common.tf_layers.lstm_cell``)."""
    h, c = state
    i, f, g, o = torch.chunk(x @ kernel + h @ recurrent_kernel + bias, 4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


class LSTM(nn.Module):
    """The first LSTM's weights, canonical layouts: ``kernel`` (in, 4H), ``recurrent_kernel``
    (H, 4H), ``bias`` (4H,). Not ``nn.LSTMCell``, whose weights are (4H, in) and whose bias is two."""

    def __init__(self, input_size: int, units: int, rng: np.random.Generator, dtype):
        super().__init__()
        bound = 1 / math.sqrt(units)  # nn.LSTMCell's default
        self.kernel = nn.Parameter(torch.tensor(rng.uniform(-bound, bound, (input_size, 4 * units)), dtype=dtype))
        self.recurrent_kernel = nn.Parameter(torch.tensor(rng.uniform(-bound, bound, (units, 4 * units)), dtype=dtype))
        self.bias = nn.Parameter(torch.tensor(rng.uniform(-bound, bound, (4 * units,)), dtype=dtype))


class MetaLSTMCell(nn.Module):
    """The special cell of Eq. (2): ``input_kernel`` W_I and ``forget_kernel`` W_F (H + 2, 1), read
    [h_t, θ_{t−1}, gate_{t−1}]; ``input_bias`` b_I and ``forget_bias`` b_F (1,); ``initial_params``
    c_0 = θ_0 (P,), the learner's flattened initial parameters."""

    def __init__(self, units: int, initial_params: np.ndarray, rng: np.random.Generator, dtype):
        super().__init__()

        def parameter(values):
            return nn.Parameter(torch.tensor(values, dtype=dtype))

        self.input_kernel = parameter(rng.uniform(-0.01, 0.01, (units + 2, 1)))
        self.input_bias = parameter(rng.uniform(-5, -4, (1,)))  # i ≈ σ(−4.5) ≈ 0.01: a small step
        self.forget_kernel = parameter(rng.uniform(-0.01, 0.01, (units + 2, 1)))
        self.forget_bias = parameter(rng.uniform(4, 6, (1,)))  # f ≈ σ(5) ≈ 1: no forgetting
        self.initial_params = parameter(initial_params)


class MetaLearnerLSTM(nn.Module):
    """The coordinate-wise meta-learner of Ravi & Larochelle Sec. 3: ``lstm`` (the first LSTM, 4
    inputs, ``hidden`` units) and ``cell`` (Eq. 2, whose cell state is the learner's θ).

    Built from the learner network, whose parameters give the names, shapes and order of θ and the
    starting value of c_0; the network itself is not kept (its weights are not the meta-learner's).
    """

    def __init__(self, learner_model, hidden: int = HIDDEN, seed: int = 0):
        super().__init__()
        learner_params = learner_model.params()
        first = next(iter(learner_params.values()))
        self.names = tuple(learner_params)
        self.shapes = tuple(tuple(p.shape) for p in learner_params.values())
        initial = np.concatenate([p.detach().cpu().numpy().reshape(-1) for p in learner_params.values()])
        rng = np.random.default_rng(seed)
        self.lstm = LSTM(4, hidden, rng, first.dtype)
        self.cell = MetaLSTMCell(hidden, initial.astype(np.float64), rng, first.dtype)
        self.hidden = hidden

    def params(self) -> dict[str, torch.Tensor]:
        """The meta-learner's parameters under canonical names: ``lstm.kernel``,
        ``lstm.recurrent_kernel``, ``lstm.bias``, ``cell.input_kernel``, ``cell.input_bias``,
        ``cell.forget_kernel``, ``cell.forget_bias``, ``cell.initial_params``."""
        return dict(self.named_parameters())

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """A flat θ (P,) as the learner's parameter dict (views, differentiable)."""
        sizes = [math.prod(shape) for shape in self.shapes]
        return {name: part.view(shape) for name, part, shape in
                zip(self.names, torch.split(theta, sizes), self.shapes)}

    def initial_state(self, theta: torch.Tensor):
        """(h_0, c_0 of the first LSTM, f_0, i_0): zeros, one row per coordinate of θ."""
        zeros = theta.new_zeros((len(theta), self.hidden))
        gates = theta.new_zeros((len(theta), 1))
        return zeros, zeros, gates, gates

    def step(self, gradient: torch.Tensor, loss: torch.Tensor, theta: torch.Tensor, state):
        """One update θ_{t−1} -> θ_t of Eq. (2), for all coordinates at once: ``gradient`` ∇_t (P,)
        and ``loss`` L_t (a scalar), constants; ``theta`` θ_{t−1} (P,); ``state`` as
        :meth:`initial_state` returns it. Returns (θ_t, the new state)."""
        h, c, forget, input_gate = state
        x = torch.cat([preprocess(gradient), preprocess(loss).expand(len(gradient), 2)], dim=1)  # (P, 4)
        h, c = lstm_cell(x, (h, c), self.lstm.kernel, self.lstm.recurrent_kernel, self.lstm.bias)
        previous = theta[:, None]  # (P, 1): the cell state c_{t−1} = θ_{t−1}
        forget = torch.sigmoid(torch.cat([h, previous, forget], 1) @ self.cell.forget_kernel
                               + self.cell.forget_bias)
        input_gate = torch.sigmoid(torch.cat([h, previous, input_gate], 1) @ self.cell.input_kernel
                                   + self.cell.input_bias)
        theta = (forget * previous - input_gate * gradient[:, None])[:, 0]  # c_t = f_t c_{t−1} − i_t ∇_t
        return theta, (h, c, forget, input_gate)


def loss_and_gradient(meta_learner: MetaLearnerLSTM, model, theta: torch.Tensor, x: torch.Tensor,
                      y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """L_t and ∇_t = ∇_θ L(θ) of the learner on (x, y) at θ, as *constants*: computed on a detached
    copy of θ, so the meta-gradient does not go through them (Ravi & Larochelle Sec. 3.2)."""
    theta = theta.detach().requires_grad_()
    loss = model.loss(model.forward(meta_learner.unflatten(theta), x), y)
    (gradient,) = torch.autograd.grad(loss, theta)
    return loss.detach(), gradient


def trajectory(meta_learner: MetaLearnerLSTM, model, support_x: torch.Tensor, support_y: torch.Tensor,
               steps: int) -> list[torch.Tensor]:
    """[θ_0 = c_0, θ_1, ..., θ_steps], flat: the meta-learner's updates on the full support set."""
    theta = meta_learner.cell.initial_params
    return updates(meta_learner, model, theta, support_x, support_y, steps, loss_and_gradient)


def unroll(meta_learner: MetaLearnerLSTM, model, support_x: torch.Tensor, support_y: torch.Tensor,
           steps: int) -> dict[str, torch.Tensor]:
    """The learner's parameters θ_T after T = ``steps`` updates on the support set, as a dict of the
    learner's canonical names, differentiable with respect to the meta-learner's parameters."""
    return meta_learner.unflatten(trajectory(meta_learner, model, support_x, support_y, steps)[-1])


def meta_loss(meta_learner: MetaLearnerLSTM, model, meta_batch: Episode,
              steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean over the meta-batch's tasks of the query loss at θ_T, and the mean of the model's
    metric there (for monitoring; it carries no gradient). ``meta_batch`` holds B tasks along a
    leading axis (support_x (B, K, 1), ...). Its gradient is the meta-gradient."""
    support_x, support_y, query_x, query_y = meta_batch
    total_loss, total_metric = 0.0, 0.0
    for t in range(len(support_x)):  # one task at a time
        adapted = unroll(meta_learner, model, support_x[t], support_y[t], steps)
        outputs = model.forward(adapted, query_x[t])
        total_loss = total_loss + model.loss(outputs, query_y[t])
        total_metric = total_metric + model.metric(outputs.detach(), query_y[t])
    return total_loss / len(support_x), total_metric / len(support_x)


def adaptation_curve(meta_learner: MetaLearnerLSTM, model, episode: Episode, steps: int) -> np.ndarray:
    """Query loss of one task at θ_0 = c_0, θ_1, ..., θ_steps: entry 0 is the learned
    initialisation without adaptation, entry k the learner after k updates of the meta-learner."""
    support_x, support_y, query_x, query_y = episode
    thetas = trajectory(meta_learner, model, support_x, support_y, steps)
    with torch.no_grad():
        return np.array([model.loss(model.forward(meta_learner.unflatten(theta), query_x), query_y).item()
                         for theta in thetas])


class LSTMMetaLearner(Checkpointed):
    """Meta-training of a :class:`MetaLearnerLSTM` for a network of ``networks_torch.py``: Adam
    (rate ``meta_lr``) on the meta-loss, the query loss after ``steps`` updates."""

    # The checkpoint: the meta-learner (``meta_learner.<canonical name>``), the optimizer's state and
    # the meta-update counter.
    framework, trained, counters = "torch", "meta_learner", ("meta_steps",)

    def __init__(self, model, steps: int = 5, hidden: int = HIDDEN, meta_lr: float = 1e-3, seed: int = 0):
        check_steps(steps)
        self.model, self.steps = model, steps
        self.meta_learner = MetaLearnerLSTM(model, hidden, seed)
        self.optimizer = torch.optim.Adam(self.meta_learner.parameters(), lr=meta_lr)
        self.meta_steps = 0  # meta-updates taken

    def _inputs(self, episode: Episode) -> Episode:
        """NumPy episode -> torch tensors, the floating parts in the meta-learner's dtype."""
        dtype = self.meta_learner.cell.initial_params.dtype
        parts = to_torch(Episode(*(np.asarray(part) for part in episode)))
        return Episode(*(part.to(dtype) if part.is_floating_point() else part for part in parts))

    def meta_step(self, meta_batch: Episode) -> dict[str, float]:
        """One meta-update on a meta-batch of tasks; returns the meta-loss and metric before it."""
        loss, metric = meta_loss(self.meta_learner, self.model, self._inputs(meta_batch), self.steps)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # through the cell-state updates of every task, not through ∇_t
        self.optimizer.step()
        self.meta_steps += 1
        return {"loss": loss.item(), self.model.metric_name: metric.item()}

    def adaptation_curve(self, episode: Episode, steps: int | None = None) -> np.ndarray:
        """Query loss of one task after 0..``steps`` updates (default: the ``steps`` of training)."""
        return adaptation_curve(self.meta_learner, self.model, self._inputs(episode),
                                self.steps if steps is None else steps)
