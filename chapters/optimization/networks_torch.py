"""The two networks of the optimization-based chapter in PyTorch, as functions of a parameter dict.

MAML (Finn, Abbeel & Levine 2017), Meta-SGD (Li et al. 2017) and Reptile (Nichol et al. 2018)
run a network on *adapted* parameters θ' = θ − α ∇L_S(θ), tensors computed from θ rather than
the module's own ``nn.Parameter``\\ s. So each network here is a ``forward(params, x)`` of a dict
``{canonical name: tensor}``; the module only holds θ and gives it its names.

* :class:`SinusoidMLP`: Finn et al. Sec. 5.1, regression 1 → 40 → 40 → 1 with ReLU, MSE loss.
* :class:`Conv4Classifier`: Finn et al. Sec. 5.2 (the network of Vinyals et al. 2016): four blocks
  conv 3x3 (64 filters) → BatchNorm → ReLU → max-pool 2x2, then a linear head to N logits; or,
  with ``backbone="strided"``, the network of their released Omniglot code: stride-2 convolutions
  instead of max-pooling and the mean of the final map (``common.backbones.BACKBONES``).

The parameters live in small modules of our own (:class:`Dense`, :class:`Conv`, :class:`Norm`)
whose ``nn.Parameter``\\ s already have the canonical names and layouts of ``common.weights``
(conv kernels (3, 3, in, out), dense kernels (in, out), as TensorFlow stores them). Then
``model.params()`` = ``dict(model.named_parameters())`` is the very same dict, keys and shapes, as
in ``networks_tf.py`` and ``networks_keras.py``, and canonical weights load into any of the three.

**BatchNorm in MAML.** Finn et al.'s networks keep no running statistics: every forward pass
normalises each channel with the mean and the *biased* variance of the batch it is given,

    y = (x − mean) / sqrt(var + 1e-5) · γ + β,    mean, var over (N, H, W) for each channel,

written out here by hand (not ``F.batch_norm`` and not ``nn.BatchNorm2d``): the formula must be
differentiable twice, through the statistics too, for second-order MAML's Hessian term, and it
must be the same formula in all three frameworks. Whose batch gives the statistics matters:

* ``reference=None``: ``x`` itself, as in Finn et al.'s code. On a query set this is
  *transductive*: each query's prediction depends on the other queries of the task.
* ``reference=support_x``: the statistics of the support set only, applied to ``x``. A query is
  then normalised like the support images the network adapted on, and its prediction depends on
  the support set and itself alone (non-transductive, the fair protocol when queries arrive one
  at a time). The network runs once on ``concat([reference, x])``; every BatchNorm takes its
  statistics from the first ``len(reference)`` rows, and the rows of ``x`` are returned.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from common.backbones import BACKBONES, conv4_embedding_size, same_padding
from common.errors import ConfigError

EPSILON = 1e-5  # BatchNorm's ε, PyTorch's and TensorFlow's default


class Dense(nn.Module):
    """``x @ kernel + bias`` with the kernel stored (in, out), the canonical layout.

    Not ``nn.Linear``, whose ``weight`` is (out, in). Initialised as ``nn.Linear``: kernel and bias
    uniform in ±1/sqrt(fan_in).
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        bound = 1 / math.sqrt(in_features)
        self.kernel = nn.Parameter(torch.empty(in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))


class Conv(nn.Module):
    """A 3x3 convolution with its kernel stored (3, 3, in, out), the canonical layout.

    Initialised as ``nn.Conv2d``: kernel and bias uniform in ±1/sqrt(9 · in).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        bound = 1 / math.sqrt(9 * in_channels)
        self.kernel = nn.Parameter(torch.empty(3, 3, in_channels, out_channels).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))


class Norm(nn.Module):
    """BatchNorm's affine parameters γ (ones) and β (zeros), and nothing else: no running statistics."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))


