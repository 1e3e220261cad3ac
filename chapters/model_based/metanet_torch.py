"""Meta Networks (Munkhdalai & Yu, ICML 2017) in PyTorch.

One episode, in the order of the paper's Algorithm 1 (equation numbers are the paper's):

1. **task-level fast weights** (Eqs. 1-2): u's loss on T groups of the support set gives T
   gradients ``nabla_t = dL_emb / dQ``; the LSTM d reads them, coordinate by coordinate, and
   outputs ``Q* = d(G, {nabla_t})``;
2. **keys** (Eq. 5): every support and query image through u with Q and Q* (layer augmentation),
   ``r = u(Q, Q*, x)``, the key being u's first dense layer;
3. **example-level fast weights** (Eqs. 3-4): each support example's own loss gradient
   ``nabla_i = dL_task(b(W, x'_i), y'_i) / dW`` goes through the MLP m, ``W*_i = m(Z, nabla_i)``, and
   is written to the memory M at key r'_i;
4. **read** (Eqs. 6-8): a query's attention over the support keys, ``a = softmax(cos(R, r))``, its
   fast weights ``W* = a^T M``, and its logits ``b(W, W*, x)``.

Gradients are meta *information*: computed with their own ``torch.autograd.grad`` and detached, so
the meta-gradient (Adam's, on the queries' loss) reaches W, Q, Z and G through the fast weights
and the keys, never through the meta information itself. Kernels are stored in the canonical
(TensorFlow) layouts, conv (3, 3, in, out), dense (in, out), images enter channels first.
Same names in ``metanet_tf.py`` and ``metanet_keras.py``; sizes and choices in ``metanet.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from chapters.model_based import metanet


def preprocess(gradient: torch.Tensor, k: float = metanet.GRADIENT_SCALE) -> torch.Tensor:
    """Andrychowicz et al.'s preprocessing of gradient coordinates, (...) -> (..., 2):
    ``(max(log(|g| + eps) / k, -1), clip(g e^k, -1, 1))``, a scale and a sign that a small
    network can read whatever the gradient's magnitude."""
    eps = torch.finfo(gradient.dtype).eps
    log = torch.clamp(torch.log(gradient.abs() + eps) / k, min=-1.0)
    sign = torch.clamp(gradient * torch.exp(torch.tensor(k, dtype=gradient.dtype)), -1.0, 1.0)
    return torch.stack([log, sign], -1)


def cosine_similarity(keys: torch.Tensor, memory_keys: torch.Tensor) -> torch.Tensor:
    """(Q, S): ``r . r' / sqrt(|r|^2 |r'|^2 + eps)`` for every query key r and support key r'."""
    norms = (keys ** 2).sum(1, keepdim=True) * (memory_keys ** 2).sum(1)
    return keys @ memory_keys.T / torch.sqrt(norms + metanet.COSINE_EPS)


# ---------------------------------------------------------------------------- b and u

