"""The applications chapter: text encoders and the chapters' learners on them, across frameworks.

1. The encoders (Proto-CNN with position embeddings, bag of embeddings) give the same vectors and
   the same gradients in PyTorch, TensorFlow and Keras from the same canonical weights (float64).
2. One training step of each learner as the script builds it (ProtoNet's and Matching Networks'
   Adam steps, MAML's second-order meta-step) ends in the same weights in the three frameworks; a MAML step that ignored
   the Hessian term (first order) ends elsewhere, so the comparison can tell them apart.
3. Bad input to the scripts is one line and exit status 2, before any work.

A small synthetic text data set keeps the tests fast; the real loaders are tested in
``test_text_data.py``.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import tensorflow as tf
import torch

from chapters.applications import encoders_keras, encoders_tf, encoders_torch
from chapters.applications.train import TextLearnerConfig, build_learner, build_model
from common.cli import run
from common.data.text import TextDataset, Vocabulary
from common.episodes import EpisodeSampler, MetaBatches, evaluation_episodes
from common.weights import from_canonical, gradients_to_canonical, to_canonical
from tests.agreement_helpers import FRAMEWORKS, model_of, moved_model_flips, train_and_compare
from tests.metric_helpers import assert_close, keras_floatx

ENCODERS = {"torch": encoders_torch, "tf": encoders_tf, "keras": encoders_keras}
LENGTH, WORDS = 12, 40


def synthetic_text(positions: bool, seed: int = 0) -> TextDataset:
    """8 classes x 10 'sentences' of random word ids with some padding (and entity positions)."""
    rng = np.random.default_rng(seed)
    words = rng.integers(2, WORDS, size=(8, 10, LENGTH))
    words[..., 9:] = 0  # padding at the end of every sentence
    channels = [words]
    if positions:
        for _ in range(2):
            entity = rng.integers(0, 9, size=(8, 10, 1))
            channels.append(np.arange(LENGTH) - entity + LENGTH)
    vocabulary = Vocabulary(("<pad>", "<unk>") + tuple(f"w{i}" for i in range(2, WORDS)))
    return TextDataset("synthetic", "train", np.stack(channels, -1).astype(np.int32), tuple(map(str, range(8))),
                       vocabulary=vocabulary, positions=2 * LENGTH if positions else 0)


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    with keras_floatx("float64"):
        yield
    torch.set_default_dtype(old)


def encoder_args(dataset: TextDataset) -> dict:
    return {"vocabulary_size": len(dataset.vocabulary), "positions": dataset.positions}


def build_encoder(framework: str, kind: str, dataset: TextDataset):
    extra = {"dtype": tf.float64, "seed": 0} if framework == "tf" else {}
    return ENCODERS[framework].build_encoder(kind, **encoder_args(dataset), **extra)


def encode_and_differentiate(framework: str, encoder, tokens: np.ndarray):
    """f(tokens) and the gradient of sum(f(tokens)²) with respect to every weight (canonical names)."""
    if framework == "torch":
        out = encoder(torch.from_numpy(tokens))
        (out ** 2).sum().backward()
        return out.detach().numpy(), gradients_to_canonical(encoder, "torch")
    variables = encoder.trainable_variables
    with tf.GradientTape() as tape:
        out = encoder(tf.constant(tokens))
        loss = tf.reduce_sum(tf.square(out))
    pairs = list(zip(tape.gradient(loss, variables), variables))
    return np.asarray(out), gradients_to_canonical(encoder, framework, pairs)


@pytest.mark.parametrize("kind, positions", [("cnn", True), ("cnn", False), ("bag", False)])
def test_encoders_agree_exactly_from_canonical_weights(kind, positions):
    dataset = synthetic_text(positions)
    tokens = dataset.images[:3, :4].reshape(12, LENGTH, -1)
    encoders = {framework: build_encoder(framework, kind, dataset) for framework in FRAMEWORKS}
    weights = to_canonical(encoders["torch"], "torch")
    expected = {"cnn": {"words.embeddings", "conv.kernel", "conv.bias"}, "bag": {"words.embeddings"}}[kind]
    if positions:
        expected |= {"head_positions.embeddings", "tail_positions.embeddings"}
    assert set(weights) == expected
    results = {}
    for framework, encoder in encoders.items():
        from_canonical(weights, encoder, framework)
        results[framework] = encode_and_differentiate(framework, encoder, tokens)
    out, grads = results["torch"]
    assert out.shape == (12, 230 if kind == "cnn" else 50)
    assert np.abs(grads["words.embeddings"][0 if kind == "cnn" else 2]).max() > 0
    for framework in ("tf", "keras"):
        assert_close(out, results[framework][0], 1e-10, f"{framework} {kind} output")
        assert set(results[framework][1]) == set(grads)
        for name, grad in grads.items():
            assert_close(grad, results[framework][1][name], 1e-8, f"{framework} {kind} gradient of {name}")


def test_the_position_embeddings_tell_head_from_tail():
    """Swapping the two entities changes the Proto-CNN's vector (the bag of words cannot see it)."""
    dataset = synthetic_text(True)
    tokens = dataset.images[0, :3]
    swapped = tokens[..., [0, 2, 1]]
    encoder = build_encoder("torch", "cnn", dataset)
    with torch.no_grad():
        a, b = encoder(torch.from_numpy(tokens)), encoder(torch.from_numpy(np.ascontiguousarray(swapped)))
    assert (a - b).abs().max() > 1e-3


