"""Shared test fixtures.

Tests on real data read the offline copies through the project's own loaders (``METALEARN_DATA``
points at them in CI). Without them a developer's run skips those tests with a reason; in CI
(``CI`` set) a missing data set is a failure, never a silent skip.
"""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the log

from common.allocator import keep_freed_memory  # noqa: E402
from common.data.store import data_root  # noqa: E402

keep_freed_memory()  # as every script does (common/allocator.py): training steps without page-fault storms


def require_data(relative: str) -> Path:
    """The path of an offline data file, or skip (fail in CI) when it is not there."""
    path = data_root() / relative
    if not path.exists():
        message = f"{path} not found; set METALEARN_DATA to the folder with the offline data"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def omniglot_train():
    require_data("omniglot/images_background.zip")
    from common.data import load_dataset
    return load_dataset("omniglot", "train")


@pytest.fixture(scope="session")
def omniglot_splits(omniglot_train):
    from common.data import load_dataset
    return {"train": omniglot_train, "val": load_dataset("omniglot", "val"),
            "test": load_dataset("omniglot", "test")}


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """A private, empty cache folder for tests that build caches."""
    monkeypatch.setenv("METALEARN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
