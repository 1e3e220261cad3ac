"""Checks for exercise 2. Run them with

    python -m common.exercises check chapters/metric/exercises/02_cosine_vs_euclidean

The last check trains a small Prototypical Network (PyTorch, 100 episodes, about 10-20 seconds on
one CPU core) and compares nearest-prototype classification by squared Euclidean distance and by
your cosine logits on fixed Omniglot validation episodes. :func:`measure` is that experiment; the
README's numbers come from it.
"""

import numpy as np

from common.episodes import EpisodeSampler, evaluation_episodes
from common.evaluation import mean_ci95
from common.exercises import require_dataset

# The experiment: a ProtoNet (Conv-4, squared Euclidean distance, Adam 1e-3) trained for
# TRAIN_EPISODES 5-way 1-shot 5-query Omniglot episodes (seed 0), then evaluated on the first
# EVAL_EPISODES fixed validation episodes of each setting, 15 queries per class.
TRAIN_EPISODES = 100
EVAL_EPISODES = 40
SETTINGS = ((5, 1), (5, 5))  # (way, shot)

# What `measure` gives with solution.py (see the README): accuracy in % per setting and distance,
# and the % of queries on which the two rules predict the same class. Another CPU may round the
# 100 training steps differently and land a little elsewhere, hence the tolerance.
MEASURED = {(5, 1): {"euclidean": 81.93, "cosine": 81.73, "agreement": 95.73},
            (5, 5): {"euclidean": 93.07, "cosine": 93.0, "agreement": 98.3}}
TOLERANCE = 4.0  # accuracy points


def call(module, query, prototypes, scale):
    result = module.cosine_logits(np.array(query, dtype=np.float64), np.array(prototypes, dtype=np.float64), scale)
    assert result is not None, "cosine_logits should return the (n_query, way) logits; it returned None"
    result = np.asarray(result)
    expected_shape = (len(query), len(prototypes))
    hint = " (transposed?)" if result.shape == expected_shape[::-1] else ""
    assert result.shape == expected_shape, (
        f"cosine_logits({len(query)} queries, {len(prototypes)} prototypes, scale) should return one row "
        f"per query and one column per prototype, shape {expected_shape}; got {result.shape}{hint}")
    return result


def reference(query, prototypes, scale):
    query = query / np.sqrt((query ** 2).sum(axis=1, keepdims=True) + 1e-8)
    prototypes = prototypes / np.sqrt((prototypes ** 2).sum(axis=1, keepdims=True) + 1e-8)
    return scale * query @ prototypes.T


def diagnose(query, prototypes, scale, result):
    """Name the usual mistake that gives exactly ``result``, if it is one of them."""
    query, prototypes = np.asarray(query, float), np.asarray(prototypes, float)
    cosine = reference(query, prototypes, 1.0)
    mistakes = [
        ("the cosine similarities without the scale", "multiply them by `scale`", cosine),
        ("dot products, scaled", "divide by the norms of both vectors", scale * query @ prototypes.T),
        ("dot products", "divide by the norms of both vectors and multiply by `scale`", query @ prototypes.T),
        ("cosines divided by the scale", "multiply by `scale` (an inverse temperature)", cosine / scale),
        ("negative squared Euclidean distances", "this exercise asks for the cosine",
         -((query[:, None] - prototypes[None]) ** 2).sum(-1)),
        ("dot products divided by the query norms only", "divide by the prototype norms too",
         scale * (query / np.linalg.norm(query, axis=1, keepdims=True)) @ prototypes.T),
        ("dot products divided by the prototype norms only", "divide by the query norms too",
         scale * query @ (prototypes / np.linalg.norm(prototypes, axis=1, keepdims=True)).T),
    ]
    for what, advice, wrong in mistakes:
        if wrong.shape == result.shape and np.allclose(result, wrong, rtol=1e-5, atol=1e-7):
            return f" Your numbers are {what}; {advice}."
    return ""


def check_by_hand(module):
    # (3, 4) has length 5: cosines 3/5, 4/5, -3/5 with (1, 0), (0, 2), (-1, 0); scale 10 -> 6, 8, -6.
    query, prototypes = [[3.0, 4.0]], [[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]]
    result = call(module, query, prototypes, 10.0)
    expected = [[6.0, 8.0, -6.0]]
    assert np.allclose(result, expected, atol=1e-6), (
        f"the query (3, 4) has cosines 0.6, 0.8, -0.6 with the prototypes (1, 0), (0, 2), (-1, 0); with "
        f"scale 10 the logits are {expected}; got {np.round(result, 4).tolist()}."
        f"{diagnose(query, prototypes, 10.0, result)}")


