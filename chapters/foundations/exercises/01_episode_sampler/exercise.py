"""Exercise 1: sample one N-way K-shot episode (see README.md in this folder).

Check your answer from the repository root with

    python -m common.exercises check chapters/foundations/exercises/01_episode_sampler
"""

import numpy as np


def sample_episode(images: np.ndarray, way: int, shot: int, query: int, rng: np.random.Generator):
    """Draw one episode from ``images``, a uint8 array (classes, examples, H, W, C).

    Pick ``way`` distinct classes at random; from each, pick ``shot`` support examples and
    ``query`` *other* query examples, all at random, all with ``rng`` (and nothing else).

    Returns ``(support_x, support_y, query_x, query_y)``:

    * ``support_x``: (way*shot, H, W, C), same dtype as ``images``, class by class
      (the ``shot`` examples of the first class drawn, then those of the second, ...);
    * ``support_y``: (way*shot,) integer labels 0..way-1: the first class drawn is label 0,
      the second label 1, ... so ``support_y`` is ``[0]*shot + [1]*shot + ...``;
    * ``query_x``, ``query_y``: the same for the ``query`` examples per class.
    """
    # ---- your code here: replace the line below (about 8 lines) ----
    raise NotImplementedError("sample_episode: draw `way` classes, then `shot` support and `query` "
                              "query examples of each, with rng")
