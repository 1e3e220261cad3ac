"""Embedding networks shared by the chapters, one file per framework with the same names.

**Conv-4** (Vinyals et al. 2016; Snell et al. 2017): four blocks of
``conv 3x3 (64 filters, padding 1) -> BatchNorm -> ReLU -> max-pool 2x2``. A 28x28 Omniglot image
becomes a 1x1x64 map (a 64-d embedding); an 84x84 mini-ImageNet image a 5x5x64 map (1,600-d).

``conv4_torch.Conv4``, ``conv4_tf.Conv4`` and ``conv4_keras.Conv4`` have the same attributes
(``blocks.<i>.conv``, ``blocks.<i>.bn``), so ``common.weights`` moves weights between them by name,
and all three flatten the final map in channels-last (H, W, C) order, so their embeddings are equal
element by element, not just up to a permutation.
"""
