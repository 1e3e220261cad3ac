"""Downloads are all-or-nothing: checked against the official checksum, renamed into place only then.

A small HTTP server on 127.0.0.1 (a thread, a free port) plays the part of the official servers. It
can serve a file whole, cut it short (announcing more bytes than it sends, then hanging up), or
serve other bytes than the official ones. Finally the whole CIFAR-FS path runs against it:
download, verify, decode, cache.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from common.data import cifar_fs
from common.data.cifar_fs import load_cifar_fs
from common.data.store import Resource, download, fetch
from common.errors import DataNotFoundError, DownloadError
from tests.test_cifar_fs import archive_bytes, copy_split_files, make_cifar100

CONTENT = bytes(range(256)) * 4096  # 1 MiB: several read chunks


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files[path] = (body, announced length)``; a body shorter than announced is cut."""

    def do_GET(self):
        if self.path not in self.server.files:
            self.send_error(404)
            return
        body, announced = self.server.files[self.path]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(announced))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True  # hang up: a short body stays short

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture
def server():
    """A local HTTP server in a thread; ``serve(path, body, announced=None)`` adds a file, returns its URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files = {}
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()

    def serve(path: str, body: bytes, announced: int | None = None) -> str:
        httpd.files[path] = (body, len(body) if announced is None else announced)
        return f"http://127.0.0.1:{httpd.server_address[1]}{path}"

    yield serve
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _leftovers(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.glob(f"{name}*"))


def test_good_file_is_verified_and_renamed_into_place(server, tmp_path):
    url = server("/good.bin", CONTENT)
    resource = Resource("good.bin", url, sha256=hashlib.sha256(CONTENT).hexdigest())
    path = download(resource, tmp_path / "folder", quiet=True)
    assert path == tmp_path / "folder" / "good.bin"
    assert path.read_bytes() == CONTENT
    assert _leftovers(tmp_path / "folder", "good.bin") == ["good.bin"]  # no .part-* file
    # md5 works too, and fetch() does not download a file that is already there.
    assert fetch(Resource("good.bin", "http://127.0.0.1:1/never", md5="0" * 32), tmp_path / "folder", what="x") == path


def test_truncated_download_leaves_nothing(server, tmp_path):
    url = server("/short.bin", CONTENT[:300_000], announced=len(CONTENT))
    resource = Resource("short.bin", url, sha256=hashlib.sha256(CONTENT).hexdigest())
    with pytest.raises(DownloadError, match="stopped after|IncompleteRead"):
        download(resource, tmp_path, quiet=True)
    assert _leftovers(tmp_path, "short.bin") == []


def test_wrong_checksum_leaves_nothing(server, tmp_path):
    url = server("/other.bin", CONTENT)
    resource = Resource("other.bin", url, md5=hashlib.md5(b"the official bytes").hexdigest())
    with pytest.raises(DownloadError, match="md5"):
        download(resource, tmp_path, quiet=True)
    assert _leftovers(tmp_path, "other.bin") == []


def test_missing_on_server_becomes_data_not_found(server, tmp_path):
    url = server("/elsewhere.bin", CONTENT)
    resource = Resource("gone.bin", url.replace("elsewhere", "gone"), sha256="0" * 64)
    with pytest.raises(DataNotFoundError, match="gone.bin"):
        fetch(resource, tmp_path, what="a test file")
    assert _leftovers(tmp_path, "gone.bin") == []


# --------------------------------------------------------------------------------------------
# The whole loader path: CIFAR-FS downloads its archive from the local server
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def archive():
    return archive_bytes(make_cifar100(train_per_class=2, test_per_class=1))


@pytest.fixture
def root(tmp_path, fresh_cache):
    copy_split_files(tmp_path / "data")
    return tmp_path / "data"


def _serve_archive(server, monkeypatch, body: bytes, official: bytes) -> None:
    """Point the loader's Resource at the local server; its md5 is that of ``official``."""
    url = server("/~kriz/cifar-100-python.tar.gz", body)
    monkeypatch.setattr(cifar_fs, "ARCHIVE", Resource("cifar-100-python.tar.gz", url,
                                                      md5=hashlib.md5(official).hexdigest()))


def test_loader_downloads_verifies_and_loads(server, monkeypatch, root, archive):
    _serve_archive(server, monkeypatch, archive, official=archive)
    dataset = load_cifar_fs("test", root)
    assert dataset.images.shape == (20, 3, 32, 32, 3)
    folder = root / "cifar100"
    assert (folder / "cifar-100-python.tar.gz").read_bytes() == archive
    assert not list(folder.glob("*.part-*"))
    assert (root.parent / "cache" / "cifar100" / "cifar-100-32px" / "meta.json").is_file()


def test_loader_with_corrupted_download_leaves_no_archive_and_no_cache(server, monkeypatch, root, archive):
    corrupted = bytearray(archive)
    middle = len(corrupted) // 2
    corrupted[middle:middle + 4096] = bytes(4096)  # same size, other bytes
    _serve_archive(server, monkeypatch, bytes(corrupted), official=archive)
    with pytest.raises(DataNotFoundError, match="md5"):
        load_cifar_fs("train", root)
    assert _leftovers(root / "cifar100", "cifar-100-python") == []  # neither the archive nor a .part-*
    assert not (root.parent / "cache").exists()
