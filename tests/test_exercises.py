"""The exercise checker and every exercise of the book.

For each exercise folder: the reference solution passes every check, the untouched starter is
reported as not written yet, and typical wrong answers fail with a message that names the mistake.
Then the command line: exit statuses, and one readable line for a file that does not even import.
"""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from common.data.base import FewShotDataset
from common.episodes import EpisodeSampler, to_float
from common.exercises import (ERROR, FAIL, PASS, SKIP, TODO, check_exercise, find_exercises,
                              import_fresh, summary)
from tests.conftest import require_data

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = find_exercises(ROOT / "chapters")
FOUNDATIONS = ROOT / "chapters" / "foundations" / "exercises"
METRIC = ROOT / "chapters" / "metric" / "exercises"


def by_name(outcomes):
    return {outcome.name: outcome for outcome in outcomes}


def skip_unless_all_ran(outcomes):
    """Checks that needed a missing data set were skipped: skip the test too (fail it in CI)."""
    if any(outcome.status == SKIP for outcome in outcomes):
        require_data("omniglot/images_background.zip")


def test_the_book_has_exercises():
    assert [folder.name for folder in find_exercises(ROOT / "chapters" / "foundations")] == [
        "01_episode_sampler", "02_confidence_interval", "03_nearest_neighbour_baseline"]


@pytest.mark.parametrize("folder", EXERCISES, ids=lambda folder: f"{folder.parent.parent.name}/{folder.name}")
def test_solution_passes_every_check(folder):
    """...and checking leaves no bytecode behind in the reader's folder."""
    outcomes = check_exercise(folder, solution=True)
    assert outcomes, f"{folder}/checks.py defines no check_* functions"
    bad = [str(outcome) for outcome in outcomes if outcome.status not in (PASS, SKIP)]
    assert not bad, "\n".join(bad)
    assert not (folder / "__pycache__").exists(), f"{folder} got a __pycache__ folder"
    skip_unless_all_ran(outcomes)


@pytest.mark.parametrize("folder", EXERCISES, ids=lambda folder: f"{folder.parent.parent.name}/{folder.name}")
def test_untouched_starter_is_not_written_yet(folder):
    outcomes = check_exercise(folder)
    assert outcomes and all(outcome.status in (TODO, SKIP) for outcome in outcomes), \
        "\n".join(map(str, outcomes))
    assert any(outcome.status == TODO for outcome in outcomes)
    assert "not written yet" in summary(outcomes)
    for folder_file in ("README.md", "exercise.py", "solution.py", "checks.py"):
        assert (folder / folder_file).is_file()
    statement = (folder / "README.md").read_text()
    assert f"python -m common.exercises check {folder.relative_to(ROOT).as_posix()}" in statement


# --------------------------------------------------------------------------------------------
# Wrong answers fail, and say why
# --------------------------------------------------------------------------------------------

def answer(tmp_path, exercise, source, root=FOUNDATIONS):
    """A copy of ``exercise`` (a folder of ``root``) whose exercise.py is ``source``: a reader's
    (wrong) attempt."""
    folder = tmp_path / exercise
    shutil.copytree(root / exercise, folder)
    (folder / "exercise.py").write_text(textwrap.dedent(source))
    return folder


