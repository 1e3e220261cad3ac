"""Properties of the code the three frameworks share (sampler, meta-batches, adapters), which the
cross-framework tests cannot see: a bug there feeds all three the same wrong numbers.

For every way an episode reaches a framework (NumPy, ``to_torch``, ``TorchEpisodes``,
``tf_dataset``, ``keras_episodes``; single episodes and meta-batches, support sets shuffled or not):
every image carries the label of the class it was drawn from (the label is the position of that
class in ``classes_of(i)``), support and query never share an image, and item i is episode i.
The images of ``tests.test_sampler.labelled_dataset`` name their own class and example.

The results path (``write_result`` -> ``load_results`` -> ``results_table``) is shared too: for a
random set of runs, every cell of the table shows the latest run of exactly its (algorithm,
labelled deviations, data set, way, shot, framework), and no cell shows a number no run made.
"""

from __future__ import annotations

import numpy as np
import pytest

from common.adapters import TorchEpisodes, keras_episodes, tf_dataset
from common.episodes import EpisodeSampler, MetaBatches
from tests.test_sampler import labelled_dataset, provenance

WAY, SHOT, QUERY = 4, 3, 2


def as_numpy(x):
    import torch
    if isinstance(x, torch.Tensor):
        return (x.movedim(-3, -1) if x.ndim >= 4 else x).numpy()
    return np.asarray(x)


def check_task(sampler, index, support_x, support_y, query_x, query_y):
    """Every image's label is its class's position in the episode; no image is in both sets."""
    classes = list(sampler.classes_of(index))
    seen = {}
    for part, (x, y) in {"support": (support_x, support_y), "query": (query_x, query_y)}.items():
        source_class, example = provenance(as_numpy(x))
        labels = as_numpy(y)
        expected = np.array([classes.index(c) for c in source_class])
        np.testing.assert_array_equal(labels, expected, f"{part} labels of episode {index} left their images")
        seen[part] = set(zip(source_class.tolist(), example.tolist()))
        assert np.bincount(labels, minlength=WAY).tolist() == [SHOT if part == "support" else QUERY] * WAY
    assert not seen["support"] & seen["query"], f"episode {index}: an image in both sets"


def episodes_through(adapter: str, sampler, start: int, count: int, meta_batch_size=None):
    """Items ``start..start+count-1`` as the adapter delivers them, as (support_x, support_y, query_x, query_y)."""
    if adapter == "numpy":
        return [tuple(sampler.episode(i) if meta_batch_size is None else sampler.meta_batch(i, meta_batch_size))
                for i in range(start, start + count)]
    if adapter == "torch":
        return [tuple(e) for e in TorchEpisodes(sampler, start, start + count, meta_batch_size=meta_batch_size)]
    if adapter == "tf":
        return [tuple(part.numpy() for part in e) for e in tf_dataset(sampler, start, start + count,
                                                                     meta_batch_size=meta_batch_size)]
    data = keras_episodes(sampler, count, start=start, meta_batch_size=meta_batch_size)
    return [(x[0], x[1], x[2], y) for x, y in (data[i] for i in range(count))]


ADAPTERS = ("numpy", "torch", "tf", "keras")


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_every_adapter_keeps_labels_with_their_images_and_delivers_episode_i(adapter):
    sampler = EpisodeSampler(labelled_dataset(), WAY, SHOT, QUERY, seed=7)
    for offset, episode in enumerate(episodes_through(adapter, sampler, 5, 3)):
        check_task(sampler, 5 + offset, *episode)
        for ours, expected in zip(episode, sampler.episode(5 + offset)):
            np.testing.assert_array_equal(as_numpy(ours), expected, f"{adapter} item {offset}")


@pytest.mark.parametrize("shuffle_support", [False, True], ids=["class-order", "shuffled-support"])
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_meta_batches_keep_labels_with_their_images_through_every_adapter(adapter, shuffle_support):
    """Task t of meta-batch i is episode i·B + t of the sampler, its labels with its images."""
    sampler, size = EpisodeSampler(labelled_dataset(), WAY, SHOT, QUERY, seed=7), 3
    batches = MetaBatches(sampler, size, shuffle_support=shuffle_support)
    delivered = episodes_through(adapter, batches, 2, 2) if adapter != "numpy" else \
        [tuple(batches.episode(i)) for i in (2, 3)]
    for offset, batch in enumerate(delivered):
        index = 2 + offset
        for t in range(size):
            check_task(sampler, index * size + t, *(as_numpy(part)[t] for part in batch))
        for ours, expected in zip(batch, batches.episode(index)):
            np.testing.assert_array_equal(as_numpy(ours), expected, f"{adapter} meta-batch {index}")


# ------------------------------------------------------------------------------ the results path

def table_cells(table: str) -> dict:
    """{(row name, data set, way, shot, framework): cell text} of a generated results table; the
    way as the table writes it ("5", or "5 (60 in training)")."""
    lines = [line for line in table.splitlines() if line.startswith("|")]
    header = [part.strip() for part in lines[0].strip("|").split("|")]
    frameworks = header[5:-1]
    cells = {}
    for line in lines[2:]:
        parts = [part.strip() for part in line.strip("|").split("|")]
        for framework, text in zip(frameworks, parts[5:-1]):
            cells[(parts[0], parts[1], parts[2], int(parts[3]), framework)] = text
    return cells


def test_every_table_cell_is_the_longest_then_latest_run_of_exactly_its_setting(tmp_path):
    from common.results import (deviation_labels, deviations, load_results, make_result, results_table,
                                value_text, write_result)

    rng = np.random.default_rng(0)
    choices = {"algorithm": ["protonet", "matching", "maml-transductive"], "framework": ["torch", "tf", "keras"],
               "dataset": ["omniglot", "mini-imagenet"], "way": [5, 20], "shot": [1, 5], "train_way": [5, 20, 60],
               "options": [{}, {"backbone": "strided"}, {"backbone": "maxpool"}, {"cosine_scale": 10.0}]}
    written = []
    for index in range(160):
        fields = {key: values[rng.integers(len(values))] for key, values in choices.items()}
        written.append(make_result(**fields, query=15, train_episodes=int(rng.choice([500, 1000, 8000])),
                                   accuracy=float(rng.uniform(20, 100)), ci95=float(rng.uniform(0, 2)),
                                   wall_seconds=1.0, seconds_per_episode=0.1,
                                   date=f"2026-01-01T00:{index // 60:02d}:{index % 60:02d}+00:00"))
        write_result(written[-1], tmp_path)
    loaded = load_results(tmp_path)
    assert len(loaded) == len(written)  # one file per run: none overwritten another

    latest = {}  # written in date order: of a key's runs with the most episodes, the last one is shown
    for result in written:
        label = result["algorithm"] + deviation_labels(deviations(result["options"]))
        way = (f"{result['way']}" if result["train_way"] == result["way"]
               else f"{result['way']} ({result['train_way']} in training)")
        key = (label, result["dataset"], way, result["shot"], result["framework"])
        if key not in latest or result["train_episodes"] >= latest[key]["train_episodes"]:
            latest[key] = result
    cells = table_cells(results_table(loaded))
    for key, text in cells.items():
        if key in latest:
            assert text == f"{value_text(latest[key])} ({latest[key]['train_episodes']:,} ep.)", key
        else:
            assert text == "–", f"{key} shows {text!r} but no run made it"
    assert set(latest) <= set(cells), "a run is missing from the table"
