"""CIFAR-FS / FC100 loader, on a small archive written in the official CIFAR-100 format.

The real CIFAR-100 images are not available offline, so the tests build ``cifar-100-python.tar.gz``
themselves: the 100 real class names (taken from the CIFAR-FS split files, which pair every fine
class with its superclass), a few random images per class, and the three official pickles
(``train``, ``test``, ``meta``, dicts with bytes keys) inside ``cifar-100-python/``.
"""

from __future__ import annotations

import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from common.data import cifar_fs
from common.data.cifar_fs import load_cifar_fs
from common.data.store import Resource
from common.errors import CorruptDataError, DataNotFoundError
from tests.conftest import require_data


def shared_splits() -> Path:
    """The real CIFAR-FS / FC100 split files of the offline data, or skip (fail in CI)."""
    return require_data("cifar100/splits/cifar-fs/train.json").parents[1]


def copy_split_files(data_root: Path) -> None:
    """Copy splits/{cifar-fs,fc100}/*.json into ``data_root/cifar100/splits/`` (as writable files)."""
    for source in shared_splits().glob("*/*.json"):
        target = data_root / "cifar100" / "splits" / source.parent.name / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())


def cifar100_names() -> tuple[list[str], list[str], dict[str, str]]:
    """The real (fine names, coarse names, fine -> coarse), sorted as in CIFAR-100's meta file."""
    pairs = []
    for split in ("train", "val", "test"):
        pairs += json.loads((shared_splits() / "cifar-fs" / f"{split}.json").read_text())
    coarse_of = {fine: coarse for coarse, fine in pairs}
    assert len(coarse_of) == 100
    return sorted(coarse_of), sorted(set(coarse_of.values())), coarse_of


def make_cifar100(train_per_class: int = 3, test_per_class: int = 1, seed: int = 0):
    """Random CIFAR-100-like data: {"train"/"test": (images HWC (N,32,32,3), fine labels)}, shuffled."""
    fine_names, _, _ = cifar100_names()
    rng = np.random.default_rng(seed)
    parts = {}
    for part, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = rng.permutation(np.repeat(np.arange(len(fine_names)), per_class))  # official files are shuffled
        images = rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
        parts[part] = (images, labels)
    return parts


def archive_bytes(parts, *, protocol: int = 2) -> bytes:
    """``cifar-100-python.tar.gz`` in the official layout, holding ``parts`` (see make_cifar100)."""
    fine_names, coarse_names, coarse_of = cifar100_names()
    files = {}
    for part, (images, labels) in parts.items():
        files[part] = {
            b"filenames": [f"image_{i:05d}.png".encode() for i in range(len(labels))],
            b"batch_label": f"{part}ing batch 1 of 1".encode(),
            b"fine_labels": [int(label) for label in labels],
            b"coarse_labels": [coarse_names.index(coarse_of[fine_names[label]]) for label in labels],
            # Official layout: one row of 3,072 bytes per image, all red values, then green, then blue.
            b"data": np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(labels), 3072),
        }
    files["meta"] = {b"fine_label_names": [n.encode() for n in fine_names],
                     b"coarse_label_names": [n.encode() for n in coarse_names]}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        for name in ("train", "test", "meta"):  # the order of the official archive
            raw = pickle.dumps(files[name], protocol=protocol)
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def small_cifar():
    parts = make_cifar100()
    return parts, archive_bytes(parts)


@pytest.fixture
def root(tmp_path, monkeypatch, fresh_cache):
    """A data root with the split files, a private cache, and no way to reach the real server."""
    # Port 1 on localhost refuses at once: a missing file fails fast instead of fetching 169 MB.
    monkeypatch.setattr(cifar_fs, "ARCHIVE", Resource(cifar_fs.ARCHIVE.filename,
                                                      "http://127.0.0.1:1/cifar-100-python.tar.gz",
                                                      md5=cifar_fs.ARCHIVE.md5))
    copy_split_files(tmp_path / "data")
    return tmp_path / "data"


def test_cifar_fs_splits_have_the_right_classes(root, small_cifar):
    _, archive = small_cifar
    (root / "cifar100" / "cifar-100-python.tar.gz").write_bytes(archive)
    seen = set()
    for split, n_classes in (("train", 64), ("val", 16), ("test", 20)):
        dataset = load_cifar_fs(split, root)
        assert dataset.images.shape == (n_classes, 4, 32, 32, 3)  # 3 train + 1 test image per class
        assert dataset.images.dtype == np.uint8
        expected = sorted(fine for _, fine in json.loads((root / "cifar100" / "splits" / "cifar-fs" /
                                                           f"{split}.json").read_text()))
        assert list(dataset.class_names) == expected
        seen |= set(dataset.class_names)
    assert len(seen) == 100  # the three splits are disjoint and cover CIFAR-100


