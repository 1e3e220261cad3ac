"""Each algorithm's settings live in one dataclass (``MAMLConfig``, ``ProtoNetConfig``, ...): its
defaults are the command line's, it is built from the parsed options in one place, and its
``options`` are what results and checkpoints record. Nothing here loads data or builds a model:
the scripts are stopped where they hand their settings to the training."""

import pytest

from chapters.metric import matching, protonet, siamese
from chapters.metric import train as metric_train
from chapters.optimization import maml, metasgd, reptile
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
