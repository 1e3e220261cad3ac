"""The planted bugs of ``tools/mutations.toml`` still apply to the code: each edit finds its text once.

``python -m tools.mutations`` runs the tests against each mutation (too long for the suite); this
only keeps the list from going stale as the code it mutates changes.
"""

import shlex
from pathlib import Path

import pytest

from tools.mutations import MUTATIONS, ROOT, occurrences


def test_the_mutations_have_distinct_names():
    names = [m.name for m in MUTATIONS]
    assert len(names) == len(set(names)) and len(names) > 30


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_every_mutation_applies_once_and_names_tests_that_exist(mutation):
    assert occurrences(mutation, (ROOT / mutation.path).read_text()) == [1] * len(mutation.edits()), \
        f"{mutation.name}: update old/new in tools/mutations.toml to the code of {mutation.path}"
    files = [arg.split("::")[0] for arg in mutation.tests if arg.startswith("tests/")]
    assert files and all(Path(ROOT, f).is_file() for f in files), shlex.join(mutation.tests)