def test_pixels_keep_the_official_layout(root, small_cifar):
    parts, archive = small_cifar
    (root / "cifar100" / "cifar-100-python.tar.gz").write_bytes(archive)
    dataset = load_cifar_fs("val", root)
    fine_names, _, _ = cifar100_names()
    c = dataset.class_names.index("beaver")
    label = fine_names.index("beaver")
    # Within a class: the training images in file order, then the test images.
    train_images, train_labels = parts["train"]
    test_images, test_labels = parts["test"]
    expected = np.concatenate([train_images[train_labels == label], test_images[test_labels == label]])
    np.testing.assert_array_equal(dataset.images[c], expected)
    # And straight from the 3,072-vector: byte 0 is red at (row 0, col 0), byte 1 red at (0, 1),
    # byte 32 red at (1, 0), byte 1,024 green at (0, 0), byte 2,048 blue at (0, 0).
    vector = np.ascontiguousarray(train_images.transpose(0, 3, 1, 2)).reshape(-1, 3072)[train_labels == label][0]
    image = dataset.images[c, 0]
    assert image[0, 0, 0] == vector[0] and image[0, 1, 0] == vector[1] and image[1, 0, 0] == vector[32]
    assert image[0, 0, 1] == vector[1024] and image[0, 0, 2] == vector[2048]
    assert image[31, 31, 2] == vector[3071]


def test_fc100_splits_are_whole_superclasses(root, small_cifar):
    _, archive = small_cifar
    (root / "cifar100" / "cifar-100-python.tar.gz").write_bytes(archive)
    _, _, coarse_of = cifar100_names()
    for split, n_superclasses in (("train", 12), ("val", 4), ("test", 4)):
        dataset = load_cifar_fs(split, root, scheme="fc100")
        superclasses = json.loads((root / "cifar100" / "splits" / "fc100" / f"{split}.json").read_text())
        assert dataset.images.shape == (5 * n_superclasses, 4, 32, 32, 3)
        assert {coarse_of[name] for name in dataset.class_names} == set(superclasses)
        assert dataset.name == "fc100"


def test_extracted_folder_works_and_second_load_uses_the_cache(root, small_cifar):
    _, archive = small_cifar
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(root / "cifar100", filter="data")
    first = load_cifar_fs("test", root)
    assert (root.parent / "cache" / "cifar100" / "cifar-100-32px" / "meta.json").is_file()
    second = load_cifar_fs("test", root)
    np.testing.assert_array_equal(first.images, second.images)
    assert not (root / "cifar100" / "cifar-100-python.tar.gz").exists()  # nothing was downloaded


def test_truncated_archive_is_corrupt_and_leaves_no_cache(root, small_cifar):
    _, archive = small_cifar
    (root / "cifar100" / "cifar-100-python.tar.gz").write_bytes(archive[: len(archive) // 2])
    with pytest.raises(CorruptDataError) as caught:
        load_cifar_fs("train", root)
    assert "cifar-100-python.tar.gz" in str(caught.value) and "Delete it" in str(caught.value)
    assert not (root.parent / "cache" / "cifar100").exists()


def test_not_gzip_at_all_is_corrupt(root):
    (root / "cifar100" / "cifar-100-python.tar.gz").write_bytes(b"<html>404 Not Found</html>" * 100)
    with pytest.raises(CorruptDataError):
        load_cifar_fs("train", root)
    assert not (root.parent / "cache" / "cifar100").exists()


def test_unequal_classes_are_corrupt(root):
    parts = make_cifar100()
    images, labels = parts["test"]
    keep = np.ones(len(labels), bool)
    keep[np.flatnonzero(labels == 5)[0]] = False  # class 5 loses its only test image
    parts["test"] = (images[keep], labels[keep])
    (root / "cifar100" / "cifar-100-python.tar.gz").write_bytes(archive_bytes(parts))
    with pytest.raises(CorruptDataError, match="between 3 and 4 images"):
        load_cifar_fs("train", root)


def test_pickle_that_would_run_code_is_refused(root):
    # A pickle may name any function to call on load; ours names print. It must never be called.
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ("train", "test", "meta"):
            raw = pickle.dumps({b"data": print})
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    (root / "cifar100" / "cifar-100-python.tar.gz").write_bytes(buffer.getvalue())
    with pytest.raises(CorruptDataError, match="refusing to load builtins.print"):
        load_cifar_fs("train", root)


def test_missing_archive_offline_says_what_to_do(root):
    with pytest.raises(DataNotFoundError) as caught:
        load_cifar_fs("train", root)
    message = str(caught.value)
    assert str(root.resolve() / "cifar100" / "cifar-100-python.tar.gz") in message
    assert "cifar-100-python/ folder" in message  # the offline advice
    assert not list((root / "cifar100").glob("*.part-*"))
    assert not (root.parent / "cache" / "cifar100").exists()
