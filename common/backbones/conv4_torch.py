"""Conv-4 embedding network in PyTorch (see ``common.backbones`` for the architecture)."""

from __future__ import annotations

import torch
from torch import nn


class ConvBlock(nn.Module):
    """conv 3x3 -> BatchNorm -> ReLU -> max-pool 2x2.

    ``reference_rows=n``: BatchNorm normalises with the statistics of the first n rows (say, an
    episode's support set) instead of its batch's or its running averages, so that the other rows'
    outputs depend on those n rows and themselves alone."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-5, momentum=0.1)

    def forward(self, x: torch.Tensor, reference_rows: int | None = None) -> torch.Tensor:
        x = self.conv(x)
        if reference_rows is None:
            x = self.bn(x)
        else:
            reference = x[:reference_rows]
            mean, variance = reference.mean((0, 2, 3)), reference.var((0, 2, 3), unbiased=False)
            x = nn.functional.batch_norm(x, mean, variance, self.bn.weight, self.bn.bias, training=False, eps=self.bn.eps)
        return nn.functional.max_pool2d(torch.relu(x), 2)


class Conv4(nn.Module):
    """Images (B, C, H, W) -> embeddings (B, D)."""

    def __init__(self, in_channels: int = 1, hidden: int = 64, depth: int = 4):
        super().__init__()
        channels = [in_channels] + [hidden] * depth
        self.blocks = nn.ModuleList(ConvBlock(c_in, c_out) for c_in, c_out in zip(channels, channels[1:]))

    def forward(self, x: torch.Tensor, reference_rows: int | None = None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, reference_rows)
        # Flatten channels-last, like TensorFlow: embeddings then agree element by element.
        return x.movedim(1, -1).flatten(1)
