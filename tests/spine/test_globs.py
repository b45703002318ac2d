"""Globs: the semantics of the include/exclude and policy patterns, in time linear in the
pattern and path (patterns come from configuration a scanned repository controls)."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlsec.globs import _simulate, glob_match


def _reference(pattern: str) -> re.Pattern[str]:
    """The regular-expression translation mlsec used before (kept here as the reference for
    patterns without character sets, where both must agree)."""
    pattern = pattern.strip().lstrip("/")
    if pattern.startswith("./"):
        pattern = pattern[2:]
    if "/" not in pattern.rstrip("/"):
        pattern = "**/" + pattern
    pattern = pattern.rstrip("/")
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + "(?:/.*)?", re.DOTALL)


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*.pkl", "a/b/model.pkl", True),
        ("*.pkl", "model.pkl.txt", False),
        ("models/**", "models/a/b.bin", True),
        ("models/**", "other/models/a", False),
        ("models", "x/models/a.bin", True),  # a folder name at any depth, and what it holds
        ("tests/fixtures/**", "tests/fixtures/evil.pkl", True),
        ("data/*.csv", "data/sub/x.csv", False),
        ("**/cache/*.bin", "cache/x.bin", True),
        ("a**b", "a/x/b", True),
        ("m?del.pt", "model.pt", True),
        ("m?del.pt", "m/del.pt", False),
        ("[mM]odel.*", "Model.bin", True),
        ("[!m]odel.*", "model.bin", False),
        ("[a-c]x", "bx", True),
        ("w[!a]", "w/", False),  # a set never matches "/"
        ("./requirements.txt", "requirements.txt", True),
        ("/build/", "build/x", True),
    ],
)
def test_glob_semantics(pattern: str, path: str, expected: bool) -> None:
    assert glob_match(pattern, path) is expected
    assert _simulate(pattern, path) is expected  # the automaton, whatever the pattern


ALPHABET = st.sampled_from(["a", "b", "/", "*", "**", "?", ".", "**/", "x"])


@settings(max_examples=400, deadline=None)
@given(st.lists(ALPHABET, max_size=7).map("".join), st.text("ab/.x", max_size=10))
def test_agrees_with_the_regular_expression_translation(pattern: str, path: str) -> None:
    expected = bool(_reference(pattern).fullmatch(path))
    assert glob_match(pattern, path) == expected
    assert _simulate(pattern, path) == expected


SET_ALPHABET = st.sampled_from(["a", "/", "*", "[ab]", "[!a]", "[a-b]", "?", "**/", "b"])


@settings(max_examples=300, deadline=None)
@given(st.lists(SET_ALPHABET, max_size=6).map("".join), st.text("ab/", max_size=8))
def test_both_matchers_agree_on_character_sets(pattern: str, path: str) -> None:
    assert glob_match(pattern, path) == _simulate(pattern, path)


def test_many_stars_do_not_blow_up() -> None:
    """As a regex, twenty "a*" run for hours on forty "a"s (exponential backtracking)."""
    start = time.monotonic()
    assert not glob_match("a*" * 20 + "b", "a" * 40)
    assert not glob_match("*a" * 120 + "b", "a" * 1000)  # 241 characters: under the cap
    assert glob_match("**/" * 80 + "x", "a/" * 500 + "x")
    assert time.monotonic() - start < 5
