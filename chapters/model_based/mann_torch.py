"""Memory-augmented neural network with least-recently-used access (Santoro et al., ICML 2016) in PyTorch.

An LSTM *controller* reads the image x_t, the previous label y_{t-1} and what the heads read at the
previous step, and emits, for each of R heads, a key k_t (R keys of width W) and a gate α. The
*memory* M_t has N rows of width W. Per head (Section 3 of the paper; names as there):

    K(k, M(i))  = k . M(i) / (||k|| ||M(i)||)                       cosine similarity
    w^r_t(i)    = softmax_i K(k_t, M_t(i))                          read weights
    r_t         = sum_i w^r_t(i) M_t(i)                             read vector
    w^w_t       = σ(α) w^r_{t-1} + (1 - σ(α)) w^lu_{t-1}            write weights, LRUA
    M_t(i)      = M_{t-1}(i) + w^w_t(i) k_t                         the write
    w^u_t       = γ w^u_{t-1} + w^r_t + w^w_t                       usage
    w^lu_t(i)   = 1 if w^u_t(i) is among the n smallest usages, else 0 (n = R, the reads)

Before writing, the least-used row (by w^u_{t-1}) is zeroed. The write goes either where the head
read last (to update a memory it has just used) or to the least-used rows (to store something
new); the gate σ(α) learns which. The output is a softmax over the ``way`` labels of the
controller's output and the R read vectors. ``LSTMBaseline`` is the controller alone.

Same names and structure in ``mann_tf.py`` and ``mann_keras.py``; ``write_weights``, plain
arithmetic, is written once in ``mann.py``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from chapters.model_based.mann import check_sequence, previous_labels, write_weights
from common.learners import Checkpointed

MEMORY_INIT = 1e-6  # every memory cell starts at this small constant: a cosine needs a nonzero row
NORM_EPS = 1e-8     # inside the square roots of the norms: a zeroed row has a finite gradient


def least_used(usage: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """w^lu, 1 on the ``n`` rows of smallest usage (B, N); and the one row of smallest usage.

    Ties (every usage is 0 at the start) go to the lower row index. Rows are ranked by comparing
    usages pairwise rather than by a top-k, whose order among ties differs between frameworks.
    """
    smaller = usage[:, None, :] < usage[:, :, None]                  # [b, i, j]: u_j < u_i
    tied_before = (usage[:, None, :] == usage[:, :, None]) & torch.ones(
        usage.shape[1], usage.shape[1], dtype=torch.bool, device=usage.device).tril(-1)  # u_j == u_i, j < i
    rank = (smaller | tied_before).sum(-1)                           # 0 for the least-used row
    return (rank < n).to(usage.dtype), (rank == 0).to(usage.dtype)


def cosine_similarity(keys: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """K(k_r, M(i)) for every head r and row i; (B, R, W), (B, N, W) -> (B, R, N)."""
    key_norms = torch.sqrt((keys ** 2).sum(-1) + NORM_EPS)
    row_norms = torch.sqrt((memory ** 2).sum(-1) + NORM_EPS)
    return keys @ memory.transpose(1, 2) / (key_norms[:, :, None] * row_norms[:, None, :])


def single_bias(cell: nn.LSTMCell) -> nn.LSTMCell:
    """One bias per gate, as TensorFlow and Keras have: PyTorch's second one, ``bias_hh``, is zeroed
    and frozen. Only the sum ``bias_ih + bias_hh`` enters the gates, but an optimizer would move
    each by a full step, the sum by two, and the frameworks would part after the first update."""
    with torch.no_grad():
        cell.bias_hh.zero_()
    cell.bias_hh.requires_grad_(False)
    return cell


class MANN(nn.Module):
    def __init__(self, way: int = 5, image_size: int = 20, controller: int = 200, memory_rows: int = 128,
                 memory_width: int = 40, read_heads: int = 4, gamma: float = 0.95, add_vector: bool = False):
        super().__init__()
        self.way, self.rows, self.width, self.heads, self.gamma = way, memory_rows, memory_width, read_heads, gamma
        self.add_vector = add_vector
        self.controller = single_bias(nn.LSTMCell(image_size ** 2 + way + read_heads * memory_width, controller))
        self.key = nn.Linear(controller, read_heads * memory_width)   # k_t of every head
        self.gate = nn.Linear(controller, read_heads)                 # α of every head
        self.readout = nn.Linear(controller + read_heads * memory_width, way)
        if add_vector:  # a_t of every head, drawn last: the rest starts as the paper's MANN of the same seed
            self.add = nn.Linear(controller, read_heads * memory_width)

    def initial_state(self, batch: int, dtype: torch.dtype, device=None) -> dict:
        def zeros(*shape):
            return torch.zeros(shape, dtype=dtype, device=device)
        return {"h": zeros(batch, self.controller.hidden_size), "c": zeros(batch, self.controller.hidden_size),
                "memory": torch.full((batch, self.rows, self.width), MEMORY_INIT, dtype=dtype, device=device),
                "read_weights": zeros(batch, self.heads, self.rows), "usage": zeros(batch, self.rows),
                "reads": zeros(batch, self.heads, self.width)}

    def step(self, x: torch.Tensor, y_previous: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """One time step: (B, H*W) pixels, (B, way) one-hot previous label -> (B, way) logits, new state."""
        batch = x.shape[0]
        h, c = self.controller(torch.cat([x, y_previous, state["reads"].flatten(1)], 1), (state["h"], state["c"]))
        keys = torch.tanh(self.key(h)).view(batch, self.heads, self.width)
        # What is written: the key itself (Section 3), or a separate add vector a_t (--add-vector)
        contents = torch.tanh(self.add(h)).view(batch, self.heads, self.width) if self.add_vector else keys
        gate = torch.sigmoid(self.gate(h))
        least, least_one = least_used(state["usage"], self.heads)              # from w^u_{t-1}
        writes = write_weights(state["read_weights"], least, gate)
        memory = state["memory"] * (1 - least_one[:, :, None]) + writes.transpose(1, 2) @ contents  # the write
        read_weights = torch.softmax(cosine_similarity(keys, memory), dim=-1)   # read weights
        reads = read_weights @ memory                                          # read vectors
        usage = self.gamma * state["usage"] + read_weights.sum(1) + writes.sum(1)  # usage
        logits = self.readout(torch.cat([h, reads.flatten(1)], 1))
        return logits, {"h": h, "c": c, "memory": memory, "read_weights": read_weights, "usage": usage,
                        "reads": reads, "write_weights": writes}

    def forward(self, images: torch.Tensor, labels: torch.Tensor, trace: bool = False):
        """Logits of every step, (B, T, way), from images (B, T, C, H, W) and their labels (B, T).

        With ``trace=True`` also every step's state (B, T, ...): h, c, memory, read and write
        weights, usage, reads: what the chapter draws and the exact tests compare."""
        x = images.flatten(2)
        y_previous = torch.from_numpy(previous_labels(labels.cpu().numpy(), self.way)).to(x)
        state = self.initial_state(x.shape[0], x.dtype, x.device)
        logits, states = [], []
        for t in range(x.shape[1]):
            step_logits, state = self.step(x[:, t], y_previous[:, t], state)
            logits.append(step_logits)
            states.append(state)
        logits = torch.stack(logits, 1)
        if not trace:
            return logits
        return logits, {name: torch.stack([s[name] for s in states], 1) for name in states[0]}


class LSTMBaseline(nn.Module):
    """The controller alone: an LSTM reading (x_t, y_{t-1}), its output through a softmax layer."""

    def __init__(self, way: int = 5, image_size: int = 20, controller: int = 200):
        super().__init__()
        self.way = way
        self.controller = single_bias(nn.LSTMCell(image_size ** 2 + way, controller))
        self.readout = nn.Linear(controller, way)

    def initial_state(self, batch: int, dtype: torch.dtype, device=None) -> dict:
        return {name: torch.zeros(batch, self.controller.hidden_size, dtype=dtype, device=device)
                for name in ("h", "c")}

    def step(self, x, y_previous, state):
        h, c = self.controller(torch.cat([x, y_previous], 1), (state["h"], state["c"]))
        return self.readout(h), {"h": h, "c": c}

    def forward(self, images: torch.Tensor, labels: torch.Tensor, trace: bool = False):
        """The same time loop as :meth:`MANN.forward`, over this network's ``step``."""
        return MANN.forward(self, images, labels, trace)


