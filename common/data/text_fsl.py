"""HuffPost headlines and Reuters-21578 articles, split by class as in Bao et al. (2020).

Bao, Wu, Chang & Barzilay, "Few-shot Text Classification with Distributional Signatures" (ICLR
2020) built both few-shot benchmarks; their released code splits the classes by label id:

| data set  | classes (train / val / test)          | per class | text                         |
|-----------|---------------------------------------|-----------|------------------------------|
| HuffPost  | 41: ids 0-19 / 20-24 / 25-40          | 900       | one news headline (~11 words) |
| Reuters   | 31: ids 0-14 / 15-19 / 20-30          | 20        | one article (~190 words)      |

Files (``<data root>/text-fsl/``, see the data README): ``huffpost.json``, JSON lines
``{"raw": headline, "label": id}``; ``reuters.json``, JSON lines with ``text`` (tokens), ``raw`` and
``label``, a class *name*. Bao et al.'s Reuters ids number the 31 classes in the alphabetical order of
their Reuters codes (acq, alum, bop, cocoa, ...); :data:`REUTERS_CLASSES` lists the names in this
file in that order, so id i is ``REUTERS_CLASSES[i]``. HuffPost's ids are the News Category Dataset's
41 categories by size (0 politics, 1 wellness, ...), as the headlines of each id confirm.

Every split is tokenised with one vocabulary, built from the **training** classes' texts only
(``common.data.text``). The contents are checked: every class present with its full number of
examples, nothing else; a missing or malformed file stops with one line that says what to do.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from common.data.store import data_root
from common.data.text import TextDataset, Vocabulary, encode, tokenize
from common.errors import ConfigError, CorruptDataError, DataNotFoundError

HUFFPOST_CLASSES = (
    "politics", "wellness", "entertainment", "travel", "style & beauty", "parenting", "healthy living",
    "queer voices", "food & drink", "business", "comedy", "sports", "black voices", "home & living",
    "parents", "the worldpost", "weddings", "women", "impact", "divorce",                       # 0-19 train
    "crime", "media", "weird news", "green", "worldpost",                                      # 20-24 val
    "religion", "style", "science", "world news", "taste", "tech", "money", "arts", "fifty",   # 25-40 test
    "good news", "arts & culture", "environment", "college", "latino voices", "culture & arts", "education")
REUTERS_CLASSES = (
    "acquisitions", "aluminium", "balance of payment", "cocoa", "coffee", "copper", "cotton",
    "consumer price index", "crude", "earn", "gross national product", "gold", "grain", "interest",
    "industrial production index",                                                              # 0-14 train
    "iron and steel", "jobs", "livestock", "money foreign exchange", "money supply",            # 15-19 val
    "natural gas", "orange", "reserves", "retail", "rubber", "ship", "sugar", "tin", "trade",   # 20-30 test
    "vegetable oil", "wholesale price index")

# name -> (file, class names in id order, examples per class, {split: class ids}, tokens per text)
SETS = {
    "huffpost": ("huffpost.json", HUFFPOST_CLASSES, 900,
                 {"train": range(0, 20), "val": range(20, 25), "test": range(25, 41)}, 32),
    "reuters": ("reuters.json", REUTERS_CLASSES, 20,
                {"train": range(0, 15), "val": range(15, 20), "test": range(20, 31)}, 256),
}


def load_huffpost(split: str = "train", data_dir=None, *, length: int | None = None) -> TextDataset:
    """HuffPost headlines (Bao et al. 2020): 20 / 5 / 16 classes of 900 headlines, 32 tokens each."""
    return load_text_set("huffpost", split, data_dir, length=length)


def load_reuters(split: str = "train", data_dir=None, *, length: int | None = None) -> TextDataset:
    """Reuters-21578 (Bao et al. 2020): 15 / 5 / 11 classes of 20 articles, cut at 256 tokens."""
    return load_text_set("reuters", split, data_dir, length=length)


def load_text_set(name: str, split: str, data_dir=None, *, length: int | None = None) -> TextDataset:
    filename, class_names, per_class, splits, default_length = SETS[name]
    splits = {**splits, "trainval": [*splits["train"], *splits["val"]]}
    if split not in splits:
        raise ConfigError(f"{name} has splits {', '.join(splits)}, not {split!r}")
    length = default_length if length is None else length
    if not isinstance(length, int) or length < 1:
        raise ConfigError(f"{name}: length (tokens per text) must be a whole number >= 1, got {length!r}")
    path = data_root(data_dir) / "text-fsl" / filename
    texts = read_classes(path, name, class_names, per_class)  # class id -> token lists
    vocabulary = Vocabulary.build(tokens for c in splits["train"] for tokens in texts[c])
    ids = list(splits[split])
    tokens = np.stack([[encode(t, vocabulary, length) for t in texts[c]] for c in ids])[..., None]
    return TextDataset(name, split, tokens, tuple(class_names[c] for c in ids), vocabulary=vocabulary)


def read_classes(path: Path, name: str, class_names: tuple, per_class: int) -> list[list[list[str]]]:
    """The file's texts as token lists, grouped by class id, in file order; checked for contents."""
    if not path.is_file():
        raise DataNotFoundError(f"{name}: {path} not found; put the offline copy of {path.name} there "
                                f"(see the data README), or point --data-dir / METALEARN_DATA at its data root")
    ids = {label: i for i, label in enumerate(class_names)}
    texts = [[] for _ in class_names]
    try:
        with open(path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                label = row["label"]
                if name == "huffpost":
                    if not isinstance(label, int) or not 0 <= label < len(class_names):
                        raise ValueError(f"label {label!r} is not a class id 0-{len(class_names) - 1}")
                    texts[label].append(tokenize(row["raw"]))
                else:
                    if label not in ids:
                        raise ValueError(f"label {label!r} is not one of the {len(class_names)} classes")
                    texts[ids[label]].append([token.lower() for token in row["text"]])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        where = f", line {number}" if "number" in locals() else ""
        raise CorruptDataError(f"{path}{where} is not {name}'s JSON lines file ({type(error).__name__}: {error}); "
                               f"replace it with the offline copy (see the data README)") from None
    wrong = {class_names[c]: len(t) for c, t in enumerate(texts) if len(t) != per_class}
    if wrong:
        raise CorruptDataError(f"{path} must hold {per_class} texts of each of its {len(class_names)} classes, but "
                               f"has {', '.join(f'{n} of {c!r}' for c, n in list(wrong.items())[:5])}"
                               f"{' ...' if len(wrong) > 5 else ''}; replace it with the offline copy")
    return texts
