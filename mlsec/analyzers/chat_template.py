"""What a Jinja2 chat template can reach, from its syntax tree (it is parsed, never rendered).

A chat template is code run by the loader. Legitimate templates read message fields and
format strings; template-injection payloads walk Python internals (``__class__``,
``__globals__``, ``__subclasses__``, ``__builtins__``...) to reach ``os`` or ``eval``. Parsing
with Jinja2's own parser (the same grammar loaders use) sees through whitespace, comments,
escapes and string concatenation tricks that defeat regular expressions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# Attributes that lead from any object to Python internals (frames, globals, classes).
_INTERNAL_NAMES = frozenset(
    {
        "mro",
        "func_globals",
        "func_code",
        "im_func",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_back",
        "f_code",
        "gi_frame",
        "gi_code",
        "cr_frame",
        "cr_code",
        "ag_frame",
        "tb_frame",
        "tb_next",
        "co_code",
        "_TemplateReference__context",
        "_module",
    }
)
_DUNDER = re.compile(r"^__\w+__$")
_SUSPICIOUS_TEXT = re.compile(
    r"__\w+|\b(?:mro|f_globals|func_globals|gi_frame|subclasses|builtins|globals)\b"
)


@dataclass(frozen=True)
class TemplateIssue:
    kind: str  # "internals" (direct access), "dynamic" (computed attribute names), "syntax"
    name: str
    line: int | None


def is_internal(name: str) -> bool:
    return bool(_DUNDER.match(name)) or name in _INTERNAL_NAMES


def _environment() -> Any:
    import jinja2
    import jinja2.ext
    from jinja2 import nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationTag(jinja2.ext.Extension):
        """``{% generation %}...{% endgeneration %}``, which transformers' templates use."""

        tags = {"generation"}  # noqa: RUF012 (jinja2's API is a class attribute)

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.Scope(body, lineno=lineno)

    # Same extensions transformers enables, so benign templates parse as they do there.
    return ImmutableSandboxedEnvironment(
        extensions=[jinja2.ext.loopcontrols, jinja2.ext.do, GenerationTag]
    )


def template_issues(source: str) -> list[TemplateIssue]:
    """Parse ``source`` and report access to Python internals (never renders it)."""
    import jinja2

    try:
        tree = _environment().parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return [TemplateIssue("syntax", str(exc.message or exc)[:200], exc.lineno)]
    except RecursionError:
        return [TemplateIssue("syntax", "template nested too deeply", None)]
    except Exception as exc:  # jinja2 raises other errors on odd input; all mean "unparsable"
        return [TemplateIssue("syntax", f"{type(exc).__name__}: {exc}"[:200], None)]
    try:
        return _inspect(tree)
    except _TooDeep:
        return [TemplateIssue("syntax", "template nested too deeply to check", None)]


def _inspect(tree: Any) -> list[TemplateIssue]:
    from jinja2 import nodes

    issues: list[TemplateIssue] = []
    for node in _walk(tree):
        line = getattr(node, "lineno", None)
        if isinstance(node, nodes.Getattr) and is_internal(node.attr):
            issues.append(TemplateIssue("internals", node.attr, line))
        elif isinstance(node, nodes.Name) and is_internal(node.name):
            issues.append(TemplateIssue("internals", node.name, line))
        elif isinstance(node, nodes.Filter | nodes.Test) and _computed_attribute(node):
            issues.append(TemplateIssue("dynamic", f"{node.name}(<computed attribute>)", line))
        elif isinstance(node, nodes.Const) and isinstance(node.value, str):
            # Names used in x['__class__'], x|attr('__class__'), map(attribute='a.__class__')
            internal = [part for part in node.value.split(".") if is_internal(part)]
            if internal:
                issues.extend(TemplateIssue("internals", part, line) for part in internal)
            elif _SUSPICIOUS_TEXT.search(node.value):
                issues.append(TemplateIssue("dynamic", repr(node.value[:60]), line))
    return _dedupe(issues)


# Filters and tests that look attributes up by a name given as an argument.
_BY_POSITION = frozenset({"attr", "selectattr", "rejectattr", "groupby"})
_BY_KEYWORD = frozenset({"map", "sort", "sum", "unique", "min", "max", "groupby"})


def _computed_attribute(node: Any) -> bool:
    """Whether a filter/test looks up an attribute whose name is computed, not a literal."""
    from jinja2 import nodes

    if node.name in _BY_POSITION and node.args and not isinstance(node.args[0], nodes.Const):
        return True
    return node.name in _BY_KEYWORD and any(
        kw.key == "attribute" and not isinstance(kw.value, nodes.Const) for kw in node.kwargs
    )


class _TooDeep(Exception):
    pass


def _walk(node: Any, depth: int = 0) -> Iterator[Any]:
    if depth > 500:  # never stop silently: a payload could hide below the cut-off
        raise _TooDeep
    yield node
    for child in node.iter_child_nodes():
        yield from _walk(child, depth + 1)


def _dedupe(issues: list[TemplateIssue]) -> list[TemplateIssue]:
    seen: set[tuple[str, str]] = set()
    out: list[TemplateIssue] = []
    for issue in issues:
        if (issue.kind, issue.name) not in seen:
            seen.add((issue.kind, issue.name))
            out.append(issue)
    return out