def check_scale_multiplies_every_logit(module):
    rng = np.random.default_rng(0)
    query, prototypes = rng.normal(size=(6, 8)), rng.normal(size=(5, 8))
    one, ten = call(module, query, prototypes, 1.0), call(module, query, prototypes, 10.0)
    assert np.allclose(ten, 10 * one, atol=1e-7), (
        f"scale is an inverse temperature: the logits with scale 10 should be 10 times those with scale "
        f"1, but the ratio ranges from {np.min(ten / one):.3g} to {np.max(ten / one):.3g}."
        f"{diagnose(query, prototypes, 10.0, ten)}")
    assert np.array_equal(one.argmax(axis=1), ten.argmax(axis=1)), "a positive scale should change no prediction"
    assert np.all(np.abs(one) <= 1 + 1e-6), (
        f"with scale 1 every logit is a cosine, between -1 and 1; got values up to {np.abs(one).max():.3g}."
        f"{diagnose(query, prototypes, 1.0, one)}")


def check_lengths_do_not_matter(module):
    rng = np.random.default_rng(1)
    query, prototypes = rng.normal(size=(4, 8)), rng.normal(size=(3, 8))
    before = call(module, query, prototypes, 5.0)
    longer_query, longer_prototypes = query * rng.uniform(0.1, 10, (4, 1)), prototypes * rng.uniform(0.1, 10, (3, 1))
    after = call(module, longer_query, longer_prototypes, 5.0)
    assert np.allclose(before, after, atol=1e-6), (
        f"the cosine only sees directions: rescaling the embeddings should change no logit, but they "
        f"moved by up to {np.abs(before - after).max():.3g}.{diagnose(longer_query, longer_prototypes, 5.0, after)}")


def check_zero_embedding_gives_no_nan(module):
    with np.errstate(all="ignore"):
        result = call(module, [[0.0, 0.0], [2.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]], 3.0)
    assert np.all(np.isfinite(result)), (
        f"with an all-zero embedding (a ReLU network can produce one) cosine_logits returned "
        f"{result.tolist()}: 0 / 0. Put a small epsilon under the square root of the norms, "
        f"sqrt(sum(u * u) + 1e-8), so that a zero vector gets cosine 0 with everything")
    assert np.allclose(result, [[0.0, 0.0], [3.0, 0.0]], atol=1e-6), (
        f"the zero query has cosine 0 with both prototypes, the query (2, 0) cosine 1 with (1, 0) and 0 "
        f"with the zero prototype: with scale 3 expected [[0, 0], [3, 0]], got {np.round(result, 4).tolist()}")


def check_matches_the_chapters_cosine(module):
    # An unwritten starter stops on the next line, before the slow import of torch.
    call(module, [[1.0, 0.0]], [[1.0, 0.0]], 1.0)
    import torch

    from chapters.metric import matching_torch

    rng = np.random.default_rng(2)
    for n_query, way, dim, scale in [(75, 5, 64, 1.0), (100, 20, 64, 10.0), (7, 3, 1600, 0.5)]:
        query, prototypes = np.maximum(rng.normal(size=(n_query, dim)), 0), rng.normal(size=(way, dim))
        cosine = matching_torch.cosine_similarity(torch.from_numpy(query), torch.from_numpy(prototypes))
        expected = scale * cosine.numpy()
        result = call(module, query, prototypes, scale)
        assert np.allclose(result, expected, rtol=1e-6, atol=1e-7), (
            f"on random {dim}-D embeddings ({n_query} queries, {way} prototypes, scale {scale}) your logits "
            f"differ from scale * chapters.metric.matching_torch.cosine_similarity by up to "
            f"{np.abs(result - expected).max():.3g}.{diagnose(query, prototypes, scale, result)}")


# --------------------------------------------------------------------------------------------
# The measurement
# --------------------------------------------------------------------------------------------

_EMBEDDINGS = {}


