"""JSON from untrusted files, bounded in size and depth; every failure is one error type.

``json.loads`` recurses once per nesting level and raises :class:`RecursionError` (not a
``ValueError``) on deep input, which escapes ordinary ``except ValueError`` handlers and takes
the whole analyzer with it; a file can also be huge or a device that never ends. This module
is the one place that turns all of that into :class:`JsonLimitError`, a ``ValueError``:

- :func:`loads` parses text or bytes (``max_bytes``, ``max_depth``);
- :func:`read_file` reads a path through :func:`mlsec.safeopen.open_regular` (a FIFO or
  ``/dev/zero`` is refused, never read) and at most ``max_bytes`` + 1 bytes of it;
- :func:`read_capped` is that bounded read alone (keys, certificates, other files).

The standard library parses (it is fast and exact); the depth is checked after, iteratively,
because a document shallow enough for ``json`` can still be deeper than any consumer expects
(pydantic models, recursive walkers downstream).
"""

from __future__ import annotations

import json
import os
from typing import Any

from mlsec.safeopen import open_regular

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64


class JsonLimitError(ValueError):
    """Not JSON, not UTF-8, too large or nested too deep (the message says which)."""


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
) -> Any:
    """Read and parse a JSON file; OSError (including NotRegularFile) for what cannot be
    read, :class:`JsonLimitError` for what is read but refused."""
    return loads(read_capped(path, max_bytes), max_bytes=max_bytes, max_depth=max_depth)


def read_capped(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The bytes of a regular file, refused (:class:`JsonLimitError`) past ``max_bytes``."""
    with open_regular(path) as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise JsonLimitError(f"larger than {max_bytes} bytes")
    return data


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