def conv(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """3x3 convolution, 'same' padding, of images (B, C, H, W) with one kernel (3, 3, in, out)
    shared by the batch, or one kernel per image, (B, 3, 3, in, out): a grouped convolution whose
    B groups are the images."""
    if kernel.dim() == 4:
        return F.conv2d(x, kernel.permute(3, 2, 0, 1), padding=1)
    batch, channels, height, width = x.shape
    weight = kernel.permute(0, 4, 3, 1, 2).reshape(-1, channels, 3, 3)  # (B * out, in, 3, 3)
    return F.conv2d(x.reshape(1, batch * channels, height, width), weight, padding=1,
                    groups=batch).reshape(batch, -1, height, width)


def dense(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """x (B, in) by one kernel (in, out), or by one kernel per row, (B, in, out)."""
    return x @ kernel if kernel.dim() == 2 else torch.einsum("bi,bio->bo", x, kernel)


def pool(x: torch.Tensor) -> torch.Tensor:
    """2x2 max-pooling that keeps a partial last window (7 -> 4), as TensorFlow's 'SAME'."""
    return F.max_pool2d(x, 2, ceil_mode=True)


class ConvNet(nn.Module):
    """b and u: five conv blocks, a 64-unit dense layer, an N-unit output layer, no biases.

    ``kernels`` are the slow weights. Every method takes ``fast``, a list of fast kernels for the
    first layers (shared by the batch, or one per image: a leading batch axis), or None; a layer
    with a fast kernel is augmented (Section 3.3): ``relu(x W) + relu(x W*)``, and for the output
    layer, ``x W + x W*``.
    """

    def __init__(self, image_shape, way: int, train_output: bool = True):
        super().__init__()
        self.kernels = nn.ParameterList(nn.Parameter(torch.zeros(shape))
                                        for shape in metanet.kernel_shapes(image_shape, way))
        self.kernels[-1].requires_grad_(train_output)

    def layer(self, i: int, x, fast, op, activation=None):
        """Layer ``i`` on x: ``act(op(x, W_i))``, plus ``act(op(x, W*_i))`` when it has a fast kernel."""
        return metanet.augmented(op, x, self.kernels[i], None if fast is None else fast[i], activation)

    def features(self, x, fast=None):
        """(B, features): the conv blocks, flattened in (H, W, C) order."""
        for i in range(metanet.CONV_LAYERS):
            x = pool(self.layer(i, x, fast, conv, torch.relu))
        return x.movedim(1, -1).flatten(1)

    def key(self, x, fast=None):
        """u's embedding r: the first dense layer before its ReLU, slow and fast summed (Eq. 5)."""
        return self.layer(metanet.KEY_LAYER, self.features(x, fast), fast, dense)

    def forward(self, x, fast=None):
        """Logits (B, way)."""
        h = self.layer(metanet.CONV_LAYERS, self.features(x, fast), fast, dense, torch.relu)
        return self.layer(metanet.CONV_LAYERS + 1, h, fast, dense)


def meta_information(net: ConvNet, x, y, layers: list[int]) -> dict[int, torch.Tensor]:
    """The gradient of ``net``'s cross-entropy on (x, y) with respect to its kernels ``layers``,
    detached: meta information is data for the generators, not a path for the meta-gradient."""
    with torch.enable_grad():  # also while evaluating under no_grad
        loss = F.cross_entropy(net(x), y)
        gradients = torch.autograd.grad(loss, [net.kernels[i] for i in layers])
    return {i: gradient.detach() for i, gradient in zip(layers, gradients)}


# ---------------------------------------------------------------------------- m and d

class CoordinateMLP(nn.Module):
    """m (Eq. 4): 2 -> 20 -> 20 -> 1 with ReLUs, applied to every coordinate's preprocessed gradient."""

    def __init__(self):
        super().__init__()
        sizes = [2, metanet.META_HIDDEN, metanet.META_HIDDEN, 1]
        self.kernels = nn.ParameterList(nn.Parameter(torch.zeros(a, b)) for a, b in zip(sizes, sizes[1:]))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(b)) for b in sizes[1:])

    def forward(self, meta_info: torch.Tensor) -> torch.Tensor:
        """(..., 2) -> (...): one fast weight per coordinate."""
        h = meta_info
        for i, (kernel, bias) in enumerate(zip(self.kernels, self.biases)):
            h = h @ kernel + bias
            h = torch.relu(h) if i < len(self.kernels) - 1 else h
        return h[..., 0]


class CoordinateLSTM(nn.Module):
    """d (Eq. 2): an LSTM of 20 units reads one coordinate's preprocessed gradients, one per step,
    and a linear map of its last hidden state is that coordinate's fast weight. Gates in the
    canonical order (input, forget, cell, output)."""

    def __init__(self):
        super().__init__()
        units = metanet.META_HIDDEN
        self.kernel = nn.Parameter(torch.zeros(2, 4 * units))
        self.recurrent_kernel = nn.Parameter(torch.zeros(units, 4 * units))
        self.bias = nn.Parameter(torch.zeros(4 * units))
        self.output_kernel = nn.Parameter(torch.zeros(units, 1))
        self.output_bias = nn.Parameter(torch.zeros(1))

    def forward(self, steps: list[torch.Tensor]) -> torch.Tensor:
        """``steps``: T tensors (P, 2) -> (P,)."""
        hidden = cell = steps[0].new_zeros(len(steps[0]), self.recurrent_kernel.shape[0])
        for meta_info in steps:
            gates = meta_info @ self.kernel + hidden @ self.recurrent_kernel + self.bias
            i, f, g, o = gates.chunk(4, 1)
            cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
            hidden = torch.sigmoid(o) * torch.tanh(cell)
        return (hidden @ self.output_kernel + self.output_bias)[:, 0]


