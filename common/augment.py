"""Affine distortions of the training drawings (Koch, Zemel & Salakhutdinov 2015, "Affine distortions").

Koch et al. enlarge Omniglot's background set by distorting every training drawing with a small
random affine map T = (theta, rho_x, rho_y, s_x, s_y, t_x, t_y): a rotation theta in [-10, 10]
degrees, shears rho_x, rho_y in [-0.3, 0.3], scales s_x, s_y in [0.8, 1.2] and translations
t_x, t_y in [-2, 2] pixels of their 105x105 drawings, each of the seven included with probability
1/2 (left out, it is the identity's value). Here the same ranges, the translation measured as a
fraction of the image's side (2/105: about half a pixel on the book's 28x28 inputs).

:class:`AffineDistortion` wraps a *training* sampler (``--augment affine``, through
``common.schemes.Scheme.training_sampler``): episode ``i`` is the sampler's episode ``i`` with every
support and query image distorted by a map of its own, labels unchanged. The maps of episode ``i``
come from ``np.random.default_rng([seed, i, AUGMENT_STREAM])``, so they are a pure function of the
seed and the index as the episodes are (``common.episodes``): the same in PyTorch, TensorFlow and
Keras, and in a resumed run. The warping is NumPy (bilinear interpolation, zero outside the image:
the background of a drawing), done before any framework sees the arrays. Evaluation episodes are
never wrapped: validation and test see the drawings as they are.
"""

from __future__ import annotations

import numpy as np

from common.episodes import Episode, EpisodeSource

ROTATION_DEGREES = 10.0   # theta in [-10, 10] degrees
SHEAR = 0.3               # rho_x, rho_y in [-0.3, 0.3]
SCALE = (0.8, 1.2)        # s_x, s_y
TRANSLATION = 2 / 105     # t_x, t_y in [-2, 2] pixels of a 105-pixel drawing, as a fraction of the side
INCLUDE_PROBABILITY = 0.5  # each component is drawn, or left at the identity, with probability 1/2
AUGMENT_STREAM = 3        # third entry of the generator's seed: the distortions' own stream, apart from the episode's
AUGMENTATIONS = ("affine",)  # the choices of --augment


def random_affine(rng: np.random.Generator, count: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random maps T as (matrices (count, 2, 2), translations (count, 2) in pixels), acting
    on (x, y) = (column, row) about the image's centre: A = rotation @ shear @ scale."""
    def component(low, high, identity):
        values = rng.uniform(low, high, count)
        return np.where(rng.random(count) < INCLUDE_PROBABILITY, values, identity)

    theta = np.deg2rad(component(-ROTATION_DEGREES, ROTATION_DEGREES, 0.0))
    rho_x, rho_y = component(-SHEAR, SHEAR, 0.0), component(-SHEAR, SHEAR, 0.0)
    s_x, s_y = component(*SCALE, 1.0), component(*SCALE, 1.0)
    t_x, t_y = (component(-TRANSLATION, TRANSLATION, 0.0) * side for _ in range(2))
    cos, sin = np.cos(theta), np.sin(theta)
    rotation = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    shear = np.stack([np.stack([np.ones(count), rho_x], -1), np.stack([rho_y, np.ones(count)], -1)], -2)
    scale = np.zeros((count, 2, 2))
    scale[:, 0, 0], scale[:, 1, 1] = s_x, s_y
    return rotation @ shear @ scale, np.stack([t_x, t_y], -1)


def warp(images: np.ndarray, matrices: np.ndarray, translations: np.ndarray) -> np.ndarray:
    """Each image (n, H, W, C) moved by its map: output pixel p shows the input at
    A^-1 (p - centre - t) + centre, bilinearly interpolated, zero outside the image."""
    n, height, width = images.shape[:3]
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    rows, columns = np.mgrid[0:height, 0:width]
    out = np.stack([columns, rows], -1).reshape(1, -1, 2) - centre - translations[:, None, :]  # (n, H*W, 2)
    source = out @ np.linalg.inv(matrices).transpose(0, 2, 1) + centre  # (x, y) in the input
    # One row and column of zeros around the image: every coordinate outside reads a zero.
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)))
    x0, y0 = np.floor(source[..., 0]), np.floor(source[..., 1])
    wx, wy = (source[..., 0] - x0)[..., None], (source[..., 1] - y0)[..., None]
    image = np.arange(n)[:, None]

    def read(y, x):  # padded coordinates, clipped onto the zero border
        y, x = (np.clip(c + 1, 0, side + 1).astype(np.intp) for c, side in ((y, height), (x, width)))
        return padded[image, y, x]

    value = ((1 - wy) * ((1 - wx) * read(y0, x0) + wx * read(y0, x0 + 1))
             + wy * ((1 - wx) * read(y0 + 1, x0) + wx * read(y0 + 1, x0 + 1)))
    return value.reshape(images.shape).astype(images.dtype)


def distort(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Every image of (n, H, W, C) distorted by its own random map T."""
    matrices, translations = random_affine(rng, len(images), images.shape[2])
    return warp(images, matrices, translations)


class AffineDistortion(EpisodeSource):
    """Episode ``i`` of a training sampler, every support and query image distorted (Koch et al.'s
    affine distortions), labels unchanged; a pure function of (seed, i). Other attributes
    (``dataset``, ``way``, ``classes_of`` ...) are the wrapped sampler's."""

    def __init__(self, source: EpisodeSource):
        self.source, self.seed = source, source.seed

    def episode(self, index: int) -> Episode:
        episode = self.source.episode(index)
        rng = np.random.default_rng([self.seed, index, AUGMENT_STREAM])
        return episode._replace(support_x=distort(episode.support_x, rng), query_x=distort(episode.query_x, rng))

    def __getattr__(self, name):
        if name == "source":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.source, name)

    def __repr__(self) -> str:
        return f"AffineDistortion({self.source!r})"
