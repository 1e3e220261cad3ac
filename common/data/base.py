"""The one shape every few-shot image data set takes: a dense array of classes x examples.

Omniglot (20 drawings per character), mini-ImageNet and CIFAR-FS (600 images per class) all have
the same number of examples in every class, so a split is simply

    images[class, example]  ->  one H x W x C uint8 image

An episode sampler then needs nothing but integer indexing (see ``common.episodes``), and the
same array serves PyTorch, TensorFlow and Keras alike.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from common.errors import ConfigError


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

    def subset(self, classes, *, name: str | None = None, split: str | None = None) -> "FewShotDataset":
        """The same images, restricted to some classes: a new data set whose class ``i`` is
        ``classes[i]`` of this one (indices or class names, in the order given).

        ``name`` and ``split`` label the result (default: this data set's). Give a subset a name of
        its own whenever it stands in for something it is not, so that it can never be mistaken for
        the real split: ``chapters/metric/train.py --pipeline-check`` names its subsets of
        mini-ImageNet's test classes ``mini-imagenet-pipeline-check``. The images are copied.
        """
        indices = []
        for c in classes:
            if isinstance(c, str):
                if c not in self.class_names:
                    raise ConfigError(f"{self.name}/{self.split} has no class {c!r}")
                indices.append(self.class_names.index(c))
            elif isinstance(c, (int, np.integer)) and 0 <= c < self.n_classes:
                indices.append(int(c))
            else:
                raise ConfigError(f"{self.name}/{self.split} has classes 0..{self.n_classes - 1}, not {c!r}")
        if not indices or len(set(indices)) != len(indices):
            raise ConfigError(f"a subset needs one or more distinct classes, got {list(classes)!r}")
        # dataclasses.replace keeps the fields of a subclass (a text data set's vocabulary).
        return dataclasses.replace(self, name=self.name if name is None else name,
                                   split=self.split if split is None else split,
                                   images=np.ascontiguousarray(self.images[indices]),
                                   class_names=tuple(self.class_names[i] for i in indices))

    def __repr__(self) -> str:
        h, w, c = self.image_shape
        return (f"FewShotDataset({self.name}/{self.split}: {self.n_classes} classes x "
                f"{self.examples_per_class} examples, {h}x{w}x{c})")