def embedded_episodes():
    """{(way, shot): [(support, support_y, query, query_y), ...]}: NumPy embeddings, by a briefly
    trained ProtoNet, of the first EVAL_EPISODES fixed Omniglot validation episodes. Computed once."""
    if _EMBEDDINGS:
        return _EMBEDDINGS
    import torch

    from chapters.metric.protonet_torch import ProtoNet
    from common.episodic_torch import EpisodicLearner

    train, val = require_dataset("omniglot", "train"), require_dataset("omniglot", "val")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same sums in the same order on every machine we know of
    try:
        with torch.random.fork_rng():  # leave the caller's random state alone
            torch.manual_seed(0)
            learner = EpisodicLearner(ProtoNet(in_channels=1), learning_rate=1e-3)
            sampler = EpisodeSampler(train, way=5, shot=1, query=5, seed=0)
            for index in range(TRAIN_EPISODES):
                learner.train_step(sampler.episode(index))
        encoder = learner.model.eval().encoder

        def embed(images):
            with torch.no_grad():
                return encoder(torch.from_numpy(images).movedim(-1, -3)).double().numpy()

        for way, shot in SETTINGS:
            _EMBEDDINGS[way, shot] = [
                (embed(e.support_x), e.support_y, embed(e.query_x), e.query_y)
                for e in evaluation_episodes(val, way, shot, query=15, count=EVAL_EPISODES)]
    finally:
        torch.set_num_threads(threads)
    return _EMBEDDINGS


def measure(module, scale: float = 1.0) -> dict:
    """The experiment, per (way, shot) setting: nearest-prototype accuracy (%) and its 95% interval
    over the episodes with squared Euclidean distance (``euclidean``) and with
    ``module.cosine_logits`` (``cosine``), and the % of queries where the two pick the same class
    (``agreement``). ``reference`` and ``same_as_reference`` compare the module with a known cosine."""
    results = {}
    for (way, shot), episodes in embedded_episodes().items():
        accuracies = {"euclidean": [], "cosine": [], "reference": []}
        agree = same_as_reference = total = 0
        for support, support_y, query, query_y in episodes:
            prototypes = np.stack([support[support_y == k].mean(axis=0) for k in range(way)])
            predictions = {
                "euclidean": ((query[:, None] - prototypes[None]) ** 2).sum(-1).argmin(axis=1),
                "cosine": call(module, query, prototypes, scale).argmax(axis=1),
                "reference": reference(query, prototypes, 1.0).argmax(axis=1)}
            for name, predicted in predictions.items():
                accuracies[name].append(np.mean(predicted == query_y))
            agree += int((predictions["euclidean"] == predictions["cosine"]).sum())
            same_as_reference += int((predictions["cosine"] == predictions["reference"]).sum())
            total += len(query_y)
        result = {}
        for name, values in accuracies.items():
            mean, ci95 = mean_ci95(values)
            result[name], result[f"{name}_ci95"] = round(100 * mean, 2), round(100 * ci95, 2)
        result.update(agreement=round(100 * agree / total, 2),
                      same_as_reference=round(100 * same_as_reference / total, 2), queries=total)
        results[way, shot] = result
    return results


def check_omniglot_cosine_vs_euclidean(module):
    call(module, [[1.0, 0.0]], [[1.0, 0.0]], 1.0)  # a starter raises NotImplementedError here, before training
    results = measure(module, scale=10.0)
    for (way, shot), result in results.items():
        setting = f"{way}-way {shot}-shot"
        assert result["same_as_reference"] >= 99.9, (
            f"on {EVAL_EPISODES} Omniglot {setting} validation episodes, embedded by a briefly trained "
            f"ProtoNet, your cosine_logits pick another prototype than the cosine similarity does for "
            f"{100 - result['same_as_reference']:.2f}% of the {result['queries']} queries (your accuracy "
            f"{result['cosine']}%, cosine {result['reference']}%)")
        for name in ("euclidean", "reference"):
            measured = MEASURED[way, shot]["cosine" if name == "reference" else name]
            assert abs(result[name] - measured) <= TOLERANCE, (
                f"the experiment itself has moved (not your code): {setting} nearest-prototype accuracy "
                f"with {'cosine similarity' if name == 'reference' else 'squared Euclidean distance'} is "
                f"{result[name]}%, the README reports {measured}% (tolerance {TOLERANCE} points). The chapter's "
                f"ProtoNet, its training or the data have changed; update MEASURED and the README")
