"""Checks for exercise 1. Run them with

    python -m common.exercises check chapters/foundations/exercises/01_episode_sampler

Most checks use a small synthetic data set whose pixels say where they came from: pixel (0, 0) of
every image holds its class index and pixel (0, 1) its example index, so each returned image can
be traced back to the exact drawing it is.
"""

import random

import numpy as np

from common.exercises import require_dataset


def labelled_images(n_classes=12, per_class=9, size=4, channels=1):
    images = np.zeros((n_classes, per_class, size, size, channels), np.uint8)
    images[:, :, 0, 0, :] = np.arange(n_classes)[:, None, None]
    images[:, :, 0, 1, :] = np.arange(per_class)[None, :, None]
    return images


def as_uint8(x):
    """The uint8 pixels of returned images, also when they were (wrongly) converted to [0, 1]:
    check_shapes_and_types reports the dtype once; the other checks still trace the images."""
    x = np.asarray(x)
    if x.dtype.kind == "f" and x.size and x.max() <= 1.0:
        x = x * 255
    return np.rint(x).astype(np.uint8)


def provenance(x):
    """(class, example) of each image returned from labelled_images, as two int arrays."""
    pixels = as_uint8(x).astype(int)
    return pixels[:, 0, 0, 0], pixels[:, 0, 1, 0]


def pairs(x):
    """The (class, example) of each image as a list of plain-int pairs (readable in messages)."""
    return list(zip(*(part.tolist() for part in provenance(x))))


def sample(module, images, way, shot, query, seed=0):
    result = module.sample_episode(images, way, shot, query, np.random.default_rng(seed))
    assert isinstance(result, (tuple, list)) and len(result) == 4, (
        f"sample_episode should return a tuple (support_x, support_y, query_x, query_y); got "
        f"{type(result).__name__}{f' of length {len(result)}' if isinstance(result, (tuple, list)) else ''}")
    for name, part in zip(("support_x", "support_y", "query_x", "query_y"), result):
        assert part is not None, f"sample_episode returned None as {name}"
    return tuple(np.asarray(part) for part in result)


def check_shapes_and_types(module):
    for (classes, per_class, size, channels), (way, shot, query) in [
            ((12, 9, 4, 1), (5, 2, 3)), ((6, 5, 3, 3), (3, 1, 4)), ((12, 9, 4, 1), (12, 4, 5))]:
        images = labelled_images(classes, per_class, size, channels)
        support_x, support_y, query_x, query_y = sample(module, images, way, shot, query)
        setting = f"for a {way}-way {shot}-shot {query}-query episode of images {images.shape}"
        for name, array, shape in [("support_x", support_x, (way * shot, size, size, channels)),
                                   ("support_y", support_y, (way * shot,)),
                                   ("query_x", query_x, (way * query, size, size, channels)),
                                   ("query_y", query_y, (way * query,))]:
            assert array.shape == shape, f"{name} should have shape {shape} {setting}; got {array.shape}"
        for name, array in [("support_x", support_x), ("query_x", query_x)]:
            assert array.dtype == images.dtype, (
                f"{name} should keep the dtype of images ({images.dtype}); got {array.dtype} "
                f"(converting to float is EpisodeSampler's job, not the sampler's)")
        for name, array in [("support_y", support_y), ("query_y", query_y)]:
            assert array.dtype.kind in "iu", f"{name} should hold integer labels; got dtype {array.dtype}"


def check_labels_are_0_to_n_minus_1_class_by_class(module):
    way, shot, query = 4, 2, 3
    images = labelled_images()
    support_x, support_y, query_x, query_y = sample(module, images, way, shot, query, seed=1)
    for name, labels, x, k in [("support_y", support_y, support_x, shot), ("query_y", query_y, query_x, query)]:
        expected = np.repeat(np.arange(way), k)
        hint = ""
        if np.array_equal(labels, provenance(x)[0]):
            hint = (" These look like the data set's class indices: remap them, so that the first "
                    "class drawn is label 0, the second label 1, ...")
        assert np.array_equal(labels, expected), (
            f"{name} should hold labels 0..N-1, class by class ({k} copies of 0, then of 1, ...): "
            f"{expected.tolist()}; got {labels.tolist()}.{hint}")


def check_each_label_is_one_class_and_classes_are_distinct(module):
    way, shot, query = 5, 2, 3
    for seed in range(20):
        support_x, support_y, query_x, query_y = sample(module, labelled_images(), way, shot, query, seed)
        support_class, query_class = provenance(support_x)[0], provenance(query_x)[0]
        chosen = []
        for label in sorted(set(support_y.tolist()) | set(query_y.tolist())):
            found = set(support_class[support_y == label].tolist()) | set(query_class[query_y == label].tolist())
            assert len(found) == 1, (
                f"the support and query images labelled {label} should all come from one class; "
                f"they come from classes {sorted(found)} (seed {seed})")
            chosen.append(found.pop())
        assert len(set(chosen)) == way, (
            f"an N-way episode needs N *different* classes; its {way} labels were given classes "
            f"{chosen} (seed {seed}): draw the classes without replacement")


