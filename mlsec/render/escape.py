"""Text from scanned content is data: one escaping function per output format.

File names and strings from scanned files (a pickle's ``os.system("...")`` argument, a
manifest line, an archive member name) reach every report. Each renderer passes such text
through the function for its format, so no file can change how a report renders:

- :func:`terminal`: non-printable characters (ESC, BEL, CR, backspace, bidi overrides,
  zero-width and other format characters, line separators, undecodable bytes) become visible
  escapes such as ``\\x1b`` or ``\\u202e``. Rich markup needs no escaping here because the
  table renderer hands rich :class:`rich.text.Text` objects, which are never parsed as markup.
- :func:`markdown`: the terminal escapes, then Markdown and HTML punctuation backslash-escaped
  (no HTML, links, images, autolinks, emphasis, math or table breaks), and a word joiner
  after ``@`` and ``#`` and inside ``://`` and ``www.`` so GitHub makes no @mention, issue
  reference, e-mail or bare-URL link of it.
- :func:`sarif_message`: the terminal escapes plus backslash-escaped square brackets (SARIF
  2.1.0 section 3.11.6: brackets in a plain-text message would otherwise form embedded links).
- :func:`json_safe`: JSON escapes control characters itself; what it cannot carry validly is
  a lone surrogate (an undecodable file-name byte read with ``surrogateescape``), which becomes
  ``\\xNN`` (the byte) or ``\\udXXX`` text.
- :func:`uri_path`: a repository path as a percent-encoded relative URI reference, from the
  path's original bytes.

Hand-written: rich offers ``rich.markup.escape`` (not needed with Text objects) and the
standard library ``html.escape``; neither handles terminal controls, GitHub's Markdown
extensions or surrogates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

WORD_JOINER = "\u2060"

_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(char: str) -> str:
    code = ord(char)
    if char in _SHORT:
        return _SHORT[char]
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def terminal(text: str) -> str:
    """``text`` with every non-printable character as a visible escape (space is kept).

    ``str.isprintable`` is false for the whole class: controls (C0, DEL, C1), format
    characters (bidi embeddings and isolates, zero-width spaces and joiners, tag characters),
    surrogates, private-use and unassigned code points, line and paragraph separators and
    spaces other than the ASCII one.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _visible(c) for c in text)


# CommonMark lets a backslash escape any ASCII punctuation; these are the characters that can
# start markup in GitHub Flavored Markdown (HTML, links, images, code, emphasis, strikethrough,
# tables, entities, math, emoji short codes, footnotes, headings, lists).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~&$:^@=-])")
# Word joiners after what GitHub turns into links outside Markdown syntax: @mentions and
# e-mail addresses, #123 references, scheme://host and www. autolinks.
_GITHUB_AUTOLINK = re.compile(r"(\\@|\\#|\\:(?=//)|(?i:\bwww)(?=\.))")


def markdown(text: str) -> str:
    """``text`` as inline GitHub Markdown that renders literally (in a table cell too)."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", terminal(text))
    return _GITHUB_AUTOLINK.sub(lambda m: m.group(1) + WORD_JOINER, escaped)


_SARIF_BRACKET = re.compile(r"([\[\]])")


def sarif_message(text: str) -> str:
    """``text`` for a SARIF plain-text ``message.text``: no embedded links, no controls."""
    return _SARIF_BRACKET.sub(r"\\\1", terminal(text))


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def json_text(text: str) -> str:
    """``text`` without lone surrogates (which strict JSON parsers reject)."""
    if not _has_surrogate(text):
        return text
    return "".join(_visible(c) if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def json_safe(value: Any) -> Any:
    """A copy of JSON-ready ``value`` with every string (keys too) passed through
    :func:`json_text`."""
    if isinstance(value, str):
        return json_text(value)
    if isinstance(value, Mapping):
        return {json_text(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _path_bytes(path: str) -> bytes:
    try:
        return path.encode("utf-8", "surrogateescape")  # the file name's own bytes
    except UnicodeEncodeError:  # a surrogate that no file name decodes to
        return path.encode("utf-8", "surrogatepass")


def uri_path(path: str) -> str:
    """A ``/``-separated relative path as a URI reference (RFC 3986), percent-encoded from its
    bytes: spaces, ``%``, ``#``, ``?``, ``:`` (which would make the first segment a scheme),
    brackets, controls and non-ASCII are encoded; ``/`` separates segments."""
    return quote(_path_bytes(path), safe="/")
