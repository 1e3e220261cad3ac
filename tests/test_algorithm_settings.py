"""Each algorithm's settings live in one dataclass (``MAMLConfig``, ``ProtoNetConfig``, ...): its
defaults are the command line's, it is built from the parsed options in one place, and its
``options`` are what results and checkpoints record. Nothing here loads data or builds a model:
the scripts are stopped where they hand their settings to the training."""

import pytest

from chapters.applications import train as text_train
from chapters.metric import matching, protonet, siamese
from chapters.metric import train as metric_train
from chapters.model_based import mann
from chapters.optimization import lstm_meta_learner, maml, metasgd, reptile, sinusoid
from chapters.optimization import train as optimization_train
from common.errors import ConfigError

SCRIPTS = [(protonet, protonet.ProtoNetConfig, metric_train), (matching, matching.MatchingConfig, metric_train),
           (siamese, siamese.SiameseConfig, metric_train), (maml, maml.MAMLConfig, optimization_train),
           (metasgd, metasgd.MetaSGDConfig, optimization_train), (reptile, reptile.ReptileConfig, optimization_train)]


def settings(script, chapter, argv, monkeypatch):
    """(algorithm, settings) that ``script`` would train with for the options ``argv``."""
    monkeypatch.setattr(chapter, "train_and_test", lambda algorithm, args, config: (algorithm, config))
    return script.main(argv)


@pytest.mark.parametrize("script,config_class,chapter", SCRIPTS, ids=[c.__name__ for _, c, _ in SCRIPTS])
def test_the_command_lines_defaults_are_the_settings_defaults(script, config_class, chapter, monkeypatch):
    _, config = settings(script, chapter, [], monkeypatch)
    if config_class is reptile.ReptileConfig:  # ε anneals over the run's meta-iterations unless --no-anneal
        assert config == config_class(anneal_steps=100_000)
    else:
        assert config == config_class()


def test_the_recorded_options_keep_their_names_and_values(monkeypatch):
    """The options of a few commands, as the committed results record them: a change of a name or of
    what is left out would leave those runs' checkpoints unresumable."""
    algorithm, config = settings(maml, optimization_train, ["--first-order", "--backbone", "strided"], monkeypatch)
    assert algorithm == "fomaml" and config.options() == {
        "meta_batch": 32, "backbone": "strided", "inner_steps": 1, "test_inner_steps": 3, "meta_lr": 1e-3,
        "transductive": False, "inner_lr": 0.4, "first_order": True}
    _, config = settings(maml, optimization_train, ["--inner-loss", "sum"], monkeypatch)
    assert config.options()["inner_loss"] == "sum"
    _, config = settings(metasgd, optimization_train, ["--seed", "3"], monkeypatch)
    assert config.options() == {"meta_batch": 32, "backbone": "maxpool", "inner_steps": 1, "test_inner_steps": 1,
                                "meta_lr": 1e-3, "transductive": False, "inner_lr_range": (0.005, 0.1),
                                "first_order": False, "seed": 3}
    _, config = settings(reptile, optimization_train, ["--no-anneal", "--inner-batch", "10"], monkeypatch)
    assert config.options() == {"meta_batch": 5, "backbone": "maxpool", "inner_steps": 5, "test_inner_steps": 50,
                                "meta_lr": 1.0, "transductive": False, "inner_lr": 0.1, "anneal_steps": None,
                                "inner_batch": 10, "inner_optimizer": "sgd"}
    # A short run can follow a longer run's ε schedule (frameworks compared at equal iterations).
    _, config = settings(reptile, optimization_train, ["--episodes", "5000", "--anneal-over", "100000"], monkeypatch)
    assert config.anneal_steps == 100_000
    with pytest.raises(ConfigError, match="contradict"):
        settings(reptile, optimization_train, ["--no-anneal", "--anneal-over", "100000"], monkeypatch)
    _, config = settings(matching, metric_train, ["--cosine-scale", "10"], monkeypatch)
    assert (config.lr, config.decay_every) == (1e-3, 2000)
    assert config.model_options((28, 28, 1)) == {"fce": False, "cosine_scale": 10.0}
    _, config = settings(matching, metric_train, ["--fce", "--distance", "cosine_times_query_norm"], monkeypatch)
    assert config.model_options((84, 84, 3)) == {"fce": True, "fce_steps": 5, "embedding_size": 1600,
                                                 "distance": "cosine_times_query_norm"}
    _, config = settings(siamese, metric_train, [], monkeypatch)
    assert config.model_options((28, 28, 1)) == {"embedding_size": 64}


