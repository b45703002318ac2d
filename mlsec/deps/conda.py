"""The ``pip:`` section of a conda ``environment.yml``.

Parsed with PyYAML's node API (``yaml.compose`` with the safe loader) so every entry keeps its
line. Conda packages themselves are not PyPI releases and are not audited here; the pip entries
use requirements-file syntax and go through the same line parser.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from mlsec.deps.manifest import ParsedManifest
from mlsec.deps.requirements import RequirementsParser


def _value(node: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def parse_environment_yml(
    text: str, relpath: str, *, path: Path, parser: RequirementsParser
) -> ParsedManifest:
    manifest = ParsedManifest(path=relpath, kind="environment.yml")
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        root = yaml.compose(text, Loader=loader)
    except yaml.YAMLError as exc:
        line = exc.problem_mark.line + 1 if getattr(exc, "problem_mark", None) else None
        manifest.problems.append((line, f"invalid YAML: {exc}"))
        return manifest
    if root is None:
        return manifest
    dependencies = _value(root, "dependencies")
    if dependencies is None:
        return manifest
    if not isinstance(dependencies, yaml.SequenceNode):
        line = dependencies.start_mark.line + 1
        manifest.problems.append((line, "'dependencies' must be a list"))
        return manifest
    for item in dependencies.value:
        pip = _value(item, "pip")
        if pip is None:
            continue  # a conda package (or a malformed entry conda itself would reject)
        if not isinstance(pip, yaml.SequenceNode):
            manifest.problems.append((pip.start_mark.line + 1, "'pip' must be a list"))
            continue
        for entry in pip.value:
            line = entry.start_mark.line + 1
            if not isinstance(entry, yaml.ScalarNode):
                manifest.problems.append((line, "pip entries must be strings"))
                continue
            parser.parse_line(path, relpath, line, str(entry.value).strip(), manifest)
    return manifest
