"""Omniglot (Lake et al., 2015): 1,623 handwritten characters from 50 alphabets, 20 drawings each.

Three class splits are in use in the literature, and all three are here:

* ``scheme="vinyals"`` (Vinyals et al., 2016; used by Matching Networks, Prototypical Networks,
  MAML, Reptile, Meta-SGD): the 1,623 characters are split 1,028 / 172 / 423 into train / val /
  test (``splits/vinyals/*.txt``, from the Prototypical Networks repository). Each character rotated
  by 0, 90, 180 and 270 degrees counts as a class of its own, so the splits hold 4,112 / 688 / 1,692
  classes; ``trainval`` (4,800) is what Snell et al. train on for their final numbers.
* ``scheme="lake"`` (Lake et al., 2015; the one-shot challenge Omniglot was made for): whole
  alphabets apart. ``test`` is the official evaluation set (659 characters, 20 alphabets);
  ``trainval`` the background set (964 characters, 30 alphabets), divided by whole alphabets into
  ``val`` (the five ``LAKE_VAL_ALPHABETS``, 175 characters) and ``train`` (the other 25, 789
  characters), so that a run can watch held-out alphabets without touching the evaluation set.
  Rotations as extra classes are a choice per split: by default the training splits have them (an
  augmentation) and ``val`` and ``test`` do not (Lake's test is of upright characters).
* ``scheme="characters"`` (Santoro et al.'s 1,200 / 423, as Finn et al. describe it, "1,200
  characters for training, irrespective of alphabet", and as their and Nichol et al.'s released
  code draw it): the 1,623 characters, in sorted order, are shuffled by Python's
  ``random.Random(1)`` (the seed of Finn et al.'s code, which shuffles its folder listing) and cut
  1,100 / 100 / 423 into train / val / test (``trainval``: the first 1,200). Every test
  character's alphabet then has characters in training; 12 of the Vinyals split's 13 test
  alphabets have none. Every rotation is a class of its own in every split (4,400 / 400 / 1,692
  classes); the released code instead turns each class of a task by a random multiple of 90
  degrees, which draws the same classes except that one task may then hold a character twice, in
  two rotations.

Images are 105x105 binary drawings; :func:`preprocess_drawing` resizes one to ``image_size`` (28 by
default) with a Lanczos filter, as MAML does, and inverts it so that strokes are bright (1.0) on a
dark background (0.0). Example ``e`` of every character is the drawing of drawer ``e + 1`` (the
files ``NNNN_DD.png`` in drawer order), which the within-alphabet episodes of
``common.episodes.WithinAlphabetSampler`` use to keep support and query drawers apart.
"""

from __future__ import annotations

import io
import random
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from common.data.base import FewShotDataset
from common.data.store import Resource, cache_root, cached_arrays, data_root, fetch, source_fingerprint, split_files
from common.errors import ConfigError, CorruptDataError

OFFICIAL = "https://github.com/brendenlake/omniglot/raw/master/python"
SPLITS_URL = "https://raw.githubusercontent.com/jakesnell/prototypical-networks/master/data/omniglot/splits/vinyals"

# The official zips (md5 as published with torchvision) and what a good copy must contain.
ARCHIVES = {
    "background": Resource("images_background.zip", f"{OFFICIAL}/images_background.zip",
                           md5="68d2efa1b9178cc56df9314c21c6e718"),
    "evaluation": Resource("images_evaluation.zip", f"{OFFICIAL}/images_evaluation.zip",
                           md5="6b91aef0f799c5bb55b94e3f2daec811"),
}
EXPECTED = {"background": (30, 964), "evaluation": (20, 659)}  # (alphabets, characters)
DRAWINGS_PER_CHARACTER = 20