@pytest.mark.parametrize("script,argv,message", [
    (matching, ["--distance", "squared_euclidean", "--cosine-scale", "10"], "cannot be combined"),
    (metasgd, ["--inner-lr-low", "0.2", "--inner-lr-high", "0.1"], "need 0 < low <= high"),
])
def test_settings_that_cannot_work_together_are_refused_where_they_are_built(script, argv, message, monkeypatch):
    chapter = metric_train if script is matching else optimization_train
    with pytest.raises(ConfigError, match=message):
        settings(script, chapter, argv, monkeypatch)


# The scripts whose settings are parsed by a function of their own (MANN, the sinusoid learners, the
# LSTM meta-learner, the text learners): the settings of their parsed defaults, and those expected.
PARSED = [(mann.MANNConfig, mann.parse_args, mann.MANNConfig()),
          # Reptile's ε anneals over the run's meta-iterations (--iterations, 70,000 by default).
          (sinusoid.SinusoidConfig, sinusoid.parse, sinusoid.SinusoidConfig(anneal_steps=70_000)),
          (lstm_meta_learner.LSTMMetaLearnerConfig, lstm_meta_learner.parse, lstm_meta_learner.LSTMMetaLearnerConfig()),
          (text_train.TextLearnerConfig, text_train.parse_args, text_train.TextLearnerConfig())]


@pytest.mark.parametrize("config_class,parse,expected", PARSED, ids=[c.__name__ for c, _, _ in PARSED])
def test_the_other_scripts_command_line_defaults_are_their_settings_defaults(config_class, parse, expected):
    assert config_class.from_args(parse([])) == expected


def test_the_other_scripts_recorded_options_keep_their_names_and_values():
    """As the committed results of MANN, the sinusoid and text learners record them (and as the LSTM
    meta-learner's runs did): other names would leave those runs' checkpoints unresumable."""
    network = {"way": 5, "image_size": 20, "controller": 200}
    memory = {"memory_rows": 128, "memory_width": 40, "read_heads": 4, "gamma": 0.95}
    training = {"batch": 16, "lr": 1e-4, "shift": 2.0, "angle": 10.0}
    assert mann.MANNConfig.from_args(mann.parse_args([])).options() == {**network, **memory, **training}
    lstm = mann.MANNConfig.from_args(mann.parse_args(["--model", "lstm"]))
    assert lstm.network() == network and lstm.options() == {**network, **training}

    def sinusoid_options(*argv):
        return sinusoid.SinusoidConfig.from_args(sinusoid.parse(list(argv))).options()

    common = {"meta_batch": 25, "inner_steps": 1, "meta_lr": 1e-3}
    assert sinusoid_options("--shot", "5") == {**common, "inner_lr": 0.01, "first_order": False}
    assert sinusoid_options("--algorithm", "fomaml")["first_order"] is True
    assert sinusoid_options("--algorithm", "metasgd", "--seed", "2") == {**common, "inner_lr_range": (0.005, 0.1),
                                                                          "seed": 2}
    assert sinusoid_options("--algorithm", "reptile", "--iterations", "3000", "--meta-lr", "1") == {
        **common, "meta_lr": 1.0, "inner_lr": 0.01, "anneal_steps": 3000}
    meta_learner = lstm_meta_learner.LSTMMetaLearnerConfig.from_args(lstm_meta_learner.parse(["--seed", "4"]))
    assert meta_learner.options() == {"meta_batch": 25, "steps": 5, "hidden": 20, "meta_lr": 1e-3}

    def text_options(*argv):
        return text_train.TextLearnerConfig.from_args(text_train.parse_args(list(argv))).options()

    assert text_options() == {"encoder": "cnn", "embedding_size": 230, "lr": 1e-3, "decay_every": 2000}
    assert text_options("--algorithm", "matching", "--distance", "cosine_times_query_norm")["distance"] == \
        "cosine_times_query_norm"
    assert "distance" not in text_options("--algorithm", "matching")  # Eq. 2's cosine: no deviation
    assert text_options("--algorithm", "maml", "--inner-steps", "2") == {
        "encoder": "cnn", "embedding_size": 230, "lr": 1e-3, "meta_batch": 4, "inner_lr": 5.0, "inner_steps": 2,
        "test_inner_steps": 2, "first_order": False}


def test_a_text_option_of_another_learner_is_refused_where_the_settings_are_built():
    with pytest.raises(ConfigError, match="Matching Networks' option"):
        text_train.TextLearnerConfig.from_args(text_train.parse_args(["--distance", "squared_euclidean"]))
