"""N-way K-shot episodes: the one sampler PyTorch, TensorFlow and Keras all read.

A few-shot *task* (an *episode*) draws N classes from a split, then K labelled examples of each
(the **support** set, what the learner adapts on) and Q more of each (the **query** set, what it is
scored on). Labels are remapped to 0..N-1 in the order the classes were drawn, so a class has no
fixed label across episodes: the model must learn *how to learn* a labelling, not the labels.

Two design choices make the numbers comparable across frameworks and runs:

* **Episode i of seed s is a pure function of (s, i).** Each episode gets its own random generator,
  ``np.random.default_rng([s, i])``. The same seed gives the same episodes, in the same order, in
  every process and framework; a resumed training run picks up at episode i with exactly the
  episodes it would have seen; and Keras can ask for any index in any order.
* **A fixed evaluation set.** :func:`evaluation_episodes` returns the same 600 episodes (by default)
  for a data set split and an N-way K-shot Q-query setting, whoever asks.

Arrays are NumPy, channels-last: ``support_x`` is (N*K, H, W, C) float32 in [0, 1], ``support_y``
is (N*K,) int64, ordered class by class (all K examples of label 0, then label 1, ...); the query set
likewise. ``common.adapters`` turns them into torch tensors, a ``tf.data.Dataset`` or a Keras
``PyDataset`` without changing a value.
"""

from __future__ import annotations

import math
import weakref
from typing import Iterator, NamedTuple

import numpy as np

from common.data.base import FewShotDataset
from common.errors import ConfigError

EVALUATION_SEED = 20_170_301  # the seed of every fixed evaluation set (any constant would do)
EVALUATION_EPISODES = 600     # the usual protocol: mean accuracy and 95% CI over 600 test episodes
PIXELS_IN_MEMORY_LIMIT = 2 << 30  # bytes of float32 pixels we are willing to precompute


class Episode(NamedTuple):
    """One task. With a meta-batch, every array gains a leading axis of length batch_size."""

    support_x: np.ndarray
    support_y: np.ndarray
    query_x: np.ndarray
    query_y: np.ndarray


def astype_floats(episode: Episode, dtype) -> Episode:
    """The episode with its floating parts (images, regression inputs and targets) as NumPy arrays of
    ``dtype``; integer labels unchanged. Learners use it to feed a model built in float64 or float32."""
    parts = (np.asarray(part) for part in episode)
    return Episode(*(part.astype(dtype) if np.issubdtype(part.dtype, np.floating) else part for part in parts))


class EpisodeSource:
    """Anything that can make episode ``i`` on demand: image episodes, sinusoid tasks, ...

    Subclasses implement :meth:`episode`; iteration and meta-batches come for free.
    """

    seed: int

    def episode(self, index: int) -> Episode:
        raise NotImplementedError

    def episodes(self, start: int = 0, stop: int | None = None) -> Iterator[Episode]:
        """Episodes ``start, start+1, ...`` (forever when ``stop`` is None)."""
        index = start
        while stop is None or index < stop:
            yield self.episode(index)
            index += 1

    def __iter__(self) -> Iterator[Episode]:
        return self.episodes()

    def meta_batch(self, index: int, batch_size: int) -> Episode:
        """Meta-batch ``index``: episodes ``index*batch_size ... (index+1)*batch_size - 1``, stacked."""
        if batch_size < 1:
            raise ConfigError(f"a meta-batch needs at least one task, got batch_size={batch_size}")
        tasks = [self.episode(index * batch_size + b) for b in range(batch_size)]
        return Episode(*(np.stack(parts) for parts in zip(*tasks)))


