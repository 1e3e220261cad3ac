"""mini-ImageNet loader: the real offline copy (test classes), and small synthetic copies for the
error paths (missing images, a truncated zip, a damaged JPEG).

The real-data tests read ``<data root>/mini-imagenet/`` (``$METALEARN_DATA``; read-only is fine)
and skip with a reason when it is not there (in CI they fail instead, see ``conftest.py``). Every
test writes its cache to a temporary folder.
"""

from __future__ import annotations

import csv
import io
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from common.data import mini_imagenet
from common.data.mini_imagenet import IMAGES_PER_CLASS, image_sources, load_mini_imagenet
from common.data.store import data_root
from common.errors import CorruptDataError, DataNotFoundError
from tests.conftest import require_data


def real_folder():
    """``<data root>/mini-imagenet`` with test.csv and some images, or skip (fail in CI)."""
    folder = require_data("mini-imagenet/test.csv").parent
    if not image_sources(folder):
        require_data("mini-imagenet/images.zip")  # skips, naming the file that is missing
    return folder


# --------------------------------------------------------------------------------------------
# The real offline copy: 12,000 JPEGs of the 20 test classes
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_test_split(tmp_path_factory):
    """Load the real test split twice into a fresh cache: (first, second, seconds of each)."""
    real_folder()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("METALEARN_CACHE", str(tmp_path_factory.mktemp("cache")))
        start = time.perf_counter()
        first = load_mini_imagenet("test")
        decoded = time.perf_counter()

        def decode_again(*args):
            raise AssertionError("the second load decoded the JPEGs again instead of reading the cache")

        mp.setattr(mini_imagenet, "_decode_images", decode_again)
        second = load_mini_imagenet("test")
        cached = time.perf_counter()
    print(f"\nmini-ImageNet test split: decoded in {decoded - start:.1f} s, cached load {cached - decoded:.2f} s")
    return first, second, decoded - start, cached - decoded


