"""The applications chapter's figures (``make figures``; see ``common/plotting.py``).

* ``episode``: a 5-way 1-shot FewRel test episode as the encoder reads it: each support sentence
  with its head and tail entities marked (from the position channels, not from the raw text);
* ``embeddings``: a 5-way 5-shot FewRel test episode through the Proto-CNN before and after a
  short meta-training, projected onto its two principal directions, with the prototypes;
* ``per_class``: accuracy per HuffPost test class over the first 100 fixed 5-way 5-shot test
  episodes, ProtoNet after a short meta-training beside the TF-IDF baseline.

The training runs are small deterministic PyTorch runs (one thread, seed 0, about a minute in
all); the numbers of the chapter's table come from the full runs in ``results/applications/``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from common.embedding_view import draw_embeddings as draw_prototype_views
from common.embedding_view import prototype_view
from common.plotting import CYCLE, NEUTRAL, Figure, new_figure

WAY = 5


def dataset(name: str, split: str):
    from common.data import load_dataset

    return load_dataset(name, split)


def marked(example: np.ndarray, dataset_) -> str:
    """A (length, 3) FewRel example as words, with [[ ]] around the head and {{ }} around the tail token
    (found where the position channels are 0 offset, id ``length``)."""
    length = len(example)
    words = dataset_.vocabulary.decode(example[:, 0])
    head, tail = int(np.flatnonzero(example[:, 1] == length)[0]), int(np.flatnonzero(example[:, 2] == length)[0])
    return " ".join(f"[[{w}]]" if i == head else f"{{{{{w}}}}}" if i == tail else w for i, w in enumerate(words))


def episode_data() -> dict:
    from common.episodes import evaluation_episodes

    test = dataset("fewrel", "test")
    episode = evaluation_episodes(test, WAY, 1, 15, count=1)[0]
    classes = evaluation_episodes(test, WAY, 1, 15, count=1).source.classes_of(0)
    return {"dataset": "fewrel", "split": "test", "episode": "first fixed 5-way 1-shot test episode",
            "relations": [test.class_names[c] for c in classes],
            "sentences": [marked(x, test) for x in episode.support_x]}


def draw_episode(data: dict):
    import textwrap

    figure, ax = new_figure(1, 1, height=4.6)
    ax.axis("off")
    ax.set_position([0.01, 0.02, 0.98, 0.88])  # the whole width for the text
    y = 1.0
    for label, (relation, sentence) in enumerate(zip(data["relations"], data["sentences"])):
        ax.text(0.0, y, f"label {label}: {relation}", fontsize=9, fontweight="bold", color=CYCLE[label],
                transform=ax.transAxes, va="top")
        wrapped = textwrap.fill(sentence, 110)
        ax.text(0.02, y - 0.055, wrapped, fontsize=8, transform=ax.transAxes, va="top", family="monospace")
        y -= 0.07 + 0.045 * (wrapped.count("\n") + 1)
    figure.suptitle("A 5-way 1-shot FewRel test episode, its support set as the encoder reads it:\n[[head]], "
                    "{{tail}}, <unk> for a word the training relations never used twice",
                    fontsize=10)
    return figure


@lru_cache(maxsize=None)
def trained(name: str, shot: int, episodes: int):
    """(untrained, trained) PyTorch ProtoNets with the Proto-CNN, meta-trained 5-way ``shot``-shot
    5-query on ``name``'s training classes for ``episodes`` episodes (seed 0, one thread)."""
    import copy

    import torch

    from chapters.applications.encoders import encoder_arguments
    from chapters.applications.encoders_torch import build_encoder
    from chapters.metric.protonet_torch import ProtoNet
    from common.episodes import EpisodeSampler
    from common.episodic_torch import EpisodicLearner

    torch.set_num_threads(1)
    torch.manual_seed(0)
    train = dataset(name, "train")
    model = ProtoNet(encoder=build_encoder("cnn", **encoder_arguments(train)))
    untrained = copy.deepcopy(model)
    learner = EpisodicLearner(model, 1e-3, 2000)
    sampler = EpisodeSampler(train, WAY, shot, 5, seed=0)
    for index in range(episodes):
        learner.train_step(sampler.episode(index))
    return untrained.eval(), model.eval()


