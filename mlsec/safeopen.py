"""Open a scanned file once, as a regular file, without blocking.

A path can change between the walk and the read (a file swapped for a FIFO, a device or a
link to ``/dev/zero``). Every reader of scanned content opens through :func:`open_regular`:
the descriptor is opened non-blocking (a FIFO cannot stall the scan), ``fstat``-ed, and refused
unless it is a regular file; everything after reads from that descriptor, never the path again.
What mlsec writes to keep (its caches) goes through :func:`write_private`.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO


class NotRegularFile(OSError):
    """The path is (now) a FIFO, a device, a socket or a directory: it is not read."""


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """A binary read handle on ``path``, only if it is a regular file at open time."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(f"not a regular file: {os.fspath(path)!r}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def write_private(target: str | os.PathLike[str], text: str) -> None:
    """``text`` written whole to ``target``: a fresh ``0600`` file (``mkstemp``: a name planted
    in the folder, a link to a file of the user's, is never followed nor written through)
    renamed over it, so a reader sees the old file or the new one, never half of either, and
    what mlsec reads back later is the user's own whatever the umask. The folder is created
    ``0700`` when missing. Every cache mlsec writes (hashes, results, the BOM memo, the OSV
    indexes) goes through here."""
    import contextlib
    import tempfile

    folder = os.path.dirname(os.path.abspath(target))
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".mlsec-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
