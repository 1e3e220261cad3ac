"""The text data sets (HuffPost, Reuters, FewRel): contents, vocabulary, episodes, bad files."""

import json

import numpy as np
import pytest

from common.data import load_dataset
from common.data.text import PAD, UNK, Vocabulary, encode, relative_positions, tokenize
from common.episodes import EpisodeSampler, evaluation_episodes
from common.errors import ConfigError, CorruptDataError, DataNotFoundError
from tests.conftest import require_data


@pytest.fixture(scope="module")
def huffpost():
    require_data("text-fsl/huffpost.json")
    return {split: load_dataset("huffpost", split) for split in ("train", "val", "test")}


@pytest.fixture(scope="module")
def fewrel():
    require_data("fewrel/val_wiki.json")
    return {split: load_dataset("fewrel", split) for split in ("train", "val", "test")}


def test_tokenize_and_encode():
    assert tokenize("U.S. launches probe, China don't") == ["u.s", ".", "launches", "probe", ",", "china", "don't"]
    vocabulary = Vocabulary.build([["a", "b", "a"], ["b", "a", "c"]], min_count=2)
    assert vocabulary.words == ("<pad>", "<unk>", "a", "b")  # most frequent first; "c" too rare
    row = encode(["a", "c", "b"], vocabulary, 5)
    assert row.tolist() == [2, UNK, 3, PAD, PAD] and row.dtype == np.int32
    assert encode(list("abcabca"), vocabulary, 3).tolist() == [2, 3, UNK]  # cut at the length
    assert relative_positions(4, 1).tolist() == [3, 4, 5, 6]  # the entity itself is `length`


def test_huffpost_splits_follow_bao_et_al(huffpost):
    train, val, test = huffpost["train"], huffpost["val"], huffpost["test"]
    assert (train.n_classes, val.n_classes, test.n_classes) == (20, 5, 16)
    assert train.examples_per_class == val.examples_per_class == test.examples_per_class == 900
    assert train.class_names[0] == "politics" and test.class_names[0] == "religion"
    assert not set(train.class_names) & set(test.class_names)
    assert train.vocabulary == test.vocabulary  # one vocabulary for every split...
    # ... built from the training classes only: a word of the test classes alone is unknown
    test_words = {w for tokens in test.images[..., 0].reshape(-1, test.length) for w in tokens}
    assert UNK in test_words
    assert train.text(train.images[0, 0]).split()[0] in train.vocabulary.words


