"""Omniglot's own challenge (Lake et al. 2015): the Lake scheme's splits, the within-alphabet
episodes, the preprocessing of one drawing, the scripts' --scheme option and the labelled results."""

import json

import numpy as np
import pytest

from chapters.metric import protonet
from common.alphabet_episodes import WithinAlphabetSampler, alphabet_of, within_alphabet_episodes
from common.data import load_dataset
from common.data.omniglot import LAKE_VAL_ALPHABETS, preprocess_drawing
from common.episodes import EVALUATION_SEED
from common.errors import ConfigError
from common.results import check_result, results_table
from tests.conftest import require_data
from tests.test_bad_inputs import assert_one_line, paths_argv, run_script


def characters(dataset):
    return {name.rsplit("/", 1)[0] for name in dataset.class_names}


@pytest.fixture(scope="module")
def lake():
    require_data("omniglot/images_evaluation.zip")
    return {split: load_dataset("omniglot", split, scheme="lake") for split in ("train", "val", "trainval", "test")}


def test_lake_splits_are_whole_alphabets_disjoint_and_complete(lake):
    train, val, trainval, test = (characters(lake[s]) for s in ("train", "val", "trainval", "test"))
    assert (len(train), len(val), len(test)) == (789, 175, 659)
    assert not train & val and not (train | val) & test
    assert train | val == trainval and len(trainval) == 964
    alphabets = {split: {alphabet_of(n) for n in lake[split].class_names} for split in lake}
    assert alphabets["val"] == set(LAKE_VAL_ALPHABETS) and len(alphabets["train"]) == 25
    assert not alphabets["train"] & alphabets["val"] and not alphabets["trainval"] & alphabets["test"]
    assert len(alphabets["test"]) == 20


def test_rotations_are_chosen_per_split(lake):
    # By default only the training splits count rotated characters as classes; the test is upright.
    assert lake["train"].n_classes == 4 * 789 and lake["trainval"].n_classes == 4 * 964
    assert lake["val"].n_classes == 175 and lake["test"].n_classes == 659
    assert all(name.endswith("/rot000") for name in lake["test"].class_names)
    assert load_dataset("omniglot", "test", scheme="lake", rotations=True).n_classes == 4 * 659
    assert load_dataset("omniglot", "train", scheme="lake", rotations=False).n_classes == 789


def test_an_episode_is_one_alphabet_with_support_and_query_by_different_drawers(lake):
    test = lake["test"]
    sampler = WithinAlphabetSampler(test, way=20, shot=2, query=3, seed=5)
    for index in range(30):
        classes = sampler.classes_of(index)
        assert len({alphabet_of(test.class_names[c]) for c in classes}) == 1
        assert len(set(classes)) == 20
        support, query = sampler.drawers_of(index)
        assert len(support) == 2 and len(query) == 3 and not set(support) & set(query)
        # The arrays are those drawings, class by class, in label order.
        episode = sampler.episode(index)
        expected = test.images[classes][:, support].reshape(-1, 28, 28, 1) / np.float32(255)
        np.testing.assert_allclose(episode.support_x, expected, atol=1e-7)
        expected = test.images[classes][:, query].reshape(-1, 28, 28, 1) / np.float32(255)
        np.testing.assert_allclose(episode.query_x, expected, atol=1e-7)
        np.testing.assert_array_equal(episode.query_y, np.repeat(np.arange(20), 3))
    assert len({sampler.alphabet_of_episode(i) for i in range(200)}) == 20  # every alphabet is drawn


def test_episodes_are_a_function_of_seed_and_index(lake):
    a, b = (WithinAlphabetSampler(lake["test"], 20, 1, 1, seed=3) for _ in range(2))
    for index in (0, 7, 399):
        for x, y in zip(a.episode(index), b.episode(index)):
            np.testing.assert_array_equal(x, y)
    other = WithinAlphabetSampler(lake["test"], 20, 1, 1, seed=4)
    assert any(not np.array_equal(a.classes_of(i), other.classes_of(i)) for i in range(5))
    fixed = within_alphabet_episodes(lake["test"])
    assert len(fixed) == 400 and fixed.source.seed == EVALUATION_SEED
    np.testing.assert_array_equal(fixed[17].query_x, within_alphabet_episodes(lake["test"])[17].query_x)


def test_the_adapters_pass_within_alphabet_episodes_unchanged(lake):
    from common.adapters import keras_episodes, tf_dataset, to_torch

    sampler = WithinAlphabetSampler(lake["val"], 5, 1, 2, seed=1)
    episode = sampler.episode(2)
    tensors = to_torch(episode)
    np.testing.assert_array_equal(tensors.query_x.movedim(-3, -1).numpy(), episode.query_x)
    np.testing.assert_array_equal(tensors.support_y.numpy(), episode.support_y)
    from_tf = next(iter(tf_dataset(sampler, start=2, stop=3)))
    for part, expected in zip(from_tf, episode):
        np.testing.assert_array_equal(part.numpy(), expected)
    (support_x, support_y, query_x), query_y = keras_episodes(sampler, count=1, start=2)[0]
    np.testing.assert_array_equal(support_x, episode.support_x)
    np.testing.assert_array_equal(query_y, episode.query_y)


