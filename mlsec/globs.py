"""Path globs for include/exclude and policy lists, matched against '/'-separated paths.

``*`` matches within one path segment, ``**`` across segments, ``?`` one character, ``[...]``
one character of a set (``[!...]`` or ``[^...]``: not of it; never ``/``). A pattern without
``/`` matches a name at any depth (like .gitignore); a pattern that matches a folder also
matches everything below it. ``fnmatch`` has no ``**`` and lets ``*`` cross ``/``, hence
this small matcher.

Patterns come from configuration a scanned repository controls, and a regular expression of
many ``*`` backtracks exponentially (``a*a*...b`` of twenty stars runs for hours). So only
patterns with at most two wildcards of unbounded length (almost all real ones: ``*.pkl``,
``models/**/weights.bin``) become a regular expression, whose worst case is then quadratic;
the others are matched by simulating the pattern's automaton over the path, one set of
states per character: time linear in pattern length times path length. Both give the same
answers (tests/spine/test_globs.py).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

# Token kinds; a token is (kind, literal character, character set).
_LITERAL, _ONE, _STAR, _DEEP, _SEGMENTS, _CLASS = range(6)
_Set = tuple[bool, frozenset[str], tuple[tuple[str, str], ...]]  # negated, chars, ranges
_Token = tuple[int, str, _Set | None]


def _class(body: str) -> _Set:
    negated = body[:1] in ("!", "^")
    if negated:
        body = body[1:]
    chars: set[str] = set()
    ranges: list[tuple[str, str]] = []
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            ranges.append((body[i], body[i + 2]))
            i += 3
        else:
            chars.add(body[i])
            i += 1
    return negated, frozenset(chars), tuple(ranges)


@functools.lru_cache(maxsize=1024)
def _tokens(pattern: str) -> tuple[_Token, ...]:
    pattern = pattern.strip().lstrip("/")
    if pattern.startswith("./"):
        pattern = pattern[2:]
    if "/" not in pattern.rstrip("/"):
        pattern = "**/" + pattern
    pattern = pattern.rstrip("/")
    out: list[_Token] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append((_SEGMENTS, "", None))  # zero or more whole segments
            i += 3
        elif pattern.startswith("**", i):
            out.append((_DEEP, "", None))  # anything, across segments
            i += 2
        elif c == "*":
            if not out or out[-1][0] != _STAR:  # "**" handled above; "*" runs are one "*"
                out.append((_STAR, "", None))
            i += 1
        elif c == "?":
            out.append((_ONE, "", None))
            i += 1
        elif c == "[" and (end := pattern.find("]", i + 2)) != -1:
            out.append((_CLASS, "", _class(pattern[i + 1 : end])))
            i = end + 1
        else:
            out.append((_LITERAL, c, None))
            i += 1
    return tuple(out)


def _in_class(spec: _Set | None, c: str) -> bool:
    if spec is None or c == "/":
        return False
    negated, chars, ranges = spec
    hit = c in chars or any(low <= c <= high for low, high in ranges)
    return hit != negated


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> tuple[tuple[_Token, ...], tuple[frozenset[int], ...]]:
    """The tokens, and for each state the states reachable from it without consuming a
    character (stars and runs of segments may match nothing). State ``i`` is "before token
    i"; state ``n + 1 + i`` is "inside the segment run of token i" (it must end with /)."""
    tokens = _tokens(pattern)
    skippable = (_STAR, _DEEP, _SEGMENTS)
    reach: list[frozenset[int]] = []
    for start in range(len(tokens) + 1):
        end = start
        while end < len(tokens) and tokens[end][0] in skippable:
            end += 1
        reach.append(frozenset(range(start, end + 1)))
    return tokens, tuple(reach)


def _set_regex(spec: _Set | None) -> str:
    assert spec is not None
    negated, chars, ranges = spec
    body = "".join(re.escape(c) for c in sorted(chars))
    body += "".join(f"{re.escape(low)}-{re.escape(high)}" for low, high in ranges if low <= high)
    if negated:
        return f"[^/{body}]"
    return f"(?:(?!/)[{body}])" if body else "(?!)"


_REGEX = {_ONE: "[^/]", _STAR: "[^/]*", _DEEP: ".*", _SEGMENTS: "(?:.*/)?"}


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str] | None:
    """The pattern as a regular expression, when that cannot backtrack badly (at most two
    unbounded wildcards); None otherwise."""
    tokens = _tokens(pattern)
    if sum(kind in (_STAR, _DEEP, _SEGMENTS) for kind, _, _ in tokens) > 2:
        return None
    parts = [
        re.escape(literal)
        if kind == _LITERAL
        else _set_regex(spec)
        if kind == _CLASS
        else _REGEX[kind]
        for kind, literal, spec in tokens
    ]
    return re.compile("".join(parts) + "(?:/.*)?", re.DOTALL)


def glob_match(pattern: str, path: str) -> bool:
    regex = _regex(pattern)
    if regex is not None:
        return regex.fullmatch(path) is not None
    return _simulate(pattern, path)


def _simulate(pattern: str, path: str) -> bool:
    tokens, reach = _compiled(pattern)
    n = len(tokens)
    states: set[int] = set(reach[0])
    for c in path:
        if n in states and c == "/":
            return True  # the pattern matched a folder: everything inside it matches
        following: set[int] = set()
        for state in states:
            if state > n:  # inside a run of segments: anything; a "/" may end the run
                index = state - n - 1
                following.add(state)
                if c == "/":
                    following.update(reach[index + 1])
                continue
            if state == n:
                continue
            kind, literal, spec = tokens[state]
            if kind == _LITERAL:
                if c == literal:
                    following.update(reach[state + 1])
            elif kind == _ONE:
                if c != "/":
                    following.update(reach[state + 1])
            elif kind == _CLASS:
                if _in_class(spec, c):
                    following.update(reach[state + 1])
            elif kind == _STAR:
                if c != "/":
                    following.update(reach[state])
            elif kind == _DEEP:
                following.update(reach[state])
            else:  # _SEGMENTS: (anything "/")*
                following.add(n + 1 + state)
                if c == "/":
                    following.update(reach[state + 1])
        if not following:
            return False
        states = following
    return n in states


def any_match(patterns: Iterable[str], path: str) -> bool:
    return any(glob_match(p, path) for p in patterns)