VINYALS_SPLITS = split_files(SPLITS_URL, "txt", {
    "train": "984522c194c30fb678ce53304a160a42faf5403ad4f9a67010f32dd3a35738e0",
    "val": "11f99e54faee3e26f53d3231c1cceac5bf7b8730e9be31cb6dab256551dc0c1a",
    "test": "845264cc5c156180828ccf17915668b17ee21424d0170df6e7d81676aa5d1204",
    "trainval": "5276ae50c755596d0bff7f2284e85625695549a85ee6e36b6491ad1e5d1cc26a",
})
VINYALS_CHARACTERS = {"train": 1028, "val": 172, "test": 423, "trainval": 1200}
LAKE_SPLITS = {"train": "background", "val": "background", "trainval": "background", "test": "evaluation"}
# Five background alphabets held out whole for validation: scripts of several kinds (Armenian,
# Bengali, Early Aramaic, Futurama, Korean), each with at least 20 characters, so that 20-way
# episodes within one alphabet can be drawn from every one of them.
LAKE_VAL_ALPHABETS = ("Armenian", "Bengali", "Early_Aramaic", "Futurama", "Korean")
ROTATIONS = (0, 90, 180, 270)
# The characters scheme as Finn et al.'s code cuts it: (first, last) positions in the shuffled characters.
CHARACTER_SPLITS = {"train": (0, 1100), "val": (1100, 1200), "trainval": (0, 1200), "test": (1200, 1623)}
CHARACTER_SEED = 1  # random.seed(1) before random.shuffle(character_folders) in Finn et al.'s data_generator.py


def default_rotations(scheme: str, split: str) -> bool:
    """Whether a split counts rotated characters as classes unless told: always in the Vinyals
    split files and the characters scheme; in the Lake scheme only in the training splits
    (``train``, ``trainval``)."""
    return scheme != "lake" or split in ("train", "trainval")


