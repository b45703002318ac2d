"""``[bom]`` settings, in a module of their own so the analyzer can read them without
importing the BOM builder (git, YAML, card parsing) on scans that build no BOM."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from mlsec.hashing import HashCache


class BomSettings(NamedTuple):
    hash_cache: bool = True
    cache_dir: Path | None = None  # where the hash cache lives (the scan's --cache-dir)
    min_completeness: float | None = None
    # Report MLS301-MLS306 and MLS308 (documentation gaps). Off by default: a security scan
    # of a repository full of checkpoints should not drown in "no license" notes; teams that
    # gate on BOM quality turn it on (or select MLS3 rules on the command line).
    findings: bool = False


def hash_cache(settings: BomSettings) -> HashCache | None:
    """The hash cache in the scan's cache folder, or None when off."""
    if not settings.hash_cache:
        return None
    from mlsec.config import default_cache_dir
    from mlsec.hashing import HashCache

    return HashCache((settings.cache_dir or default_cache_dir()) / "hashes.json")
