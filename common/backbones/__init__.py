"""Embedding networks shared by the chapters, one file per framework with the same names.

**Conv-4** (Vinyals et al. 2016; Snell et al. 2017): four blocks of
``conv 3x3 (64 filters, padding 1) -> BatchNorm -> ReLU -> max-pool 2x2``. A 28x28 Omniglot image
becomes a 1x1x64 map (a 64-d embedding); an 84x84 mini-ImageNet image a 5x5x64 map (1,600-d).

``conv4_torch.Conv4``, ``conv4_tf.Conv4`` and ``conv4_keras.Conv4`` have the same attributes
(``blocks.<i>.conv``, ``blocks.<i>.bn``), so ``common.weights`` moves weights between them by name,
and all three flatten the final map in channels-last (H, W, C) order, so their embeddings are equal
element by element, not just up to a permutation.
"""


BACKBONES = ("maxpool", "strided")
"""The two Conv-4 blocks of MAML's networks (``chapters/optimization/networks_*.py``):

* ``maxpool``: conv 3x3 stride 1 -> BatchNorm -> ReLU -> max-pool 2x2, the final map flattened;
  what Finn et al.'s paper describes (after Vinyals et al.).
* ``strided``: conv 3x3 *stride 2*, "SAME" padding -> BatchNorm -> ReLU, no pooling, then the mean
  over the final map's height and width; the network of Finn et al.'s released Omniglot code
  (cbfinn/maml, ``conv_block`` with ``max_pool`` False, ``reduce_mean`` before the head). Each
  convolution then runs on a quarter of the positions: 3 to 4 times fewer multiply-adds per image.
"""


def conv4_embedding_size(image_shape, hidden: int = 64, depth: int = 4, backbone: str = "maxpool") -> int:
    """Conv-4's embedding size D for images of ``image_shape`` (H, W, C). ``maxpool``: each block
    halves height and width, rounding down (28x28 -> 1x1x64 = 64; 84x84 -> 5x5x64 = 1600; 32x32 ->
    2x2x64 = 256). ``strided``: the final map is averaged over its positions, so D = ``hidden``."""
    if backbone == "strided":
        return hidden
    height, width = image_shape[0], image_shape[1]
    for _ in range(depth):
        height, width = height // 2, width // 2
    return height * width * hidden


def same_padding(size: int, stride: int, kernel: int = 3) -> tuple[int, int]:
    """TensorFlow's "SAME" padding along one axis of ``size`` pixels: (before, after).

    The output has ceil(size / stride) positions; the padding that needs is split with the extra
    pixel *after*. For a 3x3 kernel with stride 2 that is (0, 1) on even sizes (28 -> 14, 14 -> 7,
    4 -> 2) and (1, 1) on odd ones (7 -> 4): unlike PyTorch's symmetric ``padding=1``, whose windows
    would be centred one pixel earlier on even sizes. PyTorch pads with these numbers explicitly.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2
