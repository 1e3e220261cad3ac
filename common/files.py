"""Writing files so that a failure leaves nothing half-written and ends in one line.

Three rules, shared by the training scripts, the results and the data cache:

1. **What counts as read-only.** A folder is read-only when the operating system refuses writes
   (a read-only mount, no permission) *or* when it has no write permission bits at all. The
   second half matters for root, whom permissions do not stop: a data copy made read-only with
   ``chmod a-w`` stays untouched even by a script run as root (``common.data.store`` then puts its
   cache elsewhere, as documented).
2. **All or nothing.** A file is written under a temporary name in its own folder and renamed into
   place, so an interrupted or failed write never leaves a truncated file where a good one was
   (or where none was).
3. **A failed write is one line.** A full disk or a folder that cannot be written raises
   :class:`~common.errors.OutputError` naming the path, the reason and what was kept, which
   ``common.cli.run`` prints as ``error: ...`` with exit status 2.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from common.errors import OutputError


def nearest_existing(path: str | os.PathLike) -> Path:
    """``path`` itself if it exists, else its closest ancestor that does (what creating it would write in)."""
    path = Path(path).expanduser().absolute()
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def writable(folder: str | os.PathLike) -> bool:
    """Whether files may be created in ``folder`` (or in the closest existing ancestor, which
    creating ``folder`` would write in): the system allows it *and* the folder has a write bit."""
    existing = nearest_existing(folder)
    if not existing.is_dir():
        return False
    return os.access(existing, os.W_OK) and bool(existing.stat().st_mode & 0o222)


def reason(error: OSError) -> str:
    """The system's reason for a failed write, in words: 'No space left on device'."""
    return error.strerror or str(error) or type(error).__name__


@contextlib.contextmanager
def saving(path: str | os.PathLike, kept: str):
    """Turn a failed write of ``path`` (full disk, read-only folder) into one :class:`OutputError`
    that says what happened and ``kept``: what is still there and what to do."""
    try:
        yield
    except OSError as error:
        raise OutputError(f"could not write {path} ({reason(error)}); {kept}") from None


def write_with(path: str | os.PathLike, fill: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` all or nothing: ``fill(f)`` writes a temporary file beside it, which is
    flushed to disk and then renamed over ``path``. On failure the temporary file is removed and
    the ``OSError`` propagates, so ``path`` is either the old file or the whole new one."""
    path = Path(path)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; results and weights are meant to be read by all
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """:func:`write_with` for bytes already in memory."""
    write_with(path, lambda f: f.write(data))


def write_text(path: str | os.PathLike, text: str) -> None:
    """:func:`write_bytes` for text (UTF-8)."""
    write_bytes(path, text.encode("utf-8"))
