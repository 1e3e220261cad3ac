"""Checks for exercise 1. Run them with

    python -m common.exercises check chapters/applications/exercises/01_position_ids
"""

import numpy as np

# "marie curie married pierre curie ." with head "marie" (0) and tail "pierre" (3), length 8:
VOCABULARY = {"<pad>": 0, "<unk>": 1, "curie": 2, "married": 3, "pierre": 4, ".": 5}
TOKENS = ["marie", "curie", "married", "pierre", "curie", "."]
HAND = np.array([[1, 8, 5], [2, 9, 6], [3, 10, 7], [4, 11, 8], [2, 12, 9], [5, 13, 10], [0, 14, 11], [0, 15, 12]])


def call(module, tokens, head, tail, vocabulary, length):
    result = module.sentence_ids(list(tokens), head, tail, dict(vocabulary), length)
    assert result is not None, "sentence_ids should return the (length, 3) array; it returned None"
    result = np.asarray(result)
    assert result.shape == (length, 3), (f"sentence_ids(..., length={length}) should return shape ({length}, 3), "
                                         f"one row per position; got {result.shape}"
                                         + (" (transposed?)" if result.shape == (3, length) else ""))
    assert result.dtype.kind == "i", f"ids are integers; got dtype {result.dtype}"
    return result


def diagnose(result, expected):
    if np.array_equal(result[:, 1:], expected[:, 1:] - len(expected)):
        return " Your positions are the raw offsets i - head; add length so that every id is positive."
    if np.array_equal(result[:, 1:], expected[:, [2, 1]]):
        return " Your position columns are swapped: column 1 is relative to the head, column 2 to the tail."
    if np.array_equal(result[:, 0], np.where(expected[:, 0] == 1, 0, expected[:, 0])):
        return " Unknown words should be id 1, not 0 (0 is the padding after the sentence's end)."
    return ""


def check_sentence_by_hand(module):
    result = call(module, TOKENS, 0, 3, VOCABULARY, 8)
    assert np.array_equal(result, HAND), (
        f"for {TOKENS} (head 0, tail 3, length 8) the rows should be {HAND.tolist()}; got "
        f"{result.tolist()}.{diagnose(result, HAND)}")


def check_entities_have_id_length(module):
    result = call(module, TOKENS, 1, 4, VOCABULARY, 8)
    assert result[1, 1] == 8 and result[4, 2] == 8, (
        f"the head's own position should be id length (8) in column 1, the tail's in column 2; got "
        f"{result[1, 1]} and {result[4, 2]}")


def check_long_sentences_are_cut(module):
    tokens = ["curie"] * 30
    result = call(module, tokens, 2, 5, VOCABULARY, 10)
    assert (result[:, 0] == 2).all(), f"the first 10 of 30 tokens are kept; got word ids {result[:, 0].tolist()}"


def check_swapping_head_and_tail_swaps_the_columns(module):
    forward, backward = call(module, TOKENS, 0, 3, VOCABULARY, 8), call(module, TOKENS, 3, 0, VOCABULARY, 8)
    assert np.array_equal(forward[:, [0, 2, 1]], backward), (
        "with head and tail swapped, the word ids stay and the two position columns trade places")


def check_matches_the_books_loader(module):
    call(module, TOKENS, 0, 3, VOCABULARY, 8)  # an unwritten starter stops here, before loading data
    from common.data.fewrel import encode_example
    from common.exercises import require_dataset

    dataset = require_dataset("fewrel", "test")
    vocabulary = {word: i for i, word in enumerate(dataset.vocabulary.words)}
    import json

    from common.data.store import data_root
    relations = json.loads((data_root() / "fewrel" / "val_wiki.json").read_text())
    for example in relations["P641"][:20]:
        tokens = [token.lower() for token in example["tokens"]]
        head, tail = example["h"][2][0][0], example["t"][2][0][0]
        expected = encode_example(example, dataset.vocabulary, dataset.length)
        result = call(module, tokens, head, tail, vocabulary, dataset.length)
        assert np.array_equal(result, expected), (
            f"on FewRel's sentence {' '.join(tokens)!r} your ids differ from common.data.fewrel.encode_example "
            f"at positions {np.flatnonzero((result != expected).any(axis=1)).tolist()}.{diagnose(result, expected)}")
