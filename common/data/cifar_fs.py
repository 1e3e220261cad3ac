"""CIFAR-FS and FC100: two few-shot class splits of CIFAR-100 (32x32 colour images).

CIFAR-100 (Krizhevsky, 2009) has 100 "fine" classes grouped into 20 "coarse" superclasses of five
(e.g. ``aquatic_mammals`` = beaver, dolphin, otter, seal, whale), with 500 training and 100 test
images per fine class. Few-shot learning ignores that train/test division and pools the two, giving
600 images per class, exactly as many as mini-ImageNet, at a fraction of the cost. Two class splits:

* ``scheme="cifar-fs"`` (Bertinetto et al., 2019, "Meta-learning with differentiable closed-form
  solvers"): the 100 fine classes are split at random, 64 / 16 / 20 for train / val / test.
  Neighbouring classes (``leopard`` and ``tiger``) can end up on both sides of the split.
* ``scheme="fc100"`` (Oreshkin et al., 2018, "TADAM"): the split is by *superclass*, 12 / 4 / 4
  (60 / 20 / 20 fine classes), so test classes share no superclass with training classes; a
  harder benchmark, because there is less to transfer.

The split files are the JSON lists of the torchmeta library (github.com/tristandeleu/pytorch-meta):
``[coarse_name, fine_name]`` pairs for CIFAR-FS, coarse names for FC100. The images come from the
official ``cifar-100-python.tar.gz`` (www.cs.toronto.edu/~kriz/cifar.html): three Python pickles,
``train``, ``test`` and ``meta``. We decode them once, group the 60,000 images by fine class, and
cache the array ``(100, 600, 32, 32, 3)``; each split is then a selection of its classes.
"""

from __future__ import annotations

import io
import json
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from common.data.base import FewShotDataset
from common.data.store import Resource, cache_root, cached_arrays, data_root, fetch, source_fingerprint
from common.errors import ConfigError, CorruptDataError