def check_support_and_query_are_disjoint(module):
    way, shot, query = 5, 3, 6  # 9 of the 9 examples per class: every example is used once
    for seed in range(20):
        support_x, _, query_x, _ = sample(module, labelled_images(), way, shot, query, seed)
        support, queries = pairs(support_x), pairs(query_x)
        assert len(set(support)) == len(support), (
            f"the support set holds the same example twice (class, example): "
            f"{sorted(s for s in set(support) if support.count(s) > 1)} (seed {seed}); draw the "
            f"examples of a class without replacement")
        assert len(set(queries)) == len(queries), (
            f"the query set holds the same example twice (class, example): "
            f"{sorted(q for q in set(queries) if queries.count(q) > 1)} (seed {seed}); draw the "
            f"examples of a class without replacement")
        leaked = sorted(set(support) & set(queries))
        assert not leaked, (
            f"examples {leaked} (class, example) are in both the support and the query set (seed "
            f"{seed}): a query must be new to the learner, or the episode measures memory, not learning")


def check_classes_examples_and_labels_are_random(module):
    n_classes, per_class, way, shot, query = 12, 9, 3, 1, 2
    classes_seen, support_seen, query_seen = set(), set(), set()
    labels_of = {c: set() for c in range(n_classes)}
    for seed in range(300):
        support_x, support_y, query_x, _ = sample(module, labelled_images(n_classes, per_class), way,
                                                  shot, query, seed)
        classes, examples = provenance(support_x)
        classes_seen.update(classes.tolist())
        support_seen.update(examples.tolist())
        query_seen.update(provenance(query_x)[1].tolist())
        for c, label in zip(classes.tolist(), support_y.tolist()):
            labels_of[c].add(label)
    assert classes_seen == set(range(n_classes)), (
        f"over 300 episodes only classes {sorted(classes_seen)} of 0..{n_classes - 1} were drawn: "
        f"choose the classes at random among all of them")
    for name, seen in [("support", support_seen), ("query", query_seen)]:
        assert seen == set(range(per_class)), (
            f"over 300 episodes the {name} sets only used examples {sorted(seen)} of 0..{per_class - 1}: "
            f"choose the examples of each class at random")
    fixed = sorted(c for c, labels in labels_of.items() if len(labels) == 1)
    assert not fixed, (
        f"classes {fixed} got the same label in every episode they were in (e.g. because the drawn "
        f"classes were sorted): a class's label should be as random as the draw, or a learner can "
        f"memorise which labels go with which classes instead of learning from the support set")


def check_uses_only_the_rng_it_is_given(module):
    images = labelled_images()
    first, second = [], []
    saved = np.random.get_state(), random.getstate()  # put the global states back afterwards
    try:
        for episode, global_seed in [(first, 1), (second, 2)]:
            # Different global random states: a sampler that uses them gives different episodes.
            np.random.seed(global_seed)
            random.seed(global_seed)
            episode.extend(sample(module, images, 4, 2, 3, seed=7))
    finally:
        np.random.set_state(saved[0])
        random.setstate(saved[1])
    for name, a, b in zip(("support_x", "support_y", "query_x", "query_y"), first, second):
        assert np.array_equal(a, b), (
            f"two calls with np.random.default_rng(7) gave different {name}: draw every random "
            f"number from the rng argument (not np.random.* or the random module), so that an "
            f"episode is reproducible from its seed")
    episodes = [provenance(sample(module, images, 4, 2, 3, seed)[0]) for seed in range(5)]
    assert any(not np.array_equal(episodes[0], other) for other in episodes[1:]), (
        "rng seeds 0..4 all gave the same episode: the episode should depend on the rng you are given")


def check_on_omniglot(module):
    dataset = require_dataset("omniglot", "val")
    images = dataset.images
    where = {}  # image bytes -> the classes that hold that exact drawing
    for c in range(dataset.n_classes):
        for e in range(dataset.examples_per_class):
            where.setdefault(images[c, e].tobytes(), set()).add(c)
    for way, shot, query in [(5, 1, 15), (20, 5, 15)]:
        support_x, support_y, query_x, query_y = sample(module, images, way, shot, query, seed=3)
        assert support_x.shape == (way * shot, 28, 28, 1) and query_x.shape == (way * query, 28, 28, 1), (
            f"a {way}-way {shot}-shot {query}-query Omniglot episode should have support_x "
            f"{(way * shot, 28, 28, 1)} and query_x {(way * query, 28, 28, 1)}; got "
            f"{support_x.shape} and {query_x.shape}")
        assert np.array_equal(support_y, np.repeat(np.arange(way), shot)), \
            f"support_y should be 0..{way - 1} class by class; got {support_y.tolist()}"
        assert np.array_equal(query_y, np.repeat(np.arange(way), query)), \
            f"query_y should be 0..{way - 1} class by class; got {query_y.tolist()}"
        support_x, query_x = as_uint8(support_x), as_uint8(query_x)
        every = np.concatenate([support_x, query_x])
        assert len({x.tobytes() for x in every}) == len(every), \
            f"a {way}-way {shot}-shot episode on Omniglot uses the same drawing twice"
        chosen = []
        for label in range(way):
            drawings = np.concatenate([support_x[support_y == label], query_x[query_y == label]])
            owners = set.intersection(*(where.get(x.tobytes(), set()) for x in drawings))
            assert owners, f"the drawings labelled {label} are not all drawings of one Omniglot class"
            chosen.append(owners)
        unique = [min(owners) for owners in chosen if len(owners) == 1]  # drawings found in one class only
        assert len(set(unique)) == len(unique), \
            f"the {way} labels of a {way}-way episode should be {way} different Omniglot classes"
