"""Static parsers for model file formats (headers and metadata only; nothing is loaded).

Each parser reads bytes with explicit bounds and raises :class:`FormatError` on malformed
input; analyzers turn that into a finding. The AIBOM reuses the same parsers for metadata.
"""

from __future__ import annotations


class FormatError(Exception):
    """The bytes do not form a valid file of the expected format."""
