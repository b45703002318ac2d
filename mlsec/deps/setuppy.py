"""``setup.py`` read statically: the literal ``install_requires`` / ``extras_require`` /
``tests_require`` of its ``setup()`` call, through :mod:`ast`; the file is never executed.

Values may be written inline, or through a module-level name assigned once (``requires =
[...]``, then ``install_requires=requires``), and joined with ``+``; a string is split into
lines as setuptools does. Anything else (a comprehension, a function call, a file read at
run time, ``**kwargs``) cannot be known without running the file: it is recorded as
``dynamic`` (a finding that says those dependencies were not audited), never guessed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from mlsec.deps.manifest import ParsedManifest, from_requirement_string

_KEYWORDS = {"install_requires": False, "extras_require": False, "tests_require": True}
_MAX_RESOLVE_DEPTH = 20


class _Dynamic(Exception):
    """A value that only running the file would give."""

    def __init__(self, line: int | None, what: str) -> None:
        super().__init__(what)
        self.line = line
        self.what = what


def parse_setup_py(text: str, relpath: str) -> ParsedManifest:
    manifest = ParsedManifest(path=relpath, kind="setup.py")
    try:
        tree = ast.parse(text, filename=relpath)
    except SyntaxError as exc:
        manifest.problems.append((exc.lineno, f"invalid Python: {exc.msg}"))
        return manifest
    except ValueError as exc:  # source with NUL bytes
        manifest.problems.append((None, f"invalid Python: {exc}"))
        return manifest
    names = _module_assignments(tree)
    calls = list(_setup_calls(tree))
    if not calls:
        if "install_requires" in text or "extras_require" in text:
            manifest.dynamic.append((None, "no setup() call that can be read statically"))
        return manifest
    for call in calls:
        given = {k.arg for k in call.keywords if k.arg is not None}
        if any(k.arg is None for k in call.keywords) and not given & set(_KEYWORDS):
            manifest.dynamic.append(
                (call.lineno, "setup() takes its arguments from **kwargs built at run time")
            )
        for keyword in call.keywords:
            if keyword.arg not in _KEYWORDS:
                continue
            dev = _KEYWORDS[keyword.arg]
            dynamic: list[_Dynamic] = []
            try:
                values = (
                    _extras(keyword.value, names)
                    if keyword.arg == "extras_require"
                    else [keyword.value]
                )
            except _Dynamic as unknown:
                dynamic.append(unknown)
                values = []
            for value in values:
                dynamic.extend(_requirements(value, names, manifest, dev=dev))
            for part in dynamic:
                manifest.dynamic.append(
                    (part.line or keyword.value.lineno, f"{keyword.arg}: {part.what}")
                )
    return manifest


def _setup_calls(tree: ast.AST) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Name) and func.id == "setup") or (
                isinstance(func, ast.Attribute) and func.attr == "setup"
            ):
                yield node


def _module_assignments(tree: ast.Module) -> dict[str, ast.expr | None]:
    """Module-level names bound exactly once by a plain assignment (None: bound otherwise or
    more than once, or changed in place, so its value at the setup() call is not known
    without running the file)."""
    bound: dict[str, ast.expr | None] = {}
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = list(node.targets), node.value
        elif isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        elif isinstance(
            node, ast.AugAssign | ast.For | ast.AsyncFor | ast.comprehension | ast.NamedExpr
        ):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = list(node.targets)
        else:
            continue
        for target in targets:
            if (
                isinstance(target, ast.Name)
                and value is not None
                and id(node) in top
                and target.id not in bound
            ):
                bound[target.id] = value
            else:
                for name in _bound_names(target):
                    bound[name] = None
    # Mutating calls (requires.append(...), requires.extend(...)) change a list later.
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.attr in ("append", "extend", "insert", "update", "pop", "remove")
        ):
            bound[node.func.value.id] = None
    return bound


def _bound_names(target: ast.expr) -> list[str]:
    """Names an assignment target binds or changes (``extras["x"] = ...`` changes extras)."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple | ast.List):
        return [name for element in target.elts for name in _bound_names(element)]
    if isinstance(target, ast.Starred | ast.Subscript | ast.Attribute):
        return _bound_names(target.value)
    return []


def _resolve(node: ast.expr, names: dict[str, ast.expr | None], depth: int = 0) -> ast.expr:
    if depth > _MAX_RESOLVE_DEPTH:
        raise _Dynamic(node.lineno, "names refer to each other too deeply")
    if isinstance(node, ast.Name):
        value = names.get(node.id)
        if value is None:
            raise _Dynamic(node.lineno, f"'{node.id}' is not a literal assigned once")
        return _resolve(value, names, depth + 1)
    return node


def _strings(
    node: ast.expr, names: dict[str, ast.expr | None], dynamic: list[_Dynamic], depth: int = 0
) -> list[ast.Constant]:
    """The string literals a value is made of; parts only running the file would give go to
    ``dynamic`` (the rest is still read)."""
    try:
        node = _resolve(node, names, depth)
    except _Dynamic as exc:
        dynamic.append(exc)
        return []
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node]
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        out: list[ast.Constant] = []
        for element in node.elts:
            out.extend(_strings(element, names, dynamic, depth + 1))
        return out
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = _strings(node.left, names, dynamic, depth + 1)
        return left + _strings(node.right, names, dynamic, depth + 1)
    dynamic.append(_Dynamic(node.lineno, f"computed at run time ({type(node).__name__})"))
    return []


def _requirements(
    node: ast.expr, names: dict[str, ast.expr | None], manifest: ParsedManifest, *, dev: bool
) -> list[_Dynamic]:
    dynamic: list[_Dynamic] = []
    for constant in _strings(node, names, dynamic):
        value = str(constant.value)
        lines = value.splitlines() or [value]
        for offset, raw in enumerate(lines):
            requirement = raw.split("#", 1)[0].strip()
            if not requirement:
                continue
            from_requirement_string(
                requirement,
                source=manifest.path,
                line=constant.lineno + (offset if len(lines) > 1 else 0),
                manifest=manifest,
                dev=dev,
            )
    return dynamic


def _extras(node: ast.expr, names: dict[str, ast.expr | None]) -> list[ast.expr]:
    node = _resolve(node, names)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise _Dynamic(node.lineno, "built with ** at run time")
        return list(node.values)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "dict"
        and not node.args
        and all(k.arg is not None for k in node.keywords)
    ):
        return [k.value for k in node.keywords]
    raise _Dynamic(node.lineno, f"computed at run time ({type(node).__name__})")
