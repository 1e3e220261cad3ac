"""Exercise 1: a sentence with two entities as token ids and position ids (see README.md here).

Check your answer from the repository root with

    python -m common.exercises check chapters/applications/exercises/01_position_ids
"""

import numpy as np


def sentence_ids(tokens: list[str], head: int, tail: int, vocabulary: dict, length: int) -> np.ndarray:
    """``(length, 3)`` int32: word ids (0 pads, 1 unknown), then ``i - head + length`` and
    ``i - tail + length`` for every position ``i`` in ``0 .. length-1``."""
    # ---- your code here: replace the line below (about 5 lines) ----
    raise NotImplementedError("sentence_ids: return the (length, 3) array of word ids and the two position ids")