class Block(nn.Module):
    """The parameters of one Conv-4 block: ``conv`` (kernel, bias) and ``norm`` (gamma, beta)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = Conv(in_channels, out_channels)
        self.norm = Norm(out_channels)


def conv2d(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """3x3 convolutions of T tasks at once, with TensorFlow's "SAME" padding.

    ``x`` is (N, T·in, H, W): the T tasks' channels side by side, each task's ``in`` channels a
    group. ``kernel`` (T, 3, 3, in, out) and ``bias`` (T, out) hold each task's own parameters (the
    canonical layout with a leading task axis). One grouped convolution (``groups=T``) applies task
    t's kernel to task t's channels only, and gives (N, T·out, H', W').

    Stride 1: one pixel on every side (``padding=1``). Stride 2: the extra pixel goes after, as
    TensorFlow pads (``common.backbones.same_padding``), so the three frameworks see the same windows.
    """
    tasks, _, _, c_in, c_out = kernel.shape
    kernel = kernel.permute(0, 4, 3, 1, 2).reshape(tasks * c_out, c_in, 3, 3)  # to torch's (out, in, 3, 3), per group
    bias = bias.reshape(tasks * c_out)
    if stride == 1:
        return F.conv2d(x, kernel, bias, padding=1, groups=tasks)
    top, bottom = same_padding(x.shape[2], stride)
    left, right = same_padding(x.shape[3], stride)
    return F.conv2d(F.pad(x, (left, right, top, bottom)), kernel, bias, stride=stride, groups=tasks)


def batch_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
               reference_rows: int | None = None) -> torch.Tensor:
    """Normalise each channel of each task in x (N, T·C, H, W) with the batch statistics of its
    first ``reference_rows`` rows (all rows when None), then scale by the task's γ and shift by its
    β, both (T, C).

    The variance is the biased one, mean((x − mean)²), as BatchNorm uses in training, taken over
    (N, H, W) for each task and channel: no statistic mixes two tasks.
    (x − mean) / sqrt(var + ε) · γ + β is computed as x · scale + shift, with scale = γ / sqrt(var + ε)
    and shift = β − mean · scale per channel: the same function with two operations on the whole
    feature map instead of four. Its first and second derivatives then cost less too: a
    second-order MAML step takes 1.1-1.5x less time (measured on Omniglot 5-way 1-shot).
    """
    tasks, channels = gamma.shape
    x = x.view(len(x), tasks, channels, *x.shape[2:])  # (N, T, C, H, W)
    reference = x if reference_rows is None else x[:reference_rows]
    mean = reference.mean(dim=(0, 3, 4), keepdim=True)
    centred = reference - mean
    var = (centred * centred).mean(dim=(0, 3, 4), keepdim=True)
    scale = gamma.view(1, tasks, channels, 1, 1) * torch.rsqrt(var + EPSILON)
    y = x * scale + (beta.view(1, tasks, channels, 1, 1) - mean * scale)
    return y.view(len(x), tasks * channels, *x.shape[3:])


class SinusoidMLP(nn.Module):
    """The regression network of Finn et al. Sec. 5.1: 1 → 40 → 40 → 1, ReLU between layers."""

    metric_name = "mse"

    def __init__(self, hidden: tuple[int, ...] = (40, 40)):
        super().__init__()
        sizes = (1, *hidden, 1)
        self.layers = nn.ModuleList(Dense(n_in, n_out) for n_in, n_out in zip(sizes, sizes[1:]))

    def params(self) -> dict[str, torch.Tensor]:
        """θ as a dict of canonical names: ``{"layers.0.kernel": (1, 40), "layers.0.bias": (40,), ...}``."""
        return dict(self.named_parameters())

    def forward(self, params: dict[str, torch.Tensor], x: torch.Tensor, reference=None) -> torch.Tensor:
        """f_θ(x) for any parameters θ: (N, 1) -> (N, 1); or T tasks at once, x (T, N, 1) with every
        parameter carrying a leading task axis -> (T, N, 1). ``reference`` is ignored (no BatchNorm)."""
        depth = len(self.layers)
        for i in range(depth):
            x = x @ params[f"layers.{i}.kernel"] + params[f"layers.{i}.bias"].unsqueeze(-2)
            if i < depth - 1:
                x = torch.relu(x)
        return x

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean squared error (Finn et al. Eq. 4 writes a sum; their code averages); for T tasks
        at once (outputs (T, N, 1)), the sum over tasks of each task's mean."""
        return torch.mean((outputs - targets) ** 2, dim=(-2, -1)).sum()

    def metric(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The MSE again: what the paper reports for regression."""
        return self.loss(outputs, targets)


class Conv4Classifier(nn.Module):
    """MAML's Omniglot and mini-ImageNet network (Finn et al. Sec. 5.2, after Vinyals et al.):
    ``depth`` blocks conv 3x3 → BatchNorm → ReLU → max-pool 2x2, then a linear head to ``way`` logits.

    Each block halves height and width (rounding down), so 28x28 images end as 1x1x64 and the
    head reads D = ``conv4_embedding_size(image_shape, hidden, depth)`` features, flattened
    channels-last (H, W, C) as in TensorFlow, so the canonical head kernel means the same everywhere.

    ``backbone="strided"`` is the network of Finn et al.'s released Omniglot code: each block's
    convolution has stride 2 and no max-pool follows (28 → 14 → 7 → 4 → 2), and the head reads the
    mean of the final map over its positions (D = ``hidden``). The parameters, names and shapes
    are the same for both backbones.
    """

    metric_name = "accuracy"

    def __init__(self, way: int, image_shape: tuple[int, int, int] = (28, 28, 1), hidden: int = 64,
                 depth: int = 4, backbone: str = "maxpool"):
        super().__init__()
        if backbone not in BACKBONES:
            raise ConfigError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
        self.backbone = backbone
        channels = [image_shape[2]] + [hidden] * depth
        self.blocks = nn.ModuleList(Block(c_in, c_out) for c_in, c_out in zip(channels, channels[1:]))
        self.head = Dense(conv4_embedding_size(image_shape, hidden, depth, backbone), way)

    def params(self) -> dict[str, torch.Tensor]:
        """θ: ``blocks.{i}.conv.kernel`` (3, 3, c_in, c_out), ``blocks.{i}.conv.bias``,
        ``blocks.{i}.norm.gamma``, ``blocks.{i}.norm.beta`` (c_out,), ``head.kernel`` (D, way),
        ``head.bias`` (way,)."""
        return dict(self.named_parameters())

    def forward(self, params: dict[str, torch.Tensor], x: torch.Tensor,
                reference: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (N, way) of images x (N, C, H, W) under parameters θ; or of T tasks at once:
        x (T, N, C, H, W) with every parameter carrying a leading task axis (each task's own θ')
        -> (T, N, way).

        BatchNorm statistics come from x itself (``reference=None``, transductive) or from
        ``reference`` only (support images, non-transductive): see the module docstring.
        """
        if x.dim() == 4:  # one task: a meta-batch of one
            one = {name: p.unsqueeze(0) for name, p in params.items()}
            return self.forward(one, x.unsqueeze(0), None if reference is None else reference.unsqueeze(0))[0]
        reference_rows = None
        if reference is not None:
            reference_rows = reference.shape[1]
            x = torch.cat([reference, x], dim=1)  # one pass; the statistics are taken over the first rows
        tasks, rows = x.shape[:2]
        # The tasks side by side as channel groups, (N, T·C, H, W): every layer then runs all tasks in
        # one grouped convolution, each task with its own parameters (MAML's θ' differ per task).
        x = x.transpose(0, 1).reshape(rows, tasks * x.shape[2], *x.shape[3:])
        strided = self.backbone == "strided"
        for i in range(len(self.blocks)):
            x = conv2d(x, params[f"blocks.{i}.conv.kernel"], params[f"blocks.{i}.conv.bias"], 2 if strided else 1)
            x = torch.relu(batch_norm(x, params[f"blocks.{i}.norm.gamma"], params[f"blocks.{i}.norm.beta"],
                                      reference_rows))
            if not strided:
                x = F.max_pool2d(x, 2)  # 2x2, stride 2, floor: "valid"
        x = x.view(rows, tasks, -1, *x.shape[2:])  # (N, T, C, h, w)
        if strided:
            x = x.mean(dim=(3, 4))  # the mean over the final map's positions, as the released code
        else:
            x = x.permute(0, 1, 3, 4, 2).flatten(2)  # channels-last flatten, as in TensorFlow and Keras
        logits = x.transpose(0, 1) @ params["head.kernel"] + params["head.bias"].unsqueeze(1)  # (T, N, way)
        return logits if reference_rows is None else logits[:, reference_rows:]

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean softmax cross-entropy of the logits against int64 labels; for T tasks at once
        (logits (T, N, way)), the sum over tasks of each task's mean."""
        per_row = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="none")
        return per_row.view(labels.shape).mean(dim=-1).sum()

    def metric(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Accuracy: the fraction of rows whose largest logit is the label, as a float tensor (for T
        tasks at once, the sum of the tasks' accuracies, like :meth:`loss`)."""
        return (logits.argmax(dim=-1) == labels).to(logits.dtype).mean(dim=-1).sum()
