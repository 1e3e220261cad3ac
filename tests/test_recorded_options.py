"""``tools.recorded_options`` compares each results file with the run its command rebuilds: an option
that a script began to record later is filled in only for files written before it existed."""

from common.training import Run
from tools.recorded_options import differences, unrecorded

OPTIONS = {"meta_batch": 32, "backbone": "maxpool", "inner_steps": 1, "test_inner_steps": 3, "meta_lr": 1e-3,
           "transductive": True, "inner_lr": 0.4, "first_order": False}


def rebuilt(**options) -> Run:
    return Run(algorithm="maml-transductive", framework="torch", dataset="omniglot", way=5, shot=1, query=1,
               test_way=5, test_shot=1, test_query=15, episodes=100, options={**OPTIONS, **options})


def result(date: str, **options) -> dict:
    recorded = {name: value for name, value in {**OPTIONS, **options}.items() if value is not None}
    return {"algorithm": "maml-transductive", "framework": "torch", "dataset": "omniglot", "train_way": 5,
            "train_shot": 1, "train_query": 1, "seed": 0, "date": date, "options": recorded}


def test_a_file_older_than_the_backbone_option_ran_the_max_pool_network():
    old = result("2026-12-01T20:10:14+00:00", backbone=None)
    assert unrecorded(old, rebuilt().options) == {"backbone": "maxpool"}
    assert differences(old, rebuilt()) == (
        [], ["options.backbone: not recorded (the file predates the option), 'maxpool' as every run then"])
    # The file's run had max-pooling: a command that now builds the strided network differs from it.
    assert differences(old, rebuilt(backbone="strided"))[0] == [
        "options.backbone: 'maxpool' in the file, 'strided' rebuilt"]


def test_a_later_file_without_the_option_differs():
    later = result("2026-12-05T12:00:00+00:00", backbone=None)
    assert unrecorded(later, rebuilt().options) == {}
    assert differences(later, rebuilt()) == (["options.backbone: '(none)' in the file, 'maxpool' rebuilt"], [])


def test_an_option_the_file_records_is_compared_as_it_is():
    assert differences(result("2026-12-01T20:10:14+00:00", backbone="strided"), rebuilt()) == (
        ["options.backbone: 'strided' in the file, 'maxpool' rebuilt"], [])
