"""Path globs for include/exclude and policy lists, matched against '/'-separated paths.

``*`` matches within one path segment, ``**`` across segments, ``?`` one character. A pattern
without ``/`` matches a name at any depth (like .gitignore); a pattern that matches a folder
also matches everything below it. ``fnmatch`` has no ``**`` and lets ``*`` cross ``/``, hence
this small translation.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str]:
    pattern = pattern.strip().lstrip("/")
    if pattern.startswith("./"):
        pattern = pattern[2:]
    if "/" not in pattern.rstrip("/"):
        pattern = "**/" + pattern
    pattern = pattern.rstrip("/")
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
                continue
        else:
            out.append(re.escape(c))
        i += 1
    # Matching a folder matches what is inside it.
    return re.compile("".join(out) + "(?:/.*)?", re.DOTALL)


def glob_match(pattern: str, path: str) -> bool:
    return _compile(pattern).fullmatch(path) is not None


def any_match(patterns: Iterable[str], path: str) -> bool:
    return any(glob_match(p, path) for p in patterns)
