"""Exercise 4: the balanced pair loss of a Siamese network (see README.md in this folder).

Check your answer from the repository root with

    python -m common.exercises check chapters/metric/exercises/04_contrastive_loss
"""

import numpy as np


def pair_loss(pair_logits: np.ndarray, support_y: np.ndarray, query_y: np.ndarray) -> float:
    """Half the mean BCE over same-class pairs plus half the mean BCE over different-class pairs.

    ``pair_logits`` (n_query, n_support) are scores before the sigmoid; pair (i, j) is "same"
    (target 1) when ``query_y[i] == support_y[j]``. Compute the BCE from the logits, so that it
    stays finite for logits like +-1000. Return one float.
    """
    # ---- your code here: replace the line below (about 4 lines) ----
    raise NotImplementedError("pair_loss: return 0.5 * mean BCE of same pairs + 0.5 * mean BCE of different pairs")