def settings(algorithm: str, **changes) -> TextLearnerConfig:
    options = dict(lr=1e-2, decay_every=0, inner_lr=0.5, inner_steps=2, first_order=False, test_inner_steps=2)
    return TextLearnerConfig(algorithm=algorithm, **{**options, **changes})


def learners(algorithm: str, dataset: TextDataset, example, distance: str = "cosine", way: int = 3,
             frameworks=FRAMEWORKS, **changes) -> dict:
    """The script's learners (``build_model`` + ``build_learner``) with PyTorch's initial weights."""
    built = {}
    for framework in frameworks:
        model = build_model(algorithm, framework, "cnn", way, encoder_args(dataset), seed=0, distance=distance)
        if framework == "tf":  # the script builds float32 TensorFlow models: rebuild this one in float64
            module = ENCODERS["tf"]
            if algorithm == "maml":
                model = module.TextClassifier(way, "cnn", **encoder_args(dataset), dtype=tf.float64, seed=0)
            elif algorithm == "matching":
                from chapters.metric.matching_tf import MatchingNet
                model = MatchingNet(encoder=module.build_encoder("cnn", **encoder_args(dataset), dtype=tf.float64,
                                                                 seed=0), distance=distance)
            else:
                from chapters.metric.protonet_tf import ProtoNet
                model = ProtoNet(encoder=module.build_encoder("cnn", **encoder_args(dataset), dtype=tf.float64, seed=0))
        built[framework] = build_learner(settings(algorithm, **changes), framework, model, example)
    weights = to_canonical(model_of(built["torch"]), "torch")
    for framework, learner in built.items():
        from_canonical(weights, model_of(learner), framework)
    return built


def weights_after_one_step(algorithm: str, frameworks=FRAMEWORKS, **changes) -> dict:
    dataset = synthetic_text(True)
    source = EpisodeSampler(dataset, 3, 2, 2, seed=1)
    if algorithm == "maml":
        source = MetaBatches(source, 2)
    example = source.episode(0)
    built = learners(algorithm, dataset, example, frameworks=frameworks, **changes)
    losses = {framework: float(learner.train_step(example)["loss"]) for framework, learner in built.items()}
    return ({framework: to_canonical(model_of(learner), framework) for framework, learner in built.items()},
            losses)


@pytest.mark.parametrize("algorithm, changes", [
    ("protonet", {}), ("maml", {}), ("matching", {}), ("matching", {"distance": "cosine_times_query_norm"})])
def test_one_learner_step_agrees_exactly(algorithm, changes):
    """The loss before the step (the forward pass: Adam's first step is close to lr times the sign of
    each gradient, so the weights alone would not see a wrong scale), then every weight after it."""
    after, losses = weights_after_one_step(algorithm, **changes)
    for framework in ("tf", "keras"):
        assert_close(losses["torch"], losses[framework], 1e-10, f"{algorithm} {framework} loss")
        for name, value in after["torch"].items():
            assert_close(value, after[framework][name], 1e-6, f"{algorithm} {framework} {name} after one step")
    if algorithm == "maml":  # the comparison sees the second-order term: first order ends elsewhere
        first_order = weights_after_one_step("maml", ("torch",), first_order=True)[0]["torch"]
        differences = [np.linalg.norm(first_order[n] - v) / np.linalg.norm(v) for n, v in after["torch"].items()]
        assert max(differences) > 1e-5


