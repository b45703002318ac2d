"""``setup.cfg``: ``[options] install_requires`` and ``[options.extras_require]``.

Read with ``configparser`` (interpolation off: ``%`` is literal in requirements); lines come
from the raw text since configparser keeps no positions.
"""

from __future__ import annotations

import configparser
import re

from mlsec.deps.manifest import LineFinder, ParsedManifest, from_requirement_string


def parse_setup_cfg(text: str, relpath: str) -> ParsedManifest:
    manifest = ParsedManifest(path=relpath, kind="setup.cfg")
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text, source=relpath)
    except configparser.Error as exc:
        manifest.problems.append((getattr(exc, "lineno", None), f"invalid setup.cfg: {exc}"))
        return manifest
    finder = LineFinder(text)
    sections: list[tuple[str, str]] = []
    if parser.has_option("options", "install_requires"):
        sections.append(("options", "install_requires"))
    if parser.has_section("options.extras_require"):
        sections.extend(("options.extras_require", k) for k in parser["options.extras_require"])
    for section, key in sections:
        start = finder.header("^" + re.escape(f"[{section}]") + "$") or 1
        cursor = finder.find((key,), start) or start
        for raw in parser.get(section, key).splitlines():
            requirement = raw.split("#", 1)[0].strip() if " #" in raw else raw.strip()
            if not requirement or requirement.startswith("#"):
                continue
            line = finder.find((requirement,), cursor) or cursor
            cursor = line
            from_requirement_string(requirement, source=relpath, line=line, manifest=manifest)
    return manifest
