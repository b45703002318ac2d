"""JSON from untrusted files, bounded in size and depth; every failure is one error type.

``json.loads`` recurses once per nesting level and raises :class:`RecursionError` (not a
``ValueError``) on deep input, which escapes ordinary ``except ValueError`` handlers and takes
the whole analyzer with it; a file can also be huge or a device that never ends. This module
is the one place that turns all of that into :class:`JsonLimitError`, a ``ValueError``:

- :func:`loads` parses text or bytes (``max_bytes``, ``max_depth``);
- :func:`read_file` reads a path through :func:`mlsec.safeopen.open_regular` (a FIFO or
  ``/dev/zero`` is refused, never read) and at most ``max_bytes`` + 1 bytes of it;
- :func:`read_capped` is that bounded read alone (keys, certificates, other files).

With ``private=True`` both also refuse (:class:`NotPrivateFile`, an OSError) a file that is
not the user's own or that others may write: a cache mlsec wrote, whose content it trusts,
planted by another user of a shared cache folder.

The standard library parses (it is fast and exact); the depth is checked after, iteratively,
because a document shallow enough for ``json`` can still be deeper than any consumer expects
(pydantic models, recursive walkers downstream).
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any

from mlsec.safeopen import open_regular

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64


class JsonLimitError(ValueError):
    """Not JSON, not UTF-8, too large or nested too deep (the message says which)."""


class NotPrivateFile(OSError):
    """Not the user's own file, or writable by others (``private=True``)."""


def loads(
    data: str | bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Any:
    """Parse ``data``; raise :class:`JsonLimitError` instead of anything else."""
    if len(data) > max_bytes:
        raise JsonLimitError(f"larger than {max_bytes} bytes")
    try:
        value = json.loads(data)
    except RecursionError:
        raise JsonLimitError(f"nested deeper than {max_depth} levels") from None
    except UnicodeDecodeError:
        raise JsonLimitError("not UTF-8 text") from None
    except ValueError as exc:  # JSONDecodeError, and int() digit limits on huge numbers
        raise JsonLimitError(f"not valid JSON: {exc}") from None
    if depth_exceeds(value, max_depth):
        raise JsonLimitError(f"nested deeper than {max_depth} levels")
    return value


def read_file(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    private: bool = False,
) -> Any:
    """Read and parse a JSON file; OSError (including NotRegularFile) for what cannot be
    read, :class:`JsonLimitError` for what is read but refused."""
    data = read_capped(path, max_bytes, private=private)
    return loads(data, max_bytes=max_bytes, max_depth=max_depth)


def read_capped(path: str | os.PathLike[str], max_bytes: int, *, private: bool = False) -> bytes:
    """The bytes of a regular file, refused (:class:`JsonLimitError`) past ``max_bytes``."""
    with open_regular(path) as handle:
        st = os.fstat(handle.fileno())
        if private and not is_private(st):
            raise NotPrivateFile(f"not private to this user: {os.fspath(path)!r}")
        if st.st_size > max_bytes:  # not read at all (it may still grow: the cap below)
            raise JsonLimitError(f"larger than {max_bytes} bytes")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise JsonLimitError(f"larger than {max_bytes} bytes")
    return data


def is_private(st: os.stat_result) -> bool:
    """Owned by this user and writable by no one else (Windows: no owner, no such bits)."""
    owner = getattr(os, "geteuid", None)
    if owner is None:
        return True
    return st.st_uid == owner() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def depth_exceeds(value: Any, max_depth: int) -> bool:
    """Whether containers nest more than ``max_depth`` levels (an explicit stack)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