SAMPLER_HEAD = """
    import numpy as np

    def sample_episode(images, way, shot, query, rng):
        n_classes, n_examples = images.shape[:2]
        shape = images.shape[2:]
"""
SAMPLER_WRONG = {
    # Support and query drawn independently: a query can be one of the support examples.
    "leaks a support example into the query set": ("""
        classes = rng.choice(n_classes, way, replace=False)
        support = np.stack([rng.choice(n_examples, shot, replace=False) for _ in classes])
        query = np.stack([rng.choice(n_examples, query, replace=False) for _ in classes])
        return (images[classes[:, None], support].reshape(-1, *shape), np.repeat(np.arange(way), shot),
                images[classes[:, None], query].reshape(-1, *shape), np.repeat(np.arange(way), len(query[0])))
    """, "check_support_and_query_are_disjoint", "in both the support and the query set"),
    "keeps the data set's class indices as labels": ("""
        classes = rng.choice(n_classes, way, replace=False)
        order = rng.permutation(n_examples)
        sx = images[classes[:, None], order[None, :shot]].reshape(-1, *shape)
        qx = images[classes[:, None], order[None, shot:shot + query]].reshape(-1, *shape)
        return sx, np.repeat(classes, shot), qx, np.repeat(classes, query)
    """, "check_labels_are_0_to_n_minus_1_class_by_class", "class indices: remap them"),
    "draws examples with replacement": ("""
        classes = rng.choice(n_classes, way, replace=False)
        picks = rng.integers(n_examples, size=(way, shot + query))
        x = images[classes[:, None], picks]
        return (x[:, :shot].reshape(-1, *shape), np.repeat(np.arange(way), shot),
                x[:, shot:].reshape(-1, *shape), np.repeat(np.arange(way), query))
    """, "check_support_and_query_are_disjoint", "without replacement"),
    "draws the same class twice": ("""
        classes = rng.integers(n_classes, size=way)
        order = rng.random((way, n_examples)).argsort(axis=1)
        x = images[classes[:, None], order]
        return (x[:, :shot].reshape(-1, *shape), np.repeat(np.arange(way), shot),
                x[:, shot:shot + query].reshape(-1, *shape), np.repeat(np.arange(way), query))
    """, "check_each_label_is_one_class_and_classes_are_distinct", "*different* classes"),
    "uses NumPy's global random state": ("""
        classes = np.random.choice(n_classes, way, replace=False)
        order = np.random.rand(way, n_examples).argsort(axis=1)
        x = images[classes[:, None], order]
        return (x[:, :shot].reshape(-1, *shape), np.repeat(np.arange(way), shot),
                x[:, shot:shot + query].reshape(-1, *shape), np.repeat(np.arange(way), query))
    """, "check_uses_only_the_rng_it_is_given", "from the rng argument"),
    "sorts the drawn classes": ("""
        classes = np.sort(rng.choice(n_classes, way, replace=False))
        order = rng.random((way, n_examples)).argsort(axis=1)
        x = images[classes[:, None], order]
        return (x[:, :shot].reshape(-1, *shape), np.repeat(np.arange(way), shot),
                x[:, shot:shot + query].reshape(-1, *shape), np.repeat(np.arange(way), query))
    """, "check_classes_examples_and_labels_are_random", "the same label in every episode"),
    "always takes the first examples": ("""
        classes = rng.choice(n_classes, way, replace=False)
        x = images[classes]
        return (x[:, :shot].reshape(-1, *shape), np.repeat(np.arange(way), shot),
                x[:, shot:shot + query].reshape(-1, *shape), np.repeat(np.arange(way), query))
    """, "check_classes_examples_and_labels_are_random", "choose the examples of each class at random"),
    "converts the images to float": ("""
        classes = rng.choice(n_classes, way, replace=False)
        order = rng.random((way, n_examples)).argsort(axis=1)
        x = images[classes[:, None], order] / 255
        return (x[:, :shot].reshape(-1, *shape), np.repeat(np.arange(way), shot),
                x[:, shot:shot + query].reshape(-1, *shape), np.repeat(np.arange(way), query))
    """, "check_shapes_and_types", "keep the dtype of images"),
}


@pytest.mark.parametrize("mistake", SAMPLER_WRONG)
def test_wrong_sampler_fails_with_a_helpful_message(tmp_path, mistake):
    body, check, words = SAMPLER_WRONG[mistake]
    folder = answer(tmp_path, "01_episode_sampler", SAMPLER_HEAD + textwrap.indent(textwrap.dedent(body), " " * 8))
    outcome = by_name(check_exercise(folder))[check]
    assert outcome.status == FAIL and words in outcome.message, str(outcome)


CI_WRONG = {
    "np.std with ddof=0": ("1.96 * values.std() / math.sqrt(values.size)", "ddof=0"),
    "no factor 1.96": ("values.std(ddof=1) / math.sqrt(values.size)", "without the factor 1.96"),
    "divided by n": ("1.96 * values.std(ddof=1) / values.size", "instead of sqrt(n)"),
}


