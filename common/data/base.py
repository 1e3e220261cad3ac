"""The one shape every few-shot image data set takes: a dense array of classes x examples.

Omniglot (20 drawings per character), mini-ImageNet and CIFAR-FS (600 images per class) all have
the same number of examples in every class, so a split is simply

    images[class, example]  ->  one H x W x C uint8 image

An episode sampler then needs nothing but integer indexing (see ``common.episodes``), and the
same array serves PyTorch, TensorFlow and Keras alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FewShotDataset:
    """One split (``train``, ``val`` or ``test``) of a few-shot classification data set.

    Attributes:
        name: data set name, e.g. ``"omniglot"``.
        split: ``"train"``, ``"val"`` or ``"test"`` (meta-train, meta-validation, meta-test classes).
        images: uint8 array ``(n_classes, examples_per_class, height, width, channels)``.
        class_names: one readable name per class, e.g. ``"Greek/character01/rot090"``.
    """

    name: str
    split: str
    images: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self):
        if self.images.ndim != 5 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (classes, examples, H, W, C), got "
                             f"{self.images.dtype} {self.images.shape}")
        if len(self.class_names) != len(self.images):
            raise ValueError(f"{len(self.class_names)} class names for {len(self.images)} classes")

    @property
    def n_classes(self) -> int:
        return self.images.shape[0]

    @property
    def examples_per_class(self) -> int:
        return self.images.shape[1]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels): channels-last, as TensorFlow and Keras expect."""
        return tuple(self.images.shape[2:])

    def __repr__(self) -> str:
        h, w, c = self.image_shape
        return (f"FewShotDataset({self.name}/{self.split}: {self.n_classes} classes x "
                f"{self.examples_per_class} examples, {h}x{w}x{c})")