def load_omniglot(split: str = "train", data_dir=None, *, scheme: str = "vinyals",
                  image_size: int = 28, rotations: bool | None = None) -> FewShotDataset:
    """Load one split of Omniglot as a :class:`FewShotDataset` of shape (classes, 20, S, S, 1).

    Args:
        split: ``train``, ``val``, ``test`` or ``trainval``.
        data_dir: the data root (``None``: ``$METALEARN_DATA`` or ``./data``); Omniglot lives in
            ``<data root>/omniglot/``.
        scheme: ``"vinyals"``, ``"lake"`` or ``"characters"`` (see the module docstring).
        image_size: side of the square images after resizing (28 in most papers, 105 native).
        rotations: count each 90-degree rotation of a character as its own class; ``None``: the
            scheme's choice for the split (:func:`default_rotations`).
    """
    if scheme == "vinyals":
        if split not in VINYALS_SPLITS:
            raise ConfigError(f"Omniglot (Vinyals split) has splits {sorted(VINYALS_SPLITS)}, not {split!r}")
    elif scheme == "lake":
        if split not in LAKE_SPLITS:
            raise ConfigError(f"Omniglot (Lake split) has splits {sorted(LAKE_SPLITS)}, not {split!r}")
    elif scheme == "characters":
        if split not in CHARACTER_SPLITS:
            raise ConfigError(f"Omniglot (characters split) has splits {sorted(CHARACTER_SPLITS)}, not {split!r}")
    else:
        raise ConfigError(f"unknown Omniglot split scheme {scheme!r}: use 'vinyals', 'lake' or 'characters'")
    if rotations is None:
        rotations = default_rotations(scheme, split)
    if not 8 <= image_size <= 105:
        raise ConfigError(f"Omniglot image_size must be between 8 and 105 pixels, not {image_size}")

    folder = data_root(data_dir) / "omniglot"
    if scheme == "vinyals":  # the split file first: a damaged one stops the load before any decoding
        wanted = read_vinyals_split(split, folder)
        if not rotations:
            wanted = [(name, 0) for name, angle in wanted if angle == 0]
    characters = {}  # "Alphabet/characterNN" -> (S, S) images of its 20 drawings
    for which in (LAKE_SPLITS[split],) if scheme == "lake" else ("background", "evaluation"):
        images, names = decoded_characters(which, folder, image_size)
        characters.update(zip(names, images))

    if scheme == "vinyals":
        unknown = sorted({name for name, _ in wanted} - characters.keys())
        if unknown:
            raise CorruptDataError(f"{folder / 'splits' / 'vinyals' / VINYALS_SPLITS[split].filename} names "
                                   f"characters Omniglot does not have ({', '.join(unknown[:3])}"
                                   f"{' ...' if len(unknown) > 3 else ''}); delete it so that it is downloaded again")
    else:
        names = (lake_characters(split, characters, folder) if scheme == "lake"
                 else shuffled_characters(split, characters))
        wanted = [(name, angle) for name in names for angle in (ROTATIONS if rotations else (0,))]

    images = np.empty((len(wanted), DRAWINGS_PER_CHARACTER, image_size, image_size, 1), np.uint8)
    for i, (name, angle) in enumerate(wanted):
        # np.rot90 turns counter-clockwise, as PIL's Image.rotate in the Prototypical Networks code.
        images[i, ..., 0] = np.rot90(characters[name], angle // 90, axes=(1, 2))
    class_names = tuple(f"{name}/rot{angle:03d}" for name, angle in wanted)
    return FewShotDataset("omniglot", split, images, class_names)


def lake_characters(split: str, characters, folder: Path) -> list[str]:
    """The characters of a Lake split, in sorted order: ``val`` is the background characters of
    ``LAKE_VAL_ALPHABETS``, ``train`` the other background characters."""
    names = sorted(characters)
    if split in ("trainval", "test"):
        return names
    alphabets = {name.split("/")[0] for name in names}
    missing = sorted(set(LAKE_VAL_ALPHABETS) - alphabets)
    if missing:
        raise CorruptDataError(f"{folder / ARCHIVES['background'].filename} has no alphabet {', '.join(missing)}, "
                               f"which the Lake validation split holds out; delete it so that it is downloaded again")
    return [name for name in names if (name.split("/")[0] in LAKE_VAL_ALPHABETS) == (split == "val")]


def shuffled_characters(split: str, characters) -> list[str]:
    """The characters of a split of the characters scheme: all 1,623 in sorted order, shuffled by
    ``random.Random(CHARACTER_SEED)`` (the same order on every machine), then cut."""
    names = sorted(characters)
    random.Random(CHARACTER_SEED).shuffle(names)
    first, last = CHARACTER_SPLITS[split]
    return names[first:last]


def preprocess_drawing(drawing, image_size: int = 28) -> np.ndarray:
    """One Omniglot drawing as the models see it: ``(image_size, image_size)`` uint8, strokes bright.

    ``drawing`` is a PIL image, the path of an image file, or an array (a 105x105 drawing of the
    data set, or one of your own: dark strokes on a light background, any size, values 0-255, or
    booleans with True for background as in the PNG files). It is turned to grey, resized with a
    Lanczos filter and inverted: exactly what the loader does to every drawing of the archives. For
    a model's input, scale and add the channel axis:
    ``common.episodes.to_float(preprocess_drawing(d))[..., None]`` is ``(28, 28, 1)`` float32 in [0, 1].
    """
    from PIL import Image

    if isinstance(drawing, (str, Path)):
        with Image.open(drawing) as image:
            return preprocess_drawing(image.copy(), image_size)
    if isinstance(drawing, np.ndarray):
        if drawing.ndim != 2:
            raise ConfigError(f"a drawing is a 2-D array of grey values, got shape {drawing.shape}")
        if drawing.dtype == bool:
            drawing = drawing.astype(np.uint8) * 255
        elif drawing.dtype != np.uint8:
            if drawing.min() < 0 or drawing.max() > 255:
                raise ConfigError(f"a drawing's values must lie in 0-255, got {drawing.min()}..{drawing.max()}")
            drawing = drawing.astype(np.uint8)
        drawing = Image.fromarray(drawing)
    grey = drawing.convert("L").resize((image_size, image_size), Image.LANCZOS)
    return 255 - np.asarray(grey)  # strokes bright, background dark


def read_vinyals_split(split: str, folder: Path) -> list[tuple[str, int]]:
    """The (character, rotation) classes of a Vinyals split file, e.g. ("Greek/character01", 90)."""
    resource = VINYALS_SPLITS[split]
    path = fetch(resource, folder / "splits" / "vinyals", what=f"Omniglot Vinyals split {split!r}")
    try:
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise CorruptDataError(f"{path} cannot be read as text ({error}); delete it so that it is downloaded "
                               f"again") from None
    classes = []
    for number, line in enumerate(lines, 1):
        parts = line.split("/")
        if len(parts) != 3 or not parts[2].startswith("rot") or not parts[2][3:].isdigit() \
                or int(parts[2][3:]) not in ROTATIONS:
            raise CorruptDataError(f"{path}, line {number}: {line!r} is not 'Alphabet/characterNN/rotDDD' (the file "
                                   f"is damaged or cut short); delete it so that it is downloaded again")
        classes.append((f"{parts[0]}/{parts[1]}", int(parts[2][3:])))
    if len({name for name, _ in classes}) != VINYALS_CHARACTERS[split]:
        raise CorruptDataError(f"{path} lists {len({n for n, _ in classes})} characters, the Vinyals "
                               f"{split} split has {VINYALS_CHARACTERS[split]}; delete it to download it again")
    return classes


def decoded_characters(which: str, folder: Path, image_size: int) -> tuple[np.ndarray, list[str]]:
    """Images (characters, 20, S, S) and names of one official archive, decoded once then cached."""
    archive = fetch(ARCHIVES[which], folder, what=f"Omniglot {which} set",
                    how_to_get="The official zips are in github.com/brendenlake/omniglot (python/).")
    entry = cache_root(data_root(folder.parent)) / "omniglot" / f"{which}-{image_size}px"
    arrays, info = cached_arrays(entry, source_fingerprint(archive),
                                 lambda: _decode_archive(archive, which, image_size))
    return arrays["images"], info["characters"]


def _decode_archive(archive: Path, which: str, image_size: int) -> tuple[dict, dict]:
    """Verify an Omniglot zip by its contents, then decode, resize and invert every drawing."""
    from PIL import Image

    try:
        with zipfile.ZipFile(archive) as zf:
            drawings = defaultdict(list)  # "Alphabet/characterNN" -> its PNG members
            for member in zf.namelist():
                parts = member.split("/")
                if member.endswith(".png") and len(parts) == 4:
                    drawings[f"{parts[1]}/{parts[2]}"].append(member)
            _check_counts(archive, which, drawings)
            names = sorted(drawings)
            images = np.empty((len(names), DRAWINGS_PER_CHARACTER, image_size, image_size), np.uint8)
            for i, name in enumerate(names):
                for j, member in enumerate(sorted(drawings[name])):
                    with Image.open(io.BytesIO(zf.read(member))) as png:
                        images[i, j] = preprocess_drawing(png, image_size)
    except (zipfile.BadZipFile, OSError, EOFError, zipfile.LargeZipFile) as error:
        raise CorruptDataError(f"{archive} is not a readable Omniglot zip ({error}); delete it and run "
                               f"again to download a fresh copy") from error
    return {"images": images}, {"characters": names}


def _check_counts(archive: Path, which: str, drawings: dict) -> None:
    alphabets = {name.split("/")[0] for name in drawings}
    n_alphabets, n_characters = EXPECTED[which]
    # Example e of a character must be drawer e + 1 (files NNNN_01.png ... NNNN_20.png, sorted).
    drawers = [f"{d:02d}.png" for d in range(1, DRAWINGS_PER_CHARACTER + 1)]
    short = [name for name, members in drawings.items()
             if [member.rsplit("_", 1)[-1] for member in sorted(members)] != drawers]
    if len(alphabets) != n_alphabets or len(drawings) != n_characters or short:
        raise CorruptDataError(
            f"{archive} holds {len(alphabets)} alphabets and {len(drawings)} characters"
            f"{f', {len(short)} of them without the 20 drawers 01-20' if short else ''}; the {which} set has "
            f"{n_alphabets} alphabets and {n_characters} characters of 20 drawings. The file is "
            f"incomplete: delete it and run again to download the official copy")