@pytest.mark.parametrize("mistake", CI_WRONG)
def test_wrong_confidence_interval_fails_with_a_helpful_message(tmp_path, mistake):
    interval, words = CI_WRONG[mistake]
    folder = answer(tmp_path, "02_confidence_interval", f"""
        import math
        import numpy as np

        def mean_ci95(accuracies):
            values = np.asarray(accuracies, dtype=float)
            if values.size == 0:
                raise ValueError("no values")
            if values.size == 1:
                return float(values[0]), 0.0
            return float(values.mean()), float({interval})
    """)
    outcomes = by_name(check_exercise(folder))
    assert outcomes["check_known_values"].status == FAIL
    assert words in outcomes["check_known_values"].message, str(outcomes["check_known_values"])
    assert outcomes["check_matches_common_evaluation"].status == FAIL
    assert outcomes["check_one_episode_has_no_interval"].status == PASS


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the wrong answer divides by n - 1 = 0
def test_confidence_interval_of_one_value_must_not_be_nan(tmp_path):
    folder = answer(tmp_path, "02_confidence_interval", """
        import numpy as np

        def mean_ci95(accuracies):
            values = np.asarray(accuracies, dtype=float)
            if values.size == 0:
                raise ValueError("no values")
            return float(values.mean()), float(1.96 * values.std(ddof=1) / np.sqrt(values.size))
    """)
    outcomes = by_name(check_exercise(folder))
    assert outcomes["check_known_values"].status == PASS
    assert outcomes["check_one_episode_has_no_interval"].status == FAIL
    assert "(0.8, 0.0)" in outcomes["check_one_episode_has_no_interval"].message


NN_HEAD = """
    import numpy as np

    def predict(support_x, support_y, query_x):
        s = support_x.reshape(len(support_x), -1).astype(np.float64)
        q = query_x.reshape(len(query_x), -1).astype(np.float64)
"""
NN_WRONG = {
    "returns positions, not labels": ("return ((q[:, None] - s[None]) ** 2).sum(-1).argmin(1)",
                                      "check_labels_come_from_support_y", "support_y[position]"),
    "uses a dot product": ("return np.asarray(support_y)[(q @ s.T).argmax(1)]",
                           "check_distance_is_euclidean", "dot product"),
    "uses cosine similarity": (
        "s = s / np.linalg.norm(s, axis=1, keepdims=True); q = q / np.linalg.norm(q, axis=1, keepdims=True)\n"
        "return np.asarray(support_y)[(q @ s.T).argmax(1)]", "check_distance_is_euclidean", "cosine"),
    "compares with class means": (
        "means = np.stack([s[support_y == c].mean(0) for c in range(support_y.max() + 1)])\n"
        "return ((q[:, None] - means[None]) ** 2).sum(-1).argmin(1)",
        "check_nearest_neighbour_not_nearest_mean", "mean of each class"),
}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # cosine similarity of an all-black image
@pytest.mark.parametrize("mistake", NN_WRONG)
def test_wrong_nearest_neighbour_fails_with_a_helpful_message(tmp_path, mistake):
    body, check, words = NN_WRONG[mistake]
    folder = answer(tmp_path, "03_nearest_neighbour_baseline", NN_HEAD + textwrap.indent(body, " " * 8))
    outcome = by_name(check_exercise(folder))[check]
    assert outcome.status == FAIL and words in outcome.message, str(outcome)


def test_l1_nearest_neighbour_misses_the_omniglot_range(tmp_path):
    """L1 passes the synthetic checks (uniform images order alike) but not the measured accuracy."""
    require_data("omniglot/images_background.zip")
    folder = answer(tmp_path, "03_nearest_neighbour_baseline",
                    NN_HEAD + "        return np.asarray(support_y)[np.abs(q[:, None] - s[None]).sum(-1).argmin(1)]\n")
    outcomes = by_name(check_exercise(folder))
    assert outcomes["check_clear_problem"].status == PASS
    assert outcomes["check_omniglot_5_way_1_shot"].status == FAIL
    assert "yours scored 41.59%" in outcomes["check_omniglot_5_way_1_shot"].message


