"""Koch et al.'s affine distortions of the training drawings (``--augment affine``, common/augment.py):
the warp itself, the seeded wrapper of a training sampler, and that it is off by default and never
touches evaluation episodes."""

import json

import numpy as np
import pytest

from chapters.metric import protonet
from common.augment import (ROTATION_DEGREES, SCALE, SHEAR, TRANSLATION, AffineDistortion, distort, random_affine,
                            warp)
from common.data import load_dataset
from common.episodes import EpisodeSampler
from common.results import results_table
from common.schemes import Scheme
from tests.conftest import require_data


def drawings(n=6, seed=0):
    return np.random.default_rng(seed).random((n, 28, 28, 1)).astype(np.float32)


def test_the_warp_moves_pixels_as_the_map_says():
    images, n = drawings(), 6
    identity, still = np.tile(np.eye(2), (n, 1, 1)), np.zeros((n, 2))
    np.testing.assert_array_equal(warp(images, identity, still), images)
    right = warp(images, identity, np.tile([1.0, 0.0], (n, 1)))  # one column to the right, zeros come in
    np.testing.assert_array_equal(right[:, :, 1:], images[:, :, :-1])
    assert not right[:, :, 0].any()
    quarter = np.array([[0.0, -1.0], [1.0, 0.0]])  # 90 degrees about the centre is a rot90 of the array
    turned = warp(images, np.tile(quarter, (n, 1, 1)), still)
    assert min(np.abs(turned - np.rot90(images, k, axes=(1, 2))).max() for k in (1, 3)) < 1e-6
    half = warp(images, identity, np.tile([0.5, 0.0], (n, 1)))  # half a pixel: the mean of two neighbours
    np.testing.assert_allclose(half[:, :, 1:], (images[:, :, 1:] + images[:, :, :-1]) / 2, atol=1e-6)


def test_the_maps_stay_in_koch_et_al_s_ranges_each_part_drawn_half_the_time():
    count = 4000
    matrices, translations = random_affine(np.random.default_rng(1), count, side=28)
    assert matrices.shape == (count, 2, 2) and translations.shape == (count, 2)
    assert np.abs(translations).max() <= TRANSLATION * 28 and 0.4 < np.mean(translations[:, 0] == 0) < 0.6
    # A = rotation(theta) @ [[1, rho_x], [rho_y, 1]] @ diag(s_x, s_y): its first column turns by theta + atan(rho_y),
    # its determinant is s_x s_y (1 - rho_x rho_y), and it is the identity when all five parts are left out (1/32).
    turn = np.degrees(np.arctan2(matrices[:, 1, 0], matrices[:, 0, 0]))
    assert np.abs(turn).max() <= ROTATION_DEGREES + np.degrees(np.arctan(SHEAR)) + 1e-9
    determinant = np.linalg.det(matrices)
    assert determinant.min() >= SCALE[0] ** 2 * (1 - SHEAR ** 2) - 1e-9
    assert determinant.max() <= SCALE[1] ** 2 * (1 + SHEAR ** 2) + 1e-9
    assert 0.02 < np.mean(np.all(np.isclose(matrices, np.eye(2)), axis=(1, 2))) < 0.045
    distorted = distort(drawings(), np.random.default_rng(2))
    assert distorted.dtype == np.float32 and distorted.shape == (6, 28, 28, 1)
    assert 0 <= distorted.min() and distorted.max() <= 1


@pytest.fixture(scope="module")
def lake_train():
    require_data("omniglot/images_background.zip")
    return load_dataset("omniglot", "train", scheme="lake")


def test_a_distorted_episode_is_a_function_of_seed_and_index_with_its_labels_unchanged(lake_train):
    plain = EpisodeSampler(lake_train, 20, 1, 5, seed=3)
    first, second = AffineDistortion(plain), AffineDistortion(EpisodeSampler(lake_train, 20, 1, 5, seed=3))
    for index in (0, 41):  # in any order, by any copy (a resumed run, another framework's loader)
        episode, again, original = first.episode(index), second.episode(index), plain.episode(index)
        for part, other in zip(episode, again):
            np.testing.assert_array_equal(part, other)
        np.testing.assert_array_equal(episode.support_y, original.support_y)
        np.testing.assert_array_equal(episode.query_y, original.query_y)
        assert not np.array_equal(episode.query_x, original.query_x)  # drawings distorted ...
        assert np.abs(episode.query_x.sum(axis=(1, 2, 3)) / original.query_x.sum(axis=(1, 2, 3)) - 1).max() < 0.6
        np.testing.assert_array_equal(first.classes_of(index), plain.classes_of(index))  # ... same characters
    assert not np.array_equal(first.episode(1).query_x, AffineDistortion(EpisodeSampler(lake_train, 20, 1, 5, seed=4))
                              .episode(1).query_x)
    assert first.way == 20 and first.dataset is lake_train


def test_augmentation_is_off_by_default_and_never_touches_evaluation(lake_train):
    for scheme in (Scheme(), Scheme("lake")):
        assert type(scheme.training_sampler(lake_train, 5, 1, 1, seed=0)) is not AffineDistortion
        assert "augment" not in scheme.options()
    augmented = Scheme("lake", augment="affine")
    assert isinstance(augmented.training_sampler(lake_train, 5, 1, 1, seed=0), AffineDistortion)
    assert augmented.options()["augment"] == "affine" and Scheme(augment="affine").options() == {"augment": "affine"}
    val = load_dataset("omniglot", "val", scheme="lake")
    for plain, distorted in zip(Scheme("lake").evaluation_episodes(val, 20, 1, 1, count=3),
                                augmented.evaluation_episodes(val, 20, 1, 1, count=3)):
        for part, other in zip(plain, distorted):
            np.testing.assert_array_equal(part, other)


def test_a_script_records_the_augmentation_and_labels_its_row(lake_train, tmp_path):
    tiny = ["--scheme", "lake", "--augment", "affine", "--way", "5", "--query", "2", "--test-way", "20",
            "--test-query", "1", "--episodes", "2", "--eval-every", "2", "--val-episodes", "1", "--test-episodes", "2",
            "--quiet", "--out", str(tmp_path)]
    result = protonet.main(tiny)
    assert result["options"]["augment"] == "affine" and result["dataset"] == "omniglot-lake"
    folder = tmp_path / "protonet_torch_omniglot-lake_5w1s_augmentaffine"
    assert json.loads((folder / "result.json").read_text())["options"]["augment"] == "affine"
    assert "| protonet [augment affine] | omniglot-lake |" in results_table([result])