@pytest.mark.parametrize("command, message", [
    (["chapters.applications.train", "--dataset", "omniglot"], "--dataset must be one of huffpost"),
    (["chapters.applications.train", "--dataset", "fewrel", "--test-way", "10"], "10-way episodes need 10 classes"),
    (["chapters.applications.train", "--encoder", "lstm"], "--encoder must be one of cnn, bag"),
    (["chapters.applications.train", "--distance", "squared_euclidean"], "--algorithm matching"),
    (["chapters.applications.train", "--algorithm", "maml", "--test-way", "3"], "tested 5-way"),
    (["chapters.applications.train", "--episodes", "0"], "--episodes must be at least 1"),
    (["chapters.applications.baseline", "--dataset", "fewrel", "--way", "10"], "--way 10"),
    (["chapters.applications.train", "--dataset", "reuters", "--relations", "6-10"], "drop it for --dataset reuters"),
    (["chapters.applications.train", "--dataset", "fewrel", "--relations", "6-10", "--train-split", "trainval"],
     "drop --train-split trainval"),
    (["chapters.applications.train", "--dataset", "fewrel", "--relations", "6-10", "--way", "7"],
     "7-way episodes need 7 classes"),
    (["chapters.applications.baseline", "--dataset", "huffpost", "--relations", "6-10"], "drop it for --dataset huffpost"),
])
def test_bad_input_is_one_line_and_exit_2(command, message, tmp_path, capsys):
    """``python -m <module> <options>``, run in-process as the command line runs it (``common.cli.run``)."""
    module, *argv = command
    with pytest.raises(SystemExit) as stop:
        run(importlib.import_module(module).main, [*argv, "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "runs").exists()


def test_word_vectors_from_a_file_start_the_embeddings(tmp_path):
    from chapters.applications.train import load_word_vectors
    from common.errors import CorruptDataError

    dataset = synthetic_text(False)
    example = EpisodeSampler(dataset, 3, 1, 1).episode(0)
    learner = learners("protonet", dataset, example)["torch"]
    before = to_canonical(learner.model, "torch")["encoder.words.embeddings"]
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("w5 " + " ".join(["0.5"] * 50) + "\nnot-in-vocabulary " + " ".join(["1"] * 50) + "\n")
    assert load_word_vectors(learner, "torch", str(vectors), dataset.vocabulary) == 1
    after = to_canonical(learner.model, "torch")["encoder.words.embeddings"]
    row = dataset.vocabulary.words.index("w5")
    assert np.allclose(after[row], 0.5) and np.allclose(np.delete(after, row, 0), np.delete(before, row, 0))
    vectors.write_text("w5 0.1 0.2\n")
    with pytest.raises(CorruptDataError, match="line 1 has 2 numbers, not 50"):
        load_word_vectors(learner, "torch", str(vectors), dataset.vocabulary)


FEWREL_TOLERANCE_POINTS = 1.0  # accuracy spread of the three frameworks (measured 0-0.15)
FEWREL_UPDATE_RATIO = 1.10  # the last steps' size in TensorFlow or Keras over PyTorch's (measured 1 to 4e-4)
FEWREL_SAME_MODEL_FLIPS = 2  # float32 labels of PyTorch's trained model, loaded into TensorFlow or Keras (measured 0)
# algorithm -> (learned: each framework's accuracy above this, %; labels of TF's or Keras' own trained
# model unlike PyTorch's, of 2,000: at most this, twice the largest measured)
FEWREL = {"protonet": (30, 30),  # 37.4-42.7 %; unlike 2-14
          "matching": (30, 30),  # 35.4-37.6 %; unlike 0 (TensorFlow and Keras end in PyTorch's model)
          "maml": (23, 40)}      # 25.7-28.2 % (chance 20); unlike 6-20


@pytest.fixture(scope="module")
def fewrel():
    from tests.conftest import require_data

    require_data("fewrel/val_wiki.json")
    from common.data import load_dataset

    train_set = load_dataset("fewrel", "train")
    return train_set, list(evaluation_episodes(load_dataset("fewrel", "val"), 5, 5, 10, count=40))


@pytest.mark.parametrize("algorithm", FEWREL)
def test_short_training_on_fewrel_reaches_the_same_accuracy_in_every_framework(algorithm, fewrel):
    """Statistical agreement (as ``test_metric_agreement.py`` for images, with its measurements from
    ``tests/agreement_helpers.py``), and a trained text model moving between frameworks. Each learner
    as the script builds it around the Proto-CNN, the same float32 start and the same 60 FewRel
    episodes (5-way 5-shot) in the three frameworks: ProtoNet and Matching Networks at rate 1e-3
    halved every 20, MAML 60 meta-iterations of 4 tasks (β 1e-3, α 5, one inner step in training and
    test, second order). Scored on the same 40 fixed validation episodes (2,000 queries).

    Tolerances from seeds 0-3 of the sampler and the initial weights (results/applications/NOTES.md,
    "The FewRel agreement test's tolerances"). The text CNN's float32 trajectories part slowly or not
    at all: the three trained models label 0-20 of the 2,000 queries differently, their accuracies are
    within 0.15 points and their last five steps have the same size to 4e-4. The bugs planted in
    TensorFlow all still learned, and all moved accuracy by less than 6 points:

    * ProtoNet or Matching Networks ignoring the decay (a constant 1e-3): 396-961 unlike labels,
      steps 3.7-4.3 times PyTorch's, accuracy within 2.3-3.8 points (the old 4-point tolerance let
      ProtoNet's through);
    * MAML with twice the meta-rate: 967-1,242 unlike labels, steps 1.5-1.7 times; first order
      (no Hessian term): 1,426-1,664 unlike, steps 0.57-0.62 times; 3 inner steps at test time
      instead of 1: 1,568-1,586 unlike and as many labels of PyTorch's model flipped there; α = 4
      instead of 5: 151-214 unlike and 35-36 flips, accuracy within 0.8 points.

    So: at most 30 (MAML 40) unlike labels, twice the largest of the correct runs, sees a framework
    that trains another model (a wrong rate, schedule, loss or inner loop) from ~2% of labels on; the
    last five steps' size within 1.10 of PyTorch's (a missed halving makes it 2); the accuracy spread
    within 1 point; PyTorch's trained model loaded into TensorFlow and Keras at most 2 flipped labels
    in float32 (measured 0) and none in float64 (the three built in float64, PyTorch's trained
    weights cast): a converter, encoder or evaluation path wrong only for trained weights (padding
    rows, position tables, the test-time inner loop).

    It cannot see a bug that changes no label of a trained model at this budget, or one in the
    shared text loader or sampler (``test_text_data.py``, ``test_shared_properties.py``)."""
    train_set, episodes = fewrel
    learned, unlike = FEWREL[algorithm]
    sampler = EpisodeSampler(train_set, 5, 5, 5, seed=0)
    if algorithm == "maml":  # no schedule: MAML's meta-rate is constant
        options, sampler = {"inner_lr": 5.0, "inner_steps": 1, "test_inner_steps": 1}, MetaBatches(sampler, 4)
    else:
        options = {"decay_every": 20}
    with keras_floatx("float32"):
        torch.set_default_dtype(torch.float32)
        built = {framework: build_learner(settings(algorithm, lr=1e-3, **options), framework,
                                          build_model(algorithm, framework, "cnn", 5, encoder_args(train_set), 0),
                                          sampler.episode(0))
                 for framework in FRAMEWORKS}
        run = train_and_compare(built, sampler, episodes, 60)
    print(run)  # pytest -s shows what was measured
    assert min(run.accuracy.values()) > learned, f"{algorithm} on FewRel did not learn: {run.accuracy}"
    run.check(f"{algorithm} on FewRel", update_ratio=FEWREL_UPDATE_RATIO, flips=FEWREL_SAME_MODEL_FLIPS,
              spread=FEWREL_TOLERANCE_POINTS, unlike=unlike,
              why_steps="another learning rate at the end of the schedule?")

    torch.set_default_dtype(torch.float64)  # the trained model in float64 (this module's fixture: Keras too)
    moved = learners(algorithm, train_set, sampler.episode(0), way=5, **options)
    assert moved_model_flips(to_canonical(model_of(built["torch"]), "torch"), moved, episodes) == \
        {"tf": 0, "keras": 0}