def embed(model, tokens: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model.encoder(torch.from_numpy(tokens)).numpy()


def protonet_view(model, episode) -> dict:
    return prototype_view(embed(model, episode.support_x), episode.support_y, embed(model, episode.query_x),
                          episode.query_y, WAY)


def embeddings_data(episodes: int = 2000) -> dict:
    from common.episodes import evaluation_episodes

    untrained, model = trained("fewrel", 5, episodes)
    test = dataset("fewrel", "test")
    episode = evaluation_episodes(test, WAY, 5, 15, count=1)[0]
    classes = evaluation_episodes(test, WAY, 5, 15, count=1).source.classes_of(0)
    return {"dataset": "fewrel", "train": "5-way 5-shot 5-query", "episodes": episodes,
            "relations": [test.class_names[c] for c in classes], "query_y": episode.query_y,
            "panels": {"before meta-training": protonet_view(untrained, episode),
                       f"after {episodes:,} episodes": protonet_view(model, episode)}}


def draw_embeddings(data: dict):
    return draw_prototype_views(data["panels"], data["query_y"], data["relations"],
                                "Proto-CNN (PyTorch) embeddings of a 5-way 5-shot FewRel test episode; stars: prototypes",
                                height=4.3, legend_below=True)


def per_class_accuracy(predict, test, episodes) -> np.ndarray:
    """Accuracy (%) of each test class's queries over ``episodes`` (classes it never appeared in: NaN)."""
    right, total = np.zeros(test.n_classes), np.zeros(test.n_classes)
    for index, episode in enumerate(episodes):
        classes = episodes.source.classes_of(index)
        correct = predict(episode) == episode.query_y
        np.add.at(right, classes[episode.query_y], correct)
        np.add.at(total, classes[episode.query_y], 1)
    return np.where(total > 0, 100 * right / np.maximum(total, 1), np.nan)


def per_class_data(episodes: int = 2000, test_episodes: int = 100) -> dict:
    import torch

    from chapters.applications.baseline import NearestMean, inverse_document_frequencies
    from common.episodes import evaluation_episodes

    train, test = dataset("huffpost", "train"), dataset("huffpost", "test")
    fixed = evaluation_episodes(test, WAY, 5, 15, count=test_episodes)
    _, model = trained("huffpost", 5, episodes)

    def protonet(episode):
        with torch.no_grad():
            logits = model(*(torch.from_numpy(part) for part in (episode.support_x, episode.support_y,
                                                                 episode.query_x)))
        return logits.argmax(1).numpy()

    baseline = NearestMean(inverse_document_frequencies(train.images[..., 0], len(train.vocabulary)))
    return {"dataset": "huffpost", "setting": "5-way 5-shot, 15 queries", "test_episodes": test_episodes,
            "train": "5-way 5-shot 5-query", "episodes": episodes, "classes": list(test.class_names),
            "accuracy": {f"ProtoNet, Proto-CNN ({episodes:,} episodes)": per_class_accuracy(protonet, test, fixed),
                         "TF-IDF nearest mean (no meta-training)": per_class_accuracy(baseline.predict, test, fixed)}}


def draw_per_class(data: dict):
    figure, ax = new_figure(1, 1, height=3.6)
    names = list(data["accuracy"])
    order = np.argsort(-np.nan_to_num(np.array(data["accuracy"][names[0]], dtype=float)))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values = np.array(data["accuracy"][name], dtype=float)[order]
        ax.bar(np.arange(len(order)) + (i - (len(names) - 1) / 2) * width, values, width, label=name,
               color=CYCLE[i] if i == 0 else NEUTRAL)
    ax.axhline(100 / WAY, color="black", linewidth=0.8, linestyle=":", label="chance (20%)")
    ax.set_xticks(np.arange(len(order)), [data["classes"][c] for c in order], rotation=45, ha="right", fontsize=7)
    ax.set(ylabel="query accuracy (%)", ylim=(0, 100))
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(f"HuffPost test classes, {data['setting']}, first {data['test_episodes']} fixed test episodes",
                 fontsize=9)
    figure.tight_layout()
    return figure


FIGURES = [
    Figure("episode", episode_data, draw_episode),
    # Training runs: the test recomputes a 3-episode run of the same code (see common/plotting.py).
    Figure("embeddings", embeddings_data, draw_embeddings, size={"episodes": 2000},
           check_size={"episodes": 3}, rtol=1e-3),
    Figure("per_class", per_class_data, draw_per_class, size={"episodes": 2000, "test_episodes": 100},
           check_size={"episodes": 3, "test_episodes": 10}, rtol=1e-3),
]
