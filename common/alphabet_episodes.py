"""Episodes within one alphabet: the one-shot challenge of Lake, Salakhutdinov & Tenenbaum (2015).

Omniglot was made for one comparison. A person sees one drawing of each of 20 new characters *from
one alphabet*, drawn by one person, and then, for each of 20 drawings of the same characters by
another person, picks the character it shows (Lake et al. 2015, Fig. 2: people 95.5% correct,
Bayesian Program Learning 96.7%; Koch et al. 2015's siamese network 92.0%). Characters of one
alphabet share strokes and style, so these episodes are harder than the usual ones, whose 20
classes come from any alphabets and are often told apart by style alone.

:class:`WithinAlphabetSampler` draws such episodes from any split whose class names start with
their alphabet (``"Greek/character01/rot000"``), for every framework through ``common.adapters``
as :class:`~common.episodes.EpisodeSampler`'s episodes are:

* the N classes of an episode all come from one alphabet, drawn uniformly among the alphabets that
  have at least N classes;
* the drawers are kept apart: K support drawers and Q query drawers, distinct, are drawn once per
  episode and used for every class (example ``e`` of an Omniglot character is drawer ``e + 1``), so
  a query is never drawn by the hand that drew its class's support example. With ``shot=1,
  query=1`` an episode is one of Lake's runs: 20 drawings by one person, 20 test drawings by another.

:func:`within_alphabet_episodes` gives the fixed evaluation episodes: 400 by default, seeded as
every fixed evaluation set of the book (``common.episodes.EVALUATION_SEED``).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from common.data.base import FewShotDataset
from common.episodes import EVALUATION_SEED, EpisodeSampler, FixedEpisodes, check_setting
from common.errors import ConfigError

LAKE_EVALUATION_EPISODES = 400  # 20-way 1-shot: 400 episodes, each one of Lake's runs of 20 trials when query=1


def alphabet_of(class_name: str) -> str:
    """The group a class belongs to: the first part of its name (an Omniglot alphabet)."""
    return class_name.split("/")[0]


class WithinAlphabetSampler(EpisodeSampler):
    """N-way K-shot Q-query episodes whose N classes share one alphabet, support and query drawn by
    different drawers. Episode ``i`` of seed ``s`` is a pure function of ``(s, i)``, as for
    :class:`~common.episodes.EpisodeSampler`, whose arrays, labels and order it shares.

    Example::

        test = load_dataset("omniglot", "test", scheme="lake")
        sampler = WithinAlphabetSampler(test, way=20, shot=1, query=1, seed=0)
        support_x, support_y, query_x, query_y = sampler.episode(0)
        sampler.alphabet_of_episode(0)   # e.g. 'Kannada'
    """

    def __init__(self, dataset: FewShotDataset, way: int, shot: int, query: int, seed: int = 0):
        check_setting(dataset, way, shot, query)
        groups = defaultdict(list)
        for index, name in enumerate(dataset.class_names):
            groups[alphabet_of(name)].append(index)
        # Sorted by name: the alphabets, and so the episodes, do not depend on the order of the classes' load.
        self.alphabets = {name: np.array(classes) for name, classes in sorted(groups.items()) if len(classes) >= way}
        if not self.alphabets:
            largest = max(len(classes) for classes in groups.values())
            raise ConfigError(f"{way}-way episodes within one alphabet need an alphabet of {way} classes, but the "
                              f"largest of the {dataset.name} {dataset.split} split has {largest}; use --test-way "
                              f"{largest} or fewer")
        self.names = tuple(self.alphabets)
        super().__init__(dataset, way, shot, query, seed)

    def draw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The classes of episode ``index`` (in label order, all of one alphabet) and, for every class
        the same, the order of its examples: the first K are the support drawers, the next Q the
        query drawers."""
        rng = np.random.default_rng([self.seed, index])
        alphabet = self.alphabets[self.names[rng.integers(len(self.names))]]
        classes = rng.choice(alphabet, self.way, replace=False)
        drawers = rng.permutation(self.dataset.examples_per_class)
        return classes, np.broadcast_to(drawers, (self.way, len(drawers)))

    def alphabet_of_episode(self, index: int) -> str:
        """The alphabet episode ``index`` draws its classes from."""
        return alphabet_of(self.dataset.class_names[self.classes_of(index)[0]])

    def drawers_of(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(support drawers, query drawers) of episode ``index``: example indices, drawer = index + 1."""
        drawers = self.draw(index)[1][0]
        return drawers[:self.shot], drawers[self.shot:self.shot + self.query]

    def __repr__(self) -> str:
        return (f"WithinAlphabetSampler({self.dataset.name}/{self.dataset.split}, {self.way}-way "
                f"{self.shot}-shot {self.query}-query, {len(self.names)} alphabets, seed={self.seed})")


def within_alphabet_episodes(dataset: FewShotDataset, way: int = 20, shot: int = 1, query: int = 1,
                             count: int = LAKE_EVALUATION_EPISODES) -> FixedEpisodes:
    """The fixed within-alphabet evaluation episodes of a split and setting: identical for every
    framework and run (by default 400 episodes of 20-way 1-shot, one query drawing per class)."""
    return FixedEpisodes(WithinAlphabetSampler(dataset, way, shot, query, seed=EVALUATION_SEED), count)
