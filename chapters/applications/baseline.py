"""A baseline without meta-learning: TF-IDF vectors and the nearest class mean, on the same episodes.

Before crediting meta-learning with a number, ask what an episode gives away for free. This
baseline learns nothing across episodes. It represents a text by its bag of words, each word
weighted by its *inverse document frequency* in the meta-training classes (a word in every
headline, "the", weighs little; a rare one, "quarterback", much), scaled to length 1:

    v(x)_w = tf(w, x) · log(D / df(w)),     v(x) <- v(x) / ||v(x)||      (D: training texts)

and classifies a query by the nearest class mean of the support vectors (cosine similarity), a
linear classifier on averaged embeddings whose embedding is the one-hot word vector:

    ŷ(x) = argmax_k  v(x) · mean_{(x_i, y_i = k) in S} v(x_i)

It reads the same fixed test episodes as the meta-learners (``common.episodes``), so the gap
between its row and theirs is what meta-training the encoder bought. It needs no framework:

    python -m chapters.applications.baseline --dataset huffpost --shot 1
    python -m chapters.applications.baseline --dataset fewrel --shot 5
    python -m chapters.applications.baseline --dataset fewrel --relations 6-10 --way 10 --shot 1

Results are recorded as framework ``numpy`` with 0 training episodes.
"""

from __future__ import annotations

import time

import numpy as np

from common.cli import run as run_main
from common.data import load_dataset
from common.data.fewrel import SCHEMES as FEWREL_SCHEMES
from common.data.text import PAD
from common.episodes import Episode, evaluation_episodes
from common.errors import ConfigError
from common.evaluation import evaluate
from common.options import COUNT, WAY, Parser, check_out
from common.results import make_result, write_result

TEXT_SETS = ("huffpost", "reuters", "fewrel")


def inverse_document_frequencies(tokens: np.ndarray, vocabulary_size: int) -> np.ndarray:
    """log(D / df(w)) for every word id, from the word ids (..., length) of D training texts;
    a word no training text holds (and the padding) weighs 0."""
    texts = tokens.reshape(-1, tokens.shape[-1])
    present = np.zeros((len(texts), vocabulary_size), dtype=bool)
    present[np.arange(len(texts))[:, None], texts] = True
    frequency = present.sum(axis=0)
    idf = np.where(frequency > 0, np.log(len(texts) / np.maximum(frequency, 1)), 0.0)
    idf[PAD] = 0.0
    return idf


def tfidf(tokens: np.ndarray, idf: np.ndarray) -> np.ndarray:
    """(N, length) word ids -> (N, V) unit-length TF-IDF vectors (an all-zero text stays zero)."""
    counts = np.zeros((len(tokens), len(idf)))
    np.add.at(counts, (np.arange(len(tokens))[:, None], tokens), 1.0)
    vectors = counts * idf
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


class NearestMean:
    """``predict(episode)``: each query's label is the class whose mean support vector is closest."""

    def __init__(self, idf: np.ndarray):
        self.idf = idf

    def predict(self, episode: Episode) -> np.ndarray:
        support, query = tfidf(episode.support_x[..., 0], self.idf), tfidf(episode.query_x[..., 0], self.idf)
        way = int(episode.support_y.max()) + 1
        means = np.stack([support[episode.support_y == k].mean(axis=0) for k in range(way)])
        return (query @ means.T).argmax(axis=1)


def main(argv=None) -> dict:
    parser = Parser(description="TF-IDF nearest-class-mean baseline on the fixed test episodes.")
    parser.add_argument("--dataset", choices=TEXT_SETS, default="huffpost", help="the text data set")
    parser.add_argument("--data-dir", default=None, help="data root (default: $METALEARN_DATA, else ./data)")
    parser.add_argument("--way", type=WAY, default=5, help="classes per test episode (N)")
    parser.add_argument("--shot", type=COUNT, default=1, help="support examples per class (K)")
    parser.add_argument("--query", type=COUNT, default=15, help="query examples per class (Q)")
    parser.add_argument("--test-episodes", type=COUNT, default=600, help="fixed test episodes")
    parser.add_argument("--relations", choices=FEWREL_SCHEMES, default="6-5-5",
                        help="FewRel: 6-5-5 (train / val / test relations) or 6-10 (10 test relations; results "
                             "named fewrel-6-10), as in chapters.applications.train")
    parser.add_argument("--out", default="runs", help="folder for the results JSON")
    args = parser.parse_args(argv)
    check_out(args.out)
    if args.relations != "6-5-5" and args.dataset != "fewrel":
        raise ConfigError(f"--relations {args.relations} splits FewRel's relations; drop it for --dataset {args.dataset}")
    scheme = {"scheme": args.relations} if args.relations != "6-5-5" else {}
    dataset = f"fewrel-{args.relations}" if scheme else args.dataset
    train_set = load_dataset(args.dataset, "train", args.data_dir, **scheme)
    test_set = load_dataset(args.dataset, "test", args.data_dir, **scheme)
    if args.way > test_set.n_classes:
        raise ConfigError(f"--way {args.way}: the {dataset} test split has {test_set.n_classes} classes; "
                          f"use --way {test_set.n_classes} or fewer")
    episodes = evaluation_episodes(test_set, args.way, args.shot, args.query, count=args.test_episodes)
    start = time.perf_counter()
    baseline = NearestMean(inverse_document_frequencies(train_set.images[..., 0], len(train_set.vocabulary)))
    test = evaluate(baseline.predict, episodes)
    result = make_result(algorithm="tfidf-nearest-mean", framework="numpy", dataset=dataset, way=args.way,
                         shot=args.shot, query=args.query, train_episodes=0, accuracy=test["accuracy"],
                         ci95=test["ci95"], test_episodes=test["episodes"],
                         wall_seconds=time.perf_counter() - start, seconds_per_episode=test["seconds_per_episode"],
                         seed=0, options={"idf_from": "train", "vocabulary": len(train_set.vocabulary)})
    folder = f"{args.out}/tfidf-nearest-mean_numpy_{dataset}_{args.way}w{args.shot}s"
    path = write_result(result, folder)
    print(f"tfidf-nearest-mean {dataset} {args.way}-way {args.shot}-shot: {test['accuracy']:.2f} ± "
          f"{test['ci95']:.2f}% over {test['episodes']} test episodes -> {path}")
    return result


if __name__ == "__main__":
    run_main(main)