# The official archive (md5 as published on the CIFAR page). Looked up as a module global at call
# time, so a test can point it at a local server.
ARCHIVE = Resource("cifar-100-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                   md5="eb9058c3a382ffc7106e4002c42a8d85")
EXTRACTED = "cifar-100-python"  # the folder inside the archive (or already extracted beside it)
PICKLES = ("train", "test", "meta")
FINE_CLASSES, COARSE_CLASSES = 100, 20
IMAGE_SIZE = 32

SPLITS_URL = "https://raw.githubusercontent.com/tristandeleu/pytorch-meta/master/torchmeta/datasets/assets/cifar100"
SPLIT_SHA256 = {
    ("cifar-fs", "train"): "e0feef3aef13fc7320d5deef5ae77d91edd28041d9a173939ec48cea68135ef0",
    ("cifar-fs", "val"): "d9d6e267b5dad5c2267ff7dd98ebb18bb016f7929b56839422bb34fb53bcb3ef",
    ("cifar-fs", "test"): "e199c74ef4f014ea3f74da1b6cf74795d32747183426c2a7e6ee4308d3bf47e3",
    ("fc100", "train"): "a19e219adef452c071eb09d14758a9c45562643b9aafa38826e679ed285e117b",
    ("fc100", "val"): "6d228dac7040959f0c2f0385c53c2cd9a5369ba9eefd1b7cdceecb47041598c4",
    ("fc100", "test"): "d2cf86db6ec0250993b18cb78ebde10758f06eaaaff1611390e4442ee7c6fc41",
}
SPLIT_FILES = {(scheme, split): Resource(f"{split}.json", f"{SPLITS_URL}/{scheme}/{split}.json", sha256=sha)
               for (scheme, split), sha in SPLIT_SHA256.items()}
# Entries per split file: fine classes for CIFAR-FS, superclasses (of 5 fine classes) for FC100.
SPLIT_SIZES = {"cifar-fs": {"train": 64, "val": 16, "test": 20},
               "fc100": {"train": 12, "val": 4, "test": 4}}

HOW_TO_GET = ("On a machine without internet, copy {archive} (169 MB) or the {extracted}/ folder it "
              "unpacks to into {folder}.")


def load_cifar_fs(split: str = "train", data_dir=None, *, scheme: str = "cifar-fs") -> FewShotDataset:
    """Load one split of CIFAR-FS (or FC100) as a :class:`FewShotDataset` (classes, 600, 32, 32, 3).

    Args:
        split: ``train``, ``val`` or ``test``.
        data_dir: the data root (``None``: ``$METALEARN_DATA`` or ``./data``); CIFAR-100 lives in
            ``<data root>/cifar100/`` and the split files in ``<data root>/cifar100/splits/<scheme>/``.
        scheme: ``"cifar-fs"`` (64 / 16 / 20 fine classes) or ``"fc100"`` (12 / 4 / 4 superclasses).

    Classes are the fine classes of the split, in sorted name order (``class_names``); within a
    class, the 500 official training images come first, then the 100 test images.
    """
    if scheme not in SPLIT_SIZES:
        raise ConfigError(f"unknown CIFAR-100 split scheme {scheme!r}: use 'cifar-fs' or 'fc100'")
    if split not in SPLIT_SIZES[scheme]:
        raise ConfigError(f"{scheme} has splits {sorted(SPLIT_SIZES[scheme])}, not {split!r}")

    folder = data_root(data_dir) / "cifar100"
    split_path, entries = read_split(scheme, split, folder)
    images, info = decoded_cifar100(folder)
    fine_names, coarse_of = info["fine_names"], info["coarse_of"]

    # Resolve the split file's entries to fine classes, checking them against the archive's names.
    if scheme == "cifar-fs":
        unknown = [f"{coarse}/{fine}" for coarse, fine in entries if coarse_of.get(fine) != coarse]
        names = sorted(fine for _, fine in entries)
    else:
        unknown = [coarse for coarse in entries if coarse not in info["coarse_names"]]
        names = sorted(fine for fine in fine_names if coarse_of[fine] in entries)
    if unknown:
        raise CorruptDataError(
            f"{split_path} names classes CIFAR-100 does not have (as superclass/class): {', '.join(unknown[:5])}"
            f"{' ...' if len(unknown) > 5 else ''}. Delete it so that the official split file is downloaded again")

    index = [fine_names.index(name) for name in names]
    return FewShotDataset(scheme, split, np.asarray(images[index]), tuple(names))


# --------------------------------------------------------------------------------------------
# The split files
# --------------------------------------------------------------------------------------------

def read_split(scheme: str, split: str, folder: Path) -> tuple[Path, list]:
    """The entries of a split file: [coarse, fine] pairs (CIFAR-FS) or coarse names (FC100)."""
    path = fetch(SPLIT_FILES[scheme, split], folder / "splits" / scheme, what=f"{scheme} {split} split",
                 how_to_get="The split files are in github.com/tristandeleu/pytorch-meta "
                            "(torchmeta/datasets/assets/cifar100/).")
    delete_it = "delete it so that the official file is downloaded again"
    try:
        entries = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptDataError(f"{path} is not valid JSON ({error}); {delete_it}") from error
    if scheme == "cifar-fs":
        well_formed = isinstance(entries, list) and all(
            isinstance(e, list) and len(e) == 2 and all(isinstance(n, str) for n in e) for e in entries)
        distinct = well_formed and len({fine for _, fine in entries}) == len(entries)
    else:
        well_formed = isinstance(entries, list) and all(isinstance(e, str) for e in entries)
        distinct = well_formed and len(set(entries)) == len(entries)
    expected = SPLIT_SIZES[scheme][split]
    if not distinct or len(entries) != expected:
        raise CorruptDataError(f"{path} is not the {scheme} {split} split (a list of {expected} distinct "
                               f"{'[superclass, class] pairs' if scheme == 'cifar-fs' else 'superclass names'} "
                               f"expected); {delete_it}")
    return path, entries


# --------------------------------------------------------------------------------------------
# CIFAR-100 itself, decoded once and cached
# --------------------------------------------------------------------------------------------

def decoded_cifar100(folder: Path) -> tuple[np.ndarray, dict]:
    """All of CIFAR-100 grouped by fine class, (100, n, 32, 32, 3), and its class names.

    Reads an extracted ``cifar-100-python/`` folder if there is one, else the archive (downloaded
    first if it is missing). ``info`` holds ``fine_names``, ``coarse_names`` and ``coarse_of``
    (fine name -> its superclass name).
    """
    extracted = folder / EXTRACTED
    if extracted.is_dir():
        sources = [extracted / name for name in PICKLES]
        absent = [p.name for p in sources if not p.is_file()]
        if absent:
            raise CorruptDataError(f"{extracted} lacks {', '.join(absent)}: it is not a complete CIFAR-100 "
                                   f"folder. Delete it (the archive {ARCHIVE.filename} is used instead)")
        source = extracted
    else:
        advice = HOW_TO_GET.format(archive=ARCHIVE.filename, extracted=EXTRACTED, folder=folder)
        source = fetch(ARCHIVE, folder, what="CIFAR-100 (for CIFAR-FS / FC100)", how_to_get=advice)
        sources = [source]
    entry = cache_root(data_root(folder.parent)) / "cifar100" / f"cifar-100-{IMAGE_SIZE}px"
    arrays, info = cached_arrays(entry, source_fingerprint(*sources), lambda: _decode(source))
    return arrays["images"], info


def _decode(source: Path) -> tuple[dict, dict]:
    """Unpickle the official files, verify them, and group the 60,000 images by fine class."""
    pickles = _read_pickles(source)
    try:
        meta = pickles["meta"]
        fine_names = [name.decode() for name in meta[b"fine_label_names"]]
        coarse_names = [name.decode() for name in meta[b"coarse_label_names"]]
        parts = [pickles["train"], pickles["test"]]
        # Each row of b"data" is one image as 3,072 bytes: the 1,024 red values (row by row), then
        # green, then blue. Reshape to (N, 3, 32, 32), then move channels last: (N, 32, 32, 3).
        data = np.concatenate([np.asarray(part[b"data"], np.uint8) for part in parts])
        fine = np.concatenate([np.asarray(part[b"fine_labels"], np.int64) for part in parts])
        coarse = np.concatenate([np.asarray(part[b"coarse_labels"], np.int64) for part in parts])
    except (KeyError, TypeError, ValueError, AttributeError, UnicodeDecodeError) as error:
        raise _corrupt(source, f"the pickles do not have the CIFAR-100 fields ({error!r})") from error
    if data.ndim != 2 or data.shape[1] != 3 * IMAGE_SIZE * IMAGE_SIZE or not len(data) == len(fine) == len(coarse):
        raise _corrupt(source, f"b'data' is {data.shape} for {len(fine)} labels, not N x 3072")
    images = data.reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1)

    # Verify by contents: 100 classes, labels in range, and the same number of images in every
    # class (600 in the real archive; not hard-coded, so that a small test archive works too).
    if len(set(fine_names)) != FINE_CLASSES or len(fine_names) != FINE_CLASSES or len(coarse_names) != COARSE_CLASSES:
        raise _corrupt(source, f"meta lists {len(fine_names)} classes and {len(coarse_names)} superclasses, "
                               f"not {FINE_CLASSES} and {COARSE_CLASSES}")
    if not (len(fine) and 0 <= fine.min() and fine.max() < FINE_CLASSES
            and 0 <= coarse.min() and coarse.max() < COARSE_CLASSES):
        raise _corrupt(source, "no images, or labels out of range")
    counts = np.bincount(fine, minlength=FINE_CLASSES)
    if counts.min() != counts.max():
        raise _corrupt(source, f"classes hold between {counts.min()} and {counts.max()} images; every "
                               f"CIFAR-100 class has the same number (600)")
    coarse_of = {}
    for label, name in enumerate(fine_names):
        superclasses = np.unique(coarse[fine == label])
        if len(superclasses) != 1:
            raise _corrupt(source, f"class {name!r} is labelled with {len(superclasses)} superclasses")
        coarse_of[name] = coarse_names[superclasses[0]]

    # A stable sort keeps the file order within a class: 500 training images, then 100 test images.
    order = np.argsort(fine, kind="stable")
    grouped = images[order].reshape(FINE_CLASSES, counts[0], IMAGE_SIZE, IMAGE_SIZE, 3)
    info = {"fine_names": fine_names, "coarse_names": coarse_names, "coarse_of": coarse_of}
    return {"images": grouped}, info