def test_an_exception_in_the_readers_code_points_at_the_readers_line(tmp_path):
    folder = answer(tmp_path, "03_nearest_neighbour_baseline", """
        import numpy as np

        def predict(support_x, support_y, query_x):
            distances = support_x[:, None] - query_x[None, :, :, 0, 0, 0]
            return support_y[distances.argmin(1)]
    """)
    outcome = check_exercise(folder)[0]
    assert outcome.status == FAIL
    assert outcome.message.startswith("IndexError: too many indices")
    assert "(raised at exercise.py, line 5, in predict: `distances = support_x[:, None]" in outcome.message
    assert "checks.py" not in outcome.message


def test_a_wrong_kind_of_result_is_explained(tmp_path):
    folder = answer(tmp_path, "01_episode_sampler", """
        def sample_episode(images, way, shot, query, rng):
            return None
    """)
    outcome = check_exercise(folder)[0]
    assert outcome.status == FAIL and "should return a tuple (support_x, support_y, query_x, query_y)" in outcome.message


def test_each_check_gets_a_fresh_module(tmp_path):
    folder = tmp_path / "fresh"
    folder.mkdir()
    (folder / "exercise.py").write_text("counter = []\n")
    (folder / "checks.py").write_text(textwrap.dedent("""
        def check_first(module):
            module.counter.append(1)
            assert module.counter == [1]

        def check_second(module):
            assert module.counter == [], "module state leaked from the first check"
    """))
    assert [outcome.status for outcome in check_exercise(folder)] == [PASS, PASS]
    module = import_fresh(folder / "exercise.py")
    assert module.__name__ != import_fresh(folder / "exercise.py").__name__


def test_sampler_solution_makes_the_episodes_of_episode_sampler():
    """solution.py's docstring claims it draws exactly like EpisodeSampler.episode: hold it to that."""
    solution = import_fresh(FOUNDATIONS / "01_episode_sampler" / "solution.py")
    images = np.random.default_rng(0).integers(0, 256, size=(30, 12, 5, 5, 1), dtype=np.uint8)
    sampler = EpisodeSampler(FewShotDataset("synthetic", "train", images, tuple(map(str, range(30)))),
                             way=5, shot=2, query=3, seed=4)
    for index in range(5):
        mine = solution.sample_episode(images, 5, 2, 3, np.random.default_rng([4, index]))
        theirs = sampler.episode(index)
        for a, b in zip((to_float(mine[0]), mine[1], to_float(mine[2]), mine[3]), theirs):
            assert np.array_equal(a, b)


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------