def test_too_few_classes_in_every_alphabet_is_one_clear_error(lake):
    with pytest.raises(ConfigError, match="largest of the omniglot val split has 46; use --test-way 46 or fewer"):
        WithinAlphabetSampler(lake["val"], way=47, shot=1, query=1)


def test_preprocessing_one_drawing_gives_the_loaders_image(lake):
    import io
    import zipfile

    from PIL import Image

    with zipfile.ZipFile(require_data("omniglot/images_evaluation.zip")) as zf:
        member = sorted(m for m in zf.namelist() if m.endswith(".png"))[0]  # Angelic/character01, drawer 01
        png = Image.open(io.BytesIO(zf.read(member)))
        png.load()
    expected = lake["test"].images[lake["test"].class_names.index("Angelic/character01/rot000"), 0, ..., 0]
    np.testing.assert_array_equal(preprocess_drawing(png), expected)
    np.testing.assert_array_equal(preprocess_drawing(np.asarray(png)), expected)  # booleans, as in the PNG
    assert preprocess_drawing(png, image_size=105).shape == (105, 105)
    with pytest.raises(ConfigError, match="2-D"):
        preprocess_drawing(np.zeros((105, 105, 3), np.uint8))


LAKE_BAD = [
    (["--scheme", "koch"], "--scheme must be one of vinyals, lake, characters, got 'koch'"),
    (["--scheme", "lake", "--rotations", "train,tset"], "--rotations must be none or splits among train, val, test"),
    (["--rotations", "train"], "--rotations applies to --scheme lake"),
    (["--scheme", "characters", "--rotations", "none"], "--rotations applies to --scheme lake; the characters scheme"),
    (["--scheme", "characters", "--dataset", "cifar-fs"], "--scheme characters must go with --dataset omniglot"),
    (["--scheme", "lake", "--dataset", "mini-imagenet"], "--scheme lake must go with --dataset omniglot"),
    (["--train-within-alphabet"], "--train-within-alphabet applies to --scheme lake"),
    (["--augment", "affine", "--dataset", "mini-imagenet"], "--augment affine distorts Omniglot's drawings"),
    (["--augment", "elastic"], "--augment must be one of affine, got 'elastic'"),
    (["--image-size", "200"], "--image-size must be a whole number between 8 and 105, got 200"),
    (["--image-size", "56", "--dataset", "mini-imagenet"], "--image-size resizes Omniglot's drawings"),
]


@pytest.mark.parametrize("script", ["protonet", "siamese", "maml", "reptile", "snail"])
@pytest.mark.parametrize("argv,message", LAKE_BAD, ids=[" ".join(argv) for argv, _ in LAKE_BAD])
def test_bad_scheme_options_are_one_line_before_any_work(script, argv, message, tmp_path, capsys):
    code, err = run_script(script, [*argv, *paths_argv(script, tmp_path)], capsys)
    assert code == 2
    assert_one_line(err, message)
    assert not (tmp_path / "out").exists() and not (tmp_path / "no-data").exists()


def test_lake_runs_are_named_and_labelled_apart_from_the_vinyals_split(lake, tmp_path, capsys):
    tiny = ["--way", "5", "--query", "2", "--test-way", "20", "--test-query", "1", "--episodes", "2", "--eval-every",
            "2", "--val-episodes", "1", "--test-episodes", "2", "--quiet", "--out", str(tmp_path)]
    result = protonet.main(["--scheme", "lake", *tiny])
    assert result["dataset"] == "omniglot-lake" and (result["way"], result["shot"]) == (20, 1)
    assert result["options"]["scheme"] == "lake" and result["options"]["evaluation"] == "within-alphabet"
    assert result["options"]["rotations"] == "train"
    assert (tmp_path / "protonet_torch_omniglot-lake_20w1s").exists() is False  # named by training way and shot
    assert json.loads((tmp_path / "protonet_torch_omniglot-lake_5w1s" / "result.json").read_text())["dataset"] \
        == "omniglot-lake"
    upright = protonet.main(["--scheme", "lake", "--rotations", "none", *tiny])
    assert (tmp_path / "protonet_torch_omniglot-lake_5w1s_rotationsnone" / "result.json").exists()
    vinyals = dict(result, dataset="omniglot", options={"lr": 1e-3, "decay_every": 2000, "train_split": "train"})
    table = results_table([result, upright, vinyals])
    rows = [line for line in table.splitlines() if line.startswith("| protonet")]
    assert len(rows) == 3
    assert any("| omniglot-lake | 20 (5 in training) | 1 | – |" in row and "[rotations none]" not in row for row in rows)
    assert any("[rotations none] | omniglot-lake" in row for row in rows)
    assert any("| omniglot | 20 (5 in training) | 1 | 96.00 |" in row for row in rows)
    assert "people 95.5" in table
    within = protonet.main(["--scheme", "lake", "--train-within-alphabet", *tiny])
    assert within["options"]["train_within_alphabet"] is True
    assert (tmp_path / "protonet_torch_omniglot-lake_5w1s_train_within_alphabet" / "result.json").exists()
    assert "| protonet [train_within_alphabet] | omniglot-lake |" in results_table([within])
    # A Lake-scheme run that claims the Vinyals split's name can never be a cell of that row.
    with pytest.raises(ConfigError, match="Vinyals split's rows"):
        check_result(dict(result, dataset="omniglot"))


