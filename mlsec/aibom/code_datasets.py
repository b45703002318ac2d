"""Datasets named by Python code: ``load_dataset("org/name")`` and ``tfds.load("name")``.

The source is parsed with :mod:`ast` (never imported or run); a file that does not parse is
searched with a regular expression instead. Only literal names count: a variable tells
nothing.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

MAX_SOURCE_BYTES = 1024 * 1024
_LOADERS = {"load_dataset"}  # datasets.load_dataset, and the bare import
_MODULE_LOADERS = {("tfds", "load"), ("tensorflow_datasets", "load")}
_REGEX = re.compile(r"""\bload_dataset\(\s*(?:path\s*=\s*)?["']([^"'\s]{1,200})["']""")


@dataclass(frozen=True)
class CodeDataset:
    name: str
    path: str  # the .py file, relative to the scan root
    line: int


def _call_name(node: ast.Call) -> tuple[str | None, str]:
    func = node.func
    if isinstance(func, ast.Name):
        return None, func.id
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else None
        return owner, func.attr
    return None, ""


def _first_string(node: ast.Call) -> str | None:
    if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
        return node.args[0].value
    for keyword in node.keywords:
        if keyword.arg in ("path", "name") and isinstance(keyword.value, ast.Constant):
            value = keyword.value.value
            return value if isinstance(value, str) else None
    return None


def find_datasets(path: Path, relpath: str) -> list[CodeDataset]:
    with open(path, "rb") as handle:
        source = handle.read(MAX_SOURCE_BYTES)
    if b"load" not in source:
        return []
    text = source.decode("utf-8", "replace")
    try:
        tree = ast.parse(text, filename=relpath)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return [
            CodeDataset(m.group(1), relpath, text.count("\n", 0, m.start()) + 1)
            for m in _REGEX.finditer(text)
        ]
    found: list[CodeDataset] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        owner, name = _call_name(node)
        if name in _LOADERS or (owner, name) in _MODULE_LOADERS:
            dataset = _first_string(node)
            if dataset and dataset.strip() and len(dataset) <= 200:
                found.append(CodeDataset(dataset.strip(), relpath, node.lineno))
    found.sort(key=lambda d: (d.line, d.name))
    return found
