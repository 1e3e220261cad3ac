"""mini-ImageNet: 100 ImageNet classes, 600 colour images each, 84x84 pixels.

Vinyals et al. (2016) introduced mini-ImageNet for Matching Networks; the class split everyone uses
today is the one of Ravi & Larochelle (2017, "Optimization as a Model for Few-Shot Learning"):
64 classes for meta-training, 16 for meta-validation and 20 for meta-testing. It is published as
three CSV files (``train.csv``, ``val.csv``, ``test.csv``, header ``filename,label``) in
github.com/twitter/meta-learning-lstm; each row names one image and its ImageNet class (a WordNet
id such as ``n01930112``).

The images themselves have **no stable official download**. The ``images.zip`` that goes with
these CSVs (60,000 JPEGs already resized to 84x84, stored as ``images/<filename>.jpg``) was shared
through a Google Drive link, and copies of it circulate in few-shot repositories; it can also be
rebuilt from the ImageNet (ILSVRC-2012) training images. So this loader reads the split CSVs from their
official source, but expects the images to be placed by hand in ``<data root>/mini-imagenet/``, as
one of (first match wins):

1. an ``images/`` folder (``images.zip`` unzipped),
2. ``images.zip`` itself,
3. any other ``images*.zip``, such as the offline copy ``images_test_split.zip`` that holds only
   the 12,000 images of the 20 test classes.

Nothing here trusts a file name: a split is accepted only when its CSV lists 600 images for each of
its 64 / 16 / 20 classes and every listed image is in the source. The decoded array
``(classes, 600, 84, 84, 3)`` is cached (see ``common.data.store``), so only the first load decodes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import numpy as np

from common.data.base import FewShotDataset
from common.data.store import cache_root, cached_arrays, data_root, fetch, source_fingerprint, split_files
from common.errors import ConfigError, CorruptDataError, DataNotFoundError

SPLITS_URL = "https://raw.githubusercontent.com/twitter/meta-learning-lstm/master/data/miniImagenet"

# The Ravi & Larochelle split files (sha256 of the official files) and what each must contain.
SPLITS = split_files(SPLITS_URL, "csv", {
    "train": "498519cd8e49ce97ed26a4a3638966698ae41ab35e9c68538319fc9b46ba7d2f",
    "val": "5658a59921ca027ee76af92949869c5d6f41d77592ff3b18db325a9d10c893b9",
    "test": "2b7cfa78342995761a572a8158e539bc4e0a80f9bbd7d00c1e17a460fbbb93fa",
})
CLASSES = {"train": 64, "val": 16, "test": 20}
IMAGES_PER_CLASS = 600
NATIVE_SIZE = 84  # the images in images.zip are already 84x84

HOW_TO_GET_IMAGES = (
    "mini-ImageNet images have no stable official download: get the Ravi & Larochelle images.zip "
    "(60,000 JPEGs of 84x84 pixels stored as images/<filename>.jpg, mirrored by many few-shot "
    "learning repositories) and put it, unchanged, at {zip_path} (or unzip it there, giving "
    "{folder_path}/)."
)


def load_mini_imagenet(split: str = "train", data_dir=None, *, image_size: int = NATIVE_SIZE) -> FewShotDataset:
    """Load one split of mini-ImageNet as a :class:`FewShotDataset` of shape (classes, 600, S, S, 3).

    Args:
        split: ``train`` (64 classes), ``val`` (16) or ``test`` (20), as in Ravi & Larochelle.
        data_dir: the data root (``None``: ``$METALEARN_DATA`` or ``./data``); mini-ImageNet lives in
            ``<data root>/mini-imagenet/`` (split CSVs and images, see the module docstring).
        image_size: side of the square images; 84 is the native size (no resizing at all).

    Classes are in sorted WordNet-id order (``class_names`` holds the ids); the 600 images of a
    class keep the order of the CSV.
    """
    if split not in SPLITS:
        raise ConfigError(f"mini-ImageNet has splits {sorted(SPLITS)}, not {split!r}")
    if not 8 <= image_size <= 224:
        raise ConfigError(f"mini-ImageNet image_size must be between 8 and 224 pixels, not {image_size}")

    folder = data_root(data_dir) / "mini-imagenet"
    csv_path, classes = read_split(split, folder)
    source, members = find_images(split, folder, classes, csv_path.name)

    # The cache entry is keyed on the CSV and on the image source: replacing either rebuilds it.
    entry = cache_root(data_root(folder.parent)) / "mini-imagenet" / f"{split}-{image_size}px"
    fingerprint = {**source_fingerprint(csv_path), **_source_fingerprint(source, members)}
    arrays, info = cached_arrays(entry, fingerprint,
                                 lambda: _decode_images(source, members, classes, image_size))
    return FewShotDataset("mini-imagenet", split, arrays["images"], tuple(info["classes"]))


# --------------------------------------------------------------------------------------------
# The split file: which images belong to which class
# --------------------------------------------------------------------------------------------

def read_split(split: str, folder: Path) -> tuple[Path, dict[str, list[str]]]:
    """The CSV of a split and its classes: {wnid: [600 image file names]}, wnids sorted."""
    path = fetch(SPLITS[split], folder, what=f"mini-ImageNet {split} split",
                 how_to_get="The split files are in github.com/twitter/meta-learning-lstm (data/miniImagenet/).")
    delete_it = "delete it so that the official file is downloaded again"
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise CorruptDataError(f"{path} cannot be read as CSV ({error}); {delete_it}") from error
    if not rows or rows[0] != ["filename", "label"] or any(len(row) != 2 for row in rows[1:]):
        raise CorruptDataError(f"{path} is not a mini-ImageNet split file (header 'filename,label' and two "
                               f"columns expected); {delete_it}")

    classes: dict[str, list[str]] = {}
    for filename, wnid in rows[1:]:
        classes.setdefault(wnid, []).append(filename)
    n_images = len(rows) - 1
    short = [wnid for wnid, files in classes.items() if len(files) != IMAGES_PER_CLASS]
    if len(classes) != CLASSES[split] or short or len({row[0] for row in rows[1:]}) != n_images:
        raise CorruptDataError(
            f"{path} lists {n_images:,} images of {len(classes)} classes"
            f"{f', {len(short)} of them without {IMAGES_PER_CLASS} images' if short else ''}; the "
            f"{split} split has {CLASSES[split]} classes of {IMAGES_PER_CLASS} distinct images. {delete_it}")
    return path, {wnid: classes[wnid] for wnid in sorted(classes)}


# --------------------------------------------------------------------------------------------
# Where the images are: a folder or a zip, checked to hold every image of the split
# --------------------------------------------------------------------------------------------

def image_sources(folder: Path) -> list[Path]:
    """The places images may be, in the order they are tried: images/, images.zip, images*.zip."""
    candidates = [folder / "images", folder / "images.zip"]
    candidates += sorted(p for p in folder.glob("images*.zip") if p.name != "images.zip")
    return [p for p in candidates if p.exists()]


def find_images(split: str, folder: Path, classes: dict[str, list[str]],
                csv_name: str) -> tuple[Path, dict[str, str]]:
    """The first image source that holds every image of the split, and {file name: its member}.

    Raises :class:`DataNotFoundError` saying how many images are missing and where they were
    looked for when no source is complete.
    """
    wanted = {filename for files in classes.values() for filename in files}
    looked = []
    fewest_missing = len(wanted)
    for source in image_sources(folder):
        members = _index(source)
        missing = len(wanted - members.keys())
        if not missing:
            return source, members
        fewest_missing = min(fewest_missing, missing)
        looked.append(f"{source.name}{'/' if source.is_dir() else ''} has {len(wanted) - missing:,} of them")
    looked_in = "; ".join(looked) if looked else "there is no images/ folder and no images*.zip"
    raise DataNotFoundError(
        f"mini-ImageNet {split}: {fewest_missing:,} of the {len(wanted):,} images listed in {csv_name} "
        f"are missing. Looked in {folder}: {looked_in}. "
        + HOW_TO_GET_IMAGES.format(zip_path=folder / "images.zip", folder_path=folder / "images"))


def _index(source: Path) -> dict[str, str]:
    """{file name: where it is in ``source``} for every JPEG of a folder (recursively) or zip.

    Images are matched by file name alone, so ``images/x.jpg``, ``x.jpg`` or ``images/<wnid>/x.jpg``
    all work: re-packed copies of images.zip differ in their folder layout, not in their file names.
    """
    if source.is_dir():
        return {p.name: str(p) for p in source.rglob("*") if p.suffix.lower() == ".jpg"}
    try:
        with zipfile.ZipFile(source) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise _corrupt(source, error) from error
    return {PurePosixPath(name).name: name for name in names if name.lower().endswith(".jpg")}


def _source_fingerprint(source: Path, members: dict[str, str]) -> dict:
    """A zip is identified by its size and time; a folder by those of the files we read from it."""
    if not source.is_dir():
        return source_fingerprint(source)
    digest = hashlib.sha256()
    for name in sorted(members):
        stat = os.stat(members[name])
        digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return {"images/": digest.hexdigest()}


# --------------------------------------------------------------------------------------------
# Decoding (once; the result is cached)
# --------------------------------------------------------------------------------------------

@contextmanager
def _reader(source: Path):
    """A function file member -> bytes, for a folder or an (opened once) zip."""
    if source.is_dir():
        yield lambda member: Path(member).read_bytes()
    else:
        with zipfile.ZipFile(source) as zf:
            yield zf.read


def _decode_images(source: Path, members: dict[str, str], classes: dict[str, list[str]],
                   image_size: int) -> tuple[dict, dict]:
    """Decode every image of the split into one uint8 array (classes, 600, S, S, 3)."""
    from PIL import Image

    wnids = list(classes)
    images = np.empty((len(wnids), IMAGES_PER_CLASS, image_size, image_size, 3), np.uint8)
    filename = None
    try:
        with _reader(source) as read:
            for i, wnid in enumerate(wnids):
                for j, filename in enumerate(classes[wnid]):
                    with Image.open(io.BytesIO(read(members[filename]))) as jpeg:
                        rgb = jpeg.convert("RGB")  # a few ImageNet JPEGs are greyscale or CMYK
                    if rgb.size != (image_size, image_size):  # images.zip is 84x84 already
                        rgb = rgb.resize((image_size, image_size), Image.LANCZOS)
                    images[i, j] = np.asarray(rgb)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, SyntaxError, ValueError) as error:
        # Raised before cached_arrays writes anything, so a bad file never leaves a cache entry.
        raise _corrupt(source, error, filename) from error
    return {"images": images}, {"classes": wnids}


def _corrupt(source: Path, error: Exception, filename: str | None = None) -> CorruptDataError:
    """The error for an unreadable zip or image, saying which file to replace."""
    where = f"{filename} in {source}" if filename else str(source)
    if source.is_dir():
        advice = f"replace {Path(filename).name if filename else 'the damaged image'} in {source} with a good copy"
    else:
        advice = f"delete {source} and put a good copy of it (for example the full images.zip) in {source.parent}"
    return CorruptDataError(f"mini-ImageNet: {where} cannot be read ({error}); the file is damaged: {advice}")
