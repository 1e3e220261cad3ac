"""Exercise 2, a reference solution: cosine logits for nearest-prototype classification.

Answers to the questions of the README
--------------------------------------

**1. The most a cosine softmax can say.** Cosine similarities lie in [-1, 1]. With ``scale = 1``
the best case for the right class of a 5-way episode is cosine 1 with it and -1 with the four
others, probability ``e / (e + 4/e) = e^2 / (e^2 + 4) = 0.649``: the cross-entropy can never fall
below ``-log 0.649 = 0.43``. The chapter's Conv-4 ends in a ReLU, so its embeddings are never
negative and their cosines lie in [0, 1]: the best case is ``e / (e + 4) = 0.405``, a loss of at
least 0.90. However well the network separates the classes, every query keeps pulling on the
weights as if it were misclassified, and the gradient never says "this one is done".

Squared Euclidean distances have no upper bound: the logit gap between the right class and the
others can grow as large as the network makes it, simply by spreading the embeddings further
apart. The network sets its own confidence (its *temperature*) through the scale of the
embedding, and correctly classified queries stop contributing to the gradient. That is one
reason Snell et al. (2017) found squared Euclidean distance clearly better than cosine for
training Prototypical Networks (and Matching Networks, whose attention is a softmax of plain
cosines with no scale).

``scale`` is a fixed (or learned, as in Oreshkin et al., 2018, and Chen et al., 2019) inverse
temperature. It multiplies every logit, so it changes **no prediction**: the argmax, and with it
the accuracy, is the same for every positive scale. It changes the probabilities, hence the loss
and its gradients: with ``scale = 10`` the best case is ``e^10 / (e^10 + 4) = 0.9998``.

**2. Swapping the distance at test time.** With embeddings trained for squared Euclidean distance,
nearest-prototype classification by cosine similarity loses next to nothing. In the measurement of
the README (a ProtoNet trained for 100 episodes, 40 Omniglot validation episodes) the two rules
pick the same class for 95.7% (1-shot) and 98.3% (5-shot) of the queries, and their accuracies
differ by 0.2 and 0.07 points (81.93 vs 81.73%, 93.07 vs 93.00%), far inside the 95% intervals
(about 3.7 and 1.8 points). The argmax of ``-||q - c||^2 = 2 q.c -
||q||^2 - ||c||^2`` only differs from the argmax of ``q.c / (|q| |c|)`` through the prototypes'
norms ``||c||``: where the prototypes of an episode have similar norms, the two rules pick the
same class. The distance matters where the softmax matters, in **training**: it shapes the loss,
the gradients, and so the embedding the network learns.
"""

import numpy as np

EPSILON = 1e-8  # under the square root of the norms: an all-zero embedding gets cosine 0, not nan


def cosine_logits(query_embeddings: np.ndarray, prototypes: np.ndarray, scale: float) -> np.ndarray:
    """``scale * cos(q_i, c_k)``, (n_query, way)."""
    queries = query_embeddings / np.sqrt((query_embeddings ** 2).sum(axis=1, keepdims=True) + EPSILON)
    centres = prototypes / np.sqrt((prototypes ** 2).sum(axis=1, keepdims=True) + EPSILON)
    return scale * queries @ centres.T