def build_network(model: str, settings: dict, seed: int = 0, dtype: str = "float32") -> nn.Module:
    """``MANN(**settings)`` or ``LSTMBaseline(**settings)``, drawn from ``seed``."""
    torch.manual_seed(seed)
    network = MANN(**settings) if model == "mann" else LSTMBaseline(**settings)
    return network.to(getattr(torch, dtype))


def sequence_loss(network, images, labels):
    """(mean cross-entropy over every step of every episode, logits)."""
    logits = network(images, labels)
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten()), logits


class SequenceLearner(Checkpointed):
    """The interface of ``common.training``: one RMSProp step per batch of episodes, prediction of
    every step of an episode, and checkpoint state. RMSProp as in the paper: decay 0.95, momentum 0.9."""

    framework = "torch"

    def __init__(self, model: nn.Module, lr: float = 1e-4, device=None):
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.model = model.to(self.device)
        self.dtype = next(model.parameters()).dtype
        self.optimizer = torch.optim.RMSprop([p for p in model.parameters() if p.requires_grad], lr=lr, alpha=0.95,
                                             momentum=0.9, eps=1e-8)

    def tensors(self, episode):
        """Images (B, T, C, H, W) and labels (B, T) of a batch of episodes, on the device."""
        check_sequence(episode.support_y, self.model.way)
        images = torch.from_numpy(np.asarray(episode.support_x)).movedim(-1, -3)
        return (images.to(self.device, self.dtype),
                torch.from_numpy(np.asarray(episode.support_y)).to(self.device))

    def train_step(self, batch) -> dict:
        images, labels = self.tensors(batch)
        self.model.train()
        loss, logits = sequence_loss(self.model, images, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        accuracy = (logits.argmax(-1) == labels).to(torch.float32).mean()
        return {"loss": loss.item(), "accuracy": accuracy.item()}

    @torch.no_grad()
    def predict(self, episode) -> np.ndarray:
        """The predicted label of every step of one episode, (T,)."""
        images, labels = self.tensors(episode)
        self.model.eval()
        return self.model(images[None], labels[None])[0].argmax(-1).cpu().numpy()

    @torch.no_grad()
    def trace(self, episode) -> dict:
        """Every step's state on one episode, as NumPy arrays (T, ...), with the logits."""
        images, labels = self.tensors(episode)
        logits, states = self.model(images[None], labels[None], trace=True)
        return {"logits": logits[0].cpu().numpy(), **{k: v[0].cpu().numpy() for k, v in states.items()}}