def test_text_episodes_are_seeded_and_fixed(huffpost):
    test = huffpost["test"]
    a, b = EpisodeSampler(test, 5, 1, 5, seed=3).episode(7), EpisodeSampler(test, 5, 1, 5, seed=3).episode(7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert a.support_x.shape == (5, 32, 1) and a.support_x.dtype == np.int32  # token ids, not floats
    first, again = evaluation_episodes(test, 5, 5, 15, count=3), evaluation_episodes(test, 5, 5, 15, count=3)
    assert np.array_equal(first[2].query_x, again[2].query_x)
    # no sentence is both a support and a query example of an episode
    rows = {tuple(x.ravel()) for x in first[0].support_x}
    assert not rows & {tuple(x.ravel()) for x in first[0].query_x}


def test_token_episodes_reach_torch_unpermuted(huffpost):
    torch = pytest.importorskip("torch")
    from common.adapters import to_torch
    batch = EpisodeSampler(huffpost["train"], 5, 1, 2).meta_batch(0, 2)
    support_x = to_torch(batch).support_x
    assert support_x.dtype == torch.int32 and tuple(support_x.shape) == (2, 5, 32, 1)


def test_fewrel_positions_mark_the_entities(fewrel):
    train, test = fewrel["train"], fewrel["test"]
    assert (train.n_classes, fewrel["val"].n_classes, test.n_classes) == (6, 5, 5)
    assert test.examples_per_class == 700 and test.images.shape[2:] == (40, 3)
    assert test.positions == 80 and train.class_names[1] == "P26 spouse"
    # every sentence has exactly one head and one tail position whose offset is 0 (id = length)
    assert ((test.images[..., 1] == 40).sum(axis=-1) == 1).all()
    assert ((test.images[..., 2] == 40).sum(axis=-1) == 1).all()
    with pytest.raises(ConfigError, match="10-way"):
        EpisodeSampler(test, 10, 1, 1)


def test_fewrel_6_10_scheme_holds_out_sentences_and_tests_10_way(fewrel):
    """Scheme 6-10: the 6 training relations' sentences parted 560 / 140 (train / val), the other 10
    relations whole for the test, so a 10-way test episode exists; the default split is unchanged."""
    train, val, test = (load_dataset("fewrel", split, scheme="6-10") for split in ("train", "val", "test"))
    assert (train.n_classes, train.examples_per_class) == (6, 560) and (val.n_classes, val.examples_per_class) == (6, 140)
    assert train.class_names == val.class_names == fewrel["train"].class_names
    assert test.class_names == fewrel["val"].class_names + fewrel["test"].class_names and test.examples_per_class == 700
    assert train.name == "fewrel-6-10" and fewrel["train"].name == "fewrel"
    # every fifth sentence validates; no sentence is in both (checked against the default split's copy,
    # whose vocabulary differs, by the position channels, which the vocabulary does not touch)
    whole = fewrel["train"].images[..., 1:]
    assert np.array_equal(val.images[..., 1:], whole[:, 4::5]) and np.array_equal(train.images[:, :4, :, 1:], whole[:, :4])
    # one vocabulary, of the 560 training sentences only
    assert train.vocabulary == val.vocabulary == test.vocabulary != fewrel["train"].vocabulary
    episode = evaluation_episodes(test, 10, 5, 15, count=1)[0]
    assert episode.support_x.shape == (50, 40, 3) and len(set(episode.query_y.tolist())) == 10
    with pytest.raises(ConfigError, match="splits train, val, test"):
        load_dataset("fewrel", "trainval", scheme="6-10")
    with pytest.raises(ConfigError, match="schemes 6-5-5, 6-10"):
        load_dataset("fewrel", "train", scheme="8-8")


def test_reuters_contents():
    require_data("text-fsl/reuters.json")
    sets = [load_dataset("reuters", split) for split in ("train", "val", "test")]
    assert [s.n_classes for s in sets] == [15, 5, 11] and sets[0].examples_per_class == 20
    assert sets[0].class_names[0] == "acquisitions" and sets[2].class_names[-1] == "wholesale price index"


def test_missing_and_malformed_files_say_what_to_do(tmp_path):
    with pytest.raises(DataNotFoundError, match="huffpost.json not found"):
        load_dataset("huffpost", "train", tmp_path)
    (tmp_path / "text-fsl").mkdir()
    (tmp_path / "text-fsl" / "huffpost.json").write_text('{"raw": "a headline", "label": 0}\nnot json\n')
    with pytest.raises(CorruptDataError, match="line 2"):
        load_dataset("huffpost", "train", tmp_path)
    (tmp_path / "text-fsl" / "huffpost.json").write_text(json.dumps({"raw": "only one", "label": 3}) + "\n")
    with pytest.raises(CorruptDataError, match="900 texts of each"):
        load_dataset("huffpost", "test", tmp_path)
    (tmp_path / "fewrel").mkdir()
    (tmp_path / "fewrel" / "val_wiki.json").write_text('{"P1": []}')
    (tmp_path / "fewrel" / "pid2name.json").write_text("{}")
    with pytest.raises(CorruptDataError, match="16 validation relations"):
        load_dataset("fewrel", "train", tmp_path)
    with pytest.raises(ConfigError, match="splits"):
        load_dataset("fewrel", "dev", tmp_path)