class EpisodeSampler(EpisodeSource):
    """N-way K-shot Q-query episodes from one split of a :class:`FewShotDataset`.

    Example::

        sampler = EpisodeSampler(load_dataset("omniglot", "train"), way=5, shot=1, query=15, seed=0)
        support_x, support_y, query_x, query_y = sampler.episode(0)
    """

    def __init__(self, dataset: FewShotDataset, way: int, shot: int, query: int, seed: int = 0):
        check_setting(dataset, way, shot, query)
        self.dataset, self.way, self.shot, self.query, self.seed = dataset, way, shot, query, int(seed)
        self.support_y = np.repeat(np.arange(way, dtype=np.int64), shot)
        self.query_y = np.repeat(np.arange(way, dtype=np.int64), query)
        # Converting uint8 pixels to float32 on every episode would cost more than the sampling
        # itself (a 250 KB allocation per episode); for data sets that fit, each class is converted
        # once, when an episode first draws it, into one copy that every sampler of the data set
        # shares (`float_pixels`). mini-ImageNet's 38,400 training images: converted per episode.
        images = dataset.images
        self._copy = float_pixels(images) if images.size * 4 <= PIXELS_IN_MEMORY_LIMIT else None
        self._pixels = images if self._copy is None else self._copy.floats
        self._flat = self._pixels.reshape(-1, *dataset.image_shape)  # (classes * examples, H, W, C)

    def draw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The random choices of episode ``index``: its classes (in label order) and, per class,
        a random order of that class's examples."""
        rng = np.random.default_rng([self.seed, index])
        classes = rng.choice(self.dataset.n_classes, self.way, replace=False)
        order = rng.random((self.way, self.dataset.examples_per_class)).argsort(axis=1)
        return classes, order

    def episode(self, index: int) -> Episode:
        """Episode ``index`` of this sampler's seed; the same arrays every time it is asked for."""
        classes, order = self.draw(index)
        if self._copy is not None:
            self._copy.convert(classes)
        # The first K examples of each class's random order are its support set, the next Q its
        # query set, so the two never share an example. Image (class c, example e) is row
        # c * examples_per_class + e of the flattened array (one `take` is faster than 2-D indexing).
        rows = classes[:, None] * self.dataset.examples_per_class + order
        support = self._flat.take(rows[:, :self.shot].ravel(), axis=0)
        query = self._flat.take(rows[:, self.shot:self.shot + self.query].ravel(), axis=0)
        return Episode(to_float(support), self.support_y.copy(), to_float(query), self.query_y.copy())

    def classes_of(self, index: int) -> np.ndarray:
        """The dataset class indices episode ``index`` uses, in label order (for viewers and tests)."""
        return self.draw(index)[0]

    def __repr__(self) -> str:
        return (f"EpisodeSampler({self.dataset.name}/{self.dataset.split}, {self.way}-way "
                f"{self.shot}-shot {self.query}-query, seed={self.seed})")


class MetaBatches(EpisodeSource):
    """Meta-batches as episodes: item ``i`` is ``source.meta_batch(i, batch_size)``, B tasks stacked.

    Optimization-based learners (MAML, Reptile, Meta-SGD) take one meta-update per meta-batch of
    tasks; wrapped this way, the episodic training loop of ``common.training`` (which asks for
    "episode i") drives them unchanged, and meta-batch i holds the same tasks in every framework
    and in a resumed run.

    ``shuffle_support=True`` puts each task's support examples (images and labels together) in a
    random order, drawn from the source's seed and the meta-batch index: for learners that step
    through the support set in mini-batches of consecutive rows (Reptile's ``inner_batch``), each
    mini-batch is then a random sample without replacement, the same in every framework. (The
    sampler itself orders the support set class by class.)
    """

    def __init__(self, source: EpisodeSource, batch_size: int, shuffle_support: bool = False):
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ConfigError(f"a meta-batch needs at least one task, got --meta-batch {batch_size!r}")
        dataset = getattr(source, "dataset", None)
        if dataset is not None:
            # Tasks are drawn with replacement, but a meta-batch larger than the number of distinct
            # tasks would average copies of the same task: almost surely a mistake in the settings.
            distinct = math.comb(dataset.n_classes, source.way)
            if batch_size > distinct:
                raise ConfigError(f"--meta-batch {batch_size} is more than the {distinct} distinct "
                                  f"{source.way}-way tasks of the {dataset.name} {dataset.split} split "
                                  f"({dataset.n_classes} classes); use --meta-batch {distinct} or fewer")
        self.source, self.batch_size, self.seed = source, int(batch_size), source.seed
        self.shuffle_support = shuffle_support

    def episode(self, index: int) -> Episode:
        batch = self.source.meta_batch(index, self.batch_size)
        if not self.shuffle_support:
            return batch
        rng = np.random.default_rng([self.seed or 0, index, 1])  # its own stream: the tasks stay the same
        order = np.stack([rng.permutation(batch.support_y.shape[1]) for _ in range(self.batch_size)])
        rows = np.arange(self.batch_size)[:, None]
        return batch._replace(support_x=batch.support_x[rows, order], support_y=batch.support_y[rows, order])

    def __repr__(self) -> str:
        return (f"MetaBatches({self.source!r}, batch_size={self.batch_size}"
                f"{', shuffle_support=True' if self.shuffle_support else ''})")


