"""Omniglot on the real offline copy: counts, splits, rotations, cache, and bad input."""

import shutil
import zipfile

import numpy as np
import pytest

from common.data import load_dataset
from common.data import omniglot
from common.data.store import Resource
from common.errors import ConfigError, CorruptDataError, DataNotFoundError
from tests.conftest import require_data


def characters(dataset):
    return {name.rsplit("/", 1)[0] for name in dataset.class_names}


def test_vinyals_splits_have_the_published_sizes(omniglot_splits):
    sizes = {split: d.n_classes for split, d in omniglot_splits.items()}
    assert sizes == {"train": 4112, "val": 688, "test": 1692}
    for dataset in omniglot_splits.values():
        assert dataset.images.dtype == np.uint8
        assert dataset.images.shape[1:] == (20, 28, 28, 1)


def test_vinyals_splits_are_disjoint_and_cover_all_1623_characters(omniglot_splits):
    train, val, test = (characters(omniglot_splits[s]) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (1028, 172, 423)
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train | val | test) == 1623


def test_trainval_is_train_plus_val(omniglot_splits):
    trainval = load_dataset("omniglot", "trainval")
    assert trainval.n_classes == 4800
    assert set(trainval.class_names) == set(omniglot_splits["train"].class_names) | set(omniglot_splits["val"].class_names)


def test_each_rotation_is_its_own_class_and_really_rotated(omniglot_train):
    index = {name: i for i, name in enumerate(omniglot_train.class_names)}
    base = omniglot_train.class_names[0].rsplit("/", 1)[0]
    upright = omniglot_train.images[index[f"{base}/rot000"]]
    for angle in (90, 180, 270):
        turned = omniglot_train.images[index[f"{base}/rot{angle:03d}"]]
        np.testing.assert_array_equal(turned, np.rot90(upright, angle // 90, axes=(1, 2)))


def test_strokes_are_bright_on_a_dark_background(omniglot_train):
    images = omniglot_train.images[:50]
    assert images.max() == 255
    assert images.mean() < 60, "the background should be dark (0) and strokes bright (255)"
    corners = images[:, :, 0, 0, 0]
    assert (corners == 0).mean() > 0.95


def test_lake_split_uses_the_official_background_and_evaluation_alphabets():
    require_data("omniglot/images_evaluation.zip")
    train = load_dataset("omniglot", "trainval", scheme="lake", rotations=False)
    test = load_dataset("omniglot", "test", scheme="lake", rotations=True)
    assert (train.n_classes, test.n_classes) == (964, 659 * 4)
    assert len({n.split("/")[0] for n in train.class_names}) == 30
    assert len({n.split("/")[0] for n in test.class_names}) == 20
    assert not characters(train) & characters(test)
    with pytest.raises(ConfigError, match="Lake split"):
        load_dataset("omniglot", "validation", scheme="lake")


def test_second_load_comes_from_the_cache(omniglot_train, monkeypatch):
    def decode_again(*args):
        raise AssertionError("the second load decoded the archive again instead of reading the cache")

    monkeypatch.setattr(omniglot, "_decode_archive", decode_again)
    again = load_dataset("omniglot", "train")
    assert again.class_names == omniglot_train.class_names
    np.testing.assert_array_equal(again.images[:3], omniglot_train.images[:3])


def test_characters_split_is_santoro_s_1200_and_423_irrespective_of_alphabet():
    require_data("omniglot/images_evaluation.zip")
    splits = {split: load_dataset("omniglot", split, scheme="characters") for split in ("train", "val", "test", "trainval")}
    assert {split: d.n_classes for split, d in splits.items()} == {"train": 4400, "val": 400, "test": 1692, "trainval": 4800}
    train, val, test = (characters(splits[s]) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (1100, 100, 423)
    assert not (train & val) and not ((train | val) & test) and len(train | val | test) == 1623
    assert characters(splits["trainval"]) == train | val
    # Unlike the Vinyals split's, every test character's alphabet has characters in training.
    assert {name.split("/")[0] for name in test} <= {name.split("/")[0] for name in train}
    # One seeded shuffle of the sorted names: the same split on every machine and Python version.
    assert splits["test"].class_names[:5] == ("Keble/character04/rot000", "Keble/character04/rot090",
                                              "Keble/character04/rot180", "Keble/character04/rot270",
                                              "Atemayar_Qelisayer/character08/rot000")
    assert splits["val"].class_names[0] == "Tifinagh/character11/rot000"
    with pytest.raises(ConfigError, match="characters split"):
        load_dataset("omniglot", "validation", scheme="characters")


def test_bad_options_are_clear_errors():
    with pytest.raises(ConfigError, match="splits"):
        load_dataset("omniglot", "validation")
    with pytest.raises(ConfigError, match="scheme"):
        load_dataset("omniglot", "train", scheme="koch")
    with pytest.raises(ConfigError, match="image_size"):
        load_dataset("omniglot", "train", image_size=500)
    with pytest.raises(ConfigError, match="unknown data set 'omniglott'"):
        load_dataset("omniglott", "train")


@pytest.fixture
def unreachable_downloads(monkeypatch):
    """Point every Omniglot download at a closed local port: the offline case, on any machine."""
    for key, resource in omniglot.ARCHIVES.items():
        monkeypatch.setitem(omniglot.ARCHIVES, key, Resource(resource.filename, "http://127.0.0.1:9/" + resource.filename, md5=resource.md5))


def test_missing_data_says_where_to_put_it(tmp_path, fresh_cache, unreachable_downloads):
    with pytest.raises(DataNotFoundError) as error:
        load_dataset("omniglot", "train", data_dir=tmp_path, scheme="lake")
    message = str(error.value)
    assert "images_background.zip" in message and str(tmp_path / "omniglot") in message
    assert not (tmp_path / "omniglot" / "images_background.zip").exists()


def test_an_incomplete_archive_is_rejected_and_nothing_is_cached(tmp_path, fresh_cache, unreachable_downloads):
    # The official "small background set" is a real, valid Omniglot zip, but only 5 alphabets.
    small = require_data("omniglot/images_background_small1.zip")
    (tmp_path / "omniglot").mkdir()
    shutil.copy(small, tmp_path / "omniglot" / "images_background.zip")
    with pytest.raises(CorruptDataError, match="5 alphabets and 136 characters"):
        load_dataset("omniglot", "train", data_dir=tmp_path, scheme="lake")
    assert not any(fresh_cache.rglob("*.npy"))


def test_a_truncated_archive_is_rejected_and_nothing_is_cached(tmp_path, fresh_cache, unreachable_downloads):
    good = require_data("omniglot/images_background_small1.zip").read_bytes()
    (tmp_path / "omniglot").mkdir()
    (tmp_path / "omniglot" / "images_background.zip").write_bytes(good[: len(good) // 2])
    with pytest.raises(CorruptDataError, match="delete it"):
        load_dataset("omniglot", "train", data_dir=tmp_path, scheme="lake")
    assert not any(fresh_cache.rglob("*.npy"))
    assert zipfile.is_zipfile(require_data("omniglot/images_background_small1.zip"))
