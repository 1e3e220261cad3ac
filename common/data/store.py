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
   root is writable, else ``~/.cache/metalearn`` (the offline copies may be read-only). Read-only
   means what ``common.files.writable`` says: a folder without write permission counts as read-only
   even for root, who could write it, so a data copy protected with ``chmod a-w`` never receives a
   cache. A cache entry records a fingerprint of its sources and is rebuilt when they change, or
   when it is damaged (a truncated file); it too is written to a temporary folder and renamed, so
   an interrupted build never leaves a broken cache. When no cache folder can be written, the
   load stops before decoding, with a line that says to set ``$METALEARN_CACHE``.
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

from common.errors import ConfigError, DataNotFoundError, DownloadError, OutputError
from common.files import reason, writable

CACHE_FORMAT = 1  # bump to invalidate every cache entry when the decoding changes


# --------------------------------------------------------------------------------------------
# 1. The data root and the cache folder
# --------------------------------------------------------------------------------------------

def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder that holds every data set: ``data_dir``, else ``$METALEARN_DATA``, else ``./data``."""
    if data_dir is not None:
        given = f"--data-dir {data_dir}"
    elif os.environ.get("METALEARN_DATA"):
        data_dir = os.environ["METALEARN_DATA"]
        given = f"METALEARN_DATA={data_dir}"
    else:
        data_dir = given = "data"
    root = Path(data_dir).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{given} is a file, not a folder: point it at the folder that holds the data sets "
                          f"(omniglot/, mini-imagenet/, cifar100/)")
    return root


def cache_root(root: Path) -> Path:
    """Where decoded arrays go (see the module docstring for the order of choices)."""
    if os.environ.get("METALEARN_CACHE"):
        cache = Path(os.environ["METALEARN_CACHE"]).expanduser().resolve()
        if cache.exists() and not cache.is_dir():
            raise ConfigError(f"METALEARN_CACHE={os.environ['METALEARN_CACHE']} is a file, not a folder: point it "
                              f"at a folder for the decoded-image cache")
        return cache
    if writable(root):
        return root / "cache"
    return Path.home() / ".cache" / "metalearn"


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


def split_files(url: str, extension: str, sha256: dict[str, str]) -> dict[str, Resource]:
    """The split files of a data set, published side by side at ``url``: {split: the file
    ``<split>.<extension>`` at ``<url>/<split>.<extension>``, recognised by its sha256}."""
    return {split: Resource(f"{split}.{extension}", f"{url}/{split}.{extension}", sha256=digest)
            for split, digest in sha256.items()}


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
    if (entry / "meta.json").exists():
        try:
            found = _read_entry(entry, key)
        except _Damaged as damage:
            print(f"note: the cache entry {entry} is damaged ({damage}); rebuilding it from the source files",
                  file=sys.stderr)
        else:
            if found is not None:
                return found
    if not writable(entry.parent):  # before the decoding, which can take minutes
        raise OutputError(
            f"the decoded-image cache cannot be written: {entry.parent} is read-only (the cache goes to "
            f"$METALEARN_CACHE, else <data root>/cache, else ~/.cache/metalearn); set METALEARN_CACHE to a "
            f"folder you can write, e.g. export METALEARN_CACHE=$PWD/.cache")
    arrays, info = build()
    _write_entry(entry, key, arrays, info)
    return {name: np.load(entry / f"{name}.npy", mmap_mode="r") for name in arrays}, info


class _Damaged(Exception):
    """A cache entry whose files cannot be what ``meta.json`` says (cut short, say)."""


def _read_entry(entry: Path, key: dict) -> tuple[dict, dict] | None:
    """The arrays and info of a complete entry made from ``key``'s sources; None for an entry of
    other sources (stale, to be rebuilt). Raises :class:`_Damaged` when a file is unreadable or
    shorter than its header says: memory-mapping checks each array's size against the file's."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        if meta.get("key") != key:
            return None
        arrays = {name: np.load(entry / f"{name}.npy", mmap_mode="r") for name in meta["arrays"]}
        for name, (shape, dtype) in meta.get("shapes", {}).items():  # recorded since entries are checked
            if list(arrays[name].shape) != shape or str(arrays[name].dtype) != dtype:
                raise ValueError(f"{name}.npy holds {arrays[name].dtype} {arrays[name].shape}, not {dtype} {shape}")
        return arrays, meta["info"]
    except (OSError, ValueError, EOFError, KeyError, TypeError, AttributeError) as error:
        raise _Damaged(f"{type(error).__name__}: {error}") from None


def _write_entry(entry: Path, key: dict, arrays: dict, info: dict) -> None:
    """Write a cache entry to a temporary folder, then rename it into place (never half-written).
    A failed write (a full disk) is one line; nothing of the entry is left behind."""
    staging = entry.with_name(f"{entry.name}.tmp-{os.getpid()}")
    try:
        _stage_and_rename(entry, staging, key, arrays, info)
    except OSError as error:
        raise OutputError(f"could not write the cache entry {entry} ({reason(error)}); nothing of it was kept: free "
                          f"some disk space, or set METALEARN_CACHE to a folder on another disk") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _stage_and_rename(entry: Path, staging: Path, key: dict, arrays: dict, info: dict) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name, array in arrays.items():
        np.save(staging / f"{name}.npy", np.ascontiguousarray(array))
    shapes = {name: [list(np.shape(array)), str(np.asarray(array).dtype)] for name, array in arrays.items()}
    meta = {"key": key, "arrays": list(arrays), "shapes": shapes, "info": info}
    (staging / "meta.json").write_text(json.dumps(meta))
    shutil.rmtree(entry, ignore_errors=True)
    try:
        os.replace(staging, entry)
    except OSError:
        # Another process built the same entry between our rmtree and rename (parallel runs
        # on an empty cache): theirs is as good as ours, keep it.
        if not (entry / "meta.json").exists():
            raise