def command(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "common.exercises", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_command_exit_status_is_0_only_when_every_check_passes():
    folder = "chapters/foundations/exercises/02_confidence_interval"
    passed = command("check", folder, "--solution")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    lines = passed.stdout.splitlines()
    assert lines[0] == "PASS check_known_values" and lines[-1] == "6 passed"
    todo = command("check", folder)
    assert todo.returncode == 1
    assert todo.stdout.splitlines()[0].startswith("TODO check_known_values: not written yet — mean_ci95:")
    assert todo.stdout.splitlines()[-1] == "6 not written yet"


def test_command_reports_a_failure_and_exits_1(tmp_path):
    folder = answer(tmp_path, "02_confidence_interval", """
        import numpy as np

        def mean_ci95(accuracies):
            values = np.asarray(accuracies, dtype=float)
            if values.size == 0:
                raise ValueError("no values")
            if values.size == 1:
                return float(values[0]), 0.0
            return float(values.mean()), float(1.96 * values.std() / np.sqrt(values.size))
    """)
    result = command("check", folder)
    assert result.returncode == 1
    assert "FAIL check_known_values: mean_ci95([0.5, 0.7, 0.6, 0.8]) should give ci95" in result.stdout
    assert result.stdout.splitlines()[-1] == "2 passed, 4 failed"
    assert "Traceback" not in result.stdout + result.stderr


def test_syntax_error_gives_one_line_with_the_line_number(tmp_path):
    folder = answer(tmp_path, "01_episode_sampler", """
        import numpy as np


        def sample_episode(images, way, shot, query, rng)
            return None
    """)
    result = command("check", folder)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    error, last = result.stdout.splitlines()
    assert error.startswith("ERROR exercise.py: cannot be imported, line 5: SyntaxError: ")
    assert "def sample_episode(images, way, shot, query, rng)" in error
    assert last.startswith("no checks ran")


def test_import_error_gives_one_line_with_the_line_number(tmp_path):
    folder = answer(tmp_path, "02_confidence_interval", "import math\nimport nunpy as np\n")
    result = command("check", folder)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == (
        "ERROR exercise.py: cannot be imported: ModuleNotFoundError: No module named 'nunpy' "
        "(exercise.py, line 2: `import nunpy as np`)")
    assert [o.status for o in check_exercise(folder)] == [ERROR]


def test_command_on_a_folder_that_is_not_an_exercise(tmp_path):
    result = command("check", tmp_path / "nowhere")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().startswith("error: ") and len(result.stderr.strip().splitlines()) == 1


def test_command_lists_the_exercises():
    result = command("list")
    assert result.returncode == 0
    assert "chapters/foundations/exercises/01_episode_sampler" in result.stdout
    assert "chapters/foundations/exercises/03_nearest_neighbour_baseline" in result.stdout
    assert result.stdout.splitlines()[-1].startswith(f"{len(EXERCISES)} exercises")


def test_a_broken_checks_file_is_one_error_line(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "exercise.py").write_text("")
    (folder / "checks.py").write_text("def check_it(module)\n    pass\n")
    [outcome] = check_exercise(folder)
    assert outcome.status == ERROR and outcome.name == "checks.py"
    assert "line 1: SyntaxError" in outcome.message


def test_a_bare_assert_in_a_check_still_says_where(tmp_path):
    folder = tmp_path / "bare"
    folder.mkdir()
    (folder / "exercise.py").write_text("answer = 41\n")
    (folder / "checks.py").write_text("def check_answer(module):\n    assert module.answer == 42\n")
    [outcome] = check_exercise(folder)
    assert outcome.status == FAIL
    assert outcome.message == "assertion failed (checks.py, line 2, in check_answer: `assert module.answer == 42`)"


ADAM_WRONG = {  # the step a reader wrote, and the words of the diagnosis it must get
    "no bias correction": ("param - lr * m / (np.sqrt(v) + eps)", "without the bias correction"),
    "plain gradient descent": ("param - lr * grad", "plain gradient descent"),
    "no square root": ("param - lr * m / (1 - beta1 ** t) / (v / (1 - beta2 ** t) + eps)", "without the square root"),
    "uphill": ("param + lr * m / (1 - beta1 ** t) / (np.sqrt(v / (1 - beta2 ** t)) + eps)", "a step uphill"),
}


@pytest.mark.parametrize("mistake", ADAM_WRONG)
def test_wrong_adam_step_fails_with_a_helpful_message(tmp_path, mistake):
    step, words = ADAM_WRONG[mistake]
    folder = answer(tmp_path, "05_adam_steps", f"""
        import numpy as np

        def adam_step(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
            m = beta1 * m + (1 - beta1) * grad
            v = beta2 * v + (1 - beta2) * grad ** 2
            return {step}, m, v
    """, root=METRIC)
    outcomes = by_name(check_exercise(folder))
    first = outcomes["check_the_first_step_moves_every_weight_by_about_lr"]
    assert first.status == FAIL and words in first.message, str(first)
    assert outcomes["check_the_inputs_are_left_alone"].status == PASS


def test_adam_step_that_changes_its_inputs_in_place_is_refused(tmp_path):
    folder = answer(tmp_path, "05_adam_steps", """
        import numpy as np

        def adam_step(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
            m *= beta1
            m += (1 - beta1) * grad
            v *= beta2
            v += (1 - beta2) * grad ** 2
            return param - lr * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps), m, v
    """, root=METRIC)
    outcomes = by_name(check_exercise(folder))
    assert outcomes["check_the_first_step_moves_every_weight_by_about_lr"].status == PASS
    refused = outcomes["check_the_inputs_are_left_alone"]
    assert refused.status == FAIL and "changed its input m in place" in refused.message, str(refused)
