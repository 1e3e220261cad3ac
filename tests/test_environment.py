"""One pinned set of versions: requirements.txt, environment.yml and the running environment agree,
and the README's quick start is what CI and make run."""

import re
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pins(text: str) -> dict:
    return {name.lower(): version for name, version in re.findall(r"^\s*(?:-\s+)?([A-Za-z0-9_.\-]+)==([^\s#]+)", text, re.M)}


def test_pip_and_conda_pin_the_same_versions():
    pip_pins = pins((ROOT / "requirements.txt").read_text())
    conda_pins = pins((ROOT / "environment.yml").read_text())
    assert pip_pins == conda_pins
    for required in ("torch", "tensorflow", "keras", "numpy", "matplotlib", "pillow", "jupyter",
                     "nbclient", "tqdm", "pytest"):
        assert required in pip_pins, f"{required} must be pinned"
    assert pip_pins["torch"] == "2.13.0" and pip_pins["tensorflow"] == "2.21.0"
    assert pip_pins["keras"].startswith("3.")
    assert "python=3.11" in (ROOT / "environment.yml").read_text()


@pytest.mark.parametrize("package", sorted(pins((ROOT / "requirements.txt").read_text())))
def test_installed_versions_are_the_pinned_ones(package):
    wanted = pins((ROOT / "requirements.txt").read_text())[package]
    installed = metadata.version(package)
    assert installed.split("+")[0] == wanted, f"{package} {installed} is installed, {wanted} is pinned: run `make setup`"


def test_quick_start_is_two_make_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^make \w+", quick_start, re.M)
    assert commands == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: setup\n\t\$\(PY\) -m pytest", makefile, re.M)


def test_keras_runs_on_the_tensorflow_backend():
    import keras
    assert keras.backend.backend() == "tensorflow"


def test_no_module_shadows_a_framework():
    shadows = [p for p in ROOT.rglob("*.py") if ".venv" not in p.parts and p.name in ("torch.py", "tensorflow.py", "keras.py")]
    assert not shadows
