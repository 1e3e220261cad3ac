"""FewRel 1.0 (Han et al. 2018): relation classification, a sentence with two marked entities.

    "... the Cape Girardeau Bridge [head] across the Mississippi River [tail] ..."  ->  P177
                                                              (crosses: the head crosses the tail)

Each example is a Wikipedia sentence, a head and a tail entity (token positions), and the
relation between them (a Wikidata property). FewRel's 100 relations are split 64 train / 16
validation / 20 test; only the **16 validation relations** (``val_wiki.json``, 700 sentences
each) are public and offline here, so this loader splits them into its own meta-train, validation
and test relations, in the order of their property numbers:

| split | relations                                          |
|-------|----------------------------------------------------|
| train | P25 P26 P40 P59 P155 P177 (6)                      |
| val   | P206 P361 P364 P410 P412 (5)                       |
| test  | P413 P463 P641 P921 P2094 (5)                      |

A labelled deviation from FewRel's protocol: its published numbers were meta-trained on 64
other relations, and test episodes there draw 5 (or 10) of 20 relations; here every 5-way test
episode holds the same 5 relations (only which sentences, and the label order, change), and there
is no 10-way test. ``pid2name.json`` gives each relation's name.

``scheme="6-10"`` makes a 10-way test possible, a second labelled deviation: the same 6 training
relations, but each one's every fifth sentence (140 of 700) held out as the **validation** split,
and the other **10** relations (the val and test relations above) as the test split. Validation
then watches new sentences of the training relations, not new relations; nothing is selected on
it (the scripts test the last checkpoint). Training episodes are at most 6-way, so a 10-way test
comes from a model trained with fewer classes per episode than it is tested with. The vocabulary
is built from the 560 training sentences of each training relation.

An example is ``(length, 3)`` int32: the word ids, then each token's position relative to the
head's and to the tail's first token (``common.data.text.relative_positions``), the input of
FewRel's Proto-CNN. The vocabulary is built from the 6 training relations' sentences only.
"""

from __future__ import annotations

import json

import numpy as np

from common.data.store import data_root
from common.data.text import TextDataset, Vocabulary, encode, relative_positions
from common.errors import ConfigError, CorruptDataError, DataNotFoundError

SPLITS = {"train": ("P25", "P26", "P40", "P59", "P155", "P177"),
          "val": ("P206", "P361", "P364", "P410", "P412"),
          "test": ("P413", "P463", "P641", "P921", "P2094")}
SENTENCES = 700   # per relation
LENGTH = 40       # tokens per sentence (the longest of val_wiki has 36)
SCHEMES = ("6-5-5", "6-10")  # relations train / val / test; or 6 train (their held-out sentences validate) / 10 test
HELD_OUT_EVERY = 5  # scheme 6-10: sentences 4, 9, 14, ... of each training relation validate (140 of 700)


def load_fewrel(split: str = "train", data_dir=None, *, length: int = LENGTH, scheme: str = "6-5-5") -> TextDataset:
    """One split of the 16 public FewRel relations (see the table above): 700 sentences each, or
    with ``scheme="6-10"``, 560 (train) and 140 (val) sentences of the 6 training relations and
    all 700 of the 10 others (test)."""
    if scheme not in SCHEMES:
        raise ConfigError(f"fewrel has schemes {', '.join(SCHEMES)} (train/val/test relations), not {scheme!r}")
    if scheme == "6-10":
        splits = {"train": SPLITS["train"], "val": SPLITS["train"], "test": SPLITS["val"] + SPLITS["test"]}
    else:
        splits = {**SPLITS, "trainval": SPLITS["train"] + SPLITS["val"]}
    if split not in splits:
        raise ConfigError(f"fewrel (scheme {scheme}) has splits {', '.join(splits)}, not {split!r}")
    if not isinstance(length, int) or length < 2:
        raise ConfigError(f"fewrel: length (tokens per sentence) must be a whole number >= 2, got {length!r}")
    folder = data_root(data_dir) / "fewrel"
    relations, names = read_relations(folder)
    if scheme == "6-10":  # the training relations' sentences, parted once: every fifth validates
        held_out = {pid: relations[pid][HELD_OUT_EVERY - 1::HELD_OUT_EVERY] for pid in SPLITS["train"]}
        kept = {pid: [e for i, e in enumerate(relations[pid]) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
                for pid in SPLITS["train"]}
        relations = {**relations, **(held_out if split == "val" else kept)}
        vocabulary = Vocabulary.build([token.lower() for token in example["tokens"]]
                                      for pid in SPLITS["train"] for example in kept[pid])
    else:
        vocabulary = Vocabulary.build([token.lower() for token in example["tokens"]]
                                      for pid in SPLITS["train"] for example in relations[pid])
    tokens = np.stack([[encode_example(example, vocabulary, length) for example in relations[pid]]
                       for pid in splits[split]])
    class_names = tuple(f"{pid} {names.get(pid, pid)}" for pid in splits[split])
    name = "fewrel" if scheme == "6-5-5" else f"fewrel-{scheme}"
    return TextDataset(name, split, tokens, class_names, vocabulary=vocabulary, positions=2 * length)


def encode_example(example: dict, vocabulary: Vocabulary, length: int) -> np.ndarray:
    """(length, 3) int32: word ids, positions relative to the head, positions relative to the tail.
    An entity is placed at its first mention's first token (cut to the last kept token)."""
    words = encode([token.lower() for token in example["tokens"]], vocabulary, length)
    head = min(example["h"][2][0][0], length - 1)
    tail = min(example["t"][2][0][0], length - 1)
    return np.stack([words, relative_positions(length, head), relative_positions(length, tail)], axis=1)


def read_relations(folder) -> tuple[dict, dict]:
    """(relation -> its 700 examples, relation -> its name), checked for contents."""
    path, names_path = folder / "val_wiki.json", folder / "pid2name.json"
    for needed in (path, names_path):
        if not needed.is_file():
            raise DataNotFoundError(f"fewrel: {needed} not found; put the offline copy of FewRel's {needed.name} "
                                    f"there (see the data README), or point --data-dir / METALEARN_DATA at its "
                                    f"data root")
    try:
        relations = json.loads(path.read_text(encoding="utf-8"))
        names = {pid: entry[0] for pid, entry in json.loads(names_path.read_text(encoding="utf-8")).items()}
        expected = sorted(p for pids in SPLITS.values() for p in pids)
        if not isinstance(relations, dict) or sorted(relations) != expected:
            raise ValueError(f"its relations are not FewRel's 16 validation relations {expected}")
        for pid, examples in relations.items():
            if len(examples) != SENTENCES:
                raise ValueError(f"relation {pid} has {len(examples)} sentences, not {SENTENCES}")
            for example in examples:
                n = len(example["tokens"])
                if not all(0 <= example[e][2][0][0] < n for e in ("h", "t")):
                    raise ValueError(f"relation {pid} has an entity outside its sentence")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, IndexError, TypeError,
            AttributeError, ValueError) as error:
        raise CorruptDataError(f"{path} is not FewRel 1.0's val_wiki.json ({type(error).__name__}: {error}); "
                               f"replace it with the offline copy (see the data README)") from None
    return relations, names
