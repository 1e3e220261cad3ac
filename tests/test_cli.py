"""Bad input from the command line: one clear line on stderr, exit status 2, no stack trace."""

import os
import subprocess
import sys

import pytest

from common import cli
from common.errors import ConfigError
from tests.conftest import require_data


def run(*args, env=None):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("args,message", [
    (["--dataset", "imagenet"], "unknown data set 'imagenet'; choose one of: omniglot, mini-imagenet, cifar-fs"),
    (["--way", "5000"], "5000-way episodes need 5000 classes, but the omniglot train split has only 4112"),
    (["--shot", "15", "--query", "10"], "need 25 examples per class"),
    (["--split", "validation"], "has splits"),
])
def test_viewer_rejects_bad_settings_clearly(args, message, tmp_path):
    require_data("omniglot/images_background.zip")
    done = run("-m", "tools.viewer", "--out", str(tmp_path / "e.png"), *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


def test_missing_data_offline_names_the_folder(tmp_path):
    env = dict(os.environ, METALEARN_DATA=str(tmp_path / "nothing-here"), METALEARN_CACHE=str(tmp_path / "cache"))
    # The split file is fetched first; where there is no network the download fails at once.
    code = ("import common.data.omniglot as o, common.data.store as s;"
            "o.VINYALS_SPLITS['train'] = s.Resource('train.txt', 'http://127.0.0.1:9/train.txt', sha256='0');"
            "o.ARCHIVES['background'] = s.Resource('images_background.zip', 'http://127.0.0.1:9/b.zip', md5='0');"
            "from tools.viewer import main; from common.cli import run; run(main, ['--out', 'x.png'])")
    done = run("-c", code, env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "nothing-here/omniglot" in done.stderr and "is missing and the download failed" in done.stderr


def test_uninstalled_framework_is_a_clear_error(monkeypatch):
    real_find_spec = cli.importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: None if name == "tensorflow" else real_find_spec(name))
    with pytest.raises(ConfigError, match="--framework tf needs the 'tensorflow' package"):
        cli.require_framework("tf")
    with pytest.raises(ConfigError, match="unknown framework 'pytorch'"):
        cli.require_framework("pytorch")
    cli.require_framework("torch")
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    with pytest.raises(ConfigError, match="TensorFlow backend"):
        cli.require_framework("keras")


def test_episode_parser_has_the_shared_options():
    args = cli.episode_parser("x").parse_args(["--framework", "keras", "--way", "20", "--test-shot", "5"])
    assert (args.framework, args.way, args.test_shot, args.dataset) == ("keras", 20, 5, "omniglot")
    with pytest.raises(ConfigError, match="--framework must be one of torch, tf, keras, got 'tensorflow'"):
        cli.episode_parser("x").parse_args(["--framework", "tensorflow"])


def test_output_piped_into_a_closed_reader_ends_quietly():
    # `python -m chapters.metric.reproduce --commands | head -3`: head closes the pipe early.
    code = ("from common.cli import run\n"
            "def main():\n"
            "    for i in range(100000): print('line', i)\n"
            "run(main)")
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    writer.stdout.readline()
    writer.stdout.close()
    stderr = writer.stderr.read().decode()
    assert writer.wait() == 1
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
