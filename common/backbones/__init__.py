"""Embedding networks shared by the chapters, one file per framework with the same names.

**Conv-4** (Vinyals et al. 2016; Snell et al. 2017): four blocks of
``conv 3x3 (64 filters, padding 1) -> BatchNorm -> ReLU -> max-pool 2x2``. A 28x28 Omniglot image
becomes a 1x1x64 map (a 64-d embedding); an 84x84 mini-ImageNet image a 5x5x64 map (1,600-d).

``conv4_torch.Conv4``, ``conv4_tf.Conv4`` and ``conv4_keras.Conv4`` have the same attributes
(``blocks.<i>.conv``, ``blocks.<i>.bn``), so ``common.weights`` moves weights between them by name,
and all three flatten the final map in channels-last (H, W, C) order, so their embeddings are equal
element by element, not just up to a permutation.
"""


def conv4_embedding_size(image_shape, hidden: int = 64, depth: int = 4) -> int:
    """Conv-4's embedding size D for images of ``image_shape`` (H, W, C): each block halves height
    and width, rounding down (28x28 -> 1x1x64 = 64; 84x84 -> 5x5x64 = 1600; 32x32 -> 2x2x64 = 256)."""
    height, width = image_shape[0], image_shape[1]
    for _ in range(depth):
        height, width = height // 2, width // 2
    return height * width * hidden