def _read_pickles(source: Path) -> dict[str, dict]:
    """The three unpickled files, from an extracted folder or straight out of the tar.gz."""
    if source.is_dir():
        return {name: _unpickle((source / name).read_bytes(), source) for name in PICKLES}
    wanted = {f"{EXTRACTED}/{name}": name for name in PICKLES}
    pickles = {}
    try:
        with tarfile.open(source, "r:gz") as tar:
            for member in tar:  # one pass over the gzip stream; the pickles are near its start
                if member.name in wanted and member.isfile():
                    pickles[wanted[member.name]] = _unpickle(tar.extractfile(member).read(), source)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:  # gzip.BadGzipFile is an OSError
        raise _corrupt(source, f"it is not a readable tar.gz ({error})") from error
    absent = [name for name in PICKLES if name not in pickles]
    if absent:
        raise _corrupt(source, f"it has no {', '.join(f'{EXTRACTED}/{name}' for name in absent)}")
    return pickles


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that builds NumPy arrays and plain Python values, and nothing else.

    A pickle can name any Python function to call while it is loaded, so unpickling a file from
    the internet can run arbitrary code. CIFAR's pickles hold only dicts, lists, bytes and one
    NumPy array, so every other global is refused.
    """

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"),   # written by NumPy 1.x (the official files)
               ("numpy._core.multiarray", "_reconstruct"),  # written by NumPy 2.x
               ("numpy", "ndarray"), ("numpy", "dtype"),
               ("_codecs", "encode")}                       # bytes in protocol-2 pickles from Python 3

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a CIFAR-100 pickle")


def _unpickle(raw: bytes, path: Path) -> dict:
    """One CIFAR pickle. They were written by Python 2, hence ``encoding="bytes"`` (keys like b"data")."""
    try:
        value = _ArraysOnly(io.BytesIO(raw), encoding="bytes").load()
    except Exception as error:  # a damaged pickle can fail in many ways (EOFError, UnpicklingError, ...)
        raise _corrupt(path, f"a pickle cannot be read ({error!r})") from error
    if not isinstance(value, dict):
        raise _corrupt(path, f"a pickle holds a {type(value).__name__}, not a dict")
    return value


def _corrupt(path: Path, problem: str) -> CorruptDataError:
    """The error for a damaged archive or folder, saying what to delete."""
    return CorruptDataError(f"CIFAR-100: {path} is damaged: {problem}. Delete it and run again to "
                            f"download a fresh copy of {ARCHIVE.url}")