def test_another_image_size_is_a_data_set_of_its_own(lake, tmp_path, capsys):
    """``--image-size 56``: the loader is asked for 56x56 images, and the run is named
    ``omniglot-lake-56px`` (``omniglot-56px`` on the Vinyals split), never a cell of the 28-pixel rows."""
    import argparse

    from common.options import recorded_problems
    from common.schemes import Scheme, add_scheme_arguments

    def scheme(*argv):
        parser = argparse.ArgumentParser()
        parser.add_argument("--dataset", default="omniglot")
        add_scheme_arguments(parser)
        return Scheme.from_args(parser.parse_args(list(argv)))

    lake56 = scheme("--scheme", "lake", "--image-size", "56")
    assert lake56.dataset_label("omniglot") == "omniglot-lake-56px"
    assert lake56.dataset_options("val") == {"scheme": "lake", "rotations": False, "image_size": 56}
    assert scheme("--image-size", "56").dataset_label("omniglot") == "omniglot-56px"
    assert scheme("--image-size", "28") == scheme() and scheme().dataset_options("train") == {}
    result = protonet.main(["--scheme", "lake", "--way", "5", "--query", "1", "--test-way", "5", "--test-query", "1",
                            "--episodes", "1", "--eval-every", "1", "--val-episodes", "1", "--test-episodes", "1",
                            "--quiet", "--out", str(tmp_path)])
    resized = dict(result, dataset=lake56.dataset_label("omniglot"))
    assert not recorded_problems(resized) and recorded_problems(dict(result, dataset="omniglot-56px"))
    rows = [line for line in results_table([result, resized]).splitlines() if line.startswith("| protonet")]
    assert len(rows) == 2 and any("| omniglot-lake-56px | 5 | 1 |" in row for row in rows)
    code, err = run_script("snail", ["--image-size", "56", *paths_argv("snail", tmp_path)], capsys)
    assert code == 2
    assert_one_line(err, "SNAIL's blocks are sized for", "drop --image-size 56")


def test_an_optimization_script_runs_the_lake_scheme(lake, tmp_path):
    from tests.test_bad_inputs import SCRIPTS

    result = SCRIPTS["maml"](["--scheme", "lake", "--way", "5", "--meta-batch", "1", "--episodes", "1",
                              "--eval-every", "1", "--val-episodes", "1", "--test-episodes", "1", "--quiet",
                              "--out", str(tmp_path)])
    assert result["dataset"] == "omniglot-lake" and result["options"]["scheme"] == "lake"
    assert (tmp_path / "maml_torch_omniglot-lake_5w1s" / "result.json").exists()


def test_an_optimization_script_runs_the_characters_scheme(tmp_path):
    from tests.test_bad_inputs import SCRIPTS

    require_data("omniglot/images_evaluation.zip")
    result = SCRIPTS["maml"](["--scheme", "characters", "--way", "5", "--meta-batch", "1", "--episodes", "1",
                              "--eval-every", "1", "--val-episodes", "1", "--test-episodes", "1", "--quiet",
                              "--out", str(tmp_path)])
    assert result["dataset"] == "omniglot-characters" and result["options"]["scheme"] == "characters"
    check_result(result)  # raises on a missing or mistyped key
    table = results_table([result])
    assert "| omniglot-characters | 5 | 1 |" in table and "irrespective of alphabet" in table


def test_within_alphabet_training_draws_training_episodes_from_one_alphabet(lake):
    from common.schemes import Scheme

    sampler = Scheme("lake", train_within_alphabet=True).training_sampler(lake["train"], 20, 1, 5, seed=0)
    assert all(len({alphabet_of(lake["train"].class_names[c]) for c in sampler.classes_of(i)}) == 1 for i in range(20))
    mixed = Scheme("lake").training_sampler(lake["train"], 20, 1, 5, seed=0)
    assert any(len({alphabet_of(lake["train"].class_names[c]) for c in mixed.classes_of(i)}) > 1 for i in range(20))