def flatten(kernels: list[torch.Tensor], lead: int) -> torch.Tensor:
    """The kernels' coordinates side by side, (*lead axes, P): what a generator reads."""
    return torch.cat([kernel.reshape(*kernel.shape[:lead], -1) for kernel in kernels], -1)


def unflatten(values: torch.Tensor, shapes: list[tuple]) -> list[torch.Tensor]:
    """The inverse of :func:`flatten`: (*lead, P) -> one tensor (*lead, *shape) per kernel."""
    lead = values.shape[:-1]
    pieces = values.split([int(torch.tensor(shape).prod()) for shape in shapes], -1)
    return [piece.reshape(*lead, *shape) for piece, shape in zip(pieces, shapes)]


def rows(x: torch.Tensor, indices) -> torch.Tensor:
    """The rows of ``x`` at ``indices`` (NumPy positions): a support group for d."""
    return x[torch.as_tensor(indices)]


OPERATIONS = metanet.Operations(meta_information, rows, torch.stack, preprocess, flatten, unflatten)


def check_episode(support_y, query_x, way: int) -> None:
    """``metanet.check_episode``: a ``ConfigError`` that says what to change, before any computation."""
    metanet.check_episode(support_y.cpu().numpy(), len(query_x), way)


class MetaNet(nn.Module):
    """``forward(support_x, support_y, query_x)`` returns the logits of every query, (Q, way).

    ``base`` (b, slow weights W), ``representation`` (u, slow weights Q), ``example_meta`` (m,
    weights Z) and ``task_meta`` (d, weights G), each with a generator for every kind of layer
    (``conv``, ``dense``) that has fast weights.
    """

    def __init__(self, image_shape=(28, 28, 1), way: int = 5, fast_layers: int = metanet.ALL_LAYERS,
                 task_fast_weights: bool = True):
        super().__init__()
        self.way, self.fast_layers, self.task_fast = way, fast_layers, task_fast_weights
        self.base = ConvNet(image_shape, way)
        self.representation = ConvNet(image_shape, way, train_output=False)  # see metanet.py
        # m and d: a generator for each kind of layer (conv, dense) that has fast weights
        example_layers, task_layers = metanet.fast_layers_of(fast_layers, task_fast_weights)
        self.example_meta = nn.ModuleDict({name: CoordinateMLP() for name in metanet.layer_groups(example_layers)})
        self.task_meta = nn.ModuleDict({name: CoordinateLSTM() for name in metanet.layer_groups(task_layers)})

    def task_fast_weights(self, support_x, support_y) -> list:
        """Q* (Eqs. 1-2): :func:`metanet.task_fast_weights` with PyTorch's operations."""
        return metanet.task_fast_weights(self, support_x, support_y, OPERATIONS)

    def example_fast_weights(self, support_x, support_y) -> list:
        """The memory M (Eqs. 3-4): :func:`metanet.example_fast_weights` with PyTorch's operations."""
        return metanet.example_fast_weights(self, support_x, support_y, OPERATIONS)

    def read(self, support_x, support_y, query_x):
        """(query logits (Q, way), attention (Q, S), Q* (u's fast kernels), M (b's fast kernels of
        every support example, (S, *shape) each)): everything the chapter draws."""
        check_episode(support_y, query_x, self.way)
        task_fast = self.task_fast_weights(support_x, support_y)
        keys = self.representation.key(torch.cat([support_x, query_x]), task_fast)   # Eq. 5
        memory_keys, query_keys = keys[:len(support_x)], keys[len(support_x):]
        memory = self.example_fast_weights(support_x, support_y)
        attention = torch.softmax(cosine_similarity(query_keys, memory_keys), 1)      # Eq. 6
        fast = [None if kernels is None else torch.tensordot(attention, kernels, dims=1)  # Eq. 7
                for kernels in memory]
        return self.base(query_x, fast), attention, task_fast, memory  # Eq. 8

    def forward(self, support_x, support_y, query_x) -> torch.Tensor:
        return self.read(support_x, support_y, query_x)[0]