def test_real_test_split_shape_and_classes(real_test_split):
    dataset, _, _, _ = real_test_split
    assert dataset.images.shape == (20, 600, 84, 84, 3)
    assert dataset.images.dtype == np.uint8
    folder = real_folder()
    with open(folder / "test.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert dataset.class_names == tuple(sorted({row["label"] for row in rows}))
    # Spot check: the first image of the last class is that class's first JPEG in the CSV, unchanged.
    first_file = next(row["filename"] for row in rows if row["label"] == dataset.class_names[-1])
    zips = sorted(folder.glob("images*.zip"))  # images.zip sorts first, as the loader tries it
    if zips:
        with zipfile.ZipFile(zips[0]) as zf:
            member = next(name for name in zf.namelist() if name.endswith("/" + first_file) or name == first_file)
            expected = np.asarray(Image.open(io.BytesIO(zf.read(member))).convert("RGB"))
        np.testing.assert_array_equal(dataset.images[-1, 0], expected)
    # Real photographs: not blank, and different classes look different.
    assert 40 < dataset.images.mean() < 220
    assert not np.array_equal(dataset.images[0, 0], dataset.images[1, 0])


def test_real_second_load_reads_the_cache(real_test_split):
    first, second, _, _ = real_test_split  # the fixture's second load fails if it decodes anything
    assert second.class_names == first.class_names
    np.testing.assert_array_equal(second.images[:, :5], first.images[:, :5])


def test_real_train_split_without_images_says_where_to_put_images_zip(fresh_cache):
    folder = real_folder()
    require_data("mini-imagenet/train.csv")
    if any((folder / name).exists() for name in ("images", "images.zip")):
        pytest.skip("this data root has the full images; the missing-images message cannot be shown")
    with pytest.raises(DataNotFoundError) as caught:
        load_mini_imagenet("train")
    message = str(caught.value)
    assert "images.zip" in message
    assert str(data_root() / "mini-imagenet") in message
    assert "38,400 of the 38,400 images listed in train.csv are missing" in message
    assert not (fresh_cache / "mini-imagenet").exists()


# --------------------------------------------------------------------------------------------
# Synthetic copies (no real data needed): a fake test.csv of 20 x 600 images, tiny JPEGs
# --------------------------------------------------------------------------------------------

WNIDS = [f"n{90000000 + c:08d}" for c in range(20)]
COLOURS = [(12 * c, 255 - 12 * c, (97 * c) % 256) for c in range(20)]  # one flat colour per class


def _filenames(wnid):
    return [f"{wnid}{i:08d}.jpg" for i in range(1, IMAGES_PER_CLASS + 1)]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A test.csv in the official format and the bytes of a matching images.zip (16x16 JPEGs)."""
    folder = tmp_path_factory.mktemp("synthetic")
    csv_text = "filename,label\n" + "".join(f"{name},{wnid}\n" for wnid in WNIDS for name in _filenames(wnid))
    (folder / "test.csv").write_text(csv_text)
    jpegs = {}
    for wnid, colour in zip(WNIDS, COLOURS):
        buffer = io.BytesIO()
        Image.new("RGB", (16, 16), colour).save(buffer, "JPEG", quality=95)
        jpegs[wnid] = buffer.getvalue()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:  # stored, like images_test_split.zip
        for wnid in WNIDS:
            for name in _filenames(wnid):
                zf.writestr(f"images/{name}", jpegs[wnid])
    return folder / "test.csv", buffer.getvalue(), jpegs


def _data_root(tmp_path, synthetic, zip_bytes=None, zip_name="images.zip"):
    csv_path, good_zip, _ = synthetic
    folder = tmp_path / "data" / "mini-imagenet"
    folder.mkdir(parents=True)
    (folder / "test.csv").write_bytes(csv_path.read_bytes())
    if zip_bytes is not False:
        (folder / zip_name).write_bytes(good_zip if zip_bytes is None else zip_bytes)
    return tmp_path / "data"


def test_synthetic_zip_loads_and_resizes(tmp_path, synthetic, fresh_cache):
    root = _data_root(tmp_path, synthetic, zip_name="images_some_copy.zip")  # any images*.zip is found
    dataset = load_mini_imagenet("test", root, image_size=16)  # native size: no resizing
    assert dataset.images.shape == (20, 600, 16, 16, 3)
    assert dataset.class_names == tuple(WNIDS)
    for c, colour in enumerate(COLOURS):  # JPEG is lossy: a flat colour comes back within a few levels
        assert np.abs(dataset.images[c, 599].astype(int) - colour).max() <= 8
    resized = load_mini_imagenet("test", root, image_size=20)
    assert resized.images.shape == (20, 600, 20, 20, 3)
    assert sorted(p.name for p in (fresh_cache / "mini-imagenet").iterdir()) == ["test-16px", "test-20px"]


def test_images_folder_is_used(tmp_path, synthetic, fresh_cache):
    root = _data_root(tmp_path, synthetic, zip_bytes=False)
    _, _, jpegs = synthetic
    images = root / "mini-imagenet" / "images"
    images.mkdir()
    for wnid in WNIDS:
        for name in _filenames(wnid):
            (images / name).write_bytes(jpegs[wnid])
    dataset = load_mini_imagenet("test", root, image_size=16)
    assert dataset.images.shape == (20, 600, 16, 16, 3)


def test_missing_images_are_counted(tmp_path, synthetic, fresh_cache):
    _, good_zip, _ = synthetic
    # Re-pack without the last five images of the first class.
    dropped = {f"images/{name}" for name in _filenames(WNIDS[0])[-5:]}
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good_zip)) as source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            if info.filename not in dropped:
                target.writestr(info, source.read(info))
    root = _data_root(tmp_path, synthetic, buffer.getvalue())
    with pytest.raises(DataNotFoundError) as caught:
        load_mini_imagenet("test", root)
    message = str(caught.value)
    assert "5 of the 12,000 images listed in test.csv are missing" in message
    assert "images.zip has 11,995 of them" in message
    assert str(root.resolve() / "mini-imagenet" / "images.zip") in message
    assert not (fresh_cache / "mini-imagenet").exists()


def test_truncated_zip_is_corrupt_and_leaves_no_cache(tmp_path, synthetic, fresh_cache):
    _, good_zip, _ = synthetic
    root = _data_root(tmp_path, synthetic, good_zip[: len(good_zip) // 2])  # the central directory is lost
    with pytest.raises(CorruptDataError) as caught:
        load_mini_imagenet("test", root)
    assert "images.zip" in str(caught.value) and "delete" in str(caught.value)
    assert not (fresh_cache / "mini-imagenet").exists()


def test_damaged_jpeg_is_corrupt_and_leaves_no_cache(tmp_path, synthetic, fresh_cache):
    _, good_zip, jpegs = synthetic
    victim = f"images/{_filenames(WNIDS[7])[123]}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good_zip)) as source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, data[: len(data) // 2] if info.filename == victim else data)
    root = _data_root(tmp_path, synthetic, buffer.getvalue())
    with pytest.raises(CorruptDataError) as caught:
        load_mini_imagenet("test", root)
    assert victim.split("/")[-1] in str(caught.value)
    assert not (fresh_cache / "mini-imagenet").exists()  # no entry, and no half-written staging folder
