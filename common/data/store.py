"""Where data lives, how it is downloaded, and how decoded images are cached.

Three rules, shared by every data set of the book:

1. **One data root.** ``--data-dir`` if given, else ``$METALEARN_DATA``, else ``./data``. Each data
   set has its own folder below it (``omniglot/``, ``mini-imagenet/``, ``cifar100/``).
2. **Downloads are all-or-nothing.** A file streams to ``<name>.part-<pid>`` beside its final
   place, is checked against the official checksum *after* the download, and only then is renamed
   into place. A failed, truncated or mismatched download leaves nothing behind, so the next run
   starts clean instead of tripping over half a file.
3. **Decode once.** Decoding thousands of PNG/JPEG files takes seconds to minutes; the decoded
   uint8 arrays are cached as ``.npy`` files (memory-mapped on load, so a second run needs well under
   two seconds). The cache folder is ``$METALEARN_CACHE``, else ``<data root>/cache`` when the data
   root is writable, else ``~/.cache/metalearn`` (the offline copies may be read-only). A cache entry
   records a fingerprint of its sources and is rebuilt when they change; it too is written to a
   temporary folder and renamed, so an interrupted build never leaves a broken cache.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from common.errors import DataNotFoundError, DownloadError

CACHE_FORMAT = 1  # bump to invalidate every cache entry when the decoding changes


# --------------------------------------------------------------------------------------------
# 1. The data root and the cache folder
# --------------------------------------------------------------------------------------------

def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder that holds every data set: ``data_dir``, else ``$METALEARN_DATA``, else ``./data``."""
    if data_dir is None:
        data_dir = os.environ.get("METALEARN_DATA") or "data"
    return Path(data_dir).expanduser().resolve()


def cache_root(root: Path) -> Path:
    """Where decoded arrays go (see the module docstring for the order of choices)."""
    if os.environ.get("METALEARN_CACHE"):
        return Path(os.environ["METALEARN_CACHE"]).expanduser().resolve()
    if _writable(root):
        return root / "cache"
    return Path.home() / ".cache" / "metalearn"


def _writable(folder: Path) -> bool:
    """True when ``folder`` exists and we may create files in it, or could create it."""
    while not folder.exists():
        folder = folder.parent
    return os.access(folder, os.W_OK)


# --------------------------------------------------------------------------------------------
# 2. Downloads, verified before they are kept
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Resource:
    """One file a data set needs: where it officially comes from and how to recognise it."""

    filename: str
    url: str
    md5: str | None = None
    sha256: str | None = None

    def checksum(self) -> tuple[str, str]:
        """The (algorithm, hex digest) pair the download is verified against."""
        if self.sha256:
            return "sha256", self.sha256
        if self.md5:
            return "md5", self.md5
        raise ValueError(f"resource {self.filename} has no checksum")


def download(resource: Resource, folder: Path, *, timeout: float = 60.0, quiet: bool = False) -> Path:
    """Download ``resource`` into ``folder`` and return its path; verified or nothing.

    Raises :class:`DownloadError` when the server cannot be reached, the transfer stops early, or
    the bytes do not match the official checksum. In every failure the partial file is removed.
    """
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # to remove again on failure
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / resource.filename
    partial = folder / f"{resource.filename}.part-{os.getpid()}"
    algorithm, expected = resource.checksum()
    digest = hashlib.new(algorithm)
    if not quiet:
        print(f"downloading {resource.url} -> {final}", file=sys.stderr)
    try:
        with urllib.request.urlopen(resource.url, timeout=timeout) as response, open(partial, "wb") as out:
            announced = response.headers.get("Content-Length")
            received = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
        if announced is not None and received != int(announced):
            raise DownloadError(
                f"download of {resource.url} stopped after {received:,} of {int(announced):,} bytes; "
                "run the command again to retry")
        if digest.hexdigest() != expected:
            raise DownloadError(
                f"{resource.url} downloaded, but its {algorithm} is {digest.hexdigest()}, not the "
                f"official {expected}: the file is damaged or not the official one. Nothing was "
                f"kept; run again, or place a good copy at {final}")
        os.replace(partial, final)
        return final
    except DownloadError:
        raise
    except (OSError, http.client.HTTPException, ValueError) as error:  # unreachable, reset, cut short
        raise DownloadError(f"could not download {resource.url}: {error!r}; run again to retry") from error
    finally:
        partial.unlink(missing_ok=True)
        if not final.exists():
            for path in created:  # innermost first: leave no empty folders behind
                try:
                    path.rmdir()
                except OSError:
                    break


def fetch(resource: Resource, folder: Path, *, what: str, how_to_get: str = "") -> Path:
    """Return ``folder/resource.filename``, downloading it first when it is missing.

    ``what`` names the data set in the error message; ``how_to_get`` adds advice for offline users.
    A file already on disk is returned as it is: the data set's loader verifies its *contents*
    (the offline copies may be re-packed, so their bytes need not match the official checksum).
    """
    path = folder / resource.filename
    if path.exists():
        return path
    try:
        return download(resource, folder)
    except DownloadError as error:
        raise DataNotFoundError(
            f"{what}: {path} is missing and the download failed ({error}). "
            f"Download {resource.url} yourself and put it at {path}, or point --data-dir / "
            f"METALEARN_DATA at another data root that has it at the same place. {how_to_get}".strip()
        ) from None


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks (archives can be large)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# 3. The decoded-array cache
# --------------------------------------------------------------------------------------------

def source_fingerprint(*paths: Path) -> dict:
    """Cheap identity of the source files (name, size, modification time): changes rebuild the cache."""
    return {str(p.name): [p.stat().st_size, p.stat().st_mtime_ns] for p in paths}


def cached_arrays(entry: Path, fingerprint: dict, build: Callable[[], tuple[dict, dict]]) -> tuple[dict, dict]:
    """Load the arrays cached in folder ``entry``, or ``build()`` and cache them.

    ``build`` returns ``(arrays, info)``: a dict of NumPy arrays, and a JSON-able dict (class names,
    counts) stored beside them. Arrays come back memory-mapped and read-only.
    """
    key = {"format": CACHE_FORMAT, "sources": fingerprint}
    meta_path = entry / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == key:
            arrays = {name: np.load(entry / f"{name}.npy", mmap_mode="r") for name in meta["arrays"]}
            return arrays, meta["info"]
    arrays, info = build()
    _write_entry(entry, key, arrays, info)
    return {name: np.load(entry / f"{name}.npy", mmap_mode="r") for name in arrays}, info


def _write_entry(entry: Path, key: dict, arrays: dict, info: dict) -> None:
    """Write a cache entry to a temporary folder, then rename it into place (never half-written)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = entry.with_name(f"{entry.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", np.ascontiguousarray(array))
        meta = {"key": key, "arrays": list(arrays), "info": info}
        (staging / "meta.json").write_text(json.dumps(meta))
        shutil.rmtree(entry, ignore_errors=True)
        try:
            os.replace(staging, entry)
        except OSError:
            # Another process built the same entry between our rmtree and rename (parallel runs
            # on an empty cache): theirs is as good as ours, keep it.
            if not (entry / "meta.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