def to_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels to float32 in [0, 1]; float32 input is returned unchanged.

    One formula for both paths (precomputed and per episode), so they give identical bits. Token ids
    (signed integers: the text data sets of ``common.data.text``) are returned unchanged.
    """
    if not needs_conversion(pixels):
        return pixels
    return pixels.astype(np.float32) * np.float32(1 / 255)


def needs_conversion(pixels: np.ndarray) -> bool:
    """Whether :func:`to_float` changes ``pixels``: not float32 pixels, not token ids."""
    return not (pixels.dtype == np.float32 or np.issubdtype(pixels.dtype, np.signedinteger))


class FloatPixels:
    """``to_float`` of a data set's uint8 pixels ``(classes, examples, H, W, C)``, filled in one class
    at a time: ``convert(classes)`` before reading those classes from ``floats``. A run of a few
    hundred episodes converts the classes they draw, not all 82,240 drawings of Omniglot's training
    split (258 MB, about a second); a long run ends with the whole copy, converted once."""

    def __init__(self, images: np.ndarray):
        self.images = weakref.ref(images)  # the samplers keep the pixels alive, not this copy
        self.floats = np.empty(images.shape, np.float32)  # pages the kernel provides when first written
        self.converted = np.zeros(len(images), bool)

    def convert(self, classes: np.ndarray) -> None:
        missing = classes[~self.converted[classes]]
        if missing.size:
            self.floats[missing] = to_float(self.images()[missing])
            self.converted[missing] = True


# The float32 copy of a data set's pixels, shared by every sampler that draws from it (a script
# samples training, validation and test episodes of one split; a test module builds dozens of
# samplers): {id of the uint8 array: its FloatPixels}, an entry dropped when its array is freed.
_FLOAT_PIXELS: dict[int, FloatPixels] = {}


def float_pixels(images: np.ndarray) -> FloatPixels | None:
    """The one :class:`FloatPixels` of ``images`` (which nothing writes to after loading); None for
    float32 pixels or token ids, which need no conversion."""
    if not needs_conversion(images):
        return None
    key = id(images)
    if key not in _FLOAT_PIXELS:
        _FLOAT_PIXELS[key] = FloatPixels(images)
        weakref.finalize(images, _FLOAT_PIXELS.pop, key, None)
    return _FLOAT_PIXELS[key]


def check_setting(dataset: FewShotDataset, way: int, shot: int, query: int) -> None:
    """Raise a :class:`ConfigError` that says what to change when a split cannot supply the setting."""
    where = f"{dataset.name} {dataset.split} split"
    for name, value, least in (("way", way, 1), ("shot", shot, 1), ("query", query, 0)):
        if not isinstance(value, (int, np.integer)) or value < least:
            raise ConfigError(f"{name} must be an integer >= {least}, got {value!r}")
    if way > dataset.n_classes:
        raise ConfigError(f"{way}-way episodes need {way} classes, but the {where} has only "
                          f"{dataset.n_classes}; use --way {dataset.n_classes} or fewer")
    if shot + query > dataset.examples_per_class:
        raise ConfigError(f"{shot}-shot {query}-query episodes need {shot + query} examples per class, "
                          f"but the {where} has {dataset.examples_per_class} per class; lower "
                          f"--shot/--query so that shot + query <= {dataset.examples_per_class}")


class FixedEpisodes:
    """A fixed, indexable list of evaluation episodes, made on demand (600 x 20-way episodes
    would take gigabytes if held in memory)."""

    def __init__(self, source: EpisodeSource, count: int):
        self.source, self.count = source, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Episode:
        if not -self.count <= index < self.count:
            raise IndexError(index)
        return self.source.episode(index % self.count)

    def __iter__(self) -> Iterator[Episode]:
        return self.source.episodes(0, self.count)


def evaluation_episodes(dataset: FewShotDataset, way: int, shot: int, query: int,
                        count: int = EVALUATION_EPISODES) -> FixedEpisodes:
    """The fixed evaluation episodes of a split and setting: identical for every framework and run."""
    return FixedEpisodes(EpisodeSampler(dataset, way, shot, query, seed=EVALUATION_SEED), count)
