"""``[bom]`` settings, in a module of their own so the analyzer can read them without
importing the BOM builder (git, YAML, card parsing) on scans that build no BOM."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple


class BomSettings(NamedTuple):
    hash_cache: bool = True
    cache_dir: Path | None = None  # where the hash cache lives (the scan's --cache-dir)
    min_completeness: float | None = None
    # Report MLS301-MLS306 and MLS308 (documentation gaps). Off by default: a security scan
    # of a repository full of checkpoints should not drown in "no license" notes; teams that
    # gate on BOM quality turn it on (or select MLS3 rules on the command line).
    findings: bool = False
