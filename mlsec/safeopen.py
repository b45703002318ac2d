"""Open a scanned file once, as a regular file, without blocking.

A path can change between the walk and the read (a file swapped for a FIFO, a device or a
link to ``/dev/zero``). Every reader of scanned content opens through :func:`open_regular`:
the descriptor is opened non-blocking (a FIFO cannot stall the scan), ``fstat``-ed, and refused
unless it is a regular file; everything after reads from that descriptor, never the path again.
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
